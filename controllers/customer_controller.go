// Package controllers holds the CustomerReconciler, which keeps one
// ScriptLock customer record equal to each Customer object.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// DriftDetection is how the operator finds records changed in ScriptLock by
// someone else.
type DriftDetection string

const (
	// DriftByList lists each account once per resync period and enqueues
	// only the Customers whose record differs or is missing.
	DriftByList DriftDetection = "list"
	// DriftPerObject reads every record once per resync period.
	DriftPerObject DriftDetection = "per-object"
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
	// Clock is the time source; tests may replace it.
	Clock clock.PassiveClock
	// ResyncPeriod is how often every record is compared with its spec.
	ResyncPeriod time.Duration
	// DriftDetection chooses between one listing per account and one read
	// per record per ResyncPeriod.
	DriftDetection DriftDetection
	// PermanentBackoff is the first wait after a failure that retrying
	// cannot fix (Conflict, Unauthorized, NotFound, DeletionBlocked); it
	// doubles up to PermanentBackoffMax. A spec change retries at once.
	PermanentBackoff, PermanentBackoffMax time.Duration

	state *tracker
}

// +kubebuilder:rbac:groups=licensing.scriptlock.com,resources=customers,verbs=get;list;watch;patch;update
// +kubebuilder:rbac:groups=licensing.scriptlock.com,resources=customers/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=licensing.scriptlock.com,resources=customers/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile brings one Customer and its ScriptLock record together.
func (r *CustomerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	c := &v1alpha1.Customer{}
	if err := r.Get(ctx, req.NamespacedName, c); err != nil {
		if apierrors.IsNotFound(err) {
			r.state.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if c.Annotations[v1alpha1.PausedAnnotation] == "true" {
		ctrl.LoggerFrom(ctx).V(1).Info("paused: no ScriptLock call and no change until the annotation is removed")
		return ctrl.Result{}, nil
	}
	// Waiting out a permanent failure costs no read of the API server.
	if wait := r.state.wait(req.NamespacedName, c.Generation, r.Clock.Now()); wait > 0 && c.DeletionTimestamp.IsZero() {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	if c.Status.CustomerID == "" && c.DeletionTimestamp.IsZero() {
		// The cache may not hold our own last status write yet; whether to
		// create is decided on the newest copy only.
		if err := r.APIReader.Get(ctx, req.NamespacedName, c); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}

	orig := c.DeepCopy()
	defer func() {
		if err := r.patchStatus(ctx, c, orig); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	if !c.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, c)
	}
	return r.reconcileNormal(ctx, c)
}

// reconcileNormal makes the record exist and match the spec.
func (r *CustomerReconciler) reconcileNormal(ctx context.Context, c *v1alpha1.Customer) (ctrl.Result, error) {
	cl, err := r.account(ctx, c)
	if err != nil {
		return r.fail(ctx, c, err)
	}
	if c.Status.CustomerID == "" {
		return r.reconcileUnbound(ctx, c, cl)
	}
	if c.Spec.CustomerID != "" && c.Spec.CustomerID != c.Status.CustomerID {
		return r.permanent(ctx, c, v1alpha1.ReasonConflict, fmt.Sprintf(
			"spec.customerID %q differs from the record this Customer already manages (%q); create a new Customer to manage another record",
			c.Spec.CustomerID, c.Status.CustomerID))
	}
	return r.reconcileBound(ctx, c, cl)
}

// reconcileUnbound finds or creates the record of a Customer that has none
// yet: spec.customerID, then the record of an earlier create whose outcome
// is unknown, then a create.
func (r *CustomerReconciler) reconcileUnbound(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (ctrl.Result, error) {
	if other, err := r.claimant(ctx, c, cl, c.Spec.CustomerID); err != nil || other != nil {
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.permanent(ctx, c, v1alpha1.ReasonConflict, claimMessage(c, other))
	}
	if c.Spec.CustomerID != "" {
		return r.observeByID(ctx, c, cl)
	}
	if email, pending := c.Annotations[v1alpha1.CreatePendingAnnotation]; pending {
		rec, found, err := findByEmail(ctx, cl, email)
		if err != nil {
			return r.fail(ctx, c, err)
		}
		if found {
			r.event(c, corev1.EventTypeNormal, "Adopted", "Adopt",
				"found ScriptLock customer %s from an earlier create whose answer was not recorded", rec.ID)
			return r.bind(ctx, c, cl, rec)
		}
	}
	return r.create(ctx, c, cl)
}

// create posts a new record, after persisting the finalizer and the
// create-pending marker, so that neither a crash nor a lost answer can lead
// to a duplicate or to a record nobody deletes.
func (r *CustomerReconciler) create(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (ctrl.Result, error) {
	want := desired(c)
	if ready := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady); ready != nil &&
		ready.Reason == v1alpha1.ReasonConflict && c.Status.ObservedGeneration == c.Generation {
		// A retry after a refused create: a listing settles it without
		// writing the marker again.
		rec, found, err := findByEmail(ctx, cl, want.Email)
		if err != nil {
			return r.fail(ctx, c, err)
		}
		if found {
			return r.emailTaken(ctx, c, cl, rec)
		}
	}
	if err := r.patchMeta(ctx, c, func(c *v1alpha1.Customer) {
		controllerutil.AddFinalizer(c, v1alpha1.Finalizer)
		metav1.SetMetaDataAnnotation(&c.ObjectMeta, v1alpha1.CreatePendingAnnotation, want.Email)
	}); err != nil {
		return ctrl.Result{}, err
	}
	rec, err := cl.Create(ctx, want)
	switch {
	case err == nil:
		r.event(c, corev1.EventTypeNormal, "Created", "Create", "created ScriptLock customer %s", rec.ID)
		return r.bind(ctx, c, cl, rec)
	case scriptlock.IsConflict(err):
		return r.createConflict(ctx, c, cl)
	case scriptlock.IsMaybeCreated(err), errors.Is(err, scriptlock.ErrThrottled):
		// A lost answer keeps the marker: the next attempt looks the
		// record up by email before creating again. So does a create the
		// client held back (nothing was sent): removing the marker now
		// would only be written back on the next attempt.
		return r.fail(ctx, c, err)
	default:
		// ScriptLock answered, and created nothing: drop the marker, so
		// that deleting this Customer never has to ask ScriptLock.
		if err := r.patchMeta(ctx, c, func(c *v1alpha1.Customer) {
			delete(c.Annotations, v1alpha1.CreatePendingAnnotation)
		}); err != nil {
			return ctrl.Result{}, err
		}
		return r.fail(ctx, c, err)
	}
}

// createConflict handles a create refused because the email is taken.
func (r *CustomerReconciler) createConflict(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (ctrl.Result, error) {
	// The marker's create definitely did not happen: drop it, so that the
	// existing record is never mistaken for one of ours.
	if err := r.patchMeta(ctx, c, func(c *v1alpha1.Customer) {
		delete(c.Annotations, v1alpha1.CreatePendingAnnotation)
	}); err != nil {
		return ctrl.Result{}, err
	}
	rec, found, err := findByEmail(ctx, cl, c.Spec.Email)
	if err != nil {
		return r.fail(ctx, c, err)
	}
	if !found {
		err := fmt.Errorf("ScriptLock refused the create with 409 Conflict but lists no customer with email %q; retrying", c.Spec.Email)
		r.setReady(c, metav1.ConditionFalse, v1alpha1.ReasonAPIError, err.Error())
		return ctrl.Result{}, err
	}
	return r.emailTaken(ctx, c, cl, rec)
}

// emailTaken handles an existing record rec that has the email of c: adopt
// it if the spec allows, else report the conflict and how to adopt it.
func (r *CustomerReconciler) emailTaken(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, rec scriptlock.Customer) (ctrl.Result, error) {
	if c.Spec.Adoption != v1alpha1.AdoptionIfExists {
		return r.permanent(ctx, c, v1alpha1.ReasonConflict, fmt.Sprintf(
			"ScriptLock customer %s already has email %q; to manage it, set spec.adoption: IfExists or spec.customerID: %q",
			rec.ID, c.Spec.Email, rec.ID))
	}
	if other, err := r.claimant(ctx, c, cl, rec.ID); err != nil || other != nil {
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.permanent(ctx, c, v1alpha1.ReasonConflict, claimMessage(c, other))
	}
	r.event(c, corev1.EventTypeNormal, "Adopted", "Adopt", "adopted existing ScriptLock customer %s with the same email", rec.ID)
	return r.bind(ctx, c, cl, rec)
}

// observeByID takes over the record named by spec.customerID.
func (r *CustomerReconciler) observeByID(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (ctrl.Result, error) {
	if err := r.patchMeta(ctx, c, func(c *v1alpha1.Customer) {
		controllerutil.AddFinalizer(c, v1alpha1.Finalizer)
	}); err != nil {
		return ctrl.Result{}, err
	}
	rec, err := cl.Get(ctx, c.Spec.CustomerID)
	if scriptlock.IsNotFound(err) {
		return r.permanent(ctx, c, v1alpha1.ReasonNotFound, fmt.Sprintf("ScriptLock has no customer %s (spec.customerID)", c.Spec.CustomerID))
	}
	if err != nil {
		return r.fail(ctx, c, err)
	}
	r.event(c, corev1.EventTypeNormal, "Adopted", "Adopt", "managing existing ScriptLock customer %s", rec.ID)
	return r.bind(ctx, c, cl, rec)
}

// bind makes rec the record of c and brings it to the spec. The status write
// that persists the id happens when the reconcile returns; until then the
// create-pending marker lets a restarted operator find rec again.
func (r *CustomerReconciler) bind(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, rec scriptlock.Customer) (ctrl.Result, error) {
	c.Status.CustomerID = rec.ID
	want := desired(c)
	if !scriptlock.SameFields(rec, want) {
		return r.update(ctx, c, cl, "Updated", "updated ScriptLock customer %s to the spec")
	}
	return r.ready(c, cl, want), nil
}

// reconcileBound keeps an existing record equal to the spec.
func (r *CustomerReconciler) reconcileBound(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(c)
	want := desired(c)
	if c.Status.ObservedGeneration != c.Generation || !meta.IsStatusConditionTrue(c.Status.Conditions, v1alpha1.ConditionReady) {
		return r.update(ctx, c, cl, "Updated", "updated ScriptLock customer %s to the spec")
	}
	if r.DriftDetection == DriftByList {
		switch r.state.lookup(cl.Account(), want) {
		case listDiffers:
			return r.update(ctx, c, cl, "DriftCorrected", "ScriptLock customer %s was changed outside the cluster; put it back to the spec")
		case listMissing:
			// The listing may predate the record; only a read says it is gone.
			return r.observe(ctx, c, cl)
		default:
			r.state.synced(key, cl, want, r.Clock.Now())
			return ctrl.Result{}, nil
		}
	}
	if left, ok := r.state.syncedWithin(key, want, r.Clock.Now()); ok {
		return ctrl.Result{RequeueAfter: left}, nil
	}
	return r.observe(ctx, c, cl)
}

// observe reads the record and puts it back to the spec if it drifted, or
// creates it again if it was deleted in ScriptLock.
func (r *CustomerReconciler) observe(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (ctrl.Result, error) {
	want := desired(c)
	rec, err := cl.Get(ctx, want.ID)
	switch {
	case scriptlock.IsNotFound(err):
		return r.recreate(ctx, c, cl)
	case err != nil:
		return r.fail(ctx, c, err)
	case !scriptlock.SameFields(rec, want):
		return r.update(ctx, c, cl, "DriftCorrected", "ScriptLock customer %s was changed outside the cluster; put it back to the spec")
	default:
		return r.ready(c, cl, want), nil
	}
}

// update puts the spec to the record; reason and format name the Event.
func (r *CustomerReconciler) update(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, reason, format string) (ctrl.Result, error) {
	want := desired(c)
	changed, err := cl.Update(ctx, want.ID, want)
	switch {
	case scriptlock.IsNotFound(err):
		return r.recreate(ctx, c, cl)
	case scriptlock.IsConflict(err):
		return r.permanent(ctx, c, v1alpha1.ReasonConflict, fmt.Sprintf(
			"ScriptLock refused to give customer %s the email %q: another customer has it (%s)", want.ID, want.Email, err))
	case err != nil:
		return r.fail(ctx, c, err)
	}
	if changed {
		r.event(c, corev1.EventTypeNormal, reason, "Update", format, want.ID)
	}
	return r.ready(c, cl, want), nil
}

// recreate handles a record deleted in ScriptLock by someone else.
func (r *CustomerReconciler) recreate(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client) (ctrl.Result, error) {
	if c.Spec.CustomerID != "" {
		// The spec pins this id: a new record could never satisfy it.
		return r.permanent(ctx, c, v1alpha1.ReasonNotFound, fmt.Sprintf(
			"ScriptLock customer %s (spec.customerID) was deleted outside the cluster", c.Spec.CustomerID))
	}
	old := c.Status.CustomerID
	// Mark the create pending before forgetting the old id, so that a crash
	// between here and the create's status write finds the new record.
	if err := r.patchMeta(ctx, c, func(c *v1alpha1.Customer) {
		metav1.SetMetaDataAnnotation(&c.ObjectMeta, v1alpha1.CreatePendingAnnotation, c.Spec.Email)
	}); err != nil {
		return ctrl.Result{}, err
	}
	// This status write also emits the Warning Event RemoteDeleted.
	orig := c.DeepCopy()
	c.Status.CustomerID = ""
	r.setReady(c, metav1.ConditionFalse, v1alpha1.ReasonRemoteDeleted, fmt.Sprintf("ScriptLock customer %s was deleted outside the cluster; creating it again", old))
	if err := r.patchStatus(ctx, c, orig); err != nil {
		return ctrl.Result{}, err
	}
	return r.reconcileUnbound(ctx, c, cl)
}

// reconcileDelete deals with the record as spec.deletionPolicy says, then
// lets the Customer go.
func (r *CustomerReconciler) reconcileDelete(ctx context.Context, c *v1alpha1.Customer) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(c)
	if !controllerutil.ContainsFinalizer(c, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	if c.Spec.DeletionPolicy == v1alpha1.DeletionPolicyOrphan {
		r.event(c, corev1.EventTypeNormal, "Orphaned", "Delete",
			"kept ScriptLock customer %s and its licenses (deletionPolicy: Orphan)", orNone(c.Status.CustomerID))
		return ctrl.Result{}, r.release(ctx, c)
	}
	id := c.Status.CustomerID
	email, pending := c.Annotations[v1alpha1.CreatePendingAnnotation]
	if id == "" && !pending {
		// This Customer never got a record: nothing to ask ScriptLock.
		return ctrl.Result{}, r.release(ctx, c)
	}
	cl, err := r.account(ctx, c)
	if err != nil {
		if cl = r.state.lastClient(key); cl == nil {
			return r.fail(ctx, c, err)
		}
	}
	if id == "" {
		rec, found, err := findByEmail(ctx, cl, email)
		if err != nil {
			return r.fail(ctx, c, err)
		}
		if found {
			other, err := r.claimant(ctx, c, cl, rec.ID)
			if err != nil {
				return ctrl.Result{}, err
			}
			if other == nil {
				id = rec.ID
			}
		}
	}
	if id == "" {
		return ctrl.Result{}, r.release(ctx, c)
	}
	alreadyGone, err := cl.Delete(ctx, id)
	switch {
	case scriptlock.IsConflict(err):
		return r.permanent(ctx, c, v1alpha1.ReasonDeletionBlocked, fmt.Sprintf(
			"ScriptLock refused to delete customer %s: %s", id, messageOf(err)))
	case err != nil:
		return r.fail(ctx, c, err)
	case alreadyGone:
		r.event(c, corev1.EventTypeNormal, "LicensesRevoked", "Delete",
			"ScriptLock customer %s was already deleted; its licenses are revoked", id)
	default:
		r.event(c, corev1.EventTypeNormal, "LicensesRevoked", "Delete",
			"deleted ScriptLock customer %s; every license of that customer is revoked", id)
	}
	return ctrl.Result{}, r.release(ctx, c)
}

// release removes the finalizer and forgets c.
func (r *CustomerReconciler) release(ctx context.Context, c *v1alpha1.Customer) error {
	if err := r.patchMeta(ctx, c, func(c *v1alpha1.Customer) {
		controllerutil.RemoveFinalizer(c, v1alpha1.Finalizer)
	}); err != nil {
		return client.IgnoreNotFound(err)
	}
	r.state.forget(client.ObjectKeyFromObject(c))
	return nil
}

// ready records that the record equals the spec.
func (r *CustomerReconciler) ready(c *v1alpha1.Customer, cl *scriptlock.Client, want scriptlock.Customer) ctrl.Result {
	now := r.Clock.Now()
	r.state.synced(client.ObjectKeyFromObject(c), cl, want, now)
	r.setReady(c, metav1.ConditionTrue, v1alpha1.ReasonAvailable, fmt.Sprintf("ScriptLock customer %s matches the spec", want.ID))
	c.Status.ObservedGeneration = c.Generation
	if r.DriftDetection == DriftByList {
		// The account's listing finds drift; nothing to schedule here.
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: jitterDown(r.ResyncPeriod)}
}

// permanent records a failure that retrying cannot fix and waits at least
// PermanentBackoff before trying again, unless the spec changes.
func (r *CustomerReconciler) permanent(ctx context.Context, c *v1alpha1.Customer, reason, msg string) (ctrl.Result, error) {
	r.setReady(c, metav1.ConditionFalse, reason, msg)
	c.Status.ObservedGeneration = c.Generation
	d := r.state.failed(client.ObjectKeyFromObject(c), c.Generation, r.Clock.Now())
	ctrl.LoggerFrom(ctx).Info("cannot make progress without a change", "reason", reason, "message", msg, "retryAfter", d)
	return ctrl.Result{RequeueAfter: d}, nil
}

// fail sorts an error into permanent (a person must act), rate limited
// (wait for Retry-After) and transient (exponential backoff by the
// workqueue), and records it in the Ready condition.
func (r *CustomerReconciler) fail(ctx context.Context, c *v1alpha1.Customer, err error) (ctrl.Result, error) {
	var se *scriptlock.Error
	switch {
	case isCredentials(err):
		return r.permanent(ctx, c, v1alpha1.ReasonInvalidCredentials, err.Error())
	case scriptlock.IsUnauthorized(err):
		return r.permanent(ctx, c, v1alpha1.ReasonUnauthorized, fmt.Sprintf("ScriptLock refused the API key: %s", err))
	case !errors.As(err, &se):
		// A Kubernetes API error: the workqueue retries it, the condition
		// keeps describing ScriptLock.
		return ctrl.Result{}, err
	}
	c.Status.ObservedGeneration = c.Generation
	if d, ok := scriptlock.RetryAfter(err); ok {
		r.setReady(c, metav1.ConditionFalse, v1alpha1.ReasonAPIError, fmt.Sprintf("%s; retrying after %s", err, d))
		return ctrl.Result{RequeueAfter: d + wait.Jitter(time.Second, 1)}, nil
	}
	if !scriptlock.IsRetryable(err) {
		return r.permanent(ctx, c, v1alpha1.ReasonAPIError, err.Error())
	}
	r.setReady(c, metav1.ConditionFalse, v1alpha1.ReasonAPIError, err.Error())
	return ctrl.Result{}, err
}

// setReady sets Ready and the kstatus conditions that follow from it.
func (r *CustomerReconciler) setReady(c *v1alpha1.Customer, status metav1.ConditionStatus, reason, msg string) {
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{
			Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: c.Generation,
		})
	}
	set(v1alpha1.ConditionReady, status, reason, msg)
	switch {
	case status == metav1.ConditionTrue:
		meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionStalled)
	case isPermanentReason(reason):
		meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionReconciling)
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue, reason, msg)
	default:
		meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionStalled)
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, msg)
	}
}

func isPermanentReason(reason string) bool {
	switch reason {
	case v1alpha1.ReasonConflict, v1alpha1.ReasonNotFound, v1alpha1.ReasonUnauthorized,
		v1alpha1.ReasonDeletionBlocked, v1alpha1.ReasonInvalidCredentials:
		return true
	}
	return false
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
	if err := r.Status().Patch(ctx, c, client.MergeFrom(base)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing status: %w", err)
	}
	before := meta.FindStatusCondition(orig.Status.Conditions, v1alpha1.ConditionReady)
	after := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	if after != nil && (before == nil || before.Status != after.Status || before.Reason != after.Reason) {
		kind := corev1.EventTypeWarning
		if after.Status == metav1.ConditionTrue {
			kind = corev1.EventTypeNormal
		}
		r.event(c, kind, after.Reason, "Reconcile", "%s", after.Message)
	}
	orig.Status = *c.Status.DeepCopy()
	return nil
}

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
		return fmt.Errorf("updating metadata: %w", err)
	}
	// The patch answer carries the stored status; keep the one being built.
	c.Status = *status
	return nil
}

// event emits a Kubernetes Event about c.
func (r *CustomerReconciler) event(c *v1alpha1.Customer, kind, reason, action, format string, args ...any) {
	r.Recorder.Eventf(c, nil, kind, reason, action, format, args...)
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

// messageOf returns ScriptLock's own message of err, or err itself.
func messageOf(err error) string {
	var se *scriptlock.Error
	if errors.As(err, &se) && se.Message != "" {
		return se.Message
	}
	return err.Error()
}

func orNone(id string) string {
	if id == "" {
		return "(none)"
	}
	return id
}
