package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// The three writes to ScriptLock. Each is called only after observe (or
// deletable) proved the record is this Customer's, and each tolerates what
// a retry finds: create an existing email, delete a record already gone.

// create posts a new record. The create-time proof is persisted first,
// with the finalizer, in one metadata patch (PendingCreateAnnotation), so
// that neither a crash nor a lost answer can lead to a duplicate or to a
// record nobody deletes; a lost answer copies it into
// status.pendingCreate. orig is the object as last written. adopted is the
// Adopted message when the create found an existing record to adopt
// instead.
func (r *CustomerReconciler) create(ctx context.Context, c, orig *v1alpha1.Customer, cl *scriptlock.Client) (rec scriptlock.Customer, adopted string, err error) {
	if err := r.listingLags(ctx, c, cl); err != nil {
		return rec, "", err
	}
	want := desired(c)
	want.ID = ""
	p, own := ownPending(c, cl)
	// unknown: a create of this email by this object was sent before and
	// its outcome was never learnt (observe found no record for it yet).
	unknown := own && strings.EqualFold(p.Email, want.Email)
	if unknown {
		if d := digest(want); !slices.Contains(p.Digests, d) && len(p.Digests) < maxPendingDigests {
			p = p.DeepCopy()
			p.Digests = append(p.Digests, d)
		}
	} else {
		p = newPending(c, cl, want, r.Clock.Now())
		// An older proof in the status (an earlier email's create) is
		// replaced, as the annotation's is, with the pass's status write.
		c.Status.PendingCreate = nil
	}
	// The proof is persisted once the client has admitted the create, so
	// that a create it holds back (its account's in-flight cap, a hold)
	// costs no write.
	before := orig.Status.PendingCreate
	var persistErr error
	// pre is the account's last listing complete before the create is
	// sent: no record in it can be this create's.
	var pre *listing
	ctx = withChange(ctx, c, createReason(c, unknown), want, fieldsSet(want))
	sent := false
	var sentAt time.Time
	defer func() {
		if sent && persistErr == nil {
			// Sent: a listing asked before now cannot show the email free.
			r.accounts.wroteEmail(cl.Account(), want.Email)
		}
	}()
	rec, err = cl.CreateAfter(ctx, want, func(ctx context.Context) error {
		pre, _ = r.accounts.lastListing(cl.Account())
		sent = true
		// One write: the finalizer (nothing can be left behind before
		// now) and the proof, bound to this object's UID.
		persistErr = r.patchMeta(ctx, c, func(c *v1alpha1.Customer) {
			controllerutil.AddFinalizer(c, v1alpha1.Finalizer)
			annotatePending(c, p)
		})
		if persistErr == nil {
			sentAt = r.Clock.Now()
			// No listing asked for before this send can show its record
			// (p.Since is in whole seconds, and was taken before the
			// client's gates): a look for it needs a newer one.
			r.memory.lookedAt(client.ObjectKeyFromObject(c), r.Clock.Now())
		}
		return persistErr
	})
	if persistErr != nil || errors.Is(err, scriptlock.ErrThrottled) {
		// Nothing was sent: the status stays as it was.
		c.Status.PendingCreate = before
		return rec, "", err
	}
	switch {
	case err == nil:
		r.accounts.made(cl, rec.ID, c.UID)
		r.accounts.found(cl.Account(), r.Clock.Now(), rec)
		r.event(c, corev1.EventTypeNormal, "Created", "Create", "created ScriptLock customer %s", rec.ID)
		return rec, "", nil
	case scriptlock.IsMaybeCreated(err):
		// The record may exist: the proof stays, and the next pass looks
		// for it before creating again. Not a failure that needs a person.
		// When this create was sent, to the nanosecond, tells its record
		// from one found elsewhere just before (seenAtURLBefore).
		r.accounts.sending(c.UID, cl.Account(), p.Email, p.Since.Time, sentAt)
		// It is copied into the status too (with the pass's status write,
		// Ready=False), where a replace-style update cannot drop it.
		c.Status.PendingCreate = p
		var se *scriptlock.Error
		_ = errors.As(err, &se)
		return rec, "", &pending{reason: v1alpha1.ReasonAPIError, retryAfter: se.RetryAfter,
			msg: err.Error() + "; the record may have been created: looking for it before creating again"}
	case scriptlock.IsConflict(err) && unknown && r.Clock.Now().After(p.Since.Add(r.PendingCreateWindow)):
		// Longer than any late commit: the email's record exists but no
		// listing shows it in a form this Customer can use (for example an
		// id ScriptLock answers that cannot be put in a URL, which listings
		// skip). Retrying forever would only hide that from a person.
		return rec, "", stuckf(v1alpha1.ReasonConflict,
			"ScriptLock has refused creates with email %q as taken since %s, yet no listing shows a usable record with that email and the fields this Customer posted "+
				"(records without a usable id are skipped: scriptlock_list_records_skipped_total); if you know the record, set spec.customerID",
			want.Email, p.Since.Format(time.RFC3339))
	case scriptlock.IsConflict(err) && unknown:
		// An earlier create of this object may have been committed late:
		// its record is looked for again on the next pass.
		return rec, "", pendingf(v1alpha1.ReasonCreating,
			"ScriptLock answered 409 Conflict to a create retried after an earlier create whose answer was lost; looking for that record (email %q)", want.Email)
	case unknown:
		// An earlier attempt's outcome is still unknown: its proof stays.
		return rec, "", err
	}
	if !scriptlock.IsConflict(err) {
		// Nothing was created by this attempt (nothing was sent, or
		// ScriptLock read it and refused), and no earlier one is unknown:
		// the proof goes, so it can never vouch for a record someone else
		// makes later, and deleting this Customer needs no ScriptLock call.
		return rec, "", orElse(r.dropPending(ctx, c), err)
	}
	// The email is taken: by this very create if a gateway retried the
	// POST and passed on the retry's 409 (the email was free in the
	// listing just before, and the record has exactly the fields posted),
	// else by someone else. Until a listing shows which, the proof stays.
	cand, lerr := r.findByEmail(ctx, c, cl, r.Clock.Now())
	switch {
	case lerr != nil:
		return rec, "", lerr
	case cand == nil:
		former := ""
		if c.Status.Account == cl.Account() {
			former = c.Status.FormerCustomerID
		}
		if id := r.accounts.heldBefore(cl.Account(), want.Email, former, p.Since.Time, sentAt); id != "" {
			// A record this manager found with the email before the create
			// was sent explains the 409 (not the one this Customer held
			// before it vanished: that one is its own again); the listing
			// that shows none lags. The create's proof could only vouch
			// for that record later: it goes.
			return rec, "", orElse(r.dropPending(ctx, c), stuckf(v1alpha1.ReasonConflict,
				"ScriptLock refused the create with 409 Conflict: customer %s had email %q before this create was sent; "+
					"to manage it, set spec.adoption: IfExists or spec.customerID: %q", id, want.Email, id))
		}
		return rec, "", pendingf(v1alpha1.ReasonCreating,
			"ScriptLock refused the create with 409 Conflict but lists no customer with email %q yet; looking for it (it may be this create's own, if a gateway retried the POST)", want.Email)
	case madeBy(cand.rec, p) && (pre == nil || !pre.lists(cand.rec.ID)):
		// Its own, if the one ownership check says so. A record listed
		// before the create was sent is someone else's with the same
		// fields (the object this name had before a restore, whose
		// create this manager did not see: a listing a few seconds old
		// did not show the email, given to the record since).
		own := *cand
		own.tie = ownCreate
		if adopted, err = r.claim(ctx, c, cl, own); !errors.Is(err, errManagedByAnother) {
			return cand.rec, adopted, err
		}
	}
	if derr := r.dropPending(ctx, c); derr != nil {
		return rec, "", derr
	}
	adopted, err = r.claim(ctx, c, cl, *cand)
	return cand.rec, adopted, err
}

// orElse returns err if it is not nil (a write that failed: the pass is
// tried again), else then.
func orElse(err, then error) error {
	if err != nil {
		return err
	}
	return then
}

// dropPending makes c's create-time proof go: the status copy with the
// pass's status write, the annotation now.
func (r *CustomerReconciler) dropPending(ctx context.Context, c *v1alpha1.Customer) error {
	v, had := c.Annotations[v1alpha1.PendingCreateAnnotation]
	dropPending(c)
	if !had {
		return nil
	}
	if err := r.removePendingAnnotation(ctx, c); err != nil {
		// Still there: c says so.
		metav1.SetMetaDataAnnotation(&c.ObjectMeta, v1alpha1.PendingCreateAnnotation, v)
		return err
	}
	return nil
}

// newestCopy confirms, before a PUT, that c is the API server's newest copy
// of the object when this manager has written nothing to it since it
// started: a cache that lags after a start (an old spec, old credentials,
// the status of another account) cannot be told by the operator's own last
// write, and a PUT decided on it could write an old spec, or write to the
// account the Customer has left. A *pending error (no condition changes)
// means a newer copy exists, whose own pass acts; other errors come from
// the read.
func (r *CustomerReconciler) newestCopy(ctx context.Context, c *v1alpha1.Customer) error {
	key := client.ObjectKeyFromObject(c)
	if r.memory.wroteAny(key) {
		return nil
	}
	fresh := &v1alpha1.Customer{}
	if err := r.APIReader.Get(ctx, key, fresh); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("reading Customer %s before writing its record: %w", key, err)
	}
	if fresh.UID != c.UID || fresh.ResourceVersion != c.ResourceVersion {
		return &pending{wait: waitNewerCopy, msg: "the cached copy of this Customer is older than the API server's; acting on the newest"}
	}
	return nil
}

// listingLags refuses to take the last listing of cl's account as showing
// c's email free when it provably lags: it lacks a record another Customer
// holds bound in that account (status.customerID and status.account), which
// existed before the listing was asked for unless this manager created it
// since. A lagging replica answers such listings, empty or not; a create
// decided on one could be answered 409 for a record made by someone else
// with the same fields (the object this name had before a restore, the
// original of a copy), which the create's proof would then take for its
// own, and to a manager that has just started, or that has not listed the
// account before (a rotated key), nothing else tells the two apart.
//
// A Customer bound in another account whose credentials now name cl's
// (a key rotated) holds its record here if the move is a rotation: until
// its own pass has decided that (it is woken to decide at once), and when
// this manager found that record here before the listing was asked for
// (that pass's read, which proves nothing of ownership after a restart but
// does prove the record exists), the record missing from the listing is
// no reason to create either.
//
// A held record that reads by id confirm gone (heldRecordGone: as a
// disappearance is confirmed) is no sign of lag: its holder may never look
// at this account again to find it gone (its credentials moved).
//
// It returns a *pending error (list again once the listing is older than
// preCheckMaxAge), an error reading the cache or the record; nil lets the
// create go on. Only the records the listing does not keep whole are
// looked at.
func (r *CustomerReconciler) listingLags(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) error {
	if c.Annotations[v1alpha1.RecreateAnnotation] == "true" {
		// A person confirmed that the account's records are really gone.
		return nil
	}
	recs, asked := r.accounts.lastListing(cl.Account())
	if recs == nil {
		return nil
	}
	if !r.claims.complete() {
		// Right after a start the index may not hold every holder yet.
		return &pending{retryAfter: throttledRetry, wait: waitIndex, msg: "indexing the Customers of the cache"}
	}
	for _, id := range r.accounts.notMadeSince(cl.Account(), recs.lacking(r.claims), asked) {
		// A record this manager created after the listing was asked for
		// is rightly missing from it (notMadeSince).
		for _, key := range r.claims.of(recordClaim(id)) {
			o := &v1alpha1.Customer{}
			if err := r.Get(ctx, key, o); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return fmt.Errorf("reading Customer %s: %w", key, err)
			}
			if o.UID == c.UID || o.Status.CustomerID != id || o.Annotations[v1alpha1.PausedAnnotation] == "true" ||
				readyReason(o) == v1alpha1.ReasonNotFound {
				// A paused Customer's status says nothing of now, nor does
				// one that found its record gone and waits for a person
				// (NotFound: pinned by spec.customerID, or observed).
				continue
			}
			here := o.Status.Account == cl.Account()
			if !here && !r.accounts.seenBefore(cl.Account(), id, asked) && !r.undecidedMove(ctx, o, cl) || recs.lists(id) {
				continue
			}
			if gone, err := r.heldRecordGone(ctx, cl, id); err != nil || gone {
				// Confirmed gone by reads of its own: the listing is right
				// to lack it, whether or not its holder ever looks again.
				if err != nil {
					return err
				}
				continue
			}
			if !here && r.accounts.wake != nil {
				r.accounts.wake([]types.NamespacedName{key})
			}
			return &pending{retryAfter: preCheckMaxAge, wait: waitRelist, msg: fmt.Sprintf(
				"the last listing of this ScriptLock account lacks customer %s, which Customer %s/%s holds there (a lagging replica?); listing again before creating",
				id, o.Namespace, o.Name)}
		}
	}
	return nil
}

// undecidedMove says whether o, bound in another account than cl's, now
// has credentials naming cl's account and has not been found
// AccountChanged there yet: its record is in cl's account if the move is
// a rotated key, which only its own pass decides.
func (r *CustomerReconciler) undecidedMove(ctx context.Context, o *v1alpha1.Customer, cl *scriptlock.Client) bool {
	if o.Status.Account == "" {
		return false
	}
	if readyReason(o) == v1alpha1.ReasonAccountChanged {
		return false
	}
	ocl, err := r.account(ctx, o)
	return err == nil && ocl.Account() == cl.Account()
}

// readyReason returns the reason of c's Ready condition, "" without one.
func readyReason(c *v1alpha1.Customer) string {
	if cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady); cond != nil {
		return cond.Reason
	}
	return ""
}

// boundTo returns another Customer of the cache, observers included, that
// has record id of cl's account in its status, or nil: bound in that
// account (status.account), or bound elsewhere while its credentials name
// that account (or cannot be read): a rotated key may carry its record
// over. Ids are unique only within an account: the same id bound in
// another account is another record. rec, when not nil, is the record id
// of cl's account as read: a Customer bound elsewhere holds it only if it
// could ever take it after its move (moveProof).
func (r *CustomerReconciler) boundTo(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string, rec *scriptlock.Customer) *v1alpha1.Customer {
	for _, key := range r.claims.of(recordClaim(id)) {
		if key == client.ObjectKeyFromObject(c) {
			continue
		}
		other := &v1alpha1.Customer{}
		if err := r.Get(ctx, key, other); err != nil || other.UID == c.UID || other.Status.CustomerID != id {
			continue
		}
		if other.Status.Account == cl.Account() {
			return other
		}
		if rec != nil {
			// Bound in another account, it holds rec only if it could
			// prove it its own after its move (whether its old key is
			// refused is not checked here: in doubt, its claim stands).
			// Any other record with that id is another record that
			// happens to have it (ids are numbered per account).
			if accepted, asSynced := moveProof(other, cl, *rec); !accepted && !asSynced {
				continue
			}
		}
		if same, err := r.sameAccount(ctx, c, other, cl); err != nil || same {
			// When in doubt, its claim stands.
			return other
		}
	}
	return nil
}

// maxPendingDigests bounds the create-time proof's digests: a spec changed
// that often while a create's outcome stays unknown is not worth tracking.
const maxPendingDigests = 4

// update puts the spec to the record if it differs. It refuses to write
// again what ScriptLock already accepted for this generation and then
// stored differently: that would repeat every period.
func (r *CustomerReconciler) update(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, obs observation) error {
	key := client.ObjectKeyFromObject(c)
	want := desired(c)
	if scriptlock.SameFields(obs.record, want) {
		if obs.seen {
			r.memory.converged(key)
		}
		return nil
	}
	fields := differingFields(obs.record, want)
	if r.memory.rewritten(key, c.Generation, fields) {
		// The same fields differ again after this generation's write. In
		// ScriptLock's own spelling of the spec (case, spacing): it tidies
		// values, and writing again would repeat that every period.
		// Anything else is someone's edit, put back, within a bound.
		if sameSpelling(obs.record, want) {
			return stuckf(v1alpha1.ReasonStoredDifferently,
				"ScriptLock accepted the spec for customer %s but stores %s in its own spelling (case or spacing); not writing again until the spec changes",
				want.ID, strings.Join(fields, ", "))
		}
		if n, ok := r.memory.correct(key, r.Clock.Now()); !ok {
			return stuckf(v1alpha1.ReasonChangedOutside,
				"someone keeps changing %s of ScriptLock customer %s to other values (put back %d times in the last hour); not writing again before the spec changes or the hour passes. Find the other writer",
				strings.Join(fields, ", "), want.ID, n)
		}
	}
	if err := r.newestCopy(ctx, c); err != nil {
		return err
	}
	changed, err := cl.Update(withChange(ctx, c, updateReason(c, obs), want, fields), want.ID, want)
	if !errors.Is(err, scriptlock.ErrThrottled) {
		// Sent: a listing asked before now cannot show the email free.
		r.accounts.wroteEmail(cl.Account(), want.Email)
	}
	if err == nil {
		r.memory.wrote(key, c.Generation, fields)
	}
	switch {
	case scriptlock.IsNotFound(err):
		return pendingf(v1alpha1.ReasonRemoteDeleted,
			"ScriptLock customer %s disappeared while being updated; checking again", want.ID)
	case scriptlock.IsConflict(err):
		return r.emailHeld(ctx, c, cl, want, err)
	case err != nil:
		return err
	case !changed:
		return nil
	}
	reason, format := "Updated", "updated ScriptLock customer %s to the spec"
	if updateReason(c, obs) == changeDriftCorrection {
		reason, format = "DriftCorrected", "ScriptLock customer %s was changed outside the cluster; put it back to the spec"
	}
	r.event(c, corev1.EventTypeNormal, reason, "Update", format, want.ID)
	return nil
}

// emailHeld is the Conflict of a PUT refused because another record has
// the email the spec asks for. When a Customer manages that record, it is
// named, with the way out: emails are unique in ScriptLock, so Customers
// cannot trade emails in place (a swap, a cycle), and the operator never
// writes a temporary email for them, which the customer would see.
func (r *CustomerReconciler) emailHeld(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, want scriptlock.Customer, err error) error {
	// The record with the email: as last seen in sync by this operator,
	// else in a listing asked for now.
	holderOf := func(id string) *v1alpha1.Customer {
		if id == "" || id == want.ID {
			return nil
		}
		if o, herr := r.holder(ctx, c, cl, id); herr == nil && o != nil {
			return o
		}
		// An observer claims nothing, but it has the record bound: it is
		// the one to name.
		if o := r.boundTo(ctx, c, cl, id, nil); o != nil && o.Status.Account == cl.Account() {
			return o
		}
		return nil
	}
	id, _ := r.memory.recordWithEmail(cl.Account(), want.Email)
	other := holderOf(id)
	if other == nil {
		// What this operator last saw in sync may be out of date (the
		// record changed or went since, or it was synced by a manager
		// before a restart): ScriptLock says which record has the email.
		if recs, _, lerr := r.accounts.list(ctx, cl, r.Clock.Now(), client.ObjectKeyFromObject(c)); lerr == nil {
			if lid, found := recs.idOf(want.Email); found && lid != id {
				other = holderOf(lid)
			}
		}
	}
	if other == nil {
		return stuckf(v1alpha1.ReasonConflict,
			"ScriptLock refused to give customer %s the email %q: another customer has it, and emails are unique in ScriptLock (%s)", want.ID, want.Email, err)
	}
	verb := "manages"
	if observing(other) {
		verb = "observes"
	}
	return stuckf(v1alpha1.ReasonConflict,
		"ScriptLock refused to give customer %s the email %q: customer %s has it, which Customer %s/%s %s (and wants %q). "+
			"Emails are unique in ScriptLock, so Customers cannot trade emails in place, and no temporary email is written for them: "+
			"revert one of the changes, or move the records between the Customers instead (README, \"Moving a record to another Customer\")",
		want.ID, want.Email, other.Status.CustomerID, other.Namespace, other.Name, verb, other.Spec.Email)
}

// remove deletes the record id, which revokes every license of that
// customer (ScriptLock answers 410 Gone); a record already gone is what was
// wanted, and is said to be so. A 404 may come from something in front of
// ScriptLock, and a read's 404 from a lagging replica: the record is taken
// as gone only when a read answers 404 after the DELETE's 404 and a second
// DELETE answers 404 too.
func (r *CustomerReconciler) remove(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string) error {
	for attempt := 1; ; attempt++ {
		alreadyGone, err := cl.Delete(withChange(ctx, c, changeDeletion, scriptlock.Customer{}, nil), id)
		switch {
		case scriptlock.IsConflict(err):
			return stuckf(v1alpha1.ReasonDeletionBlocked, "ScriptLock refused to delete customer %s: %s", id, messageOf(err))
		case err != nil:
			return err
		case !alreadyGone:
			r.accounts.removed(cl.Account(), id, r.Clock.Now())
			r.event(c, corev1.EventTypeNormal, "LicensesRevoked", "Delete",
				"deleted ScriptLock customer %s; every license of that customer is revoked", id)
			return nil
		case attempt > 1:
			r.accounts.removed(cl.Account(), id, r.Clock.Now())
			r.event(c, corev1.EventTypeNormal, v1alpha1.ReasonRecordGone, "Delete",
				"ScriptLock customer %s was already gone (its DELETE, a read and a second DELETE all answered 404): this deletion revoked nothing", id)
			return nil
		}
		// 404 may come from something in front of ScriptLock: a read
		// confirms the record is gone, and a second DELETE confirms the
		// read (a lagging replica answers 404 for a record that exists).
		_, err = cl.Get(ctx, id)
		switch {
		case err == nil:
			return pendingf(v1alpha1.ReasonAPIError,
				"the DELETE of ScriptLock customer %s was answered 404, yet ScriptLock still shows the record (a proxy or gateway in front of it?); deleting again", id)
		case !scriptlock.IsNotFound(err):
			return err
		}
	}
}

// sameSpelling says whether got holds want's values up to case and runs
// of whitespace: how a back end that tidies values stores them.
func sameSpelling(got, want scriptlock.Customer) bool {
	return digest(got) == digest(want)
}

// differingFields names the fields in which got differs from want: names
// only, never values, which may be personal data.
func differingFields(got, want scriptlock.Customer) []string {
	var out []string
	for _, f := range []struct {
		name string
		a, b string
	}{
		{"company", got.Company, want.Company},
		{"firstName", got.FirstName, want.FirstName},
		{"lastName", got.LastName, want.LastName},
	} {
		if f.a != f.b {
			out = append(out, f.name)
		}
	}
	if !strings.EqualFold(got.Email, want.Email) {
		out = append(out, "email")
	}
	return out
}

func isReady(c *v1alpha1.Customer) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == v1alpha1.ConditionReady {
			return cond.Status == metav1.ConditionTrue
		}
	}
	return false
}

// messageOf returns ScriptLock's own message of err, or err itself.
func messageOf(err error) string {
	var se *scriptlock.Error
	if errors.As(err, &se) && se.Message != "" {
		return se.Message
	}
	return err.Error()
}
