package controllers_test

// The revocation brake: a mass deletion revokes no more than the account's
// budget; the rest waits, across a crash of the manager, until a person
// approves exactly what is to be revoked.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// readyReasonOrGone returns the Ready reason of name, or "gone".
func (e *env) readyReasonOrGone(name string) string {
	c := &v1alpha1.Customer{}
	if err := e.k8s.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: name}, c); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return "gone"
		}
		e.t.Fatal(err)
	}
	if cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady); cond != nil {
		return cond.Reason
	}
	return ""
}

// waitFates waits until every Customer of names is held or gone, with
// exactly gone of them gone, and returns the held ones.
func (e *env) waitFates(names []string, gone int) []string {
	e.t.Helper()
	var held []string
	e.eventually(patience, fmt.Sprintf("%d of %d deleted, the rest held", gone, len(names)), func() error {
		held = nil
		n := 0
		for _, name := range names {
			switch r := e.readyReasonOrGone(name); r {
			case "gone":
				n++
			case v1alpha1.ReasonDeletionHeld:
				held = append(held, name)
			default:
				return fmt.Errorf("%s is %s", name, r)
			}
		}
		if n != gone || len(held) != len(names)-gone {
			return fmt.Errorf("%d gone, %d held", n, len(held))
		}
		return nil
	})
	return held
}

// approve sets the approval annotation on a Customer.
func (e *env) approve(name string) {
	e.t.Helper()
	c := e.get(name)
	patch := client.RawPatch("application/merge-patch+json",
		fmt.Appendf(nil, `{"metadata":{"annotations":{%q:"true"}}}`, v1alpha1.ApproveDeletionAnnotation))
	if err := e.k8s.Patch(e.ctx, c, patch); err != nil {
		e.t.Fatal(err)
	}
}

// brakeLease returns the DELETEs the account's brake Lease holds.
func (e *env) brakeLease(account string) map[string]time.Time {
	e.t.Helper()
	l := &coordinationv1.Lease{}
	if err := e.k8s.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "scriptlock-deletions-" + account}, l); err != nil {
		e.t.Fatalf("the brake's Lease: %v", err)
	}
	var out map[string]time.Time
	if err := json.Unmarshal([]byte(l.Annotations["licensing.scriptlock.com/deletions"]), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// Six Customers deleted at once with a budget of two: two records are
// deleted, four deletions are held (DeletionHeld, Stalled, a Warning
// Event) and cost no ScriptLock call. A crash of the manager changes
// nothing: the window is in the Lease, the hold in the status. Approving
// one Customer releases that one only; approving the namespace releases
// the rest. The change log says what let each DELETE through.
func TestTheBrakeHoldsAMassDeletionAcrossACrash(t *testing.T) { //nolint:gocyclo // one history, checked step by step
	e := newEnv(t, managerOpts{deletionBudget: 2, deletionWindow: time.Hour})
	var names []string
	records := map[string]string{}
	for i := range 6 {
		name := fmt.Sprintf("c%d", i)
		names = append(names, name)
		c := e.waitReadyAfterCreate(name, name+"@example.com")
		records[name] = c.Status.CustomerID
	}
	account := e.get("c0").Status.Account
	if err := e.k8s.DeleteAllOf(e.ctx, &v1alpha1.Customer{}, client.InNamespace(e.ns)); err != nil {
		t.Fatal(err)
	}
	held := e.waitFates(names, 2)
	if n := e.calls(http.MethodDelete, routeOne); n != 2 {
		t.Fatalf("%d DELETEs with a budget of 2", n)
	}
	if got := e.brakeLease(account); len(got) != 2 {
		t.Fatalf("the Lease holds %d DELETEs, want 2: %v", len(got), got)
	}
	for _, name := range held {
		c := e.get(name)
		if !condTrue(c, v1alpha1.ConditionStalled) {
			t.Errorf("%s: a held deletion needs a person: Stalled must be True", name)
		}
		if _, ok := e.sim.Record(canaryKey, records[name]); !ok {
			t.Errorf("%s: its record was deleted although held", name)
		}
		ev := e.waitEvent(name, v1alpha1.ReasonDeletionHeld)
		if ev.Type != corev1.EventTypeWarning {
			t.Errorf("%s: the DeletionHeld Event is %s", name, ev.Type)
		}
	}

	// A crash, and a new manager with an empty memory.
	e.stopManager()
	before := map[string]int{}
	for _, name := range held {
		before[name] = e.reconcilesOf(name)
	}
	e.startManager()
	e.eventually(patience, "the new manager looked at every held deletion", func() error {
		for _, name := range held {
			if e.reconcilesOf(name) == before[name] {
				return fmt.Errorf("%s not reconciled yet", name)
			}
		}
		return nil
	})
	e.waitFates(names, 2)
	if n := e.calls(http.MethodDelete, routeOne); n != 2 {
		t.Fatalf("%d DELETEs after the crash: the window did not survive it", n)
	}

	// Exactly what was approved.
	e.approve(held[0])
	e.waitGone(held[0], patience)
	if _, ok := e.sim.Record(canaryKey, records[held[0]]); ok {
		t.Fatalf("%s was approved and let go, but its record is still there", held[0])
	}
	rest := held[1:]
	e.waitFates(rest, 0)
	if n := e.calls(http.MethodDelete, routeOne); n != 3 {
		t.Fatalf("%d DELETEs after approving one", n)
	}

	ns := &corev1.Namespace{}
	if err := e.k8s.Get(e.ctx, client.ObjectKey{Name: e.ns}, ns); err != nil {
		t.Fatal(err)
	}
	patch := client.RawPatch("application/merge-patch+json",
		fmt.Appendf(nil, `{"metadata":{"annotations":{%q:"true"}}}`, v1alpha1.ApproveDeletionAnnotation))
	if err := e.k8s.Patch(e.ctx, ns, patch); err != nil {
		t.Fatal(err)
	}
	e.waitFates(rest, len(rest))
	if n := e.calls(http.MethodDelete, routeOne); n != 6 {
		t.Fatalf("%d DELETEs after approving the namespace", n)
	}

	approvals := map[string]int{}
	for _, l := range e.waitChangeLogMatches() {
		if l.Operation == "delete" {
			approvals[l.Approval]++
		}
	}
	if want := map[string]int{"budget": 2, "annotation": 1, "namespace": 3}; fmt.Sprint(approvals) != fmt.Sprint(want) {
		t.Fatalf("the change log's approvals %v, want %v", approvals, want)
	}
}

// A held deletion stays held when the window has passed (the budget
// refills for new deletions, not for those a person has to look at), and
// is released by a larger budget.
func TestAHeldDeletionStaysHeldUntilTheBudgetIsRaised(t *testing.T) {
	e := newEnv(t, managerOpts{deletionBudget: 1, deletionWindow: 2 * time.Second})
	for _, name := range []string{"a", "b", "c"} {
		e.waitReadyAfterCreate(name, name+"@example.com")
	}
	for _, name := range []string{"a", "b"} {
		if err := e.k8s.Delete(e.ctx, e.get(name)); err != nil {
			t.Fatal(err)
		}
	}
	held := e.waitFates([]string{"a", "b"}, 1)
	if len(held) != 1 {
		t.Fatalf("held %v", held)
	}
	// The window passes; the held one is looked at again (the stalled
	// backoff is 1-2s here) and stays held.
	time.Sleep(3 * time.Second)
	n := e.reconcilesOf(held[0])
	e.eventually(patience, "the held deletion looked at again", func() error {
		if e.reconcilesOf(held[0]) < n+2 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	e.waitFates(held, 0)
	// A new deletion, in a new window, goes through.
	e.deleteAndWait("c")
	e.waitFates(held, 0)
	if n := e.calls(http.MethodDelete, routeOne); n != 2 {
		t.Fatalf("%d DELETEs", n)
	}

	e.stopManager()
	e.opts.deletionBudget = 5
	e.startManager()
	e.waitFates(held, 1)
	if n := e.calls(http.MethodDelete, routeOne); n != 3 {
		t.Fatalf("%d DELETEs after raising the budget", n)
	}
	lines := e.waitChangeLogMatches()
	var approvals []string
	for _, l := range lines {
		if l.Operation == "delete" {
			approvals = append(approvals, l.Approval)
		}
	}
	if !slices.Equal(approvals, []string{"budget", "budget", "budget"}) {
		t.Fatalf("approvals %v", approvals)
	}
}

// TestBrakeBenchmark is the figure of docs/benchmarks.md, "The revocation
// brake": 1,000 Customers deleted at once with a budget of 10. It reports
// the time until every deletion is either done or held, and the ScriptLock
// calls that took; it asserts the counts (10 DELETEs and no other call:
// holding costs ScriptLock nothing). It runs only with
// SCRIPTLOCK_BRAKE_BENCH=1 (N from SCRIPTLOCK_BRAKE_BENCH_N, default 1000):
// creating the Customers takes minutes.
func TestBrakeBenchmark(t *testing.T) {
	if os.Getenv("SCRIPTLOCK_BRAKE_BENCH") != "1" {
		t.Skip("set SCRIPTLOCK_BRAKE_BENCH=1 to run the brake's benchmark")
	}
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("SCRIPTLOCK_BRAKE_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	const budget = 10
	e := newEnv(t, managerOpts{deletionBudget: budget, deletionWindow: time.Hour})
	start := time.Now()
	for i := range n {
		e.create(e.customer(fmt.Sprintf("c%04d", i), fmt.Sprintf("c%04d@example.com", i)))
	}
	count := func() (ready, held, total int) {
		list := &v1alpha1.CustomerList{}
		if err := e.k8s.List(e.ctx, list, client.InNamespace(e.ns)); err != nil {
			t.Fatal(err)
		}
		for i := range list.Items {
			cond := meta.FindStatusCondition(list.Items[i].Status.Conditions, v1alpha1.ConditionReady)
			switch {
			case cond == nil:
			case cond.Reason == v1alpha1.ReasonAvailable:
				ready++
			case cond.Reason == v1alpha1.ReasonDeletionHeld:
				held++
			}
		}
		return ready, held, len(list.Items)
	}
	e.eventually(30*time.Minute, fmt.Sprintf("%d Customers Ready", n), func() error {
		if ready, _, _ := count(); ready != n {
			return fmt.Errorf("%d Ready", ready)
		}
		return nil
	})
	t.Logf("%d Customers Ready in %s", n, time.Since(start).Round(time.Second))

	before := e.sim.Calls()
	start = time.Now()
	if err := e.k8s.DeleteAllOf(e.ctx, &v1alpha1.Customer{}, client.InNamespace(e.ns)); err != nil {
		t.Fatal(err)
	}
	e.eventually(30*time.Minute, "every deletion done or held", func() error {
		if _, held, total := count(); held != n-budget || total != n-budget {
			return fmt.Errorf("%d left, %d held", total, held)
		}
		return nil
	})
	took := time.Since(start)
	after := e.sim.Calls()
	calls, total := map[string]int{}, 0
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			calls[k] = d
			total += d
		}
	}
	t.Logf("brake: %d deletions at once, budget %d: %d deleted and %d held in %s; ScriptLock calls %d %v",
		n, budget, budget, n-budget, took.Round(time.Millisecond), total, calls)
	if total != budget || calls["DELETE /api/customer/{id} 410"] != budget {
		t.Fatalf("ScriptLock calls %v, want exactly %d DELETEs", calls, budget)
	}
	list := &v1alpha1.CustomerList{}
	if err := e.k8s.List(e.ctx, list, client.InNamespace(e.ns)); err != nil || len(list.Items) == 0 {
		t.Fatal(err)
	}
	if got := e.brakeLease(list.Items[0].Status.Account); len(got) != budget {
		t.Fatalf("the Lease holds %d DELETEs", len(got))
	}
}
