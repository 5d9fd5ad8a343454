package controllers

// The plan: what the operator would do to ScriptLock for each Customer of
// a world that does not exist yet (the cluster after a merge), decided by
// the reconciler's own deciding code: account (the credentials rules),
// observe and observeOnly (the finders, claim, the ownership rule, rivals,
// account moves) and deletable. Those only read; the writes of a pass
// (create, update, remove, the status and finalizer patches) are never
// called. What a write would be is said instead, from what the deciding
// code found. The reconciler the plan builds reads Customers from the
// world it is given and refuses every write to it; its ScriptLock clients
// should be read-only (scriptlock.Options.ReadOnly), so that even a
// mistake here could not write.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// PlanAction is what the operator would do to ScriptLock for one Customer.
type PlanAction string

// The actions of a plan.
const (
	// PlanCreate: a POST of a new record.
	PlanCreate PlanAction = "create"
	// PlanUpdate: a PUT of the differing fields to the bound record.
	PlanUpdate PlanAction = "update"
	// PlanAdopt: an existing record is taken over (then PUT if fields
	// differ).
	PlanAdopt PlanAction = "adopt"
	// PlanConflict: nothing is written; Ready=False with Reason (Conflict,
	// AccountChanged, NotFound, InvalidID) until a person acts.
	PlanConflict PlanAction = "conflict"
	// PlanDelete: the Customer goes; RevokesLicenses says whether a DELETE
	// of an existing record revokes its licenses. Held: the revocation
	// brake holds the DELETE (Reason DeletionHeld), and the Customer stays
	// until a person approves it.
	PlanDelete PlanAction = "delete"
	// PlanOrphan: the Customer goes and its record is kept.
	PlanOrphan PlanAction = "orphan"
	// PlanObserve: managementPolicy: Observe, the record differs in Fields;
	// nothing is written.
	PlanObserve PlanAction = "observe"
	// PlanNone: nothing is written (in sync, paused, or waiting).
	PlanNone PlanAction = "none"
	// PlanError: the plan cannot tell, because the account cannot be read
	// (credentials missing or refused, ScriptLock failing); the operator
	// writes nothing either while that lasts.
	PlanError PlanAction = "error"
)

// PlanField is one field a write would change: its name (company,
// firstName, lastName, email) and its value in ScriptLock now (From, empty
// for a create) and after the write (To).
type PlanField struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// PlanItem is the plan for one Customer.
type PlanItem struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Action    PlanAction `json:"action"`
	// RecordID is the ScriptLock record acted on or reported, when known.
	RecordID string `json:"recordID,omitempty"`
	// Fields are the names of the fields written (create, update, adopt)
	// or differing (observe).
	Fields []string `json:"fields"`
	// Changes are Fields with their values.
	Changes []PlanField `json:"changes,omitempty"`
	// RevokesLicenses: a DELETE of an existing record, which revokes every
	// license of that customer, is sent. False for a held delete.
	RevokesLicenses bool `json:"revokesLicenses"`
	// Held (action delete): the revocation brake holds the DELETE, because
	// its account's deletion budget is spent (Reason DeletionHeld): no
	// DELETE is sent and the Customer stays until a person approves it
	// (the annotation licensing.scriptlock.com/approve-deletion on the
	// Customer or its namespace) or the budget is raised.
	Held bool `json:"held"`
	// Approval (a delete whose DELETE is sent) is what lets it past the
	// revocation brake, as the operator's change log says it: budget,
	// annotation (the Customer's), namespace, or budgetOff (no brake).
	Approval string `json:"approval,omitempty"`
	// Reason is the Ready reason the operator would report (Conflict,
	// AccountChanged, NotFound, Unauthorized, InvalidCredentials,
	// Differs, ...), or why nothing is done (Paused, RecordKept).
	Reason string `json:"reason,omitempty"`
	// Message says why, in the operator's own words where it has them.
	Message string `json:"message,omitempty"`
	// Account is the ScriptLock account (a fingerprint, never the key).
	Account string `json:"account,omitempty"`
}

// PlanInput is the world a plan is decided in.
type PlanInput struct {
	// Customers is every Customer of the cluster as it will be: the live
	// ones with the manifests' spec, labels and annotations applied, the
	// new ones from the manifests (without a UID, and created at Now), and
	// those the merge deletes with a DeletionTimestamp. Other Customers can be rivals: include every
	// Customer the operator's cache holds.
	Customers []v1alpha1.Customer
	// Keys are the Customers to plan for, in the order of the answer.
	Keys []types.NamespacedName
	// Secrets reads the credentials Secrets (the operator's rules: the
	// Secret spec.credentialsSecretRef names, in the Customer's namespace).
	Secrets client.Reader
	// Accounts hands out the ScriptLock clients: the default account and
	// those of the Secrets. Give it read-only options.
	Accounts *scriptlock.Pool
	// Now is the moment of every decision (default: time.Now()).
	Now time.Time
	// Brake is the revocation brake as the manager runs it; nil or a
	// Budget of 0: no brake, every delete goes ahead.
	Brake *PlanBrake
}

// PlanBrake is the manager's revocation brake, for a plan: its flags, and
// a reader of its Leases and of the namespaces (for their approval
// annotation). The plan reads the Leases as they are and counts the
// deletes it plans in memory, in the order of PlanInput.Keys: the operator
// holds whichever of an account's deletions it reaches after the budget is
// spent, so with more deletions than budget, which ones are held may
// differ; how many does not (unless a namespace approval, which lets a
// deletion through once the budget is spent, spends budget first).
type PlanBrake struct {
	// Budget is --deletion-budget: DELETEs per Window per account.
	Budget int
	// Window is --deletion-budget-window (default 1h).
	Window time.Duration
	// Namespace is where the brake's Leases are
	// (--deletion-budget-namespace: the operator's namespace).
	Namespace string
	// Reader reads the Leases (get) and the Customers' namespaces (get); a
	// Lease it may not read makes the delete a PlanError, a namespace it
	// may not read approves nothing (as for the operator); nil: no Lease
	// and no namespace approval.
	Reader client.Reader
}

// Plan returns what the operator would do to ScriptLock for each of
// in.Keys, in that order. It reads ScriptLock (one listing per account,
// reads by id where the operator reads by id) and the Secrets, and writes
// nothing anywhere. An error is returned only for a key missing from
// in.Customers; a Customer that cannot be planned is a PlanError item.
func Plan(ctx context.Context, in PlanInput) ([]PlanItem, error) {
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	w := &planWorld{objs: map[types.NamespacedName]*v1alpha1.Customer{}}
	clk := frozenClock{now: now}
	r := &CustomerReconciler{
		Client: w, APIReader: &readOnlyReader{r: in.Secrets}, Accounts: in.Accounts,
		Clock: clk, DriftClock: clk, ResyncPeriod: 10 * time.Minute, DriftDetection: DriftByList,
		PendingCreateWindow: 2 * time.Minute, RelistAfter: defaultRelistAfter,
		// A missing record is taken as gone at once: the plan is one look.
		VanishReads: 1, VanishInterval: time.Second,
	}
	r.accounts = newAccountRegistry(clk)
	r.memory = newCustomerMemory(r.accounts)
	r.retries = newRetryBackoff(backoffPolicy{Min: transientBackoffMin, Max: transientBackoffMax})
	r.stalled = newStalledBackoff(backoffPolicy{Min: time.Minute, Max: 5 * time.Minute})
	r.claims = newClaims()
	if b := in.Brake; b != nil && b.Budget > 0 {
		window := b.Window
		if window <= 0 {
			window = DefaultDeletionBudgetWindow
		}
		r.brake = newPlanBrake(getOnly{b.Reader}, w, clk, b.Namespace, b.Budget, window)
	}
	for i := range in.Customers {
		c := in.Customers[i].DeepCopy()
		key := client.ObjectKeyFromObject(c)
		if c.UID == "" {
			// A Customer the merge creates gets its UID from the API
			// server; any unique one will do: the ownership rule tells
			// objects apart by it.
			c.UID = types.UID("plan-" + key.String())
		}
		w.objs[key] = c
		r.claims.set(key, nil, claimsOf(c))
		if c.Status.CustomerID != "" && c.Status.Account != "" {
			// The Customers whose records are in an account, as a
			// running operator counts them for the vanish breaker.
			r.accounts.accounts[c.Status.Account] = &accountState{users: r.accountUsers(c.Status.Account) + 1}
		}
	}
	out := make([]PlanItem, 0, len(in.Keys))
	for _, key := range in.Keys {
		c, ok := w.objs[key]
		if !ok {
			return nil, fmt.Errorf("plan: Customer %s is not in the world", key)
		}
		out = append(out, r.planOne(ctx, c.DeepCopy()))
	}
	// Whether the vanish breaker holds a recreate depends on every missing
	// record of the account: decided again once all are known.
	for i, key := range in.Keys {
		if out[i].Reason == v1alpha1.ReasonRemoteDeleted || out[i].Reason == v1alpha1.ReasonRecordsVanished {
			out[i] = r.planOne(ctx, w.objs[key].DeepCopy())
		}
	}
	return out, nil
}

// accountUsers is how many Customers Plan counted in account so far.
func (r *CustomerReconciler) accountUsers(account string) int {
	if a, ok := r.accounts.accounts[account]; ok {
		return a.users
	}
	return 0
}

// planOne decides for c as Reconcile would, in its order: paused, deleting,
// credentials, observe-only, then observe and what create or update would
// send.
func (r *CustomerReconciler) planOne(ctx context.Context, c *v1alpha1.Customer) PlanItem {
	it := PlanItem{Namespace: c.Namespace, Name: c.Name}
	if c.Annotations[v1alpha1.PausedAnnotation] == "true" {
		it.Action, it.Reason = PlanNone, "Paused"
		it.Message = "paused: no ScriptLock call until the annotation " + v1alpha1.PausedAnnotation + " is removed"
		return it
	}
	if !c.DeletionTimestamp.IsZero() {
		it = r.planDelete(ctx, c, it)
		if v, ok := c.Annotations[v1alpha1.DeletionProtectionAnnotation]; ok && v != "false" {
			// Refused at admission where the shipped policy is installed;
			// where it is not, the deletion goes ahead as planned, so the
			// row keeps what it would do.
			it.Reason = "DeletionProtected"
			it.Message = "the API server refuses to delete this Customer while it is annotated " + v1alpha1.DeletionProtectionAnnotation +
				" (policy customer-deletion-protection); without that policy: " + it.Message
		}
		return it
	}
	it.RecordID = c.Status.CustomerID
	cl, err := r.planAccount(ctx, c)
	if err != nil {
		return planFailure(it, err)
	}
	it.Account = cl.Account()
	want := desired(c)
	if r.accounts.failing(cl.Account()) {
		// Its listing failed for an earlier Customer: one listing per
		// account, and the same answer for each of its Customers.
		_, _, _, err := r.accounts.last(cl.Account(), 0, r.Clock.Now())
		return planFailure(it, err)
	}
	if observing(c) {
		rec, _, err := r.observeOnly(ctx, c, cl)
		if err != nil {
			return planFailure(it, err)
		}
		it.RecordID = rec.ID
		it.Fields, it.Changes = planChanges(rec, want)
		if len(it.Fields) == 0 {
			it.Action, it.Reason = PlanNone, v1alpha1.ReasonObserved
			it.Message = "ScriptLock customer " + rec.ID + " matches the spec (managementPolicy: Observe writes nothing)"
			return it
		}
		it.Action, it.Reason = PlanObserve, v1alpha1.ReasonDiffers
		it.Message = fmt.Sprintf("ScriptLock customer %s differs from the spec in %s; managementPolicy: Observe writes nothing", rec.ID, strings.Join(it.Fields, ", "))
		return it
	}
	obs, err := r.observe(ctx, c, cl)
	if err != nil {
		return planFailure(it, err)
	}
	if obs.create {
		want.ID, it.RecordID = "", ""
		it.Action, it.Fields, it.Changes = PlanCreate, nil, nil
		for _, f := range planChangesAll(scriptlock.Customer{}, want) {
			it.Fields, it.Changes = append(it.Fields, f.Name), append(it.Changes, f)
		}
		it.Message = "creates a ScriptLock customer with email " + want.Email
		if obs.remoteDeleted != "" {
			it.Reason = v1alpha1.ReasonRemoteDeleted
			it.Message = fmt.Sprintf("ScriptLock customer %s is missing: creates it again (once %d reads in a row find it missing)", obs.remoteDeleted, defaultVanishReads)
		}
		return it
	}
	it.RecordID = obs.record.ID
	want.ID = obs.record.ID
	it.Fields, it.Changes = planChanges(obs.record, want)
	switch {
	case obs.bind != "":
		it.Action, it.Message = PlanAdopt, obs.bind
	case len(it.Fields) > 0:
		it.Action = PlanUpdate
		it.Message = "updates " + strings.Join(it.Fields, ", ") + " of ScriptLock customer " + obs.record.ID
	default:
		it.Action, it.Message = PlanNone, "ScriptLock customer "+obs.record.ID+" matches the spec"
		return it
	}
	if slices.Contains(it.Fields, "email") {
		// Emails are unique in ScriptLock: a PUT of an email another
		// record has is refused (409), and the operator reports Conflict.
		if other, ok := r.emailHolder(ctx, cl, want); ok {
			it.Action, it.Reason = PlanConflict, v1alpha1.ReasonConflict
			it.Message = fmt.Sprintf("ScriptLock will refuse to give customer %s the email %q: customer %s has it, and emails are unique in ScriptLock", want.ID, want.Email, other)
		}
	}
	return it
}

// errNotReadOnly refuses to plan with a ScriptLock client that could
// write.
var errNotReadOnly = errors.New("plan: the ScriptLock client of this account can write; a plan needs read-only clients (scriptlock.Options.ReadOnly)")

// planAccount is account, refusing a client that could write: the plan
// must not depend on its own care to stay read-only.
func (r *CustomerReconciler) planAccount(ctx context.Context, c *v1alpha1.Customer) (*scriptlock.Client, error) {
	cl, err := r.account(ctx, c)
	if err == nil && !cl.ReadOnly() {
		return nil, errNotReadOnly
	}
	return cl, err
}

// emailHolder returns the id of another record of cl's account with
// want's email, from the account's listing.
func (r *CustomerReconciler) emailHolder(ctx context.Context, cl *scriptlock.Client, want scriptlock.Customer) (string, bool) {
	recs, _, err := r.accounts.list(ctx, cl, time.Time{}, types.NamespacedName{})
	if err != nil {
		return "", false
	}
	rec, found, err := withEmail(ctx, cl, recs, want.Email)
	if err != nil || !found || rec.ID == want.ID {
		return "", false
	}
	return rec.ID, true
}

// planDelete decides for a Customer being deleted as reconcileDelete
// would.
func (r *CustomerReconciler) planDelete(ctx context.Context, c *v1alpha1.Customer, it PlanItem) PlanItem {
	it.RecordID = c.Status.CustomerID
	switch {
	case !controllerutil.ContainsFinalizer(c, v1alpha1.Finalizer) && c.Status.CustomerID != "":
		it.Action = PlanOrphan
		it.Message = "the Customer has no finalizer of the operator: it goes at once, and ScriptLock customer " + c.Status.CustomerID + " and its licenses are kept"
		if observing(c) {
			it.Message = "managementPolicy: Observe never deletes: ScriptLock customer " + c.Status.CustomerID + " and its licenses are kept"
		}
		return it
	case !controllerutil.ContainsFinalizer(c, v1alpha1.Finalizer):
		it.Action, it.Message = PlanDelete, "the Customer goes; it has no record, so nothing is deleted in ScriptLock"
		return it
	case observing(c):
		it.Action, it.Message = PlanOrphan, "managementPolicy: Observe never deletes: the record and its licenses are kept"
		return it
	case c.Spec.DeletionPolicy == v1alpha1.DeletionPolicyOrphan:
		it.Action, it.Message = PlanOrphan, "deletionPolicy: Orphan: the record and its licenses are kept"
		return it
	case !holdsSomething(c):
		it.Action, it.Message = PlanDelete, "the Customer never got a record: nothing is deleted in ScriptLock"
		return it
	}
	cl, err := r.planAccount(ctx, c)
	if err != nil {
		if isSecretGone(err) && c.Status.Account != "" {
			return r.planCredentialsGone(ctx, c, it, err)
		}
		return planFailure(it, err)
	}
	it.Account = cl.Account()
	if r.accounts.failing(cl.Account()) {
		_, _, _, err := r.accounts.last(cl.Account(), 0, r.Clock.Now())
		return planFailure(it, err)
	}
	id, err := r.deletable(ctx, c, cl)
	var st *stuck
	switch {
	case errors.As(err, &st):
		it.Action, it.Reason = PlanOrphan, "RecordKept"
		it.Message = "deletes no ScriptLock record, because this Customer cannot prove it owns one: " + st.msg
		return it
	case err != nil:
		return planFailure(it, err)
	case id == "":
		it.Action, it.Message = PlanDelete, "no record of this Customer was found: nothing is deleted in ScriptLock"
		return it
	}
	it.RecordID = id
	exists, err := r.recordExists(ctx, cl, id)
	if err != nil {
		return planFailure(it, err)
	}
	it.Action, it.RevokesLicenses = PlanDelete, exists
	if exists {
		it.Message = "deletes ScriptLock customer " + id + ": every license of that customer is revoked"
	} else {
		it.Message = "ScriptLock customer " + id + " is already gone: its DELETE revokes nothing"
	}
	return r.planBrake(ctx, c, it, cl.Account(), id)
}

// PlanReasonCredentialsGone is the reason of a delete row whose Customer's
// credentials cannot be read (its Secret deleted in the same teardown,
// say): the plan cannot read the record, and a running operator that
// still holds the account's client from an earlier pass DELETEs with it,
// so the row may revoke (RevokesLicenses).
const PlanReasonCredentialsGone = "CredentialsGone"

// planCredentialsGone is the row of a Customer being deleted, bound to a
// record in status.account, whose credentials Secret is gone (err). The
// operator then falls back to the client it last used for the account,
// if it still has one (it has not restarted since) and it came from that
// very Secret (not after a change of credentials), and DELETEs the
// record it can prove is its own; without one it reports
// InvalidCredentials and deletes nothing. A plan has no memory of the
// operator's: it says the DELETE may happen, and asks the revocation brake
// about it as the operator would.
func (r *CustomerReconciler) planCredentialsGone(ctx context.Context, c *v1alpha1.Customer, it PlanItem, err error) PlanItem {
	id := c.Status.CustomerID
	if id == "" {
		id = c.Status.FormerCustomerID
	}
	it.Action, it.Reason, it.Account, it.RecordID, it.RevokesLicenses = PlanDelete, PlanReasonCredentialsGone, c.Status.Account, id, true
	it.Message = fmt.Sprintf("may revoke: the credentials are gone or cannot be read (%v); a running operator that still has the client of account %s from an earlier pass "+
		"DELETEs ScriptLock customer %s with it, revoking every license of that customer (one restarted since reports InvalidCredentials and deletes nothing; "+
		"the plan cannot read the record nor know which). To keep the record, set spec.deletionPolicy: Orphan before the teardown, "+
		"or delete the Secret after the Customers", err, c.Status.Account, orNone(c.Status.CustomerID))
	if id == "" {
		return it
	}
	return r.planBrake(ctx, c, it, c.Status.Account, id)
}

// planBrake asks the revocation brake about the DELETE of record id of
// account that row it plans, as reconcileDelete asks it (its plan brake
// counts in memory what the manager's would write to its Lease).
func (r *CustomerReconciler) planBrake(ctx context.Context, c *v1alpha1.Customer, it PlanItem, account, id string) PlanItem {
	var st *stuck
	actx, err := r.brake.admit(ctx, c, wasHeld(c), account, id)
	switch {
	case errors.As(err, &st) && st.reason == v1alpha1.ReasonDeletionHeld:
		it.RevokesLicenses, it.Held, it.Reason = false, true, v1alpha1.ReasonDeletionHeld
		it.Message = st.msg + " (the plan counts its deletions in the order of its rows; the operator holds whichever of the account's deletions it reaches after the budget is spent)"
	case err != nil:
		if apierrors.IsForbidden(err) {
			err = fmt.Errorf("%w (the plan's identity needs get on leases in namespace %s: config/plan-rbac grants it in scriptlock-system; or give the manager's --deletion-budget-namespace)", err, r.brake.ns)
		}
		return planFailure(it, err)
	default:
		it.Approval = approvalOf(actx)
		switch it.Approval {
		case approvedByAnnotation:
			it.Message += " (the revocation brake lets it through: the Customer's annotation " + v1alpha1.ApproveDeletionAnnotation + " is its deletionTimestamp, an approval of this deletion)"
		case approvedByNamespace:
			it.Message += " (the account's deletion budget is spent, and the revocation brake lets it through: namespace " + c.Namespace + "'s annotation " + v1alpha1.ApproveDeletionAnnotation + " approves the deletions begun at or before its time)"
		}
	}
	return it
}

// getOnly hides everything of a reader but Get: a plan's brake reads one
// Lease per account and the namespaces, by name.
type getOnly struct{ r client.Reader }

func (g getOnly) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if g.r == nil {
		return apierrors.NewNotFound(schema.GroupResource{}, key.Name)
	}
	return g.r.Get(ctx, key, obj, opts...)
}

func (g getOnly) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("plan: the revocation brake reads by name only")
}

// recordExists says whether cl's account has record id: from its listing,
// confirmed by a read when the listing lacks it.
func (r *CustomerReconciler) recordExists(ctx context.Context, cl *scriptlock.Client, id string) (bool, error) {
	recs, _, err := r.accounts.list(ctx, cl, time.Time{}, types.NamespacedName{})
	if err != nil {
		return false, err
	}
	if _, ok := recs.record(id); ok {
		return true, nil
	}
	_, err = cl.Get(ctx, id)
	if scriptlock.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// planFailure is the item of a pass that would end in err, as classify
// sees it: an ownership refusal is a conflict, a wait is nothing done yet,
// and an account that cannot be read is an error.
func planFailure(it PlanItem, err error) PlanItem {
	it.Message = err.Error()
	o, ok := classify(err)
	switch {
	case !ok:
		it.Action = PlanError
	case o.stalled && slices.Contains([]string{v1alpha1.ReasonConflict, v1alpha1.ReasonAccountChanged, v1alpha1.ReasonNotFound, v1alpha1.ReasonInvalidID}, o.reason):
		it.Action, it.Reason = PlanConflict, o.reason
	case errors.As(err, new(*pending)):
		it.Action, it.Reason = PlanNone, o.reason
	default:
		it.Action, it.Reason = PlanError, o.reason
	}
	return it
}

// planChanges returns the fields in which got differs from want, by name
// (differingFields) and with their values.
func planChanges(got, want scriptlock.Customer) ([]string, []PlanField) {
	names := differingFields(got, want)
	var out []PlanField
	for _, f := range planChangesAll(got, want) {
		if slices.Contains(names, f.Name) {
			out = append(out, f)
		}
	}
	return names, out
}

// planChangesAll returns every field of want that differs from got, with
// the values.
func planChangesAll(got, want scriptlock.Customer) []PlanField {
	var out []PlanField
	for _, f := range []PlanField{
		{"company", got.Company, want.Company},
		{"firstName", got.FirstName, want.FirstName},
		{"lastName", got.LastName, want.LastName},
		{"email", got.Email, want.Email},
	} {
		if f.From != f.To {
			out = append(out, f)
		}
	}
	return out
}

// errPlanWrite is the answer of the plan's world to any write.
var errPlanWrite = errors.New("plan: the world of a plan cannot be written")

// planWorld is the reconciler's client in a plan: it reads the Customers
// of the planned world and refuses every write.
type planWorld struct {
	client.Client // nil: only the methods below are ever called
	objs          map[types.NamespacedName]*v1alpha1.Customer
}

func (w *planWorld) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	c, ok := obj.(*v1alpha1.Customer)
	if !ok {
		return fmt.Errorf("plan: cannot read a %T", obj)
	}
	o, ok := w.objs[key]
	if !ok {
		return apierrors.NewNotFound(v1alpha1.GroupVersion.WithResource("customers").GroupResource(), key.Name)
	}
	o.DeepCopyInto(c)
	return nil
}

func (w *planWorld) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("plan: the world of a plan cannot be listed")
}

func (w *planWorld) Create(context.Context, client.Object, ...client.CreateOption) error {
	return errPlanWrite
}

func (w *planWorld) Update(context.Context, client.Object, ...client.UpdateOption) error {
	return errPlanWrite
}

func (w *planWorld) Patch(context.Context, client.Object, client.Patch, ...client.PatchOption) error {
	return errPlanWrite
}

func (w *planWorld) Delete(context.Context, client.Object, ...client.DeleteOption) error {
	return errPlanWrite
}

func (w *planWorld) DeleteAllOf(context.Context, client.Object, ...client.DeleteAllOfOption) error {
	return errPlanWrite
}

func (w *planWorld) Apply(context.Context, runtime.ApplyConfiguration, ...client.ApplyOption) error {
	return errPlanWrite
}

func (w *planWorld) Status() client.SubResourceWriter { return planSubResource{} }

func (w *planWorld) SubResource(string) client.SubResourceClient { return planSubResource{} }

// planSubResource refuses every subresource call.
type planSubResource struct{}

func (planSubResource) Get(context.Context, client.Object, client.Object, ...client.SubResourceGetOption) error {
	return errPlanWrite
}

func (planSubResource) Create(context.Context, client.Object, client.Object, ...client.SubResourceCreateOption) error {
	return errPlanWrite
}

func (planSubResource) Update(context.Context, client.Object, ...client.SubResourceUpdateOption) error {
	return errPlanWrite
}

func (planSubResource) Patch(context.Context, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
	return errPlanWrite
}

func (planSubResource) Apply(context.Context, runtime.ApplyConfiguration, ...client.SubResourceApplyOption) error {
	return errPlanWrite
}

// readOnlyReader hides everything of a client but Get and List, and reads
// each Secret once: a plan is one moment, and many Customers name the same
// Secret.
type readOnlyReader struct {
	r       client.Reader
	secrets map[types.NamespacedName]secretRead
}

type secretRead struct {
	s   *corev1.Secret
	err error
}

func (o *readOnlyReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if o.r == nil {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, key.Name)
	}
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return o.r.Get(ctx, key, obj, opts...)
	}
	got, ok := o.secrets[key]
	if !ok {
		got.s = &corev1.Secret{}
		got.err = o.r.Get(ctx, key, got.s, opts...)
		if o.secrets == nil {
			o.secrets = map[types.NamespacedName]secretRead{}
		}
		o.secrets[key] = got
	}
	if got.err != nil {
		return got.err
	}
	got.s.DeepCopyInto(s)
	return nil
}

func (o *readOnlyReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if o.r == nil {
		return nil
	}
	return o.r.List(ctx, list, opts...)
}

// frozenClock is the one moment every decision of a plan is taken at, so
// that a listing asked for at the start serves every Customer of its
// account.
type frozenClock struct {
	clock.RealClock
	now time.Time
}

func (f frozenClock) Now() time.Time                  { return f.now }
func (f frozenClock) Since(t time.Time) time.Duration { return f.now.Sub(t) }
