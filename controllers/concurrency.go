package controllers

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// How many reconciles run at once when --max-concurrent-reconciles is left
// at 0 (derived). Little's law: the reconciles in flight are the
// throughput times the time one takes. To reach --scriptlock-qps, about
// qps × (a reconcile's time) must be in flight; twice that, because at most
// half of them may wait on one account's calls (the in-flight cap that
// keeps a slow account from holding every worker). A reconcile's time is
// the time ScriptLock took to answer its calls, which more reconciles at
// once cannot shorten, plus the rest of it (the API server's answers and
// the CPU), as measured on the reconciles that called ScriptLock. That rest
// counts up to twice what it was while at most minConcurrency reconciles
// ran at once (at a reconcile's start and end; apiServerQueueing): past that the API server or the CPU is
// what limits, and more reconciles at once would only wait on it longer,
// which measured whole would raise the limit again (in the benchmark of
// 10,000 Customers of 2026-11-30 the limit went to every worker, 400, and
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
	// to cost beside ScriptLock's answers until a reconcile that called
	// ScriptLock was measured.
	apiServerAllowance = 100 * time.Millisecond
	// apiServerQueueing is how many times its time with few reconciles at
	// once the rest of a reconcile's time counts at most.
	apiServerQueueing = 2
	// maxDerivedWorkers caps the workers started, whatever the qps.
	maxDerivedWorkers = 1000
	// durationWeight is the weight of each reconcile's time in the moving
	// averages: about the last 20 reconciles count.
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
// answer a reconcile's calls + the rest of a reconcile's time), at least
// 10: few reconciles run while ScriptLock and the API server answer fast,
// more when they answer slowly, so that the account's rate is reached. The
// rest is the moving average of a calling reconcile's time beside
// ScriptLock's answers, at most twice its moving average over the
// reconciles that ran while at most 10 did (0.2 s until one did), and
// 0.1 s until a calling reconcile was measured.
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
	rest     time.Duration // moving average of a calling reconcile's time beside ScriptLock's answers
	measured bool          // rest holds at least one sample
	light    time.Duration // the same over the reconciles during which at most minConcurrency ran (at their start and end)
	lightSet bool          // light holds at least one sample
	limit    int
	inFlight int
	waiting  []chan struct{} // reconciles waiting for a slot, first come first served
}

// reconcileTime is what one admitted reconcile took.
type reconcileTime struct {
	answered time.Duration // ScriptLock's answers to its calls, summed; 0: it made none
	took     time.Duration // the whole reconcile, from its slot to its end
	light    bool          // at most minConcurrency reconciles ran, itself included, when it was admitted and when it ended
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
	return registered[prometheus.Gauge](prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "scriptlock_reconcile_concurrency_limit",
		Help: "Customers that may be reconciled at once: --max-concurrent-reconciles, or, when it is 0, 2 x --scriptlock-qps x (the average time ScriptLock took to answer a reconcile's calls + the average rest of a calling reconcile's time, at most twice its low envelope), at least 10, at most the workers started.",
	}))
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
// the limit) and returns its release, which records t (what the reconcile
// took) when sample is true.
func (c *Concurrency) acquire(ctx context.Context) (func(t reconcileTime, sample bool), error) {
	if c.fixed {
		return func(reconcileTime, bool) {}, nil
	}
	c.mu.Lock()
	if c.inFlight < c.limit && len(c.waiting) == 0 {
		c.inFlight++
		light := c.inFlight <= minConcurrency
		c.mu.Unlock()
		return c.releaser(light), nil
	}
	ch := make(chan struct{})
	c.waiting = append(c.waiting, ch)
	c.mu.Unlock()
	select {
	case <-ch: // the slot was handed over by a release
		c.mu.Lock()
		light := c.inFlight <= minConcurrency
		c.mu.Unlock()
		return c.releaser(light), nil
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

// releaser returns the release of a slot taken while light said whether
// at most minConcurrency reconciles ran; its sample is light if that is
// still so when it ends.
func (c *Concurrency) releaser(light bool) func(t reconcileTime, sample bool) {
	return func(t reconcileTime, sample bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if sample {
			t.light = light && c.inFlight <= minConcurrency
			c.observeLocked(t)
		}
		c.inFlight--
		c.admitLocked()
	}
}

// observeLocked adds one reconcile's times to the moving averages and
// sets the limit from them.
func (c *Concurrency) observeLocked(t reconcileTime) {
	c.avg, c.sampled = movingAverage(c.avg, t.answered, c.sampled), true
	if rest := max(0, t.took-t.answered); t.answered > 0 {
		c.rest, c.measured = movingAverage(c.rest, rest, c.measured), true
		if t.light {
			c.light, c.lightSet = movingAverage(c.light, rest, c.lightSet), true
		}
	}
	// In whole milliseconds: the average of answers that stopped coming
	// decays to a remainder of nanoseconds, which must not add a slot.
	c.limit = concurrencyFor(c.qps, c.avg.Round(time.Millisecond)+c.restLocked(), c.workers)
	c.gauge.Set(float64(c.limit))
}

// restLocked is the part of a reconcile's time beside ScriptLock's answers
// that the limit counts: the moving average of the calling reconciles', at
// most apiServerQueueing times that of those that ran while at most
// minConcurrency did (or than apiServerAllowance until one did), in whole
// milliseconds; apiServerAllowance until a calling reconcile was measured.
func (c *Concurrency) restLocked() time.Duration {
	if !c.measured {
		return apiServerAllowance
	}
	light := apiServerAllowance
	if c.lightSet {
		light = c.light
	}
	return min(c.rest, apiServerQueueing*light).Round(time.Millisecond)
}

// movingAverage adds sample to avg with durationWeight; the first sample
// (set false) is the average.
func movingAverage(avg, sample time.Duration, set bool) time.Duration {
	if !set {
		return sample
	}
	return avg + time.Duration(durationWeight*float64(sample-avg))
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
		start := time.Now()
		ctx, turnedAway := scriptlock.WithTurnedAwayMark(ctx)
		ctx, answered := scriptlock.WithAnswerTime(ctx)
		defer func() { release(reconcileTime{answered: answered(), took: time.Since(start)}, !turnedAway()) }()
		return r.Reconcile(ctx, req)
	})
}
