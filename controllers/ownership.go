package controllers

// The ownership rule: a ScriptLock record is written or deleted only by the
// one Customer that can prove it owns it, in the account the record lives
// in, while no other Customer of that account has a better claim on it.
// The proofs are:
//
//   - status.customerID with status.account equal to the account of the
//     current credentials (the record was bound there before);
//   - spec.customerID, or spec.adoption: IfExists for a record with the
//     spec's email: a person said to take it;
//   - the create-time proof of a create whose answer was lost: written by
//     this very object (its UID) for this account, before the create was
//     sent and after a listing that did not hold the email, and a record
//     whose fields match the digest of what was posted. It is written with
//     the finalizer in one metadata patch (the annotation
//     licensing.scriptlock.com/pending-create), copied into
//     status.pendingCreate when an answer is lost (a replace-style update
//     drops annotations, never the status), void once a record is bound,
//     and removed before a binding is cleared (pendingOf). A copy carries
//     the annotation with the original's UID: it proves nothing.
//
// Anything else (a copied or restored object, an email match alone, another
// account) proves nothing: the Customer
// reports Conflict or AccountChanged and writes nothing; on deletion it lets
// go of the record without DELETE.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// newPending is the create-time proof of a create of posted by c to cl's
// account, sent at now.
func newPending(c *v1alpha1.Customer, cl *scriptlock.Client, posted scriptlock.Customer, now time.Time) *v1alpha1.PendingCreate {
	return &v1alpha1.PendingCreate{
		UID: string(c.UID), Account: cl.Account(), Email: posted.Email,
		Digests: []string{digest(posted)}, Since: metav1.NewTime(now),
	}
}

// pendingOf returns c's create-time proof, or nil: the annotation
// PendingCreateAnnotation while no record is bound, if it names this very
// object (a copy's names the original), else status.pendingCreate (a lost
// answer's copy, or one an earlier version wrote). The annotation is the
// newer of the two when both are there: every proof is written there
// first. Once a record is bound the annotation is void: it stays on the
// object (removing it would cost a write per create) and is removed
// before a binding is cleared (unbind), so it can never vouch for a record
// someone else makes later.
func pendingOf(c *v1alpha1.Customer) *v1alpha1.PendingCreate {
	if c.Status.CustomerID == "" {
		if p := annotatedPending(c); p != nil {
			return p
		}
	}
	return c.Status.PendingCreate
}

// annotatedPending parses c's PendingCreateAnnotation; nil when there is
// none, it is not a proof, or it names another object (a copy's).
func annotatedPending(c *v1alpha1.Customer) *v1alpha1.PendingCreate {
	v, ok := c.Annotations[v1alpha1.PendingCreateAnnotation]
	if !ok {
		return nil
	}
	p := &v1alpha1.PendingCreate{}
	if err := json.Unmarshal([]byte(v), p); err != nil || p.UID == "" || p.UID != string(c.UID) {
		return nil
	}
	return p
}

// annotatePending puts p in c's PendingCreateAnnotation (in memory: the
// caller writes it).
func annotatePending(c *v1alpha1.Customer, p *v1alpha1.PendingCreate) {
	b, err := json.Marshal(p)
	if err != nil {
		// A struct of strings and a time always marshals.
		panic(err)
	}
	metav1.SetMetaDataAnnotation(&c.ObjectMeta, v1alpha1.PendingCreateAnnotation, string(b))
}

// dropPending makes c's create-time proof go, in memory: the status copy
// goes with the pass's status write, the annotation with a metadata patch
// (removePendingAnnotation) the caller sends.
//
// It says whether the annotation was there, so that the object needs a
// write.
func dropPending(c *v1alpha1.Customer) bool {
	c.Status.PendingCreate = nil
	_, had := c.Annotations[v1alpha1.PendingCreateAnnotation]
	delete(c.Annotations, v1alpha1.PendingCreateAnnotation)
	return had
}

// ownPending returns c's pending create if it proves anything in cl's
// account: sent by this very object, to this account. A status restored
// onto a new object, or another account, proves nothing.
func ownPending(c *v1alpha1.Customer, cl *scriptlock.Client) (*v1alpha1.PendingCreate, bool) {
	p := pendingOf(c)
	return p, p != nil && p.UID != "" && p.UID == string(c.UID) && p.Account == cl.Account() && len(p.Digests) > 0
}

// pendingClaim returns cu's create under way (underWay) when cu itself
// sent it (the proof names its UID), whatever account its credentials name
// now, or nil. Until its outcome is known, the email it posted is cu's
// claim in the proof's account even after the spec's email changed: the
// record the create may have stored there, committed late, has exactly the
// fields cu posted, and would otherwise look like the lost answer of a
// later create of that email by another Customer (which a 409 answers).
func pendingClaim(cu *v1alpha1.Customer) *v1alpha1.PendingCreate {
	if p := underWay(cu); p != nil && p.UID != "" && p.UID == string(cu.UID) {
		return p
	}
	return nil
}

// ownCreateOf says whether c has a pending create of email in cl's
// account that proves anything (ownPending).
func ownCreateOf(c *v1alpha1.Customer, cl *scriptlock.Client, email string) bool {
	p, own := ownPending(c, cl)
	return own && strings.EqualFold(p.Email, email)
}

// madeBy says whether rec has the email and the fields of one of p's posts.
func madeBy(rec scriptlock.Customer, p *v1alpha1.PendingCreate) bool {
	return strings.EqualFold(rec.Email, p.Email) && slices.Contains(p.Digests, digest(rec))
}

// digest is a short fingerprint of a record's fields as posted: the first 16
// hex digits of sha256 over company, first name, last name and email, each
// in lower case with runs of whitespace made one space, so that a back end
// that tidies values (case, spacing) still recognises its own record.
func digest(r scriptlock.Customer) string {
	fields := []string{r.Company, r.FirstName, r.LastName, r.Email}
	for i, f := range fields {
		fields[i] = strings.ToLower(strings.Join(strings.Fields(f), " "))
	}
	sum := sha256.Sum256([]byte(strings.Join(fields, "\x00")))
	return hex.EncodeToString(sum[:8])
}

// rival returns another Customer of cl's account (or of an account that
// cannot be told apart from it) with a better claim than c on the record id
// (if not empty) or on any of emails. Nil means c may go ahead.
func (r *CustomerReconciler) rival(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string, emails ...string) (*v1alpha1.Customer, error) {
	others, err := r.claimants(ctx, c, cl, id, emails...)
	if err != nil {
		return nil, err
	}
	var rivals []*v1alpha1.Customer
	for _, other := range others {
		if claimsBefore(other, c) && !outranks(c, other, cl, id) {
			rivals = append(rivals, other)
		}
	}
	switch len(rivals) {
	case 0:
		return nil, nil
	case 1:
		return rivals[0], nil
	}
	// Several beat c: the one that holds the record in question (id, else
	// the record with c's email, as last listed or last seen in sync) is
	// the one to name.
	held := []string{id}
	if id == "" {
		if recs := r.accounts.lastGoodListing(cl); recs != nil {
			if lid, ok := recs.idOf(c.Spec.Email); ok {
				held = append(held, lid)
			}
		}
		if mid, ok := r.memory.recordWithEmail(cl.Account(), c.Spec.Email); ok {
			held = append(held, mid)
		}
	}
	for _, h := range held {
		for _, other := range rivals {
			if h != "" && other.Status.CustomerID == h && managing(other) {
				return other, nil
			}
		}
	}
	// Nothing known says which record holds c's email (no listing of the
	// account yet: a manager just started, and c, stopped by its rivals
	// before it lists, never asks for one): the best claim among them, by
	// the rule that made them rivals (one that manages a record, then one
	// whose create is under way, then the older), not the order of the
	// claims index, which would name an older Customer that only wants the
	// email over the one that holds its record.
	best := rivals[0]
	for _, other := range rivals[1:] {
		if claimsBefore(other, best) {
			best = other
		}
	}
	return best, nil
}

// outranks says whether c's claim beats other's whatever their ages, when
// other manages a record: a Customer that manages a record keeps it for
// life (another spec.customerID is a Conflict, another email a PUT on its
// own record, refused while another record has that email), so
//   - it never takes the record id when it manages another one;
//   - its claim on c's email gives way to c's own create of that email,
//     under way in cl's account (the record it made has the email);
//   - a record of that id in another account (status.account) proves
//     nothing here against c's proof in cl's account (bound there, or its
//     own create under way): it would carry it over only as it last synced
//     it (a rotated key), which the record c made or holds here is not.
//
// (README: "the one that already manages a record keeps it".)
func outranks(c, other *v1alpha1.Customer, cl *scriptlock.Client, id string) bool {
	if !managing(other) {
		return false
	}
	p, creating := ownPending(c, cl)
	creating = creating && c.Status.CustomerID == "" && strings.EqualFold(p.Email, c.Spec.Email)
	bound := c.Status.CustomerID != "" && c.Status.CustomerID == id && c.Status.Account == cl.Account()
	elsewhere := other.Status.Account != "" && other.Status.Account != cl.Account()
	switch {
	case id == "":
		return creating
	case other.Status.CustomerID != id:
		return true
	}
	return elsewhere && (creating || bound)
}

// rivalForRecord returns another Customer of cl's account with a better
// claim than c on the record id that c is bound to: one bound to the same
// id, or naming it in spec.customerID, that claimsBefore c. A Customer that
// only wants the record's email is no rival of the one that manages the
// record: it is the newcomer, refused by ScriptLock's unique emails.
func (r *CustomerReconciler) rivalForRecord(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string) (*v1alpha1.Customer, error) {
	others, err := r.claimants(ctx, c, cl, id)
	if err != nil {
		return nil, err
	}
	for _, other := range others {
		if (other.Status.CustomerID == id || other.Spec.CustomerID == id) && claimsBefore(other, c) && !outranks(c, other, cl, id) {
			return other, nil
		}
	}
	return nil, nil
}

// holder returns another Customer of cl's account (or of an account that
// cannot be told apart) that holds the record id, whatever its age: before
// a DELETE, no other live Customer may hold the id.
func (r *CustomerReconciler) holder(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string) (*v1alpha1.Customer, error) {
	others, err := r.claimants(ctx, c, cl, id)
	if err != nil {
		return nil, err
	}
	for _, other := range others {
		if other.Status.CustomerID == id || other.Spec.CustomerID == id {
			return other, nil
		}
	}
	return nil, nil
}

// claimants returns the other Customers that claim the record id or one of
// emails in cl's account, or in an account that cannot be told apart.
func (r *CustomerReconciler) claimants(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string, emails ...string) ([]*v1alpha1.Customer, error) {
	if !r.claims.complete() {
		// Right after a start the index may not hold every Customer the
		// cache does: no decision on who owns what until it does.
		return nil, &pending{retryAfter: throttledRetry, wait: waitIndex, msg: "indexing the Customers of the cache"}
	}
	lookups := []string{emailClaim(c.Spec.Email)}
	for _, e := range emails {
		if e != "" && !strings.EqualFold(e, c.Spec.Email) {
			lookups = append(lookups, emailClaim(e))
		}
	}
	if id != "" {
		lookups = append(lookups, recordClaim(id))
	}
	seen := map[types.NamespacedName]bool{client.ObjectKeyFromObject(c): true}
	var out []*v1alpha1.Customer
	for _, claim := range lookups {
		for _, key := range r.claims.of(claim) {
			if seen[key] {
				continue
			}
			other := &v1alpha1.Customer{}
			if err := r.Get(ctx, key, other); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("reading Customer %s: %w", key, err)
			}
			if other.UID == c.UID || observing(other) || !slices.Contains(claimsOf(other), claim) {
				// An observer writes nothing, so it claims nothing; and
				// the cached object, not the index, says what it names
				// (a later lookup may still find it by what it names
				// now, so it is not marked seen).
				continue
			}
			seen[key] = true
			var same bool
			var err error
			if p := pendingClaim(other); claim != emailClaim(other.Spec.Email) && p != nil && claim == emailClaim(p.Email) {
				// Only its create under way names the email: the record
				// that create may have stored is in the proof's account.
				same = p.Account == cl.Account()
			} else if same, err = r.sameAccount(ctx, c, other, cl); err != nil {
				return nil, err
			}
			if same {
				out = append(out, other)
			}
		}
	}
	return out, nil
}

// claimsBefore says whether other's claim beats c's: a Customer that
// manages a record keeps it (not one that only observed it); then one
// whose create is under way (it holds a pending create), and of two such
// the one whose create was sent first (whole seconds); otherwise the older
// Customer wins, then the smaller namespace/name, so that both sides
// agree.
func claimsBefore(other, c *v1alpha1.Customer) bool {
	if managing(other) != managing(c) {
		return managing(other)
	}
	po, pc := underWay(other), underWay(c)
	if (po != nil) != (pc != nil) {
		return po != nil
	}
	if pc != nil && !po.Since.Equal(&pc.Since) {
		// Both have a create under way: the one sent first.
		return po.Since.Before(&pc.Since)
	}
	if !other.CreationTimestamp.Equal(&c.CreationTimestamp) {
		return other.CreationTimestamp.Before(&c.CreationTimestamp)
	}
	return other.Namespace+"/"+other.Name < c.Namespace+"/"+c.Name
}

// sameAccount says whether other uses, or may use, the account of c (whose
// client is cl). When other's account cannot be resolved (its Secret is
// gone or unreadable), a Customer that holds a record is taken to be in the
// same account: when in doubt, its claim stands.
func (r *CustomerReconciler) sameAccount(ctx context.Context, c, other *v1alpha1.Customer, cl *scriptlock.Client) (bool, error) {
	ref, oref := c.Spec.CredentialsSecretRef, other.Spec.CredentialsSecretRef
	if ref == nil && oref == nil || ref != nil && oref != nil && c.Namespace == other.Namespace && ref.Name == oref.Name {
		return true, nil
	}
	if other.Status.Account != "" && other.Status.Account == cl.Account() {
		return true, nil
	}
	ocl, err := r.account(ctx, other)
	if err != nil {
		if isCredentials(err) || client.IgnoreNotFound(err) == nil {
			return other.Status.CustomerID != "", nil
		}
		return false, err
	}
	// One key is one account, however its URL is spelled.
	return ocl.KeyID() == cl.KeyID(), nil
}

// managing says whether c manages a record: it holds one that it did not
// merely observe (an observer switched to Manage has status.observed until
// its first managed pass, so it cannot take a record another Customer
// manages).
func managing(c *v1alpha1.Customer) bool {
	return c.Status.CustomerID != "" && c.Status.Observed == nil
}

// underWay returns c's create whose outcome is unknown while c holds no
// record (pendingOf), or nil.
func underWay(c *v1alpha1.Customer) *v1alpha1.PendingCreate {
	if c.Status.CustomerID != "" {
		return nil
	}
	return pendingOf(c)
}

// rivalMessage explains a Conflict between c and the Customer other, and how
// to move the record from other to c safely.
func rivalMessage(c, other *v1alpha1.Customer) string {
	id := other.Status.CustomerID
	if p := pendingClaim(other); id == "" && p != nil && !strings.EqualFold(p.Email, other.Spec.Email) && strings.EqualFold(p.Email, c.Spec.Email) {
		return fmt.Sprintf("Customer %s/%s sent a create with email %q at %s whose outcome is not known yet (its status.pendingCreate); "+
			"the record that create may have stored is that Customer's, and only one Customer may manage a record",
			other.Namespace, other.Name, p.Email, p.Since.UTC().Format(time.RFC3339))
	}
	if id == "" {
		return fmt.Sprintf("Customer %s/%s claims email %q first; only one Customer may manage a record", other.Namespace, other.Name, c.Spec.Email)
	}
	return fmt.Sprintf("Customer %s/%s already manages ScriptLock customer %s; only one Customer may manage a record. "+
		"To move the record to this Customer without revoking licenses: set spec.deletionPolicy: Orphan on %s/%s, delete it, then set spec.customerID: %q here",
		other.Namespace, other.Name, id, other.Namespace, other.Name, id)
}

// pendingElsewhere returns an AccountChanged *stuck error when c's own
// create, whose outcome is unknown (pendingOf, this very
// object), went to another account than the one cl names: that create may
// have stored a record there, so creating or adopting one in the new
// account could leave this Customer with two records. As for a bound
// record, a move is not a proof: the Customer waits until its credentials
// name that account again, or until a person accepts the new one
// (AcceptAccountAnnotation naming cl's account), which lets the earlier
// create go. It returns nil otherwise.
func pendingElsewhere(c *v1alpha1.Customer, cl *scriptlock.Client) error {
	p := pendingOf(c)
	if p == nil || p.UID == "" || p.UID != string(c.UID) || p.Account == cl.Account() ||
		c.Annotations[v1alpha1.AcceptAccountAnnotation] == cl.Account() {
		return nil
	}
	return stuckf(v1alpha1.ReasonAccountChanged,
		"the outcome of this Customer's create in account %s (sent %s, email %q) is unknown, and the current credentials name account %s at %s; "+
			"nothing is created or adopted there, so that the record that create may have stored is not left behind. "+
			"If account %s is the right home of this Customer's record, annotate the Customer %s=%s",
		p.Account, p.Since.UTC().Format(time.RFC3339), p.Email, cl.Account(), cl.BaseURL(), cl.Account(), v1alpha1.AcceptAccountAnnotation, cl.Account())
}
