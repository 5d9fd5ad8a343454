package controllers_test

// The revocation brake: a mass deletion revokes no more than the account's
// budget; the rest waits, across a crash of the manager, until a person
// approves exactly what is to be revoked.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
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

// approve approves the deletion of a Customer: its annotation names the
// deletion, by its deletionTimestamp.
func (e *env) approve(name string) {
	e.t.Helper()
	c := e.get(name)
	if c.DeletionTimestamp.IsZero() {
		e.t.Fatalf("%s is not being deleted", name)
	}
	e.annotate(c, c.DeletionTimestamp.UTC().Format(time.RFC3339))
}

// annotate sets the approval annotation of obj (a Customer or a
// Namespace) to v.
func (e *env) annotate(obj client.Object, v string) {
	e.t.Helper()
	patch := client.RawPatch("application/merge-patch+json",
		fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.ApproveDeletionAnnotation, v))
	if err := e.k8s.Patch(e.ctx, obj, patch); err != nil {
		e.t.Fatal(err)
	}
}

// approveNamespace approves, on the test's namespace, the deletions
// begun until now.
func (e *env) approveNamespace() {
	e.t.Helper()
	ns := &corev1.Namespace{}
	if err := e.k8s.Get(e.ctx, client.ObjectKey{Name: e.ns}, ns); err != nil {
		e.t.Fatal(err)
	}
	e.annotate(ns, time.Now().UTC().Format(time.RFC3339))
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

	e.approveNamespace()
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

// failNamespaceGet fails the next n Gets of a Namespace with err (an API
// server hiccup, or Forbidden as in namespace-scoped mode), passing
// everything else through.
type failNamespaceGet struct {
	client.Reader
	err    error
	n      atomic.Int32
	failed atomic.Int32
}

func (f *failNamespaceGet) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Namespace); ok && f.n.Add(-1) >= 0 {
		f.failed.Add(1)
		return f.err
	}
	return f.Reader.Get(ctx, key, obj, opts...)
}

// A held deletion stays held, window after window, until a person
// approves it, whatever error a pass ends in: one transient error in a
// held pass (here the namespace read of the approval check) writes the
// Ready reason Deleting, and the next pass, the window having passed,
// must still hold it. The hold is kept in the account's Lease.
func TestAHeldDeletionSurvivesATransientError(t *testing.T) {
	reads := &failNamespaceGet{err: errors.New("etcdserver: request timed out")}
	e := newEnv(t, managerOpts{deletionBudget: 1, deletionWindow: 2 * time.Second,
		wrapAPIReader: func(r client.Reader) client.Reader { reads.Reader = r; return reads }})
	for _, name := range []string{"a", "b"} {
		e.waitReadyAfterCreate(name, name+"@example.com")
	}
	account := e.get("a").Status.Account
	for _, name := range []string{"a", "b"} {
		if err := e.k8s.Delete(e.ctx, e.get(name)); err != nil {
			t.Fatal(err)
		}
	}
	held := e.waitFates([]string{"a", "b"}, 1)
	time.Sleep(3 * time.Second) // the window passes
	reads.n.Store(1)
	e.eventually(patience, "the hiccup met", func() error {
		if reads.failed.Load() == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	n := e.reconcilesOf(held[0])
	e.eventually(patience, "the held deletion looked at twice more", func() error {
		if r := e.readyReasonOrGone(held[0]); r == "gone" {
			return nil
		}
		if e.reconcilesOf(held[0]) < n+2 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if d := e.calls(http.MethodDelete, routeOne); d != 1 {
		t.Fatalf("%d DELETEs: the held deletion of %s was sent without approval after one transient error (now %s)",
			d, held[0], e.readyReasonOrGone(held[0]))
	}
	e.waitFates(held, 0)
	// The hold is the Lease's.
	l := &coordinationv1.Lease{}
	if err := e.k8s.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "scriptlock-deletions-" + account}, l); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("[%q]", e.get(held[0]).UID); l.Annotations["licensing.scriptlock.com/held"] != want {
		t.Fatalf("the Lease's held deletions %q, want %s", l.Annotations["licensing.scriptlock.com/held"], want)
	}
}

// A held deletion let go without a DELETE (deletionPolicy: Orphan, the
// way out of an accident) leaves the Lease's held deletions.
func TestAnOrphanedHeldDeletionLeavesTheLease(t *testing.T) {
	e := newEnv(t, managerOpts{deletionBudget: 1, deletionWindow: time.Hour})
	for _, name := range []string{"a", "b"} {
		e.waitReadyAfterCreate(name, name+"@example.com")
	}
	account := e.get("a").Status.Account
	for _, name := range []string{"a", "b"} {
		if err := e.k8s.Delete(e.ctx, e.get(name)); err != nil {
			t.Fatal(err)
		}
	}
	held := e.waitFates([]string{"a", "b"}, 1)
	heldList := func() string {
		l := &coordinationv1.Lease{}
		if err := e.k8s.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "scriptlock-deletions-" + account}, l); err != nil {
			t.Fatal(err)
		}
		return l.Annotations["licensing.scriptlock.com/held"]
	}
	if got, want := heldList(), fmt.Sprintf("[%q]", e.get(held[0]).UID); got != want {
		t.Fatalf("the Lease's held deletions %s, want %s", got, want)
	}
	e.update(held[0], func(c *v1alpha1.Customer) { c.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan })
	e.waitGone(held[0], patience)
	if got := heldList(); got != "[]" {
		t.Fatalf("the Lease still holds %s after the held Customer was orphaned", got)
	}
	if d := e.calls(http.MethodDelete, routeOne); d != 1 {
		t.Fatalf("%d DELETEs", d)
	}
}

// An approval names the deletion it approves. A Customer annotated
// approve-deletion "true" before its deletion (a manifest in Git) is
// held like any other once the budget is spent, and so after "true" is
// set during the deletion; its deletionTimestamp as the value approves
// it. A namespace's approval is a time: it approves the deletions begun
// at or before it, and not one begun later. The change log says what let
// each DELETE through.
func TestAnApprovalNamesTheDeletion(t *testing.T) { //nolint:gocyclo // one history, checked step by step
	e := newEnv(t, managerOpts{deletionBudget: 1, deletionWindow: time.Hour})
	pre := e.customer("pre", "pre@example.com")
	pre.Annotations = map[string]string{v1alpha1.ApproveDeletionAnnotation: "true"}
	e.create(pre)
	e.waitReady("pre")
	for _, name := range []string{"a", "late"} {
		e.waitReadyAfterCreate(name, name+"@example.com")
	}
	for _, name := range []string{"a", "pre"} {
		if err := e.k8s.Delete(e.ctx, e.get(name)); err != nil {
			t.Fatal(err)
		}
	}
	held := e.waitFates([]string{"a", "pre"}, 1)
	if d := e.calls(http.MethodDelete, routeOne); d != 1 {
		t.Fatalf("%d DELETEs with a budget of 1: an approval given before the deletion let one through", d)
	}

	// The namespace approves what began until now: the held one goes.
	time.Sleep(time.Second) // the approval's second is after both deletions began
	e.approveNamespace()
	e.waitGone(held[0], patience)
	if d := e.calls(http.MethodDelete, routeOne); d != 2 {
		t.Fatalf("%d DELETEs after approving the namespace", d)
	}

	// A deletion begun after the namespace's approval is held; "true"
	// set on it during its deletion approves nothing; its
	// deletionTimestamp does.
	time.Sleep(time.Second)
	if err := e.k8s.Delete(e.ctx, e.get("late")); err != nil {
		t.Fatal(err)
	}
	e.waitFates([]string{"late"}, 0)
	n := e.reconcilesOf("late")
	e.annotate(e.get("late"), "true")
	e.eventually(patience, "the annotated deletion looked at again", func() error {
		if e.reconcilesOf("late") <= n {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	e.waitFates([]string{"late"}, 0)
	if d := e.calls(http.MethodDelete, routeOne); d != 2 {
		t.Fatalf("%d DELETEs: a deletion begun after the namespace's approval, or approved with \"true\", was let through", d)
	}
	e.approve("late")
	e.waitGone("late", patience)
	if d := e.calls(http.MethodDelete, routeOne); d != 3 {
		t.Fatalf("%d DELETEs after approving late", d)
	}
	approvals := map[string]int{}
	for _, l := range e.waitChangeLogMatches() {
		if l.Operation == "delete" {
			approvals[l.Approval]++
		}
	}
	if want := map[string]int{"budget": 1, "namespace": 1, "annotation": 1}; fmt.Sprint(approvals) != fmt.Sprint(want) {
		t.Fatalf("the change log's approvals %v, want %v", approvals, want)
	}
}

// In namespace-scoped mode the operator may not read namespaces, so an
// approval on a namespace is never seen: a held Customer says so with a
// Warning Event, and in its message, rather than waiting silently.
func TestAHeldDeletionSaysNamespaceApprovalsCannotBeRead(t *testing.T) {
	reads := &failNamespaceGet{err: apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "x", errors.New("namespace-scoped"))}
	reads.n.Store(1 << 30)
	e := newEnv(t, managerOpts{deletionBudget: 1, deletionWindow: time.Hour,
		wrapAPIReader: func(r client.Reader) client.Reader { reads.Reader = r; return reads }})
	for _, name := range []string{"a", "b"} {
		e.waitReadyAfterCreate(name, name+"@example.com")
	}
	for _, name := range []string{"a", "b"} {
		if err := e.k8s.Delete(e.ctx, e.get(name)); err != nil {
			t.Fatal(err)
		}
	}
	held := e.waitFates([]string{"a", "b"}, 1)
	ev := e.waitEvent(held[0], "NamespaceApprovalUnreadable")
	if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Note, "namespace approvals cannot be read: forbidden") ||
		!strings.Contains(ev.Note, "approve each Customer") {
		t.Fatalf("the Event: %s %q", ev.Type, ev.Note)
	}
	if m := e.ready(held[0]).Message; !strings.Contains(m, "namespace approvals cannot be read") {
		t.Fatalf("the held message does not say it: %q", m)
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
