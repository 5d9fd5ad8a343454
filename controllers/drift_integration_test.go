package controllers_test

// Drift correction tells a person's edit in ScriptLock from a back end
// that stores values in its own spelling, by the values seen: a value that
// differs from the spec only in case and spacing is ScriptLock's spelling
// (StoredDifferently, written once); any other value is someone's edit,
// put back every time, up to a bound per hour against a write war.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// The demo's hints in order: change the spec, then edit the record in
// ScriptLock soon after. The edit is put back, and ScriptLock is not
// blamed; a second edit of the same field is put back too.
func TestAnEditSoonAfterTheOperatorsWriteIsPutBack(t *testing.T) {
	e := newEnv(t, managerOpts{})
	c := e.waitReadyAfterCreate("acme", "edited@example.com")
	id := c.Status.CustomerID
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Spec" })
	e.eventually(patience, "the spec change written", func() error {
		if rec, _ := e.sim.Record(canaryKey, id); rec.LastName != "Spec" {
			return fmt.Errorf("record %+v", rec)
		}
		return nil
	})
	for _, edit := range []string{"Edited by hand", "Edited again"} {
		e.sim.EditOutOfBand(canaryKey, id, func(r *scriptlock.Customer) { r.LastName = edit })
		e.sweep()
		e.eventually(patience, "the edit "+edit+" put back", func() error {
			if rec, _ := e.sim.Record(canaryKey, id); rec.LastName != "Spec" {
				return fmt.Errorf("record %+v", rec)
			}
			return nil
		})
		got := e.waitReady("acme")
		if got.Status.CustomerID != id {
			t.Fatalf("bound to %q", got.Status.CustomerID)
		}
	}
	if evs := e.events("acme", v1alpha1.ReasonStoredDifferently); len(evs) != 0 {
		t.Fatalf("a person's edit was blamed on ScriptLock: %s", evs[0].Note)
	}
}

// Of the same kind: something keeps changing the record back to values of
// its own (a second writer). The operator puts it back a bounded number of
// times, then stops and says so, without blaming ScriptLock's spelling.
func TestAWriteWarIsBounded(t *testing.T) {
	e := newEnv(t, managerOpts{})
	e.waitReadyAfterCreate("acme", "war@example.com")
	n := 0
	e.sim.SetTidy(func(v string) string {
		if v == "Mine" { // the spec's last name: another writer changes it at once
			n++
			return fmt.Sprintf("Other writer %d", n)
		}
		return v
	})
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Mine" })
	for range 20 {
		e.sweep()
	}
	got := e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonChangedOutside, patience)
	if !condTrue(got, v1alpha1.ConditionStalled) {
		t.Fatal("a write war needs a person: Stalled must be True")
	}
	if msg := e.ready("acme").Message; strings.Contains(msg, "stores") || !strings.Contains(msg, "lastName") {
		t.Fatalf("the message must name the field and not blame ScriptLock's spelling: %q", msg)
	}
	if puts := e.calls(http.MethodPut, routeOne); puts > 12 {
		t.Fatalf("%d PUTs: the corrections are not bounded", puts)
	}
}
