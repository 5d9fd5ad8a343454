package explorer

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/explore"
)

// Bounds of the end of a history, once every perturbation has stopped.
const (
	// convergeWithin is the liveness bound: every Customer is Ready on its
	// own record or needs a person by then. It is settleWithin plus the
	// longest wait the README itself prescribes: a disappearance (a record
	// deleted in ScriptLock, a held record a listing lacks) is confirmed
	// by vanishReads reads by id in a row, each at least vanishInterval
	// after the one before, so vanishReads-1 intervals pass between the
	// first read and the recreate; the operator spreads each wait by up to
	// half again (the jitter of its retries), and a Customer no sweep
	// wakes (after a restart, a manager wakes only the Customers it has
	// synced) is read only when its own wait ends.
	convergeWithin = settleWithin + (vanishReads-1)*vanishInterval*3/2
	// settleWithin is what every other wait of a history needs: the
	// backoffs and the create window are shortened to seconds (world).
	settleWithin = 30 * time.Second
	// stormWindow is the quiet window whose ScriptLock calls are counted.
	stormWindow = 4 * time.Second
)

// outcome is what one history did and broke.
type outcome struct {
	History    explore.History
	Violations []explore.Violation
	Stats      map[string]int
}

// runHistory plays h in a world of its own and checks the invariants after
// every step and at the end.
func runHistory(ctx context.Context, h explore.History) (outcome, error) {
	w, err := newWorld(ctx)
	if err != nil {
		return outcome{}, err
	}
	defer w.close()
	if err := w.startManager(); err != nil {
		return outcome{}, err
	}
	prev := explore.Snapshot{}
	seen := map[string]bool{}
	check := func(where string, vs []explore.Violation) {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, v := range vs {
			if id := v.Kind + "/" + v.Customer; !seen[id] {
				seen[id] = true
				v.Detail = where + ": " + v.Detail
				w.found = append(w.found, v)
			}
		}
	}
	for i, s := range h.Steps {
		w.count("kind:" + string(explore.KindOf(s.Op)))
		if !w.do(ctx, s) {
			w.count("steps-that-did-nothing")
		}
		w.settle(ctx)
		w.mu.Lock()
		after := w.after
		w.after = nil
		w.mu.Unlock()
		for _, f := range after {
			f()
		}
		cur, _, err := w.snapshot(ctx)
		if err != nil {
			return outcome{}, err
		}
		w.takeWriteViolations(check, fmt.Sprintf("step %d (%s)", i+1, s))
		check(fmt.Sprintf("after step %d (%s)", i+1, s), w.led.CheckStep(prev, cur))
		w.led.Observe(cur)
		prev = cur
		w.mu.Lock()
		clear(w.prev)
		w.mu.Unlock()
	}
	w.calm(ctx)
	w.takeWriteViolations(check, "calm")
	final, cs, err := w.converge(ctx, prev, check)
	if err != nil {
		return outcome{}, err
	}
	w.mu.Lock()
	tidy, keys := w.tidy, append([]string(nil), w.keys...)
	w.mu.Unlock()
	check("at the end", w.led.CheckEnd(final, tidy))
	check("at the end", explore.CheckTexts(keys, w.texts(ctx, cs)))
	check("at the end", w.storm(ctx, final))
	w.takeWriteViolations(check, "at the end")
	w.mu.Lock()
	defer w.mu.Unlock()
	return outcome{History: h, Violations: w.found, Stats: w.stats}, nil
}

// takeWriteViolations moves what the tap and the perturbations reported
// since the last step into the checked list.
func (w *world) takeWriteViolations(check func(string, []explore.Violation), where string) {
	w.mu.Lock()
	vs := w.violations
	w.violations = nil
	w.mu.Unlock()
	check(where, vs)
}

// settle waits until the operator has been quiet for a while: no
// ScriptLock call and no change to any Customer.
func (w *world) settle(ctx context.Context) {
	const quiet, limit = 700 * time.Millisecond, 8 * time.Second
	last, since := "", time.Now()
	for start := time.Now(); time.Since(start) < limit; time.Sleep(100 * time.Millisecond) {
		sig := w.signature(ctx)
		if sig != last {
			last, since = sig, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return
		}
	}
}

func (w *world) signature(ctx context.Context) string {
	var b strings.Builder
	w.mu.Lock()
	fmt.Fprintf(&b, "%d %d|", w.stats["calls"], w.stats["restarts"])
	w.mu.Unlock()
	cs, _ := w.customers(ctx)
	for _, c := range cs {
		b.WriteString(c.ResourceVersion + ",")
	}
	return b.String()
}

// calm stops every perturbation and fault; what a tidying back end does
// stays (it is how that back end is).
func (w *world) calm(ctx context.Context) {
	w.mu.Lock()
	w.crashAPI, w.crashSL, w.staleReads, w.dropEvents = 0, 0, 0, 0
	after := w.after
	w.after = nil
	refused := w.refused
	w.refused = nil
	insts := make([]*instance, 0, len(w.insts))
	for _, in := range w.insts {
		insts = append(insts, in)
	}
	w.mu.Unlock()
	for _, f := range after {
		f()
	}
	for _, in := range insts {
		in.sim.ClearFaults()
		in.sim.SetLatency(0)
	}
	for _, r := range refused {
		w.insts[r.inst].sim.AllowDelete(r.key, r.id)
	}
	// A crash in flight finishes its restart.
	for deadline := time.Now().Add(10 * time.Second); !w.running() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	w.settle(ctx)
}

// converge gives the operator convergeWithin to settle, with a resync
// period passing every few seconds, checking the safety rules meanwhile.
func (w *world) converge(ctx context.Context, prev explore.Snapshot, check func(string, []explore.Violation)) (explore.Snapshot, []v1alpha1.Customer, error) {
	w.mu.Lock()
	tidy := w.tidy
	w.mu.Unlock()
	deadline := time.Now().Add(convergeWithin)
	for sweeps := 0; ; sweeps++ {
		w.sweep()
		w.settle(ctx)
		cur, cs, err := w.snapshot(ctx)
		if err != nil {
			return cur, nil, err
		}
		check("while converging", w.led.CheckStep(prev, cur))
		w.led.Observe(cur)
		prev = cur
		// Two resync periods at least, so that Ready=True has been checked.
		if sweeps >= 2 && len(w.led.CheckEnd(cur, tidy)) == 0 || time.Now().After(deadline) {
			return cur, cs, nil
		}
	}
}

// storm counts the ScriptLock calls of a quiet window: a Customer that
// needs a person is retried no faster than once per PermanentBackoff (the
// README: once a minute in production), so each may cost a few calls per
// retry; a Ready one none.
func (w *world) storm(ctx context.Context, s explore.Snapshot) []explore.Violation {
	w.mu.Lock()
	before := w.stats["calls"]
	w.mu.Unlock()
	time.Sleep(stormWindow)
	w.mu.Lock()
	calls := w.stats["calls"] - before
	w.mu.Unlock()
	perCustomer := 2 * (int(math.Ceil(stormWindow.Seconds()/permanentBackoff.Seconds())) + 1)
	allowed := len(s.Customers)*perCustomer + 2
	if v := explore.CheckCalls(calls, allowed, stormWindow.String()); v != nil {
		return []explore.Violation{*v}
	}
	return nil
}

// gatherMetrics renders every metric of the process's registry as text.
func gatherMetrics() string {
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, mf := range mfs {
		b.WriteString(mf.String())
		b.WriteByte('\n')
	}
	return b.String()
}
