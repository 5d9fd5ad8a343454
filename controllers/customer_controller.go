// Package controllers holds the CustomerReconciler, which keeps one
// ScriptLock customer record equal to each Customer object.
package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// CustomerReconciler keeps a ScriptLock customer record equal to each
// Customer, and deals with the record as spec.deletionPolicy says when the
// Customer is deleted.
type CustomerReconciler struct {
	// Client reads Customers from the cache and writes through the API server.
	client.Client
	// APIReader reads straight from the API server: credentials Secrets
	// (never cached or watched) and the newest copy of a Customer before a
	// create is decided.
	APIReader client.Reader
	// Recorder emits the Events of every state change.
	Recorder events.EventRecorder
	// Accounts hands out one ScriptLock client per account.
	Accounts *scriptlock.Pool
	// Clock is the one time source of the reconciler and its memory
	// (default the real clock); tests may replace it.
	Clock clock.Clock
	// DriftClock drives the drift detector's period; tests replace it with
	// a fake clock to sweep at once instead of sleeping through a period.
	DriftClock clock.Clock
	// ResyncPeriod is how often every record is compared with its spec.
	ResyncPeriod time.Duration
	// DriftDetection chooses between one listing per account and one read
	// per record per ResyncPeriod.
	DriftDetection DriftDetection
	// PermanentBackoff is the first wait after a failure that needs a
	// person (Stalled: Conflict, Unauthorized, NotFound, DeletionBlocked
	// ...); it doubles up to PermanentBackoffMax. A spec change retries at
	// once.
	PermanentBackoff, PermanentBackoffMax time.Duration
	// TransientBackoff is the first wait after a transient failure (5xx,
	// no answer, 429, an unknown create outcome); it doubles up to
	// TransientBackoffMax, and only a success resets it. Defaults 1s and
	// 5m (SPEC section 3).
	TransientBackoff, TransientBackoffMax time.Duration
	// RelistAfter is how long after a transient failure to list an
	// account (without a Retry-After) a Customer's retry lists it again,
	// once for every Customer of the account. Default 30s.
	RelistAfter time.Duration
	// PendingCreateWindow is how long a create whose outcome is unknown may
	// still turn out to have been committed: until then a Customer whose
	// email changed does not create with the new email, and a deleted one
	// keeps its finalizer while it looks for the record. Default 2 minutes.
	PendingCreateWindow time.Duration
	// VanishReads and VanishInterval confirm a disappearance: a bound
	// record is taken as deleted in ScriptLock (and created again) only
	// after VanishReads reads by id in a row found it missing, each at
	// least VanishInterval after the one before. Defaults 3 and 10s.
	VanishReads    int
	VanishInterval time.Duration
	// DeletionBudget is how many DELETEs (each revokes a customer's
	// licenses) one account may be sent per DeletionBudgetWindow before
	// further deletions wait for a person (reason DeletionHeld); 0 turns
	// the revocation brake off. Its window is kept in a Lease per account
	// in BrakeNamespace (the operator's own namespace).
	DeletionBudget       int
	DeletionBudgetWindow time.Duration
	BrakeNamespace       string
	// MinDriftCheckInterval is the shortest interval the annotation
	// licensing.scriptlock.com/drift-check-interval may ask for (a shorter
	// one is raised to it); default 1 minute. Tests may lower it.
	MinDriftCheckInterval time.Duration
	// Concurrency, when set, decides how many Customers are reconciled at
	// once (NewConcurrency) instead of SetupWithManager's maxConcurrent;
	// the Accounts pool's in-flight caps should follow it (PerAccount,
	// PerHost).
	Concurrency *Concurrency

	accounts *accountRegistry
	memory   *customerMemory
	stalled  *stalledBackoff
	retries  *retryBackoff
	secrets  secretAccounts
	claims   *claims
	brake    *deletionBrake
	waits    *prometheus.CounterVec // scriptlock_waits_total{wait}; nil: not counted
}

// +kubebuilder:rbac:groups=licensing.scriptlock.com,resources=customers,verbs=get;list;watch;patch;update
// +kubebuilder:rbac:groups=licensing.scriptlock.com,resources=customers/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=licensing.scriptlock.com,resources=customers/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile brings one Customer and its ScriptLock record together: fetch
// (fresh from the API server while no record is bound), pause, ensure the
// finalizer, wait out a stalled backoff, then delete, observe or make the
// record match, with the status written once at the end.
func (r *CustomerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	// Past an account's rate limit, this Customer is given its turn
	// instead of a worker waiting for it.
	ctx = scriptlock.WithCaller(ctx, req.String())
	c := &v1alpha1.Customer{}
	if err := r.Get(ctx, req.NamespacedName, c); err != nil {
		if apierrors.IsNotFound(err) {
			r.memory.forget(req.NamespacedName)
			r.stalled.reset(req.NamespacedName)
			r.retries.reset(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if c.Annotations[v1alpha1.PausedAnnotation] == "true" {
		ctrl.LoggerFrom(ctx).V(1).Info("paused: no ScriptLock call and no change until the annotation is removed")
		return ctrl.Result{}, nil
	}
	stale := r.memory.staleCopy(req.NamespacedName, c.ResourceVersion)
	fresh := !stale && (r.memory.ownLastWrite(req.NamespacedName, c.ResourceVersion) ||
		r.memory.freshWait(req.NamespacedName, c.Generation, c.ResourceVersion, r.Clock.Now().Add(-secretsFresh)))
	if c.Status.CustomerID == "" && c.DeletionTimestamp.IsZero() && !fresh || stale {
		// The cache may not hold our own last status write yet; whether to
		// create, and so the whole pass, is decided on the newest copy. A
		// copy older than our own last write is never acted on: it could
		// roll the status back or write an old spec to ScriptLock. A cached
		// copy that is the operator's own last write of the object holds
		// all it wrote, and back within seconds from a wait it imposed on
		// itself, on the very copy that pass read fresh, the operator
		// reads nothing again either.
		if err := r.APIReader.Get(ctx, req.NamespacedName, c); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	deleting := !c.DeletionTimestamp.IsZero()
	if !deleting {
		// Before anything else, on every pass: a replace-style update
		// (kubectl replace, Argo CD Replace=true) may have dropped it. An
		// observer deletes nothing, so it needs none; a Customer with
		// nothing to let go of yet gets it in the write before its first
		// side effect (with the create-time proof, or before a record is
		// bound), not in a write of its own.
		if err := r.patchMeta(ctx, c, func(c *v1alpha1.Customer) {
			switch {
			case observing(c):
				controllerutil.RemoveFinalizer(c, v1alpha1.Finalizer)
			case holdsSomething(c):
				controllerutil.AddFinalizer(c, v1alpha1.Finalizer)
			}
		}); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	// Waiting for a person costs no ScriptLock call; a person asking for
	// a pass (ReconcileRequestAnnotation) is not kept waiting.
	requested := reconcileRequested(c)
	if left := r.stalled.wait(req.NamespacedName, c.Generation, r.Clock.Now()); left > 0 && !deleting && requested == "" {
		return ctrl.Result{RequeueAfter: left}, nil
	}

	orig := c.DeepCopy()
	defer func() {
		if err := r.patchStatus(ctx, c, orig); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	if deleting {
		res, retErr = r.reconcileDelete(ctx, c)
		if requested != "" {
			// Every deletion pass says Ready=False (Deleting) or lets the
			// Customer go: sync reports it as not Ready either way.
			c.Status.LastHandledReconcileAt = requested
		}
		return res, retErr
	}
	ctx, p := withPass(ctx)
	res, retErr = r.reconcileNormal(ctx, c, orig)
	if requested != "" && p.checked {
		// Handled means checked: the record was read from ScriptLock (or
		// written) in this pass, or a failure set Ready's reason. A pass
		// held back before it got to ScriptLock (the operator's own rate
		// limit or in-flight cap, a listing under way, the cache still
		// indexing, a Kubernetes error) leaves the request pending, and
		// the pass that checks echoes it.
		c.Status.LastHandledReconcileAt = requested
	}
	return res, retErr
}

// reconcileNormal makes the record exist and match the spec, in fixed
// order: observe (read only) → create if there is no record → update if
// it differs → ready. No step calls another. managementPolicy: Observe is
// a gate after the credentials: such a Customer is observed and reported
// on, and never reaches create or update.
// orig is the object as last written, for a status write mid-way.
func (r *CustomerReconciler) reconcileNormal(ctx context.Context, c, orig *v1alpha1.Customer) (ctrl.Result, error) {
	cl, err := r.account(ctx, c)
	if err != nil {
		if isCredentials(err) {
			// Its credentials no longer name the account: stop listing it
			// on this Customer's behalf.
			r.memory.detach(client.ObjectKeyFromObject(c))
		}
		return r.result(ctx, c, err)
	}
	r.usedBoundKey(c, cl)
	if observing(c) {
		rec, obs, err := r.observeOnly(ctx, c, cl)
		if err != nil {
			return r.result(ctx, c, err)
		}
		r.reportObserved(c, cl, rec, obs)
		if !obs.fromMemory {
			checked(ctx)
		}
		return r.withCadence(c, r.next(obs)), nil
	}
	// A Conflict names the Customer that holds the record with this
	// Customer's email, whatever the Conflict is about.
	fail := func(err error) (ctrl.Result, error) {
		return r.result(ctx, c, r.namingEmailHolder(ctx, c, cl, err))
	}
	obs, err := r.observe(ctx, c, cl)
	if obs.remoteDeleted != "" {
		r.event(c, corev1.EventTypeWarning, v1alpha1.ReasonRemoteDeleted, "Recreate",
			"ScriptLock customer %s was missing in %d reads in a row, %s apart; creating it again (if it comes back with this email before a new one is bound, it is taken back)",
			obs.remoteDeleted, r.VanishReads, r.VanishInterval)
		// The id is kept until a replacement is bound: that record, back
		// with this Customer's email in this account, is its own again.
		c.Status.CustomerID, c.Status.FormerCustomerID = "", obs.remoteDeleted
		if uerr := r.unbind(ctx, c, orig); uerr != nil {
			// Not unbound: the pass's status write must not unbind either,
			// while the proof annotation may still be there.
			c.Status.CustomerID, c.Status.FormerCustomerID = orig.Status.CustomerID, orig.Status.FormerCustomerID
			return r.result(ctx, c, uerr)
		}
	}
	if obs.dropProof {
		if derr := r.removePendingAnnotation(ctx, c); derr != nil {
			return r.result(ctx, c, derr)
		}
	}
	if err != nil {
		return fail(err)
	}
	if obs.create {
		rec, adopted, err := r.create(ctx, c, orig, cl)
		if err != nil {
			return fail(err)
		}
		obs.record, obs.bind, obs.seen = rec, adopted, true
	}
	if obs.bind != "" {
		r.event(c, corev1.EventTypeNormal, "Adopted", "Adopt", "%s", obs.bind)
	}
	if !controllerutil.ContainsFinalizer(c, v1alpha1.Finalizer) {
		// A record found (adopted, claimed) rather than created: the
		// finalizer before it is bound or written to.
		if err := r.patchMeta(ctx, c, func(c *v1alpha1.Customer) {
			controllerutil.AddFinalizer(c, v1alpha1.Finalizer)
		}); err != nil {
			return r.result(ctx, c, err)
		}
	}
	moved := orig.Status.Account != "" && orig.Status.Account != cl.Account()
	newlyBound := orig.Status.CustomerID != obs.record.ID
	c.Status.CustomerID, c.Status.Account, c.Status.URL, c.Status.PendingCreate = obs.record.ID, cl.Account(), cl.BaseURL(), nil
	c.Status.FormerCustomerID, c.Status.Observed = "", nil
	if id := c.Spec.CustomerID; id != "" && id != obs.record.ID {
		// The record of its own create, found while spec.customerID names
		// another (findOwnCreateBeforeSpecID): bound, and nothing written
		// to either, as for any Customer that manages a record.
		return fail(r.specIDDiffers(ctx, c, cl, obs.record.ID))
	}
	if moved || newlyBound && !scriptlock.SameFields(obs.record, desired(c)) {
		// What proves the record is this Customer's is written down
		// before anything is written to ScriptLock, so a restart in
		// between does not lose it: the proof of a move (a rotated key:
		// the old key, known only to this manager), or the binding of a
		// record the PUT is about to change, which may be all that ties
		// it to this Customer afterwards (its own create's record, whose
		// proof is the email and fields it posted).
		if err := r.patchStatus(ctx, c, orig); err != nil {
			return r.result(ctx, c, err)
		}
	}
	if err := r.update(ctx, c, cl, obs); err != nil {
		return fail(err)
	}
	if !obs.fromMemory {
		checked(ctx)
	}
	return r.ready(c, cl, obs), nil
}

// reconcileDelete deals with the record as spec.deletionPolicy says, then
// lets the Customer go. A record this Customer cannot prove is its own is
// never deleted: it is let go with a Warning (an orphaned record can be
// recovered, revoked licenses cannot).
func (r *CustomerReconciler) reconcileDelete(ctx context.Context, c *v1alpha1.Customer) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(c)
	if !controllerutil.ContainsFinalizer(c, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	held := wasHeld(c)
	setReady(c, metav1.ConditionFalse, v1alpha1.ReasonDeleting, "the Customer is being deleted", false)
	if observing(c) {
		// An observer never deletes: switched to Observe while deleting.
		return ctrl.Result{}, r.release(ctx, c)
	}
	if c.Spec.DeletionPolicy == v1alpha1.DeletionPolicyOrphan {
		r.event(c, corev1.EventTypeNormal, "Orphaned", "Delete",
			"kept ScriptLock customer %s and its licenses (deletionPolicy: Orphan)", orNone(c.Status.CustomerID))
		return ctrl.Result{}, r.release(ctx, c)
	}
	if !holdsSomething(c) {
		// This Customer never got a record: nothing to ask ScriptLock.
		return ctrl.Result{}, r.release(ctx, c)
	}
	cl, err := r.account(ctx, c)
	if err != nil {
		// Only a Secret deleted first (a namespace being torn down) lets
		// the deletion use the key it last used, and only a key that came
		// from that Secret: credentials that now name another Secret, or
		// the default, or a Secret that cannot be used, are a change of
		// credentials, and the old key proves nothing (README, the
		// credentials-change row).
		if !isSecretGone(err) {
			return r.result(ctx, c, err)
		}
		if cl = r.memory.lastClientVia(key, credentialsVia(c)); cl == nil {
			return r.result(ctx, c, err)
		}
	} else {
		r.usedBoundKey(c, cl)
	}
	id, err := r.deletable(ctx, c, cl)
	var st *stuck
	switch {
	case errors.As(err, &st):
		r.event(c, corev1.EventTypeWarning, "RecordKept", "Delete",
			"did not delete any ScriptLock record, because this Customer cannot prove it owns one: %s", st.msg)
		return ctrl.Result{}, r.release(ctx, c)
	case err != nil:
		return r.result(ctx, c, err)
	case id == "":
		return ctrl.Result{}, r.release(ctx, c)
	}
	// The revocation brake: past the account's budget, the DELETE waits
	// for a person (brake.go).
	if ctx, err = r.brake.admit(ctx, c, held, cl.Account(), id); err != nil {
		return r.result(ctx, c, err)
	}
	if err := r.remove(ctx, c, cl, id); err != nil {
		return r.result(ctx, c, err)
	}
	return ctrl.Result{}, r.release(ctx, c)
}

// usedBoundKey remembers cl, the client c's credentials resolved to, when
// it is the account c's record is bound in: the key this manager knows for
// that record, whose refusal proves a later rotation (oldKeyRefused), even
// when no pass of this manager saw the record in sync before the key was
// rotated (a restart, then a deletion whose DELETE got no answer, or a
// read that found the record missing).
func (r *CustomerReconciler) usedBoundKey(c *v1alpha1.Customer, cl *scriptlock.Client) {
	if c.Status.CustomerID != "" && c.Status.Account == cl.Account() {
		r.memory.usedKey(client.ObjectKeyFromObject(c), cl, credentialsVia(c))
	}
}

// holdsSomething says whether c has, or may have, a record to let go of:
// one bound, one it held before it vanished, or a create whose outcome
// may be unknown.
func holdsSomething(c *v1alpha1.Customer) bool {
	return c.Status.CustomerID != "" || c.Status.FormerCustomerID != "" || pendingOf(c) != nil
}

// unbind writes that c no longer holds the record its status bound (it
// vanished), before anything else is done for it: the create-time proof
// annotation goes first (void while a record was bound, it would vouch
// again once none is), then the status, so that a new create's proof is
// only ever written on an unbound object, and a deletion meanwhile looks
// for that create's record rather than for the vanished one. orig is the
// object as last written.
func (r *CustomerReconciler) unbind(ctx context.Context, c, orig *v1alpha1.Customer) error {
	if _, ok := c.Annotations[v1alpha1.PendingCreateAnnotation]; ok {
		if err := r.removePendingAnnotation(ctx, c); err != nil {
			return err
		}
	}
	return r.patchStatus(ctx, c, orig)
}

// removePendingAnnotation removes the create-time proof annotation from
// the object, whatever c holds of it in memory, by a merge patch guarded
// by c's resourceVersion.
func (r *CustomerReconciler) removePendingAnnotation(ctx context.Context, c *v1alpha1.Customer) error {
	status := c.Status.DeepCopy()
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": c.ResourceVersion,
		"annotations":     map[string]any{v1alpha1.PendingCreateAnnotation: nil},
	}})
	if err != nil {
		return err
	}
	if err := r.Patch(ctx, c, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("removing the create-time proof: %w", err)
	}
	r.memory.wroteObject(client.ObjectKeyFromObject(c), c.ResourceVersion)
	c.Status = *status
	return nil
}

// release removes the finalizer and forgets c (also in the revocation
// brake's held deletions, for a deletion let go without a DELETE).
func (r *CustomerReconciler) release(ctx context.Context, c *v1alpha1.Customer) error {
	if !c.DeletionTimestamp.IsZero() {
		r.brake.forget(ctx, c, c.Status.Account)
	}
	if err := r.patchMeta(ctx, c, func(c *v1alpha1.Customer) {
		controllerutil.RemoveFinalizer(c, v1alpha1.Finalizer)
	}); err != nil {
		return client.IgnoreNotFound(err)
	}
	key := client.ObjectKeyFromObject(c)
	r.memory.forget(key)
	r.stalled.reset(key)
	r.retries.reset(key)
	return nil
}

// ready records that the record equals the spec.
func (r *CustomerReconciler) ready(c *v1alpha1.Customer, cl *scriptlock.Client, obs observation) ctrl.Result {
	key := client.ObjectKeyFromObject(c)
	want := desired(c)
	if !obs.fromMemory {
		r.memory.synced(key, cl, credentialsVia(c), want, r.Clock.Now())
	}
	r.stalled.reset(key)
	r.retries.reset(key)
	r.memory.endWait(key)
	setReady(c, metav1.ConditionTrue, v1alpha1.ReasonAvailable, fmt.Sprintf("ScriptLock customer %s matches the spec", want.ID), false)
	c.Status.ObservedGeneration, c.Status.SyncedDigest = c.Generation, digest(want)
	return r.withCadence(c, r.next(obs))
}

// next schedules the next look at a record that was just checked: none in
// list mode (the account's listing finds drift), else within a resync
// period of the last read, at handler.LowPriority as a drift sweep's
// re-checks (sweepHandler).
func (r *CustomerReconciler) next(obs observation) ctrl.Result {
	switch {
	case r.DriftDetection == DriftByList:
		return ctrl.Result{}
	case obs.fromMemory:
		return ctrl.Result{RequeueAfter: obs.recheckIn, Priority: ptr.To(handler.LowPriority)}
	default:
		return ctrl.Result{RequeueAfter: jitterDown(r.ResyncPeriod), Priority: ptr.To(handler.LowPriority)}
	}
}

// result turns a failure into the Ready condition and the next attempt, as
// classify decides: a stalled failure waits the stalled backoff (at least
// PermanentBackoff, doubling); a transient one the workqueue's exponential
// backoff, or at least what ScriptLock asked for with Retry-After.
func (r *CustomerReconciler) result(ctx context.Context, c *v1alpha1.Customer, err error) (ctrl.Result, error) {
	o, ok := classify(err)
	if !ok {
		return ctrl.Result{}, err
	}
	key := client.ObjectKeyFromObject(c)
	if o.reason == "" {
		if r.waits != nil {
			r.waits.WithLabelValues(waitKind(err)).Inc()
		}
		d := r.retries.waited(key, o.retryAfter)
		r.memory.waited(key, c.Generation, c.ResourceVersion, r.Clock.Now())
		ctrl.LoggerFrom(ctx).V(1).Info("waiting", "for", err.Error(), "retryAfter", d)
		if errors.Is(err, scriptlock.ErrOverRate) {
			// A turn in the account's line, which already spaces the turns
			// 1/qps apart: it comes back on time, not jittered (a turn
			// taken late is a call the account's rate lost), and ahead of
			// the Customers not yet in the line (turnPriority), whose
			// passes would otherwise hold it back behind them in a storm.
			return ctrl.Result{RequeueAfter: d, Priority: ptr.To(turnPriority)}, nil
		}
		return ctrl.Result{RequeueAfter: wait.Jitter(d, 0.5)}, nil
	}
	r.memory.endWait(key)
	checked(ctx)
	setReady(c, metav1.ConditionFalse, o.reason, err.Error(), o.stalled)
	c.Status.ObservedGeneration = c.Generation
	switch {
	case o.stalled:
		d := r.stalled.failed(key, c.Generation, r.Clock.Now())
		ctrl.LoggerFrom(ctx).Info("cannot make progress without a change", "reason", o.reason, "message", err.Error(), "retryAfter", d)
		return ctrl.Result{RequeueAfter: d}, nil
	default:
		// The operator's own backoff, which only success resets; spread
		// the retries of everyone who was told to wait the same.
		d := r.retries.failed(key, o.retryAfter)
		ctrl.LoggerFrom(ctx).Error(err, "ScriptLock call failed; retrying", "reason", o.reason, "retryAfter", d)
		return ctrl.Result{RequeueAfter: wait.Jitter(d, 0.5)}, nil
	}
}

// patchStatus writes the status if, and only if, it changed since orig, and
// emits an Event when the Ready condition changes.
func (r *CustomerReconciler) patchStatus(ctx context.Context, c, orig *v1alpha1.Customer) error {
	if equality.Semantic.DeepEqual(orig.Status, c.Status) {
		return nil
	}
	// The base differs from c in status only: a patch that carried a
	// resourceVersion would turn into a needless precondition.
	base := c.DeepCopy()
	base.Status = orig.Status
	if err := r.patchSameObject(ctx, c, base); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing status: %w", err)
	}
	r.memory.wroteObject(client.ObjectKeyFromObject(c), c.ResourceVersion)
	before := meta.FindStatusCondition(orig.Status.Conditions, v1alpha1.ConditionReady)
	after := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	// A new Customer's first Ready=True is announced by the Event of what
	// was done (Created, Adopted): one Event per create, not two.
	firstReady := before == nil && after != nil && after.Status == metav1.ConditionTrue && after.Reason == v1alpha1.ReasonAvailable
	if after != nil && !firstReady && (before == nil || before.Status != after.Status || before.Reason != after.Reason) {
		kind := corev1.EventTypeWarning
		if after.Status == metav1.ConditionTrue || after.Reason == v1alpha1.ReasonDeleting {
			kind = corev1.EventTypeNormal
		}
		r.event(c, kind, after.Reason, "Reconcile", "%s", after.Message)
	}
	orig.Status = *c.Status.DeepCopy()
	return nil
}

// patchSameObject writes c's status as a merge patch from base, guarded by
// the resourceVersion of the copy this pass holds, so that it lands on that
// very object: a name deleted and created again meanwhile (a restore from a
// backup, with a new UID) refuses it, where an unguarded patch would bind
// the new object to what this pass found for the old one. If the object
// changed in another way (a person's edit), the newest copy is read and,
// if it has the same UID, the status is written on it.
func (r *CustomerReconciler) patchSameObject(ctx context.Context, c, base *v1alpha1.Customer) error {
	err := r.Status().Patch(ctx, c, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	for range 3 {
		if !apierrors.IsConflict(err) {
			return err
		}
		fresh := &v1alpha1.Customer{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(c), fresh); err != nil {
			return err
		}
		if fresh.UID != c.UID {
			return fmt.Errorf("%w: it was deleted and created again (UID %s, now %s) during this pass, which wrote nothing to the new object",
				errReplaced, c.UID, fresh.UID)
		}
		base.ResourceVersion, c.ResourceVersion = fresh.ResourceVersion, fresh.ResourceVersion
		err = r.Status().Patch(ctx, c, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	}
	return err
}

// errReplaced says that a Customer was replaced by another object of the
// same name while a pass was under way.
var errReplaced = errors.New("the Customer is another object now")

// patchMeta changes metadata by a merge patch guarded by the
// resourceVersion, so that a concurrent edit is never overwritten and a
// decision is never taken on a stale spec; nothing is sent if mutate changes
// nothing.
func (r *CustomerReconciler) patchMeta(ctx context.Context, c *v1alpha1.Customer, mutate func(*v1alpha1.Customer)) error {
	before := c.DeepCopy()
	mutate(c)
	if equality.Semantic.DeepEqual(before.ObjectMeta, c.ObjectMeta) {
		return nil
	}
	status := c.Status.DeepCopy()
	if err := r.Patch(ctx, c, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		// Nothing was written: c says what the object holds.
		c.ObjectMeta = before.ObjectMeta
		return fmt.Errorf("updating metadata: %w", err)
	}
	r.memory.wroteObject(client.ObjectKeyFromObject(c), c.ResourceVersion)
	// The patch answer carries the stored status; keep the one being built.
	c.Status = *status
	return nil
}

// event emits a Kubernetes Event about c.
func (r *CustomerReconciler) event(c *v1alpha1.Customer, kind, reason, action, format string, args ...any) {
	r.Recorder.Eventf(c, nil, kind, reason, action, "%s", eventNote(format, args...))
}

// desired is the record the spec asks for; an omitted company is empty.
func desired(c *v1alpha1.Customer) scriptlock.Customer {
	return scriptlock.Customer{
		ID:        c.Status.CustomerID,
		Company:   c.Spec.Company,
		FirstName: c.Spec.FirstName,
		LastName:  c.Spec.LastName,
		Email:     c.Spec.Email,
	}
}

func orNone(id string) string {
	if id == "" {
		return "(none)"
	}
	return id
}
