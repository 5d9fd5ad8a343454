package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unique"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// driftListingFailures returns the counter of failed drift listings,
// registered once on controller-runtime's registry (a second manager in the
// same process, as in tests, shares it).
func driftListingFailures() prometheus.Counter {
	return registeredCounter(prometheus.CounterOpts{
		Name: "scriptlock_drift_listing_failures_total",
		Help: "Drift-detection listings of a ScriptLock account that failed; while they fail, drift in that account goes unseen.",
	})
}

// registeredCounter registers a counter on controller-runtime's registry
// once: a second manager in the same process (tests) gets the first one's.
func registeredCounter(opts prometheus.CounterOpts) prometheus.Counter {
	return registered[prometheus.Counter](prometheus.NewCounter(opts))
}

// registered registers c on controller-runtime's registry, or returns the
// collector of the same name registered before it (a second manager in the
// same process, as in tests, shares the first one's).
func registered[T prometheus.Collector](c T) T {
	if err := metrics.Registry.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
	}
	return c
}

// waitsCounter returns scriptlock_waits_total{wait}, registered once.
func waitsCounter() *prometheus.CounterVec {
	return registered(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scriptlock_waits_total",
		Help: "Passes that ended in a wait the operator imposes on itself (no condition changes; the Customer is tried again shortly), by what they waited for: rate (a turn in the account's rate limit), in_flight (the cap on calls in flight), listing (a listing of the account under way), relist (a listing that lacks a record a Customer holds), newer_copy (the cached Customer older than the API server's), index (the claims index filling after a start), brake_lease (the deletion budget's Lease changed), other.",
	}, []string{"wait"}))
}

// lastApplied is the annotation kubectl apply keeps a copy of the whole
// manifest in.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// CacheTransform trims every object the informer cache holds: its
// managedFields (cache.TransformStripManagedFields) and kubectl's
// last-applied-configuration annotation, a copy of the whole manifest that
// can be larger than the rest of the object. The operator reads neither,
// and writes only merge patches computed between two copies of the object
// it read, which leave both alone on the server. In a Customer, the
// strings that many Customers share (namespace, finalizer, policies,
// account, URL, condition type, status and reason) are made one copy each
// (internCustomer), and a bound Customer's void create-time proof is kept
// as a mark only (voidBoundProof). Use it as the manager's
// cache.Options.DefaultTransform.
func CacheTransform() toolscache.TransformFunc {
	strip := cache.TransformStripManagedFields()
	return func(in any) (any, error) {
		out, err := strip(in)
		if err != nil {
			return out, err
		}
		if o, ok := out.(metav1.Object); ok {
			if a := o.GetAnnotations(); a[lastApplied] != "" {
				delete(a, lastApplied)
				o.SetAnnotations(a)
			}
		}
		if c, ok := out.(*v1alpha1.Customer); ok {
			internCustomer(c)
			voidBoundProof(c)
		}
		return out, nil
	}
}

// voidProof is what the create-time proof annotation
// (v1alpha1.PendingCreateAnnotation) of a Customer with a bound record reads
// as in the informer cache. Such a proof is void (pendingOf reads it only
// while no record is bound; unbind removes it from the server before the
// binding goes), so the operator only asks whether it is there, to remove it
// before a binding is cleared. Its JSON, about 170 bytes, is not kept, and
// a Customer that has no other annotation shares one map that holds only
// this (voidProofOnly, some 330 bytes a Customer less): nothing writes to
// a cached object, which every read through the cache deep-copies.
const voidProof = "void: a record is bound"

var voidProofOnly = map[string]string{v1alpha1.PendingCreateAnnotation: voidProof}

// voidBoundProof replaces the proof annotation of c, when c has a record
// bound, by voidProof.
func voidBoundProof(c *v1alpha1.Customer) {
	if c.Status.CustomerID == "" {
		return
	}
	if _, ok := c.Annotations[v1alpha1.PendingCreateAnnotation]; !ok {
		return
	}
	if len(c.Annotations) == 1 {
		c.Annotations = voidProofOnly
		return
	}
	c.Annotations[v1alpha1.PendingCreateAnnotation] = voidProof
}

// internCustomer replaces the strings of c that most Customers share with
// one canonical copy (unique.Make): each decoded object otherwise holds its
// own copy of every string, some 200 bytes a Customer of the informer
// cache. Strings of one Customer alone (names, emails, ids, messages) are
// left as they are: interning them would only add the intern table's
// entry. The values are equal, so nothing reading the cache can tell.
func internCustomer(c *v1alpha1.Customer) {
	in := func(s *string) {
		if *s != "" {
			*s = unique.Make(*s).Value()
		}
	}
	in(&c.Namespace)
	for i := range c.Finalizers {
		in(&c.Finalizers[i])
	}
	in((*string)(&c.Spec.DeletionPolicy))
	in((*string)(&c.Spec.Adoption))
	in((*string)(&c.Spec.ManagementPolicy))
	in(&c.Status.Account)
	in(&c.Status.URL)
	for i := range c.Status.Conditions {
		cond := &c.Status.Conditions[i]
		in(&cond.Type)
		in((*string)(&cond.Status))
		in(&cond.Reason)
	}
}

// SetupWithManager registers the reconciler, its claims index and, in list
// mode, the drift detector with mgr. maxConcurrent workers reconcile at
// once, unless r.Concurrency is set: then it decides.
func (r *CustomerReconciler) SetupWithManager(mgr ctrl.Manager, maxConcurrent int) error {
	if r.Concurrency != nil {
		maxConcurrent = r.Concurrency.Workers()
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.ResyncPeriod <= 0 {
		r.ResyncPeriod = 10 * time.Minute
	}
	if r.PermanentBackoff <= 0 {
		r.PermanentBackoff = time.Minute
	}
	if r.PermanentBackoffMax < r.PermanentBackoff {
		r.PermanentBackoffMax = max(5*time.Minute, r.PermanentBackoff)
	}
	if r.DriftDetection == "" {
		r.DriftDetection = DriftByList
	}
	if r.PendingCreateWindow <= 0 {
		r.PendingCreateWindow = 2 * time.Minute
	}
	if r.VanishReads <= 0 {
		r.VanishReads = defaultVanishReads
	}
	if r.VanishInterval <= 0 {
		r.VanishInterval = defaultVanishInterval
	}
	if r.MinDriftCheckInterval <= 0 {
		r.MinDriftCheckInterval = defaultMinDriftCheckInterval
	}
	if r.DriftClock == nil {
		r.DriftClock = clock.RealClock{}
	}
	if r.DeletionBudget > 0 {
		if r.DeletionBudgetWindow <= 0 {
			r.DeletionBudgetWindow = DefaultDeletionBudgetWindow
		}
		if r.BrakeNamespace == "" {
			return errors.New("the revocation brake (DeletionBudget) needs the namespace of its Leases (BrakeNamespace)")
		}
		r.brake = newDeletionBrake(r.APIReader, r.Client, r.Recorder, r.Clock, r.BrakeNamespace, r.DeletionBudget, r.DeletionBudgetWindow)
	}
	r.accounts = newAccountRegistry(r.Clock)
	r.memory = newCustomerMemory(r.accounts)
	if r.TransientBackoff <= 0 {
		r.TransientBackoff = transientBackoffMin
	}
	if r.RelistAfter <= 0 {
		r.RelistAfter = defaultRelistAfter
	}
	if r.TransientBackoffMax <= 0 {
		r.TransientBackoffMax = transientBackoffMax
	}
	r.waits = waitsCounter()
	r.retries = newRetryBackoff(backoffPolicy{Min: r.TransientBackoff, Max: r.TransientBackoffMax})
	r.stalled = newStalledBackoff(backoffPolicy{Min: r.PermanentBackoff, Max: r.PermanentBackoffMax})

	ctx := context.Background()
	inf, err := mgr.GetCache().GetInformer(ctx, &v1alpha1.Customer{})
	if err != nil {
		return fmt.Errorf("getting the Customer informer: %w", err)
	}
	r.claims = newClaims()
	reg, err := inf.AddEventHandler(r.claims.handler())
	if err != nil {
		return fmt.Errorf("indexing what Customers name: %w", err)
	}
	r.claims.synced = reg.HasSynced
	r.accounts.claimed = r.claims.has
	wake := &wakeups{}
	r.accounts.wake = wake.wake

	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Customer{}, builder.WithPredicates(relevantChange())).
		Named("customer").
		WithOptions(controller.Options{
			LogConstructor:          reconcileLogs(mgr.GetLogger()),
			MaxConcurrentReconciles: max(1, maxConcurrent),
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](
				transientBackoffMin, transientBackoffMax),
		}).
		WatchesRawSource(wake.source())
	if r.DriftDetection == DriftByList {
		d := &driftDetector{
			accounts: r.accounts,
			memory:   r.memory,
			period:   r.ResyncPeriod,
			clock:    r.DriftClock,
			slots:    make(chan struct{}, parallelListings),
			events:   make(chan event.TypedGenericEvent[*v1alpha1.Customer], 1024),
			failures: driftListingFailures(),
		}
		if err := mgr.Add(d); err != nil {
			return fmt.Errorf("adding the drift detector: %w", err)
		}
		b = b.WatchesRawSource(source.Channel(d.events, sweepHandler()))
	}
	return b.Complete(admitted(r, r.Concurrency))
}

// sweepHandler enqueues the Customers a drift sweep names at
// handler.LowPriority, the priority controller-runtime gives the initial
// listing's and a resync's events: a periodic re-check waits behind every
// new or changed Customer (priority 0), so that a sweep of 50,000 in sync
// does not slow a storm of creates. Each keeps that priority for the rest of
// its pass (the waits it comes back from), unless an event for it raises it.
func sweepHandler() handler.TypedEventHandler[*v1alpha1.Customer, reconcile.Request] {
	return handler.TypedFuncs[*v1alpha1.Customer, reconcile.Request]{
		GenericFunc: func(_ context.Context, e event.TypedGenericEvent[*v1alpha1.Customer], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(e.Object)}
			if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
				pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(handler.LowPriority)}, req)
				return
			}
			q.Add(req)
		},
	}
}

// relevantChange lets through what the operator must act on: creation, a
// spec change (generation), the annotations a person sets to ask for
// something (paused, reconcile-requested-at, drift-check-interval,
// approve-deletion), labels (sharding),
// deletion, and the loss of the finalizer (a replace-style update). The
// operator's own writes — status, the finalizer it adds — do not cause another reconcile, so they can never cut a backoff
// short.
func relevantChange() predicate.Predicate {
	return predicate.Or(
		predicate.GenerationChangedPredicate{},
		predicate.LabelChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return o.GetDeletionTimestamp().IsZero() != n.GetDeletionTimestamp().IsZero() ||
				annotationChanged(o, n, v1alpha1.PausedAnnotation, v1alpha1.ReconcileRequestAnnotation,
					v1alpha1.DriftCheckIntervalAnnotation, v1alpha1.ApproveDeletionAnnotation) ||
				controllerutil.ContainsFinalizer(o, v1alpha1.Finalizer) && !controllerutil.ContainsFinalizer(n, v1alpha1.Finalizer)
		}},
	)
}

// annotationChanged says whether any of the annotations keys differs
// between o and n.
func annotationChanged(o, n client.Object, keys ...string) bool {
	for _, k := range keys {
		if o.GetAnnotations()[k] != n.GetAnnotations()[k] {
			return true
		}
	}
	return false
}
