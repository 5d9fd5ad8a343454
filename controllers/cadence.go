package controllers

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// The cadence of one Customer beside the account-wide resync period: a
// person asks for a pass now (ReconcileRequestAnnotation), or for its
// record to be read more often (DriftCheckIntervalAnnotation).

// Bounds of DriftCheckIntervalAnnotation: more often than once a minute
// (CustomerReconciler.MinDriftCheckInterval) would cost a read per minute
// per record for no benefit a person can use; less often than a day is
// what the resync period already does.
const (
	defaultMinDriftCheckInterval = time.Minute
	maxDriftCheckInterval        = 24 * time.Hour
)

// reconcileRequested returns the value of ReconcileRequestAnnotation when
// it asks for a pass that has not been handled yet, else "".
func reconcileRequested(c *v1alpha1.Customer) string {
	v := c.Annotations[v1alpha1.ReconcileRequestAnnotation]
	if v == "" || v == c.Status.LastHandledReconcileAt {
		return ""
	}
	return v
}

// driftCheckInterval returns the interval DriftCheckIntervalAnnotation asks
// for, unclamped; ok is false when there is none or it is no Go duration.
func driftCheckInterval(c *v1alpha1.Customer) (time.Duration, bool) {
	v, ok := c.Annotations[v1alpha1.DriftCheckIntervalAnnotation]
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, false
	}
	return d, true
}

// readsDirectly says whether this pass must read c's record from
// ScriptLock itself rather than from the account's listing or from the
// operator's memory: a person asked for a pass, or for the record to be
// checked on its own cadence.
func readsDirectly(c *v1alpha1.Customer) bool {
	_, every := driftCheckInterval(c)
	return every || reconcileRequested(c) != ""
}

// withCadence shortens res to c's drift-check interval, clamped to
// [MinDriftCheckInterval, maxDriftCheckInterval], if it has one and res
// would look later (or never, in list mode).
func (r *CustomerReconciler) withCadence(c *v1alpha1.Customer, res ctrl.Result) ctrl.Result {
	d, ok := driftCheckInterval(c)
	if !ok {
		return res
	}
	d = min(max(d, r.MinDriftCheckInterval), maxDriftCheckInterval)
	if res.RequeueAfter == 0 || res.RequeueAfter > d {
		res.RequeueAfter = jitterDown(d)
	}
	return res
}

// pass is what one pass of a Customer found out about itself, for
// Reconcile to decide whether it handled a reconcile request.
type pass struct {
	// checked: the pass read the record from ScriptLock (or wrote it), or
	// a failure set Ready's reason.
	checked bool
}

type passKey struct{}

// withPass returns ctx carrying a new pass record, and the record.
func withPass(ctx context.Context) (context.Context, *pass) {
	p := &pass{}
	return context.WithValue(ctx, passKey{}, p), p
}

// checked marks the pass of ctx as one that checked ScriptLock; a no-op
// without a pass record (the deletion path).
func checked(ctx context.Context) {
	if p, ok := ctx.Value(passKey{}).(*pass); ok {
		p.checked = true
	}
}
