package controllers_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// inFlight counts the requests a ScriptLock is answering at once.
type inFlight struct {
	h http.Handler

	mu        sync.Mutex
	now, peak int
}

func (f *inFlight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.now++
	f.peak = max(f.peak, f.now)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.now--
		f.mu.Unlock()
	}()
	f.h.ServeHTTP(w, r)
}

func (f *inFlight) max() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peak
}

// Users raise --scriptlock-qps and leave --max-concurrent-reconciles at
// its default: when ScriptLock answers slowly, the manager keeps more
// calls in flight than the ten workers it used to have (at most five calls
// to one account), so that it can reach the rate it was given.
func TestSlowAnswersAtAHighRateRaiseTheReconcilesInFlight(t *testing.T) {
	e := newEnv(t, managerOpts{qps: 100, derivedConcurrency: true, noStart: true})
	e.sim.SetLatency(time.Second)
	peak := &inFlight{h: e.sim}
	e.opts.url = serve(t, peak).URL
	const n = 40
	for i := range n {
		e.create(e.customer(fmt.Sprintf("c%02d", i), fmt.Sprintf("c%d@example.com", i)))
	}
	e.startManager()
	e.eventually(2*patience, "every Customer Ready", func() error {
		for i := range n {
			if !condTrue(e.get(fmt.Sprintf("c%02d", i)), v1alpha1.ConditionReady) {
				return fmt.Errorf("c%02d not Ready", i)
			}
		}
		return nil
	})
	if p := peak.max(); p <= 10 {
		t.Fatalf("at most %d ScriptLock calls were in flight at once, want more than 10", p)
	}
	t.Logf("%d ScriptLock calls in flight at the peak", peak.max())
}
