package controllers_test

// The change log: one line per write the simulator saw, on every path that
// writes, with why, and never the key.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

// changeLine is one line of the change log, as a log shipper reads it.
type changeLine struct {
	Logger         string            `json:"logger"`
	Msg            string            `json:"msg"`
	Schema         string            `json:"schema"`
	Operation      string            `json:"operation"`
	Method         string            `json:"method"`
	RecordID       string            `json:"recordID"`
	Account        string            `json:"account"`
	Customer       string            `json:"customer"`
	UID            string            `json:"uid"`
	Reason         string            `json:"reason"`
	Fields         []string          `json:"fields"`
	Values         map[string]string `json:"values"`
	DeletionPolicy string            `json:"deletionPolicy"`
	Approval       string            `json:"approval"`
	Result         string            `json:"result"`
	Status         int               `json:"status"`
	Error          string            `json:"error"`
}

// changeLog returns the change log lines about the Customers of this
// test's namespace, in the order they were written.
func (e *env) changeLog() []changeLine {
	e.t.Helper()
	var out []changeLine
	for _, l := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(l, `"logger":"changelog"`) {
			continue
		}
		var c changeLine
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			e.t.Fatalf("a change log line is no JSON object: %v\n%s", err, l)
		}
		if strings.HasPrefix(c.Customer, e.ns+"/") {
			out = append(out, c)
		}
	}
	return out
}

// simWrites returns the POST, PUT and DELETE calls the simulator answered,
// as "METHOD STATUS".
func (e *env) simWrites() []string {
	var out []string
	for _, c := range e.sim.CallLog() {
		if c.Method != http.MethodGet {
			out = append(out, fmt.Sprintf("%s %d", c.Method, c.Status))
		}
	}
	return out
}

// waitChangeLogMatches waits until the change log has one line per write
// the simulator saw (method and status), and returns the lines.
func (e *env) waitChangeLogMatches() []changeLine {
	e.t.Helper()
	var lines []changeLine
	e.eventually(patience, "one change log line per write", func() error {
		lines = e.changeLog()
		var got []string
		for _, l := range lines {
			got = append(got, fmt.Sprintf("%s %d", l.Method, l.Status))
		}
		want := e.simWrites()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			return fmt.Errorf("change log %v, simulator %v", got, want)
		}
		return nil
	})
	return lines
}

// Every path that writes, in one account: a create; a spec change; an
// edit put back; a create whose answer was lost, found and adopted; an
// existing record adopted and put to the spec; a record deleted outside
// and created again; a deletion. Each write the simulator saw has exactly
// one line, with its reason, the Customer, the record, the account's
// fingerprint and the field names, and no value.
func TestTheChangeLogHasOneLinePerWriteWithItsReason(t *testing.T) { //nolint:gocyclo // one history, then a check per write, each a line
	e := newEnv(t, managerOpts{})
	a := e.waitReadyAfterCreate("a", "a@example.com")
	e.update("a", func(c *v1alpha1.Customer) { c.Spec.LastName = "Spec" })
	e.eventually(patience, "the spec change written", func() error {
		if rec, _ := e.sim.Record(canaryKey, a.Status.CustomerID); rec.LastName != "Spec" {
			return fmt.Errorf("record %+v", rec)
		}
		return nil
	})
	e.waitReady("a")
	e.sim.EditOutOfBand(canaryKey, a.Status.CustomerID, func(r *scriptlock.Customer) { r.Company = "Edited by hand" })
	e.sweep()
	e.eventually(patience, "the edit put back", func() error {
		if rec, _ := e.sim.Record(canaryKey, a.Status.CustomerID); rec.Company != a.Spec.Company {
			return fmt.Errorf("record %+v", rec)
		}
		return nil
	})

	e.sim.LoseNextCreate(sim.LoseWith500)
	b := e.waitReadyAfterCreate("b", "b@example.com")

	existing := e.sim.Put(canaryKey, scriptlock.Customer{Company: "Old", FirstName: "Old", LastName: "Name", Email: "c@example.com"})
	c := e.customer("c", "c@example.com")
	c.Spec.Adoption = v1alpha1.AdoptionIfExists
	e.create(c)
	e.waitReady("c")

	e.waitReady("a")
	e.sim.DeleteOutOfBand(canaryKey, a.Status.CustomerID)
	e.eventually(patience, "a's record created again", func() error {
		e.sweep()
		if got := e.get("a"); got.Status.CustomerID == a.Status.CustomerID || got.Status.CustomerID == "" {
			return fmt.Errorf("bound to %q", got.Status.CustomerID)
		}
		return nil
	})
	a2 := e.waitReady("a")
	e.deleteAndWait("b")

	lines := e.waitChangeLogMatches()
	byCustomer := map[string][]changeLine{}
	for _, l := range lines {
		if l.Schema != controllers.ChangeLogSchema || l.Msg != "ScriptLock write" {
			t.Errorf("line without the schema %s: %+v", controllers.ChangeLogSchema, l)
		}
		if l.Account != a.Status.Account || l.UID == "" || l.Values != nil {
			t.Errorf("line without the account or uid, or with values: %+v", l)
		}
		name := strings.TrimPrefix(l.Customer, e.ns+"/")
		byCustomer[name] = append(byCustomer[name], l)
	}
	type want struct{ op, reason, result, id string }
	check := func(name string, wants []want) {
		t.Helper()
		got := byCustomer[name]
		if len(got) != len(wants) {
			t.Fatalf("%s: %d lines, want %d: %+v", name, len(got), len(wants), got)
		}
		for i, w := range wants {
			l := got[i]
			if l.Operation != w.op || l.Reason != w.reason || l.Result != w.result || w.id != "*" && l.RecordID != w.id {
				t.Errorf("%s line %d: %s %s %s %q, want %+v", name, i, l.Operation, l.Reason, l.Result, l.RecordID, w)
			}
		}
	}
	check("a", []want{
		{"create", "create", "created", a.Status.CustomerID},
		{"update", "specChange", "updated", a.Status.CustomerID},
		{"update", "driftCorrection", "updated", a.Status.CustomerID},
		{"create", "recreate", "created", a2.Status.CustomerID},
	})
	check("b", []want{
		{"create", "create", "serverError", ""},
		{"delete", "deletion", "deleted", b.Status.CustomerID},
	})
	check("c", []want{
		{"create", "create", "conflict", ""},
		{"update", "adoption", "updated", existing.ID},
	})
	if l := byCustomer["a"][1]; !slices.Equal(l.Fields, []string{"lastName"}) {
		t.Errorf("the spec change names fields %v, want [lastName]", l.Fields)
	}
	if l := byCustomer["a"][0]; !slices.Equal(l.Fields, []string{"company", "firstName", "lastName", "email"}) {
		t.Errorf("the create names fields %v", l.Fields)
	}
	if l := byCustomer["b"][1]; l.DeletionPolicy != string(v1alpha1.DeletionPolicyDelete) || l.Status != http.StatusGone {
		t.Errorf("the deletion line: %+v", l)
	}
	if l := byCustomer["b"][0]; l.Status != http.StatusInternalServerError || l.Error == "" {
		t.Errorf("the lost create's line: %+v", l)
	}
	// No value of the spec is in any line by default.
	for _, l := range lines {
		raw, _ := json.Marshal(l)
		for _, v := range []string{"Spec", "a@example.com", "Example Company Inc."} {
			if strings.Contains(string(raw), v) {
				t.Errorf("a line holds the value %q: %s", v, raw)
			}
		}
	}
}

// With values on (--changelog-values), a line also holds what was written.
func TestTheChangeLogHoldsValuesOnlyWhenAskedTo(t *testing.T) {
	e := newEnv(t, managerOpts{changelogValues: true})
	e.waitReadyAfterCreate("a", "values@example.com")
	e.update("a", func(c *v1alpha1.Customer) { c.Spec.FirstName = "Changed" })
	e.eventually(patience, "the spec change written", func() error {
		if n := len(e.changeLog()); n != 2 {
			return fmt.Errorf("%d lines", n)
		}
		return nil
	})
	lines := e.waitChangeLogMatches()
	if v := lines[0].Values; v["email"] != "values@example.com" || v["company"] != "Example Company Inc." {
		t.Errorf("the create's values: %v", v)
	}
	if v := lines[1].Values; len(v) != 1 || v["firstName"] != "Changed" {
		t.Errorf("the update's values: %v", v)
	}
}

// updateLines returns the change log's update lines of name, as
// "reason result".
func (e *env) updateLines(name string) []string {
	var out []string
	for _, l := range e.changeLog() {
		if l.Customer == e.ns+"/"+name && l.Operation == "update" {
			out = append(out, l.Reason+" "+l.Result)
		}
	}
	return out
}

// A write that failed and is tried again keeps its reason: the retry of a
// drift correction is one too, though Ready went False in between, and the
// retry of a spec change is a spec change.
func TestTheChangeLogKeepsTheReasonOfARetriedWrite(t *testing.T) {
	e := newEnv(t, managerOpts{})
	a := e.waitReadyAfterCreate("a", "retry@example.com")
	id := a.Status.CustomerID
	putBack := func(what string, ok func(scriptlock.Customer) bool) {
		t.Helper()
		e.eventually(patience, what, func() error {
			if rec, _ := e.sim.Record(canaryKey, id); !ok(rec) {
				return fmt.Errorf("record %+v", rec)
			}
			return nil
		})
		e.waitReady("a")
	}

	e.sim.EditOutOfBand(canaryKey, id, func(r *scriptlock.Customer) { r.Company = "Edited by hand" })
	e.sim.FailNext(http.MethodPut, routeOne, 1, http.StatusInternalServerError, 0)
	e.sweep()
	putBack("the edit put back", func(r scriptlock.Customer) bool { return r.Company == a.Spec.Company })

	e.sim.FailNext(http.MethodPut, routeOne, 1, http.StatusInternalServerError, 0)
	e.update("a", func(c *v1alpha1.Customer) { c.Spec.LastName = "Spec" })
	putBack("the spec change written", func(r scriptlock.Customer) bool { return r.LastName == "Spec" })

	want := []string{"driftCorrection serverError", "driftCorrection updated", "specChange serverError", "specChange updated"}
	if got := e.updateLines("a"); !slices.Equal(got, want) {
		t.Fatalf("update lines %q, want %q", got, want)
	}
	if n := len(e.events("a", "DriftCorrected")); n != 1 {
		t.Errorf("%d DriftCorrected Events, want 1", n)
	}
}

// ScriptLock's refusal may echo what it holds (the email, a name); without
// --changelog-values the line keeps the status and the kind of the error
// and ScriptLock's words, with the Customer's values taken out.
func TestTheChangeLogScrubsTheCustomersValuesFromScriptLocksMessage(t *testing.T) {
	e := newEnv(t, managerOpts{})
	c := e.customer("a", "Ada.Scrub@example.com")
	c.Spec.LastName = "Lovelace"
	e.create(c)
	c = e.waitReady("a")
	id := c.Status.CustomerID
	e.sim.RefuseDelete(canaryKey, id, "customer ada.scrub@example.com (Example LOVELACE) has 3 active licenses")
	if err := e.k8s.Delete(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	e.waitReason("a", metav1.ConditionFalse, v1alpha1.ReasonDeletionBlocked, patience)
	var line changeLine
	for _, l := range e.changeLog() {
		if l.Operation == "delete" {
			line = l
			break
		}
	}
	if line.Result != "conflict" || line.Status != http.StatusConflict {
		t.Fatalf("the refused DELETE's line: %+v", line)
	}
	for _, v := range []string{"ada.scrub@example.com", "Lovelace", "LOVELACE", "Example"} {
		if strings.Contains(strings.ToLower(line.Error), strings.ToLower(v)) {
			t.Errorf("the error holds the value %q: %s", v, line.Error)
		}
	}
	for _, v := range []string{"409 Conflict", "has 3 active licenses"} {
		if !strings.Contains(line.Error, v) {
			t.Errorf("the error lacks %q: %s", v, line.Error)
		}
	}
	e.sim.AllowDelete(canaryKey, id)
	e.waitGone("a", patience)
}
