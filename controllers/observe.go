package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// defaultRelistAfter is how long after a transient listing failure a
// Customer's retry lists the account again, by default
// (CustomerReconciler.RelistAfter).
const defaultRelistAfter = 30 * time.Second

// relistWait is how long after the listing failure err a Customer's retry
// lists the account again: what ScriptLock asked with Retry-After (a 429,
// a 503), else RelistAfter.
func (r *CustomerReconciler) relistWait(err error) time.Duration {
	var se *scriptlock.Error
	if errors.As(err, &se) && se.RetryAfter > 0 {
		return min(se.RetryAfter, r.RelistAfter)
	}
	return r.RelistAfter
}

// preCheckMaxAge is how old a listing may be to decide that no record has
// a new Customer's email yet. A record created in that window by someone
// else is still refused by ScriptLock's 409; only a lost answer in the same
// window could be mistaken for ours, and then only with the very same fields.
const preCheckMaxAge = 5 * time.Second

// observation is what observe found out about a Customer's record, without
// writing anything.
type observation struct {
	// record is the record this Customer owns, as read (its ID is empty
	// when the Customer has none yet and create is set).
	record scriptlock.Customer
	// bind, when not empty, says how this pass takes the record over (the
	// Adopted Event's message).
	bind string
	// create: no record exists for this Customer; one may be created.
	create bool
	// remoteDeleted is the id of the record someone deleted in ScriptLock.
	remoteDeleted string
	// fromMemory: record comes from what the operator itself last wrote
	// or saw, not from a read; recheckIn is when to read again.
	fromMemory bool
	recheckIn  time.Duration
	// seen: record is what ScriptLock itself answered, not the operator's
	// memory of its own write.
	seen bool
	// dropProof: the create-time proof annotation must go (its record
	// is another's); it is gone from the Customer in memory already.
	dropProof bool
}

// observe answers "which record is mine, and what does it hold?" without
// writing to ScriptLock or to the Customer. An ownership problem is a
// *stuck error (Conflict, AccountChanged, NotFound).
func (r *CustomerReconciler) observe(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (observation, error) {
	var obs observation
	if id := c.Status.CustomerID; id != "" {
		key := client.ObjectKeyFromObject(c)
		rec, found, err := r.observeBound(ctx, c, cl, &obs)
		if found {
			r.memory.present(key)
		}
		if err != nil || found {
			obs.record = rec
			return obs, err
		}
		if err := r.confirmVanished(c, cl, id); err != nil {
			return obs, err
		}
		if c.Spec.CustomerID != "" {
			// The spec pins this id: a new record could never satisfy it.
			return obs, stuckf(v1alpha1.ReasonNotFound,
				"ScriptLock customer %s (spec.customerID) was deleted outside the cluster", id)
		}
		obs.remoteDeleted = id
		// From here on c has no record: its claims are those of an unbound
		// Customer that held id.
		u := c.DeepCopy()
		u.Status.CustomerID, u.Status.FormerCustomerID, u.Status.PendingCreate = "", id, nil
		// The proof annotation, void while id was bound, goes before the
		// binding does (unbind): it proves nothing for u.
		delete(u.Annotations, v1alpha1.PendingCreateAnnotation)
		return r.observeUnbound(ctx, u, cl, obs)
	}
	return r.observeUnbound(ctx, c, cl, obs)
}

// specIDDiffers is the Conflict of a Customer that manages the record id
// while its spec.customerID names another.
func (r *CustomerReconciler) specIDDiffers(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string) error {
	held := ""
	if other := r.boundTo(ctx, c, cl, c.Spec.CustomerID, nil); other != nil {
		held = fmt.Sprintf(" (Customer %s/%s manages ScriptLock customer %s)", other.Namespace, other.Name, c.Spec.CustomerID)
	}
	return stuckf(v1alpha1.ReasonConflict,
		"spec.customerID %q differs from the record this Customer already manages (%q)%s; create a new Customer to manage another record",
		c.Spec.CustomerID, id, held)
}

// observeBound reads the record of status.customerID. found is false when
// ScriptLock no longer has it in the account it was bound in.
func (r *CustomerReconciler) observeBound(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, obs *observation) (scriptlock.Customer, bool, error) {
	id := c.Status.CustomerID
	if c.Spec.CustomerID != "" && c.Spec.CustomerID != id {
		return scriptlock.Customer{}, false, r.specIDDiffers(ctx, c, cl, id)
	}
	if other, err := r.rivalForRecord(ctx, c, cl, id); err != nil || other != nil {
		if err != nil {
			return scriptlock.Customer{}, false, err
		}
		return scriptlock.Customer{}, false, stuckf(v1alpha1.ReasonConflict, "%s", rivalMessage(c, other))
	}
	if c.Status.Account == cl.Account() {
		v := reconcileRequested(c)
		if v == "" {
			return r.read(ctx, c, cl, id, !readsDirectly(c), obs)
		}
		// A requested pass reads the record itself, once: a retry of the
		// same request (its write held back) uses that read.
		key := client.ObjectKeyFromObject(c)
		if rec, ok := r.memory.readFor(key, v, cl.Account(), id); ok {
			obs.seen = true
			return rec, true, nil
		}
		rec, found, err := r.read(ctx, c, cl, id, false, obs)
		if err == nil && found {
			r.memory.readForRequest(key, v, cl.Account(), rec, r.Clock.Now())
		}
		return rec, found, err
	}
	rec, err := r.recordAfterMove(ctx, c, cl, id)
	return rec, err == nil, err
}

// recordAfterMove reads record id, bound in another account, in the account
// of cl that c's credentials name now (readAfterMove), and returns it only
// if it is proven to be c's record there (provenAfterMove); else the
// AccountChanged *stuck error, or the error of a read.
func (r *CustomerReconciler) recordAfterMove(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string) (scriptlock.Customer, error) {
	rec, found, at, err := r.readAfterMove(ctx, c, cl, id, r.listedSince(c))
	if err != nil {
		return rec, err
	}
	rec, _, err = r.provenAfterMove(ctx, c, cl, rec, found, at)
	return rec, err
}

// listedSince is how old a listing may answer for c: one of the last two
// periods, shared with every other need, or, when a person asked for a
// pass, one asked for since the operator first saw the request.
func (r *CustomerReconciler) listedSince(c *v1alpha1.Customer) time.Time {
	if since, ok := r.requestedSince(c); ok {
		return since
	}
	return r.Clock.Now().Add(-2 * r.ResyncPeriod)
}

// requestedSince returns when the operator first saw c's pending reconcile
// request (now for a new one); ok is false without one.
func (r *CustomerReconciler) requestedSince(c *v1alpha1.Customer) (time.Time, bool) {
	v := reconcileRequested(c)
	if v == "" {
		return time.Time{}, false
	}
	return r.memory.requestedSince(client.ObjectKeyFromObject(c), v, r.Clock.Now()), true
}

// readAfterMove reads record id in the account the credentials name now,
// which is not the one it was bound in: from a listing of that account
// (shared by every Customer that moved with it, so that a key rotation
// costs one listing, not one read per Customer), confirmed by a read when
// the listing lacks it. The listing is one asked for no earlier than
// since; at is when what answered (that listing, or the read) was asked
// for.
func (r *CustomerReconciler) readAfterMove(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string, since time.Time) (scriptlock.Customer, bool, time.Time, error) {
	recs, at, err := r.accounts.list(ctx, cl, since, client.ObjectKeyFromObject(c))
	if err != nil {
		return scriptlock.Customer{}, false, time.Time{}, err
	}
	if rec, ok := recs.record(id); ok {
		return rec, true, at, nil
	}
	at = r.Clock.Now()
	rec, err := cl.Get(ctx, id)
	if scriptlock.IsNotFound(err) {
		return rec, false, at, nil
	}
	if err == nil {
		// Whoever it belongs to, it exists in this account: a listing
		// asked for after now that lacks it lags (listingLags).
		r.accounts.found(cl.Account(), r.Clock.Now(), rec)
	}
	return rec, err == nil, at, err
}

// provenAfterMove decides whether the record found under status.customerID
// with credentials of another account than the one it was bound in is
// still this Customer's. A move is not a proof by itself: the same id with
// the same email, even every field equal, is what another account filled
// from the same CRM or a restored instance shows too. It is taken only when
//   - a person accepted the new account (AcceptAccountAnnotation naming
//     its fingerprint) and the id there has this Customer's email; or
//   - it is a rotated key: the same URL, the old key now refused by
//     ScriptLock, and the record exactly as last synced
//     (status.syncedDigest) in place once the old key is refused: found
//     by a listing or a read asked for no earlier than the refusal was
//     seen. at is when the one that found rec was asked for; an older
//     one proves nothing about the rotation (the record may have been
//     deleted since), and the account is listed again (one listing,
//     shared by every Customer that moved with the key).
//
// Anything else is AccountChanged, and nothing is written or deleted. The
// record returned is the one proven (read again, if it had to be); found
// is false when the account lacks it (then or when read again).
func (r *CustomerReconciler) provenAfterMove(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, rec scriptlock.Customer, found bool, at time.Time) (scriptlock.Customer, bool, error) {
	id := c.Status.CustomerID
	if !found {
		return rec, false, noSuchRecordAfterMove(c, cl)
	}
	accepted, asSynced := moveProof(c, cl, rec)
	if accepted {
		return rec, true, nil
	}
	if asSynced {
		refusedAt, refused, err := r.oldKeyRefused(ctx, c, cl, id)
		if err != nil {
			return rec, true, err
		}
		if refused && at.Before(refusedAt) {
			// Found before the refusal was seen: is it in place now?
			rec, found, _, err = r.readAfterMove(ctx, c, cl, id, refusedAt)
			if err != nil {
				return rec, true, err
			}
			if !found {
				return rec, false, noSuchRecordAfterMove(c, cl)
			}
			_, refused = moveProof(c, cl, rec)
		}
		if refused {
			return rec, true, nil
		}
	}
	return rec, true, stuckf(v1alpha1.ReasonAccountChanged,
		"ScriptLock customer %s was bound in account %s at %s; the current credentials name account %s at %s, where that id is not proven to be the same record "+
			"(a rotated key carries a record over only when the old key is refused and the record is as last synced), so nothing is written or deleted. "+
			"If account %s is the right home of this Customer's record, annotate the Customer %s=%s",
		id, orNone(c.Status.Account), orNone(c.Status.URL), cl.Account(), cl.BaseURL(), cl.Account(), v1alpha1.AcceptAccountAnnotation, cl.Account())
}

// noSuchRecordAfterMove is the AccountChanged of a Customer whose record,
// bound in another account, the account of its current credentials does
// not have.
func noSuchRecordAfterMove(c *v1alpha1.Customer, cl *scriptlock.Client) error {
	return stuckf(v1alpha1.ReasonAccountChanged,
		"ScriptLock customer %s was bound in account %s, and the account of the current credentials (%s) has no such record; nothing is written. "+
			"If the credentials name the right account and the record was deleted there, delete this Customer (nothing is deleted in ScriptLock) and create it again",
		c.Status.CustomerID, orNone(c.Status.Account), cl.Account())
}

// moveProof says what proves rec, found in cl's account under the id c is
// bound to in another (c's credentials moved there), to be c's record:
// accepted, when it has c's spec email and a person accepted that account
// (AcceptAccountAnnotation), which is proof enough; asSynced, when it is,
// at the same URL, exactly as c last synced it (its email included; the
// spec may have changed since, and is then written to it), which a rotated
// key carries over once the old key is refused (oldKeyRefused).
func moveProof(c *v1alpha1.Customer, cl *scriptlock.Client, rec scriptlock.Customer) (accepted, asSynced bool) {
	accepted = strings.EqualFold(rec.Email, c.Spec.Email) && c.Annotations[v1alpha1.AcceptAccountAnnotation] == cl.Account()
	sameURL := c.Status.URL == "" || c.Status.URL == cl.BaseURL()
	asSynced = sameURL && c.Status.SyncedDigest != "" && digest(rec) == c.Status.SyncedDigest
	return accepted, asSynced
}

// oldKeyRefused says whether the key c's record was bound with is now
// refused by ScriptLock (401/403 to a read of id), and when that refusal
// was seen: the evidence that a new key of the same account replaced it.
// The old key is known only while this manager remembers the client it
// used (not after a restart): no evidence then. An answer that is neither (a 5xx, a timeout, a 429) is an error:
// no answer is no evidence either way, and a deletion must not let go of
// the record on it.
func (r *CustomerReconciler) oldKeyRefused(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string) (time.Time, bool, error) {
	old := r.memory.lastClient(client.ObjectKeyFromObject(c))
	if old == nil || old.Account() != c.Status.Account || old.Account() == cl.Account() {
		return time.Time{}, false, nil
	}
	// One check answers for every Customer of the old account.
	if at, ok := r.accounts.refusedSince(old.Account(), r.Clock.Now().Add(-keyRefusedFor)); ok {
		return at, true, nil
	}
	_, err := old.Get(ctx, id)
	switch {
	case scriptlock.IsUnauthorized(err):
		at := r.Clock.Now()
		r.accounts.refused(old.Account(), at)
		return at, true, nil
	case err == nil || scriptlock.IsNotFound(err):
		return time.Time{}, false, nil
	}
	return time.Time{}, false, fmt.Errorf("checking whether ScriptLock still takes the key customer %s was bound with: %w", id, err)
}

// keyRefusedFor is how long a key ScriptLock refused is taken as refused
// without asking again.
const keyRefusedFor = time.Minute

// read returns the record id as ScriptLock holds it. In list mode, and
// when cached is allowed, a listing of the account from the last two
// periods answers (made when there is none); a record missing from it is
// confirmed by a read. In per-object mode, a record seen equal to the spec
// less than a period ago is not read again.
func (r *CustomerReconciler) read(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string, cached bool, obs *observation) (scriptlock.Customer, bool, error) {
	key := client.ObjectKeyFromObject(c)
	now := r.Clock.Now()
	if cached && r.DriftDetection == DriftByList && c.Status.ObservedGeneration == c.Generation {
		rec, found, known, own, err := r.listed(key, cl.Account(), id, 2*r.ResyncPeriod, now)
		if err != nil {
			if o, _ := classify(err); o.stalled || !r.accounts.failedBefore(cl.Account(), now.Add(-r.relistWait(err))) {
				// The account cannot be listed: Ready would claim a check
				// that did not happen.
				return rec, false, err
			}
		}
		if err != nil || !known {
			// A transient failure a while ago: list again (shared by every
			// Customer of the account) rather than wait a whole period. No
			// listing yet (after a restart): list, so that the first pass
			// of every Customer costs one listing per account, not one
			// read each.
			since := now.Add(-2 * r.ResyncPeriod)
			if err != nil {
				since = now.Add(-r.relistWait(err))
			}
			recs, _, lerr := r.accounts.list(ctx, cl, since, key)
			if lerr != nil {
				return rec, false, lerr
			}
			rec, found = recs.record(id)
			known, own = true, false
		}
		if known && found {
			obs.seen = !own
			return rec, true, nil
		}
	}
	if cached && r.DriftDetection == DriftPerObject {
		want := desired(c)
		if left, ok := r.memory.syncedWithin(key, want, r.ResyncPeriod, now); ok {
			obs.fromMemory, obs.recheckIn = true, left
			return want, true, nil
		}
	}
	rec, err := cl.Get(ctx, id)
	if scriptlock.IsNotFound(err) {
		return rec, false, nil
	}
	if err == nil {
		r.accounts.found(cl.Account(), r.Clock.Now(), rec)
	}
	obs.seen = err == nil
	return rec, err == nil, err
}

// listed says what the account's last listing, if requested within maxAge
// of now, holds under id, or what key's own later write put there (own).
// found is false also when the listing did not keep the record whole
// (listing). known is false when there is no such listing; err is the last
// listing's error when the account's listing is failing.
func (r *CustomerReconciler) listed(key types.NamespacedName, account, id string, maxAge time.Duration, now time.Time) (rec scriptlock.Customer, found, known, own bool, err error) {
	recs, asked, known, err := r.accounts.last(account, maxAge, now)
	if !known || err != nil {
		return rec, false, false, false, err
	}
	if rec, ok := r.memory.writtenAfter(key, account, id, asked); ok {
		// The operator wrote the record after the listing was asked for:
		// what it wrote is newer than the listing.
		return rec, true, true, true, nil
	}
	rec, found = recs.record(id)
	return rec, found, true, false, nil
}

// observeUnbound finds the record of a Customer that has none bound. The
// finders run in order (spec.customerID, the record of this object's own
// earlier create whose answer was lost, the record last found holding its
// email, an existing record with its email), each a no-op when it does not
// apply; the first record found goes to claim, the one ownership check.
// None found: a create is due.
func (r *CustomerReconciler) observeUnbound(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, obs observation) (observation, error) {
	if other, err := r.rival(ctx, c, cl, c.Spec.CustomerID); err != nil || other != nil {
		if err != nil {
			return obs, err
		}
		return obs, stuckf(v1alpha1.ReasonConflict, "%s", rivalMessage(c, other))
	}
	if err := pendingElsewhere(c, cl); err != nil {
		return obs, err
	}
	since := r.Clock.Now().Add(-min(preCheckMaxAge, r.ResyncPeriod))
	if asked, ok := r.requestedSince(c); ok {
		// A person asked for a look: at a listing asked for since the
		// request was first seen (a retry held back after the listing
		// does not list again).
		since = asked
	}
	finders := []func(context.Context, *v1alpha1.Customer, *scriptlock.Client) (*candidate, error){
		r.findOwnCreateBeforeSpecID,
		r.findBySpecID,
		r.findFormer,
		r.findOwnCreate,
		r.findTaken,
		func(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (*candidate, error) {
			return r.findByEmail(ctx, c, cl, since)
		},
	}
	for _, find := range finders {
		cand, err := find(ctx, c, cl)
		if err != nil || cand == nil {
			if err != nil {
				return obs, err
			}
			continue
		}
		bind, err := r.claim(ctx, c, cl, *cand)
		if errors.Is(err, errManagedByAnother) {
			if cand.tie == ownCreate {
				// Emails are unique: the record with the email of its
				// create is another's, so no record of that create
				// survives, and the proof could only vouch for that other
				// record later (once its holder is gone).
				obs.dropProof = dropPending(c) || obs.dropProof
			}
			continue
		}
		obs.record, obs.bind, obs.seen = cand.rec, bind, true
		return obs, err
	}
	obs.create = true
	return obs, nil
}

// candidate is a record a finder turned up for a Customer without one, and
// what ties it to that Customer.
type candidate struct {
	rec scriptlock.Customer
	tie tie
}

// tie is what ties a record to a Customer that has none bound, strongest
// first.
type tie int

const (
	// namedBySpec: spec.customerID names the record.
	namedBySpec tie = iota
	// formerlyHeld: the record this Customer held before it vanished, back
	// with this Customer's email in the same account.
	formerlyHeld
	// ownCreate: the record has the email of this object's own earlier
	// create, to this account, whose answer was lost.
	ownCreate
	// sameEmail: the record merely has the Customer's email.
	sameEmail
)

// errManagedByAnother says that a candidate is another Customer's bound
// record, so that the next finder may look on.
var errManagedByAnother = errors.New("the record is managed by another Customer")

// findBySpecID reads the record spec.customerID names, if any.
func (r *CustomerReconciler) findBySpecID(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (*candidate, error) {
	id := c.Spec.CustomerID
	if id == "" {
		return nil, nil
	}
	rec, err := cl.Get(ctx, id)
	switch {
	case scriptlock.IsNotFound(err):
		return nil, stuckf(v1alpha1.ReasonNotFound, "ScriptLock has no customer %s (spec.customerID)", id)
	case err != nil:
		return nil, err
	}
	return &candidate{rec: rec, tie: namedBySpec}, nil
}

// findFormer reads the record this Customer held before it vanished
// (status.formerCustomerID), if any: back with this Customer's email, in
// the same account, it is its own again.
func (r *CustomerReconciler) findFormer(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (*candidate, error) {
	id := c.Status.FormerCustomerID
	if id == "" || c.Status.Account != cl.Account() {
		return nil, nil
	}
	rec, err := cl.Get(ctx, id)
	switch {
	case scriptlock.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	case !strings.EqualFold(rec.Email, c.Spec.Email):
		return nil, nil
	}
	return &candidate{rec: rec, tie: formerlyHeld}, nil
}

// findOwnCreate looks for the record of this object's own earlier create
// whose answer was lost, in a listing asked for after it was sent. Not
// found while a create with an older email may still commit: wait for it
// before creating one with the new email, which could leave it behind.
func (r *CustomerReconciler) findOwnCreate(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (*candidate, error) {
	p, own := ownPending(c, cl)
	if !own {
		return nil, nil
	}
	rec, found, err := r.ownCreateRecord(ctx, c, cl, p)
	switch {
	case err != nil:
		return nil, err
	case found:
		return &candidate{rec: rec, tie: ownCreate}, nil
	case !strings.EqualFold(p.Email, c.Spec.Email) && r.Clock.Now().Before(p.Since.Add(r.PendingCreateWindow)):
		return nil, pendingf(v1alpha1.ReasonCreating,
			"the create sent %s with email %q has no record yet; waiting up to %s for it before creating one with %q",
			p.Since.Format(time.RFC3339), p.Email, r.PendingCreateWindow, c.Spec.Email)
	}
	return nil, nil
}

// ownCreateRecord is the record with the email of p, this object's own
// create whose outcome is unknown, in a listing asked for after it was
// sent (lookForPending); found is false when that listing has none.
func (r *CustomerReconciler) ownCreateRecord(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, p *v1alpha1.PendingCreate) (scriptlock.Customer, bool, error) {
	recs, err := r.lookForPending(ctx, c, cl, p)
	if err != nil {
		return scriptlock.Customer{}, false, err
	}
	return withEmail(ctx, cl, recs, p.Email)
}

// findOwnCreateBeforeSpecID looks, for a Customer whose spec.customerID
// is set while its own earlier create's outcome is unknown, for the record
// that create stored: a record with exactly the fields it posted. That
// create may have stored a record, and taking the other would leave it
// behind, a second record with this Customer's email; once bound to it,
// spec.customerID naming another is a Conflict, as for any Customer that
// manages a record. Not found within PendingCreateWindow of the create, it
// waits for it rather than take the record spec.customerID names and leave
// the create's record behind. A record with the create's email but not the fields
// posted, or the very record spec.customerID names, is left to
// findBySpecID: a person told this Customer which record is its own.
func (r *CustomerReconciler) findOwnCreateBeforeSpecID(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (*candidate, error) {
	p, own := ownPending(c, cl)
	if !own || c.Spec.CustomerID == "" {
		// Not told to take a record while its own create's outcome is
		// unknown: the usual order (findBySpecID, then findOwnCreate).
		return nil, nil
	}
	rec, found, err := r.ownCreateRecord(ctx, c, cl, p)
	switch {
	case err != nil:
		return nil, err
	case found && (rec.ID == c.Spec.CustomerID || !madeBy(rec, p)):
		return nil, nil
	case found:
		return &candidate{rec: rec, tie: ownCreate}, nil
	case r.Clock.Now().Before(p.Since.Add(r.PendingCreateWindow)):
		return nil, pendingf(v1alpha1.ReasonCreating,
			"the create sent %s with email %q has no record yet; waiting up to %s for it before taking ScriptLock customer %s (spec.customerID)",
			p.Since.Format(time.RFC3339), p.Email, r.PendingCreateWindow, c.Spec.CustomerID)
	}
	return nil, nil
}

// findTaken reads again the record last found holding this Customer's
// email (a retry after a Conflict): one read, where a listing would read
// the whole account. It is forgotten once it no longer has the email.
func (r *CustomerReconciler) findTaken(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (*candidate, error) {
	key := client.ObjectKeyFromObject(c)
	id := r.memory.takenBy(key)
	if id == "" {
		return nil, nil
	}
	rec, err := cl.Get(ctx, id)
	switch {
	case err == nil && strings.EqualFold(rec.Email, c.Spec.Email):
		return &candidate{rec: rec, tie: sameEmail}, nil
	case err != nil && !scriptlock.IsNotFound(err):
		return nil, err
	}
	r.memory.setTakenBy(key, "")
	return nil, nil
}

// findByEmail looks for a record with this Customer's email in a listing
// of the account asked for at or after since.
func (r *CustomerReconciler) findByEmail(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, since time.Time) (*candidate, error) {
	key := client.ObjectKeyFromObject(c)
	recs, asked, err := r.accounts.list(ctx, cl, since, key)
	if err != nil {
		return nil, err
	}
	if at, ok := r.accounts.emailWritten(cl.Account(), c.Spec.Email); ok && !asked.After(at) && !ownCreateOf(c, cl, c.Spec.Email) {
		// This manager gave a record this email after the listing was
		// asked for (another Customer's write, or the write of the
		// object this name had before a restore): only a newer listing
		// can show whether the email is free. This Customer's own
		// create of it is looked for by findOwnCreate.
		if recs, _, err = r.accounts.list(ctx, cl, at.Add(time.Nanosecond), key); err != nil {
			return nil, err
		}
	}
	rec, found, err := withEmail(ctx, cl, recs, c.Spec.Email)
	if err != nil || !found {
		return nil, err
	}
	return &candidate{rec: rec, tie: sameEmail}, nil
}

// claim is the one ownership check of a record found for a Customer
// without one: it returns the Adopted message if this Customer may take
// the record over, a Conflict that names the record and the way out if it
// may not, or errManagedByAnother when the record of its own create is
// already another Customer's (emails are unique, so no record of that
// create survives).
func (r *CustomerReconciler) claim(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, cand candidate) (string, error) {
	rec := cand.rec
	if cand.tie == sameEmail && rec.ID == c.Status.FormerCustomerID && c.Status.Account == cl.Account() {
		// The record it held, back under its email.
		cand.tie = formerlyHeld
	}
	switch cand.tie {
	case formerlyHeld:
		if other, err := r.rival(ctx, c, cl, rec.ID, rec.Email); err != nil || other != nil {
			if err != nil {
				return "", err
			}
			return "", stuckf(v1alpha1.ReasonConflict, "%s", rivalMessage(c, other))
		}
		return "ScriptLock customer " + rec.ID + ", which this Customer held before it vanished, is back", nil
	case namedBySpec:
		if other, err := r.rival(ctx, c, cl, rec.ID, rec.Email); err != nil || other != nil {
			if err != nil {
				return "", err
			}
			return "", stuckf(v1alpha1.ReasonConflict, "%s", rivalMessage(c, other))
		}
		return "managing existing ScriptLock customer " + rec.ID + " (spec.customerID)", nil
	case ownCreate:
		p := pendingOf(c)
		if by := r.accounts.madeBy(cl.Account(), rec.ID); by != "" && by != c.UID {
			// This manager read the answer of another object's create of
			// it (the object this name had before a restore, say): the
			// same fields, posted by someone else.
			return "", errManagedByAnother
		}
		sentAt, exact := r.accounts.sentAt(c.UID, cl.Account(), p.Email, p.Since.Time)
		if r.accounts.seenBefore(cl.Account(), rec.ID, p.Since.Time) ||
			r.accounts.seenAtURLBefore(cl.BaseURL(), cl.Account(), rec.ID, rec.Email, sentAt, exact) {
			// The record was there before this create was sent (a copy's
			// original's record, posted with the same fields, after a
			// listing that lagged showed its email free): someone else's.
			// So, most likely, is one with the same id and email that was
			// found before it in another account at the same URL (under
			// the key before a rotation: the same account).
			return "", errManagedByAnother
		}
		if !madeBy(rec, p) {
			return "", stuckf(v1alpha1.ReasonConflict,
				"ScriptLock customer %s has email %q but not the fields this Customer posted, so it cannot be proven to be the record of its earlier create; "+
					"nothing is written. If it is this Customer's record, set spec.customerID: %q", rec.ID, p.Email, rec.ID)
		}
		if r.boundTo(ctx, c, cl, rec.ID, &rec) != nil {
			// Another Customer, observers included, has it bound in this
			// account: it is that one's, whatever fields it shares with
			// what c posted (a copy posts the same fields). The same id
			// bound in another account is another record.
			return "", errManagedByAnother
		}
		if other, err := r.rival(ctx, c, cl, rec.ID, rec.Email); err != nil || other != nil {
			if err != nil {
				return "", err
			}
			return "", stuckf(v1alpha1.ReasonConflict, "%s", rivalMessage(c, other))
		}
		return "found ScriptLock customer " + rec.ID + " from an earlier create whose answer was lost", nil
	default:
		msg, err := r.emailTaken(ctx, c, cl, rec)
		if err != nil {
			// A retry reads that record instead of listing the account.
			r.memory.setTakenBy(client.ObjectKeyFromObject(c), rec.ID)
		}
		return msg, err
	}
}

// lookForPending returns a listing that can show the record of c's
// pending create p: asked after p was sent and after the last listing that
// showed none, so that a retry looks at something new. Concurrent looks
// share a listing under way.
func (r *CustomerReconciler) lookForPending(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, p *v1alpha1.PendingCreate) (*listing, error) {
	key := client.ObjectKeyFromObject(c)
	since := r.memory.lookedSince(key, p.Since.Time)
	if asked, ok := r.requestedSince(c); ok && asked.After(since) {
		// A person asked for a look: at a listing asked for since.
		since = asked
	}
	recs, asked, err := r.accounts.list(ctx, cl, since, key)
	if err != nil {
		return nil, err
	}
	if _, found := recs.idOf(p.Email); !found {
		r.memory.lookedAt(key, asked)
	}
	return recs, nil
}

// emailTaken decides about an existing record rec that has c's email and
// no proof of being c's: adopted, with the Adopted message, if the spec
// says so and no other Customer claims it; else a Conflict that names the
// record and how to adopt it.
func (r *CustomerReconciler) emailTaken(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, rec scriptlock.Customer) (string, error) {
	if c.Spec.Adoption != v1alpha1.AdoptionIfExists {
		if other := r.boundTo(ctx, c, cl, rec.ID, &rec); other != nil {
			return "", stuckf(v1alpha1.ReasonConflict,
				"ScriptLock customer %s already has email %q, and Customer %s/%s holds it; only one Customer may manage a record. "+
					"To move it here: set spec.deletionPolicy: Orphan on %s/%s, delete it, then set spec.customerID: %q here",
				rec.ID, c.Spec.Email, other.Namespace, other.Name, other.Namespace, other.Name, rec.ID)
		}
		return "", stuckf(v1alpha1.ReasonConflict,
			"ScriptLock customer %s already has email %q; to manage it, set spec.adoption: IfExists or spec.customerID: %q",
			rec.ID, c.Spec.Email, rec.ID)
	}
	if other, err := r.rival(ctx, c, cl, rec.ID, rec.Email); err != nil || other != nil {
		if err != nil {
			return "", err
		}
		return "", stuckf(v1alpha1.ReasonConflict, "%s", rivalMessage(c, other))
	}
	return "adopted existing ScriptLock customer " + rec.ID + " with the same email", nil
}

// deletable returns the id of the record a Customer being deleted may
// DELETE: its own, proven as observe proves it, in the account of its
// credentials, held by no other Customer. "" means there is none. A
// *stuck error means a record may exist but is not proven to be this
// Customer's: it must be let go, not deleted.
func (r *CustomerReconciler) deletable(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (string, error) {
	id := c.Status.CustomerID
	if id != "" && c.Status.Observed != nil {
		return "", stuckf(v1alpha1.ReasonConflict,
			"ScriptLock customer %s was bound while observing (managementPolicy: Observe) and never managed", id)
	}
	if id != "" && c.Status.Account != cl.Account() {
		var obs observation
		at := r.Clock.Now()
		rec, found, err := r.read(ctx, c, cl, id, false, &obs)
		if err != nil {
			return "", err
		}
		// Letting go without a DELETE is final: one 404 (a lagging
		// replica) is no more a proof that the record is not there than
		// it is of a deletion, so it is confirmed as a disappearance is.
		if found {
			r.memory.present(client.ObjectKeyFromObject(c))
		} else if err := r.confirmMissing(c, id, "let go without a DELETE (RecordKept)"); err != nil {
			return "", err
		}
		if _, still, err := r.provenAfterMove(ctx, c, cl, rec, found, at); err != nil {
			if !still {
				// Missing when read again after the refusal was seen:
				// confirmed as any missing read is before letting go.
				if err := r.confirmMissing(c, id, "let go without a DELETE (RecordKept)"); err != nil {
					return "", err
				}
			}
			return "", err
		}
	}
	if id == "" && c.Status.FormerCustomerID != "" {
		// The record it held before it vanished, if it is back: still its
		// own.
		cand, err := r.findFormer(ctx, c, cl)
		if err != nil {
			return "", err
		}
		if cand != nil {
			id = cand.rec.ID
		}
	}
	if id == "" {
		if pendingOf(c) == nil {
			return "", nil
		}
		p, own := ownPending(c, cl)
		if !own {
			return "", stuckf(v1alpha1.ReasonConflict,
				"its pending create was sent by another object or to another account (a restored object, or changed credentials)")
		}
		recs, err := r.lookForPending(ctx, c, cl, p)
		if err != nil {
			return "", err
		}
		rec, found, err := withEmail(ctx, cl, recs, p.Email)
		switch {
		case err != nil:
			return "", err
		case !found && r.Clock.Now().Before(p.Since.Add(r.PendingCreateWindow)):
			return "", pendingf(v1alpha1.ReasonCreating,
				"the outcome of its create (sent %s, email %q) is not known yet; waiting up to %s for its record before letting go",
				p.Since.Format(time.RFC3339), p.Email, r.PendingCreateWindow)
		case !found:
			return "", nil
		case !madeBy(rec, p):
			return "", stuckf(v1alpha1.ReasonConflict,
				"ScriptLock customer %s has the email of its earlier create but not the fields it posted", rec.ID)
		}
		id = rec.ID
	}
	other, err := r.holder(ctx, c, cl, id)
	if err != nil {
		return "", err
	}
	if other != nil {
		return "", stuckf(v1alpha1.ReasonConflict, "Customer %s/%s also holds ScriptLock customer %s", other.Namespace, other.Name, id)
	}
	return id, nil
}

// namingEmailHolder adds to a Conflict the Customer that holds the record
// with c's email when the message does not name it: a Conflict over
// something else (another spec.customerID, a rival for the record, a
// refused create) would otherwise hide the Customer a person has to deal
// with next (README: a Conflict names the Customer that holds the record
// or email). Other errors are returned as they are.
func (r *CustomerReconciler) namingEmailHolder(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, err error) error {
	var st *stuck
	if !errors.As(err, &st) || st.reason != v1alpha1.ReasonConflict {
		return err
	}
	if note := r.emailHolderNote(ctx, c, cl, st.msg); note != "" {
		return &stuck{reason: st.reason, msg: st.msg + note}
	}
	return err
}

// emailHolderNote names the Customer that holds the record with c's email
// (as last listed, else as last seen in sync), when msg does not name it
// already: a Customer whose spec moved to another email still holds the
// record that has this one. "" when none is known.
func (r *CustomerReconciler) emailHolderNote(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, msg string) string {
	var ids []string
	if recs := r.accounts.lastGoodListing(cl); recs != nil {
		if id, ok := recs.idOf(c.Spec.Email); ok {
			ids = append(ids, id)
		}
	}
	if id, ok := r.memory.recordWithEmail(cl.Account(), c.Spec.Email); ok {
		ids = append(ids, id)
	}
	for _, id := range ids {
		if h := r.boundTo(ctx, c, cl, id, nil); h != nil && h.Status.Account == cl.Account() && !names(msg, h) {
			return fmt.Sprintf("; ScriptLock customer %s has email %q, and Customer %s/%s holds it", id, c.Spec.Email, h.Namespace, h.Name)
		}
	}
	return ""
}

// names says whether msg names the Customer o (as namespace/name, not as
// the start of a longer name).
func names(msg string, o *v1alpha1.Customer) bool {
	ref := o.Namespace + "/" + o.Name
	for i := strings.Index(msg, ref); i >= 0; {
		end := i + len(ref)
		if end == len(msg) || !isNameChar(msg[end]) {
			return true
		}
		next := strings.Index(msg[end:], ref)
		if next < 0 {
			break
		}
		i = end + next
	}
	return false
}

// isNameChar says whether b may be part of a Kubernetes object name.
func isNameChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '.'
}
