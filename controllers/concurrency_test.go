package controllers

import (
	"context"
	"testing"
	"time"
)

func TestConcurrencyIsLittlesLawWithHeadroom(t *testing.T) {
	for _, tt := range []struct {
		name    string
		qps     float64
		avg     time.Duration
		ceiling int
		want    int
	}{
		{"nothing observed yet: the old default", 200, 0, 400, 10},
		{"a low rate never goes below 10", 10, 100 * time.Millisecond, 20, 10},
		{"fast answers at 200 qps need few", 200, 30 * time.Millisecond, 400, 12},
		{"a loaded API server at 200 qps", 200, 120 * time.Millisecond, 400, 48},
		{"slow answers at 200 qps", 200, 800 * time.Millisecond, 400, 320},
		{"slower than the workers carry: all of them", 200, 5 * time.Second, 400, 400},
		{"a fraction rounds up", 10, 1010 * time.Millisecond, 100, 21},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := concurrencyFor(tt.qps, tt.avg, tt.ceiling); got != tt.want {
				t.Fatalf("concurrencyFor(%v, %v, %d) = %d, want %d", tt.qps, tt.avg, tt.ceiling, got, tt.want)
			}
		})
	}
}

func TestDerivedWorkersCarryTheRateAtOneSecondAReconcile(t *testing.T) {
	for _, tt := range []struct {
		qps  float64
		want int
	}{
		{1, 10}, {10, 20}, {200, 400}, {2000, maxDerivedWorkers},
	} {
		if got := DerivedWorkers(tt.qps); got != tt.want {
			t.Errorf("DerivedWorkers(%v) = %d, want %d", tt.qps, got, tt.want)
		}
	}
}

func TestAFixedConcurrencyIsTheFlag(t *testing.T) {
	c := NewConcurrency(40, 200)
	if c.Derived() || c.Workers() != 40 || c.Limit() != 40 || c.PerAccount() != 20 || c.PerHost() != 39 {
		t.Fatalf("fixed 40: derived %v, workers %d, limit %d, per account %d, per host %d",
			c.Derived(), c.Workers(), c.Limit(), c.PerAccount(), c.PerHost())
	}
}

// The limit follows the reconciles' time: slow ones raise it (and the
// accounts' in-flight caps with it), fast ones bring it back down, and
// a reconcile past the limit waits for a slot, first come first served.
func TestADerivedLimitFollowsScriptLocksAnswerTime(t *testing.T) {
	c := NewConcurrency(0, 100)
	if c.Workers() != 200 || c.Limit() != 10 || c.PerAccount() != 5 || c.PerHost() != 9 {
		t.Fatalf("at start: workers %d, limit %d, per account %d, per host %d", c.Workers(), c.Limit(), c.PerAccount(), c.PerHost())
	}
	ctx := context.Background()
	var releases []func(reconcileTime, bool)
	for range 10 {
		release, err := c.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	// The eleventh waits.
	got := make(chan func(reconcileTime, bool), 1)
	go func() {
		release, err := c.acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- release
	}()
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.waiting) == 1 })
	select {
	case <-got:
		t.Fatal("an eleventh reconcile ran beside ten at a limit of 10")
	default:
	}
	// One reconcile whose calls ScriptLock answered in 400 ms in all, of
	// the 500 ms it took: 2 × 100 qps × (0.4 s + 0.1 s) = 100 at once.
	releases[0](reconcileTime{answered: 400 * time.Millisecond, took: 500 * time.Millisecond}, true)
	releases = append(releases[1:], <-got)
	if c.Limit() != 100 || c.PerAccount() != 50 || c.PerHost() != 99 {
		t.Fatalf("after a reconcile with 400 ms of answers: limit %d, per account %d, per host %d", c.Limit(), c.PerAccount(), c.PerHost())
	}
	for range 90 {
		release, err := c.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	// Reconciles that call ScriptLock for nothing bring it down to what
	// the calling reconciles' other work took: 2 × 100 × 0.1 s = 20.
	for _, release := range releases {
		release(reconcileTime{took: time.Millisecond}, true)
	}
	for range 200 {
		release, err := c.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		release(reconcileTime{took: time.Millisecond}, true)
	}
	if c.Limit() != 20 {
		t.Fatalf("after many reconciles without a ScriptLock call the limit is %d, want 20", c.Limit())
	}
	// A waiting reconcile whose context ends leaves the line.
	for range 20 {
		if _, err := c.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.acquire(cctx); err == nil {
		t.Fatal("a reconcile waiting past its context's end got a slot")
	}
	if c.inFlight != 20 || len(c.waiting) != 0 {
		t.Fatalf("after the cancelled wait: %d in flight, %d waiting", c.inFlight, len(c.waiting))
	}
}

// waitFor polls cond until it holds; the goroutine it waits on does
// nothing but block.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 10000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition never held")
}

// Passes a ScriptLock gate turned away end at once; counted, they would
// pull the limit down while an account is at its rate.
func TestPassesTurnedAwayAreNoSampleOfAReconcilesTime(t *testing.T) {
	c := NewConcurrency(0, 100)
	release, err := c.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	release(reconcileTime{answered: 400 * time.Millisecond, took: 500 * time.Millisecond}, true)
	for range 200 {
		release, err := c.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		release(reconcileTime{took: time.Microsecond}, false)
	}
	if c.Limit() != 100 {
		t.Fatalf("limit %d after 200 instant passes turned away, want the 100 of the one reconcile with 400 ms of answers", c.Limit())
	}
}

// Where the account's rate is what limits, the reconciles in flight must
// also cover the time a reconcile waits on the API server: at 50 qps,
// reconciles of 20 ms of ScriptLock answers and 300 ms of API-server
// calls need 2 × 50 × 0.32 s = 32 at once, not the 12 that a fixed 0.1 s
// gave (issue 27: 38 Customers a second of 50 in the benchmark).
func TestTheAPIServersShareOfAReconcileRaisesTheLimit(t *testing.T) {
	c := NewConcurrency(0, 50)
	for range 100 {
		release, err := c.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		release(reconcileTime{answered: 20 * time.Millisecond, took: 320 * time.Millisecond}, true)
	}
	if c.Limit() != 32 {
		t.Fatalf("limit %d, want 2 × 50 × (20 ms + 300 ms) = 32", c.Limit())
	}
}

// Where the API server is what limits, more reconciles at once only wait on
// it longer: the time beside ScriptLock's answers counts up to twice what
// it was while few ran, so the limit does not climb with its own queue.
func TestQueueingOnTheAPIServerDoesNotRaiseTheLimitPastTwiceItsLightTime(t *testing.T) {
	c := NewConcurrency(0, 50)
	ctx := context.Background()
	// Few at once: 20 ms of answers, 300 ms beside them.
	for range 100 {
		release, err := c.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		release(reconcileTime{answered: 20 * time.Millisecond, took: 320 * time.Millisecond}, true)
	}
	// Then every slot busy, and each reconcile 3 s beside its answers.
	var held []func(reconcileTime, bool)
	for range c.Limit() {
		release, err := c.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, release)
	}
	for range 500 {
		held[0](reconcileTime{answered: 20 * time.Millisecond, took: 3020 * time.Millisecond}, true)
		release, err := c.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held[1:], release)
	}
	if c.Limit() != 62 {
		t.Fatalf("limit %d with the API server queueing, want 2 × 50 × (20 ms + 2 × 300 ms) = 62 (workers %d)", c.Limit(), c.Workers())
	}
	// Once few run again, their time is the light one anew.
	for _, release := range held {
		release(reconcileTime{answered: 20 * time.Millisecond, took: 120 * time.Millisecond}, true)
	}
	for range 200 {
		release, err := c.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		release(reconcileTime{answered: 20 * time.Millisecond, took: 120 * time.Millisecond}, true)
	}
	if c.Limit() != 12 {
		t.Fatalf("limit %d after the queue drained, want 2 × 50 × (20 ms + 100 ms) = 12", c.Limit())
	}
}
