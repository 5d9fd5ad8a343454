package controllers_test

// A person's say over when a Customer is looked at: the reconcile request
// annotation asks for a pass now, with a resync period of an hour that
// would otherwise not look before then, and the drift-check interval
// annotation gives one record a cadence of its own.

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// requestReconcile sets the reconcile request annotation of name to v.
func (e *env) requestReconcile(name, v string) {
	e.t.Helper()
	e.update(name, func(c *v1alpha1.Customer) {
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[v1alpha1.ReconcileRequestAnnotation] = v
	})
}

// waitHandled waits until status.lastHandledReconcileAt of name is v.
func (e *env) waitHandled(name, v string) *v1alpha1.Customer {
	e.t.Helper()
	var c *v1alpha1.Customer
	e.eventually(patience, "reconcile request "+v+" handled", func() error {
		if c = e.get(name); c.Status.LastHandledReconcileAt != v {
			return fmt.Errorf("lastHandledReconcileAt %q", c.Status.LastHandledReconcileAt)
		}
		return nil
	})
	return c
}

// The resync period is an hour and the drift detector's clock never moves:
// only the request can find the edit. It reads the record itself (the
// account's listing predates the edit), puts it back with one PUT, and
// says so in status; a second request with nothing to change reads once
// more, writes nothing, and is echoed all the same.
func TestAReconcileRequestReadsTheRecordNowAndIsEchoed(t *testing.T) {
	e := newEnv(t, managerOpts{resync: time.Hour})
	c := e.waitReadyAfterCreate("acme", "now@example.com")
	id := c.Status.CustomerID
	e.sim.EditOutOfBand(canaryKey, id, func(r *scriptlock.Customer) { r.LastName = "Edited by hand" })
	gets, puts := e.calls(http.MethodGet, routeOne), e.calls(http.MethodPut, routeOne)

	e.requestReconcile("acme", "2026-12-07T06:00:00Z")
	e.waitHandled("acme", "2026-12-07T06:00:00Z")
	if rec, _ := e.sim.Record(canaryKey, id); rec.LastName != c.Spec.LastName {
		t.Fatalf("the edit was not put back by the requested pass: %+v", rec)
	}
	if got := e.calls(http.MethodPut, routeOne) - puts; got != 1 {
		t.Fatalf("%d PUTs for one requested pass, want 1", got)
	}
	if got := e.calls(http.MethodGet, routeOne) - gets; got != 1 {
		t.Fatalf("%d reads of the record for one requested pass, want 1", got)
	}
	e.waitReady("acme")
	if n := len(e.events("acme", "DriftCorrected")); n != 1 {
		t.Fatalf("%d DriftCorrected Events, want 1", n)
	}

	gets, puts = e.calls(http.MethodGet, routeOne), e.calls(http.MethodPut, routeOne)
	e.requestReconcile("acme", "again")
	got := e.waitHandled("acme", "again")
	if n := e.calls(http.MethodGet, routeOne) - gets; n != 1 {
		t.Fatalf("%d reads for a request with nothing to change, want 1", n)
	}
	if n := e.calls(http.MethodPut, routeOne) - puts; n != 0 {
		t.Fatalf("%d PUTs for a request with nothing to change", n)
	}
	if !condTrue(got, v1alpha1.ConditionReady) {
		t.Fatalf("not Ready after a request with nothing to change: %+v", got.Status.Conditions)
	}
}

// A Customer that waits for a person (Stalled, in a backoff of an hour) is
// looked at again at once when a person asks, without a spec change: the
// record that held its email was deleted in ScriptLock meanwhile.
func TestAReconcileRequestCutsAStalledBackoffShort(t *testing.T) {
	e := newEnv(t, managerOpts{permanentBackoff: time.Hour})
	other := e.sim.Put(canaryKey, scriptlock.Customer{Company: "Other", FirstName: "A", LastName: "B", Email: "taken@example.com"})
	e.create(e.customer("acme", "taken@example.com"))
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonConflict, patience)
	e.sim.DeleteOutOfBand(canaryKey, other.ID)
	posts := e.calls(http.MethodPost, routeCreate)
	e.requestReconcile("acme", "1")
	e.waitHandled("acme", "1")
	e.waitReady("acme")
	if n := e.calls(http.MethodPost, routeCreate) - posts; n != 1 {
		t.Fatalf("%d creates after the request, want 1", n)
	}
}

// The drift-check interval annotation makes the operator read one record
// on its own cadence, where the account's resync (an hour, its clock never
// moved here) would not look.
func TestTheDriftCheckIntervalAnnotationReadsOneRecordOnItsOwn(t *testing.T) {
	e := newEnv(t, managerOpts{resync: time.Hour})
	plain := e.waitReadyAfterCreate("plain", "plain@example.com")
	c := e.customer("watched", "watched@example.com")
	// Below the bound (here 1s, in production 1m): raised to it.
	c.Annotations = map[string]string{v1alpha1.DriftCheckIntervalAnnotation: "10ms"}
	e.create(c)
	watched := e.waitReady("watched")
	for _, rec := range []*v1alpha1.Customer{plain, watched} {
		e.sim.EditOutOfBand(canaryKey, rec.Status.CustomerID, func(r *scriptlock.Customer) { r.LastName = "Edited by hand" })
	}
	e.eventually(patience, "the watched record put back", func() error {
		if rec, _ := e.sim.Record(canaryKey, watched.Status.CustomerID); rec.LastName != watched.Spec.LastName {
			return fmt.Errorf("record %+v", rec)
		}
		return nil
	})
	if rec, _ := e.sim.Record(canaryKey, plain.Status.CustomerID); rec.LastName != "Edited by hand" {
		t.Fatalf("the record without the annotation was read before its resync: %+v", rec)
	}
	// Raised to the bound, not read every 10ms: a few seconds see a few reads.
	before := e.calls(http.MethodGet, routeOne)
	time.Sleep(3 * time.Second)
	if n := e.calls(http.MethodGet, routeOne) - before; n > 6 {
		t.Fatalf("%d reads in 3s: the interval was not raised to its lower bound", n)
	}
}

// A request whose pass is held back by the account's own rate limit
// (nothing sent) is not echoed: status.lastHandledReconcileAt would tell
// `kubectl scriptlock sync` that the record was checked, with the Ready of
// an earlier pass. The request stays pending until a pass reads the record,
// which puts the edit back.
func TestAThrottledReconcileRequestIsEchoedOnlyOnceTheRecordIsRead(t *testing.T) {
	e := newEnv(t, managerOpts{resync: time.Hour, qps: 0.2})
	c := e.waitReadyAfterCreate("acme", "throttled@example.com")
	id := c.Status.CustomerID
	e.sim.EditOutOfBand(canaryKey, id, func(r *scriptlock.Customer) { r.LastName = "Edited by hand" })
	gets := e.calls(http.MethodGet, routeOne)
	e.requestReconcile("acme", "now")
	got := e.waitHandled("acme", "now")
	if n := e.calls(http.MethodGet, routeOne) - gets; n != 1 {
		t.Fatalf("the request was echoed after %d reads of the record (want 1); Ready=%v reason %s",
			n, condTrue(got, v1alpha1.ConditionReady), e.readyReasonOrGone("acme"))
	}
	e.eventually(patience, "the edit put back", func() error {
		if rec, _ := e.sim.Record(canaryKey, id); rec.LastName != c.Spec.LastName {
			return fmt.Errorf("record %+v", rec)
		}
		return nil
	})
}

// With --drift-detection=per-object, an observer's requested pass reads its
// record, where a periodic pass within a period of the last read answers
// from memory: the edit made in ScriptLock is seen before the echo.
func TestAnObserversReconcileRequestReadsTheRecord(t *testing.T) {
	e := newEnv(t, managerOpts{resync: time.Hour, drift: controllers.DriftPerObject})
	c := e.customer("ada", "ada@example.com")
	rec := e.sim.Seed(canaryKey, scriptlock.Customer{Company: c.Spec.Company, FirstName: c.Spec.FirstName, LastName: c.Spec.LastName, Email: "ada@example.com"})
	c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve
	e.create(c)
	e.waitReason("ada", metav1.ConditionTrue, v1alpha1.ReasonObserved, patience)
	e.sim.EditOutOfBand(canaryKey, rec.ID, func(r *scriptlock.Customer) { r.LastName = "Edited by hand" })
	gets := e.calls(http.MethodGet, routeOne)
	e.requestReconcile("ada", "now")
	got := e.waitHandled("ada", "now")
	if n := e.calls(http.MethodGet, routeOne) - gets; n != 1 {
		t.Fatalf("echoed after %d reads (want 1); Ready=%v, observed %+v", n, condTrue(got, v1alpha1.ConditionReady), got.Status.Observed)
	}
	if condTrue(got, v1alpha1.ConditionReady) || got.Status.Observed == nil || got.Status.Observed.LastName != "Edited by hand" {
		t.Fatalf("the echoed status does not show the edit: Ready=%v, observed %+v", condTrue(got, v1alpha1.ConditionReady), got.Status.Observed)
	}
}

// With --drift-detection=per-object, an observer with a drift-check
// interval reads its record on that cadence, where its memory of the last
// read would answer for a whole resync period (an hour here): the edit
// made in ScriptLock shows in status.observed.
func TestAnObserversDriftCheckIntervalReadsTheRecord(t *testing.T) {
	e := newEnv(t, managerOpts{resync: time.Hour, drift: controllers.DriftPerObject})
	c := e.customer("ada", "ada-interval@example.com")
	rec := e.sim.Seed(canaryKey, scriptlock.Customer{Company: c.Spec.Company, FirstName: c.Spec.FirstName, LastName: c.Spec.LastName, Email: c.Spec.Email})
	c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve
	c.Annotations = map[string]string{v1alpha1.DriftCheckIntervalAnnotation: "1s"}
	e.create(c)
	e.waitReason("ada", metav1.ConditionTrue, v1alpha1.ReasonObserved, patience)
	e.sim.EditOutOfBand(canaryKey, rec.ID, func(r *scriptlock.Customer) { r.LastName = "Edited by hand" })
	got := e.waitReason("ada", metav1.ConditionFalse, v1alpha1.ReasonDiffers, patience)
	if got.Status.Observed == nil || got.Status.Observed.LastName != "Edited by hand" {
		t.Fatalf("status.observed does not show the edit: %+v", got.Status.Observed)
	}
}

// Past the account's rate limit (one call in 5 s), a request for a
// Customer without a record lists the account once and then creates: the
// retry of the pass held back before its POST uses the listing asked for
// since the request, instead of listing again and giving its turn away.
func TestAThrottledRequestListsOnceThenCreates(t *testing.T) {
	e := newEnv(t, managerOpts{permanentBackoff: time.Hour, qps: 0.2})
	other := e.sim.Put(canaryKey, scriptlock.Customer{Company: "Other", FirstName: "A", LastName: "B", Email: "taken-slow@example.com"})
	e.create(e.customer("acme", "taken-slow@example.com"))
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonConflict, patience)
	e.sim.DeleteOutOfBand(canaryKey, other.ID)
	posts, lists := e.calls(http.MethodPost, routeCreate), e.calls(http.MethodGet, routeList)
	e.requestReconcile("acme", "1")
	got := e.waitHandled("acme", "1")
	if !condTrue(got, v1alpha1.ConditionReady) {
		t.Fatalf("echoed before the record was created: %+v", got.Status.Conditions)
	}
	if n := e.calls(http.MethodPost, routeCreate) - posts; n != 1 {
		t.Fatalf("%d creates after the request, want 1", n)
	}
	if n := e.calls(http.MethodGet, routeList) - lists; n != 1 {
		t.Fatalf("%d listings for one request, want 1", n)
	}
}
