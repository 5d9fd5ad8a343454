package controllers_test

// managementPolicy: Observe: never a write of any kind, the
// differences reported by field name, and both switches.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

func (e *env) observer(name, email string) *v1alpha1.Customer {
	c := e.customer(name, email)
	c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve
	return c
}

// noWrites fails if ScriptLock saw any POST, PUT or DELETE.
func (e *env) noWrites() {
	e.t.Helper()
	if n := e.calls(http.MethodPost, routeCreate) + e.calls(http.MethodPut, routeOne) + e.calls(http.MethodDelete, routeOne); n != 0 {
		e.t.Fatalf("an observer wrote to ScriptLock: %v", e.sim.Calls())
	}
}

func TestAnObserverNeverWrites(t *testing.T) {
	e := newEnv(t, managerOpts{})
	rec := e.sim.Seed(canaryKey, scriptlock.Customer{Company: "Old Co", FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"})
	e.create(e.observer("ada", "ADA@example.com"))

	// Bound by email, differences named by field, what ScriptLock holds shown.
	c := e.waitReason("ada", metav1.ConditionFalse, v1alpha1.ReasonDiffers, 15*time.Second)
	if c.Status.CustomerID != rec.ID {
		t.Fatalf("bound %q, want %q by email", c.Status.CustomerID, rec.ID)
	}
	msg := e.ready("ada").Message
	for _, f := range []string{"company", "firstName", "lastName"} {
		if !strings.Contains(msg, f) {
			t.Fatalf("the message must name %s: %q", f, msg)
		}
	}
	if strings.Contains(msg, "Lovelace") || strings.Contains(msg, "Old Co") {
		t.Fatalf("the message must name fields, not values: %q", msg)
	}
	if o := c.Status.Observed; o == nil || o.Company != "Old Co" || o.LastName != "Lovelace" || !slices.Equal(o.DifferingFields, []string{"company", "firstName", "lastName"}) {
		t.Fatalf("status.observed must show what ScriptLock holds: %+v", o)
	}
	if len(c.Finalizers) != 0 {
		t.Fatalf("an observer needs no finalizer: %v", c.Finalizers)
	}
	e.waitEvent("ada", v1alpha1.ReasonDiffers)

	// Idle, it costs what a managed Customer costs: the account listing.
	before := e.sim.Calls()
	e.sweep()
	e.sweep()
	time.Sleep(300 * time.Millisecond)
	for k, n := range e.sim.Calls() {
		if !strings.HasPrefix(k, "GET "+routeList+" ") && before[k] != n {
			t.Fatalf("an idle observer made other calls than the listing: %s x%d", k, n-before[k])
		}
	}

	// Drift in ScriptLock: reported, not fixed.
	e.sim.EditOutOfBand(canaryKey, rec.ID, func(r *scriptlock.Customer) { r.Company = "Example Company Inc." })
	e.sweep()
	e.eventually(10*time.Second, "the change in ScriptLock observed", func() error {
		if o := e.get("ada").Status.Observed; o == nil || o.Company != "Example Company Inc." || slices.Contains(o.DifferingFields, "company") {
			return fmt.Errorf("observed %+v", o)
		}
		return nil
	})
	if n := len(e.events("ada", v1alpha1.ReasonDiffers)); n != 2 {
		t.Fatalf("want an Event when the difference appears and one when it changes, got %d", n)
	}

	// A spec change to what ScriptLock holds: Observed, still no write.
	e.update("ada", func(c *v1alpha1.Customer) { c.Spec.FirstName, c.Spec.LastName = "Ada", "Lovelace" })
	e.waitReason("ada", metav1.ConditionTrue, v1alpha1.ReasonObserved, 10*time.Second)

	// Deleted in ScriptLock: NotFound, never recreated.
	e.sim.DeleteOutOfBand(canaryKey, rec.ID)
	e.sweep()
	e.waitReason("ada", metav1.ConditionFalse, v1alpha1.ReasonNotFound, 10*time.Second)

	// Deleting the object deletes nothing.
	e.sim.Seed(canaryKey, rec)
	e.deleteAndWait("ada")
	e.noWrites()
}

func TestAnObserverNeitherConflictsNorBlocks(t *testing.T) {
	e := newEnv(t, managerOpts{})
	m := e.waitReadyAfterCreate("manager", "shared@example.com")
	o := e.observer("watcher", "shared@example.com")
	o.Spec.CustomerID = m.Status.CustomerID
	e.create(o)
	e.waitReason("watcher", metav1.ConditionTrue, v1alpha1.ReasonObserved, 15*time.Second)
	// The manager still manages: drift is put back, and it stays Ready.
	e.sim.EditOutOfBand(canaryKey, m.Status.CustomerID, func(r *scriptlock.Customer) { r.LastName = "Drifted" })
	e.sweep()
	e.eventually(10*time.Second, "drift corrected by the manager", func() error {
		if rec, _ := e.sim.Record(canaryKey, m.Status.CustomerID); rec.LastName != "Customer" {
			return fmt.Errorf("record %+v", rec)
		}
		return nil
	})
	e.waitReady("manager")
	if len(e.events("manager", v1alpha1.ReasonConflict))+len(e.events("watcher", v1alpha1.ReasonConflict)) != 0 {
		t.Fatal("an observer must not be in Conflict with a manager, nor put one in Conflict")
	}
	// An observer with a spec.customerID that does not exist.
	missing := e.observer("missing", "nobody@example.com")
	missing.Spec.CustomerID = "424242"
	e.create(missing)
	e.waitReason("missing", metav1.ConditionFalse, v1alpha1.ReasonNotFound, 10*time.Second)
	if n := e.calls(http.MethodPost, routeCreate); n != 1 {
		t.Fatalf("only the manager's create, got %d", n)
	}
}

func TestSwitchingBetweenObserveAndManage(t *testing.T) {
	e := newEnv(t, managerOpts{})
	rec := e.sim.Seed(canaryKey, scriptlock.Customer{Company: "Old Co", FirstName: "Example", LastName: "Customer", Email: "switch@example.com"})
	e.create(e.observer("acme", "switch@example.com"))
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonDiffers, 15*time.Second)
	e.noWrites()

	// Observe -> Manage: the spec is written at once, the finalizer added.
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyManage })
	got := e.waitReady("acme")
	if got.Status.CustomerID != rec.ID || got.Status.Observed != nil {
		t.Fatalf("want record %s managed, status %+v", rec.ID, got.Status)
	}
	if r, _ := e.sim.Record(canaryKey, rec.ID); r.Company != "Example Company Inc." {
		t.Fatalf("the spec was not written on the switch: %+v", r)
	}
	e.waitEvent("acme", "Updated")
	if !containsString(got.Finalizers, v1alpha1.Finalizer) {
		t.Fatal("a managed Customer needs its finalizer")
	}
	if n := e.calls(http.MethodPut, routeOne); n != 1 {
		t.Fatalf("want one PUT, got %d", n)
	}

	// Manage -> Observe: no more writes, the finalizer goes, nothing deleted.
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve })
	e.eventually(10*time.Second, "finalizer removed", func() error {
		if c := e.get("acme"); len(c.Finalizers) != 0 {
			return fmt.Errorf("finalizers %v", c.Finalizers)
		}
		return nil
	})
	e.waitReason("acme", metav1.ConditionTrue, v1alpha1.ReasonObserved, 10*time.Second)
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Not Written" })
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonDiffers, 10*time.Second)
	e.deleteAndWait("acme")
	if n := e.calls(http.MethodPut, routeOne) + e.calls(http.MethodDelete, routeOne) + e.calls(http.MethodPost, routeCreate); n != 1 {
		t.Fatalf("after switching back to Observe nothing may be written: %v", e.sim.Calls())
	}
	if _, ok := e.sim.Record(canaryKey, rec.ID); !ok {
		t.Fatal("the record was deleted")
	}
}
