package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
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
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "scriptlock_drift_listing_failures_total",
		Help: "Drift-detection listings of a ScriptLock account that failed; while they fail, drift in that account goes unseen.",
	})
	if err := metrics.Registry.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(prometheus.Counter); ok {
				return existing
			}
		}
	}
	return c
}

// Transient errors back off exponentially from about a second to five
// minutes (SPEC section 3).
const (
	transientBackoffMin = time.Second
	transientBackoffMax = 5 * time.Minute
)

// SetupWithManager registers the reconciler, its field indexes and, in list
// mode, the drift detector with mgr.
func (r *CustomerReconciler) SetupWithManager(mgr ctrl.Manager, maxConcurrent int) error {
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
	r.state = newTracker(r.ResyncPeriod, backoffPolicy{Min: r.PermanentBackoff, Max: r.PermanentBackoffMax}, r.DriftDetection == DriftByList)

	ctx := context.Background()
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.Customer{}, indexEmail, emailIndex); err != nil {
		return fmt.Errorf("indexing Customers by email: %w", err)
	}
	if err := idx.IndexField(ctx, &v1alpha1.Customer{}, indexRecord, recordIndex); err != nil {
		return fmt.Errorf("indexing Customers by record id: %w", err)
	}

	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Customer{}, builder.WithPredicates(relevantChange())).
		Named("customer").
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(1, maxConcurrent),
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](
				transientBackoffMin, transientBackoffMax),
		})
	if r.DriftDetection == DriftByList {
		d := &driftDetector{
			state:    r.state,
			period:   r.ResyncPeriod,
			events:   make(chan event.TypedGenericEvent[*v1alpha1.Customer], 1024),
			failures: driftListingFailures(),
		}
		if err := mgr.Add(d); err != nil {
			return fmt.Errorf("adding the drift detector: %w", err)
		}
		b = b.WatchesRawSource(source.Channel(d.events, &handler.TypedEnqueueRequestForObject[*v1alpha1.Customer]{}))
	}
	return b.Complete(r)
}

// relevantChange lets through what the operator must act on: creation, a
// spec change (generation), annotations (pause, unpause), labels (sharding)
// and deletion. Status-only updates, most of them the operator's own, do not
// cause another reconcile.
func relevantChange() predicate.Predicate {
	return predicate.Or(
		predicate.GenerationChangedPredicate{},
		predicate.AnnotationChangedPredicate{},
		predicate.LabelChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
		}},
	)
}

// driftDetector lists each ScriptLock account once per resync period and
// enqueues the Customers whose record is missing or differs, so that the
// steady-state cost at ScriptLock does not grow with the number of Customers.
type driftDetector struct {
	state    *tracker
	period   time.Duration
	events   chan event.TypedGenericEvent[*v1alpha1.Customer]
	failures prometheus.Counter
}

var _ manager.LeaderElectionRunnable = (*driftDetector)(nil)

// NeedLeaderElection is true: only the leader talks to ScriptLock.
func (d *driftDetector) NeedLeaderElection() bool { return true }

// Start sweeps once per period until ctx ends. The jitter only shortens the
// wait (by up to a tenth), so drift is always found within one period.
func (d *driftDetector) Start(ctx context.Context) error {
	for {
		t := time.NewTimer(jitterDown(d.period))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
			d.sweep(ctx)
		}
	}
}

func (d *driftDetector) sweep(ctx context.Context) {
	log := ctrl.LoggerFrom(ctx).WithName("drift")
	for account, cl := range d.state.accountClients() {
		asked := time.Now()
		recs, err := cl.List(ctx)
		if err != nil {
			d.failures.Inc()
			log.Error(err, "listing ScriptLock customers failed: drift in this account goes unseen until a listing succeeds; trying again next period", "account", account)
			continue
		}
		stale := d.state.listed(account, recs, asked)
		log.V(1).Info("listed ScriptLock customers", "account", account, "records", len(recs), "drifted", len(stale))
		for _, key := range stale {
			c := &v1alpha1.Customer{}
			c.Namespace, c.Name = key.Namespace, key.Name
			select {
			case d.events <- event.TypedGenericEvent[*v1alpha1.Customer]{Object: c}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// jitterDown spreads periodic work over the last tenth of period, so that
// many Customers do not act in lockstep and none waits longer than period.
func jitterDown(period time.Duration) time.Duration {
	return period - time.Duration(rand.Int64N(int64(period)/10+1))
}
