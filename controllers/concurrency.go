package controllers

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// How many reconciles run at once when --max-concurrent-reconciles is left
// at 0 (derived). Little's law: the reconciles in flight are the
// throughput times the time one takes. To reach --scriptlock-qps, about
// qps × (a reconcile's time) must be in flight; twice that, because at most
// half of them may wait on one account's calls (the in-flight cap that
// keeps a slow account from holding every worker). A reconcile's time is
// taken as the time ScriptLock took to answer its calls, which more
// reconciles at once cannot shorten, plus apiServerAllowance for its
// API-server calls: measured whole, a reconcile's time grows with the
// reconciles at once when the API server or the CPU is what limits, and
// the limit with it, which only adds to the contention (in the
// benchmark of 10,000 Customers, the limit went to every worker, 400, and
// all were Ready later than with 10).
const (
	// minConcurrency is the least limit, the fixed default before the
	// limit was derived: enough for a small qps and for other accounts
	// beside a slow one.
	minConcurrency = 10
	// concurrencyHeadroom is the factor over qps × a reconcile's time.
	concurrencyHeadroom = 2
	// reconcileTimeBound is the longest average reconcile the derived
	// workers can carry at the full rate: the manager starts
	// qps × reconcileTimeBound × headroom workers, of which the limit
	// admits only as many as the observed times need.
	reconcileTimeBound = time.Second
	// apiServerAllowance is what a reconcile's API-server calls are taken
	// to cost beside ScriptLock's answers (the rule README "Sizing" gave
	// for a fixed value: qps × (2 × ScriptLock's answer time + 0.1 s)).
	apiServerAllowance = 100 * time.Millisecond
	// maxDerivedWorkers caps the workers started, whatever the qps.
	maxDerivedWorkers = 1000
	// durationWeight is the weight of each reconcile's ScriptLock time in
	// the moving average: about the last 20 reconciles count.
	durationWeight = 0.05
)

// DerivedWorkers is how many reconcile workers the manager starts for qps
// when --max-concurrent-reconciles is 0: enough for reconciles that take
// reconcileTimeBound on average, between minConcurrency and
// maxDerivedWorkers. Idle workers cost a parked goroutine each; the
// Concurrency limit decides how many may reconcile at once.
func DerivedWorkers(qps float64) int {
	return concurrencyFor(qps, reconcileTimeBound, maxDerivedWorkers)
}

// concurrencyFor is Little's law with headroom:
// ceil(headroom × qps × avg), at least minConcurrency, at most ceiling.
func concurrencyFor(qps float64, avg time.Duration, ceiling int) int {
	n := math.Ceil(concurrencyHeadroom * qps * avg.Seconds())
	if math.IsNaN(n) || n < minConcurrency {
		n = minConcurrency
	}
	return int(min(n, float64(max(ceiling, minConcurrency))))
}

// Concurrency is how many Customers are reconciled at once. With a fixed
// value (--max-concurrent-reconciles > 0) it is that. Derived (0), the
// manager starts DerivedWorkers(qps) workers and Concurrency admits, at
// any moment, 2 × qps × (the moving average of the time ScriptLock took to
// answer a reconcile's calls + 0.1 s), at least 10: few reconciles run
// while ScriptLock answers fast, more when it answers slowly, so that the
// account's rate is reached.
// The ScriptLock in-flight caps follow the limit (PerAccount, PerHost), so
// a slow or busy account never holds more than half of it.
type Concurrency struct {
	qps     float64
	workers int
	fixed   bool
	gauge   prometheus.Gauge

	mu       sync.Mutex
	avg      time.Duration // moving average of the time ScriptLock took to answer an admitted reconcile's calls
	sampled  bool          // avg holds at least one sample
	limit    int
	inFlight int
	waiting  []chan struct{} // reconciles waiting for a slot, first come first served
}

// NewConcurrency returns the concurrency of --max-concurrent-reconciles n
// (0 = derived from qps) and --scriptlock-qps qps. Its limit is published
// as the gauge scriptlock_reconcile_concurrency_limit.
func NewConcurrency(n int, qps float64) *Concurrency {
	c := &Concurrency{qps: qps, gauge: concurrencyGauge()}
	if n > 0 {
		c.workers, c.limit, c.fixed = n, n, true
	} else {
		c.workers, c.limit = DerivedWorkers(qps), minConcurrency
	}
	c.gauge.Set(float64(c.limit))
	return c
}

// concurrencyGauge is the gauge of the limit, registered once on
// controller-runtime's registry (a second manager in the process shares it).
func concurrencyGauge() prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "scriptlock_reconcile_concurrency_limit",
		Help: "Customers that may be reconciled at once: --max-concurrent-reconciles, or, when it is 0, 2 x --scriptlock-qps x (the average time ScriptLock took to answer a reconcile's calls + 0.1 s), at least 10, at most the workers started.",
	})
	if err := metrics.Registry.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(prometheus.Gauge); ok {
				return existing
			}
		}
	}
	return g
}

// Workers is how many reconcile workers to start.
func (c *Concurrency) Workers() int { return c.workers }

// Derived says whether the limit follows the observed times.
func (c *Concurrency) Derived() bool { return !c.fixed }

// Limit is how many reconciles may run at once now.
func (c *Concurrency) Limit() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limit
}

// PerAccount is the in-flight cap of one ScriptLock account: half the
// limit, so that an account that never answers leaves the other half to
// the rest.
func (c *Concurrency) PerAccount() int { return max(1, c.Limit()/2) }

// PerHost is the in-flight cap of every account at one host together: all
// but one of the limit.
func (c *Concurrency) PerHost() int { return max(1, c.Limit()-1) }

// acquire waits for a slot (never when the limit is fixed: the workers are
// the limit) and returns its release, which records answered (the time
// ScriptLock took to answer the reconcile's calls) when sample is true.
func (c *Concurrency) acquire(ctx context.Context) (func(answered time.Duration, sample bool), error) {
	if c.fixed {
		return func(time.Duration, bool) {}, nil
	}
	c.mu.Lock()
	if c.inFlight < c.limit && len(c.waiting) == 0 {
		c.inFlight++
		c.mu.Unlock()
		return c.releaser(), nil
	}
	ch := make(chan struct{})
	c.waiting = append(c.waiting, ch)
	c.mu.Unlock()
	select {
	case <-ch: // the slot was handed over by a release
		return c.releaser(), nil
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, w := range c.waiting {
			if w == ch {
				c.waiting = append(c.waiting[:i], c.waiting[i+1:]...)
				return nil, ctx.Err()
			}
		}
		// Handed over just now: give the slot back.
		c.inFlight--
		c.admitLocked()
		return nil, ctx.Err()
	}
}

// releaser returns the release of a slot.
func (c *Concurrency) releaser() func(answered time.Duration, sample bool) {
	return func(answered time.Duration, sample bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.inFlight--
		if sample {
			c.observeLocked(answered)
		}
		c.admitLocked()
	}
}

// observeLocked adds the time ScriptLock took to answer one reconcile's
// calls to the moving average and sets the limit from it.
func (c *Concurrency) observeLocked(answered time.Duration) {
	if !c.sampled {
		c.avg, c.sampled = answered, true
	} else {
		c.avg += time.Duration(durationWeight * float64(answered-c.avg))
	}
	// In whole milliseconds: the average of answers that stopped coming
	// decays to a remainder of nanoseconds, which must not add a slot.
	c.limit = concurrencyFor(c.qps, c.avg.Round(time.Millisecond)+apiServerAllowance, c.workers)
	c.gauge.Set(float64(c.limit))
}

// admitLocked hands free slots to waiting reconciles, first come first
// served.
func (c *Concurrency) admitLocked() {
	for c.inFlight < c.limit && len(c.waiting) > 0 {
		close(c.waiting[0])
		c.waiting = c.waiting[1:]
		c.inFlight++
	}
}

// admitted wraps r so that each reconcile first takes a slot of c. A pass
// that a ScriptLock gate turned away (past the account's rate or in-flight
// cap) ends at once and is no sample of a reconcile's time: counted, such
// passes, many while an account is at its rate, would pull the average
// and so the limit down until the account's in-flight cap (half of it)
// kept the rate out of reach.
func admitted(r reconcile.Reconciler, c *Concurrency) reconcile.Reconciler {
	if c == nil || c.fixed {
		return r
	}
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		release, err := c.acquire(ctx)
		if err != nil {
			return reconcile.Result{}, err
		}
		ctx, turnedAway := scriptlock.WithTurnedAwayMark(ctx)
		ctx, answered := scriptlock.WithAnswerTime(ctx)
		defer func() { release(answered(), !turnedAway()) }()
		return r.Reconcile(ctx, req)
	})
}
