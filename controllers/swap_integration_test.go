package controllers_test

// Emails that move between Customers in one commit: ScriptLock keeps
// emails unique, so each PUT is refused while the other Customer's record
// still has the email. The condition names the other Customer and the way
// out, instead of a silent 409 loop; nothing is written to ScriptLock that
// the spec did not ask for (no temporary email).

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

func TestEmailsSwappedBetweenCustomersAreNamed(t *testing.T) {
	for _, n := range []int{
		2, // a swap
		3, // of the same kind: a cycle of three
	} {
		t.Run(fmt.Sprintf("a cycle of %d", n), func(t *testing.T) {
			e := newEnv(t, managerOpts{})
			names := make([]string, n)
			for i := range n {
				names[i] = fmt.Sprintf("c%d", i)
				e.waitReadyAfterCreate(names[i], names[i]+"@example.com")
			}
			puts := e.calls(http.MethodPut, routeOne)
			// Each takes the next one's email, in one commit.
			for i := range n {
				next := names[(i+1)%n]
				e.update(names[i], func(c *v1alpha1.Customer) { c.Spec.Email = next + "@example.com" })
			}
			for i := range n {
				next := names[(i+1)%n]
				got := e.waitReason(names[i], metav1.ConditionFalse, v1alpha1.ReasonConflict, patience)
				msg := e.ready(names[i]).Message
				if !strings.Contains(msg, e.ns+"/"+next) || !strings.Contains(msg, "unique") {
					t.Fatalf("%s: the message must name the Customer whose record has the email (%s) and why: %q", got.Name, next, msg)
				}
			}
			for _, rec := range e.records() {
				if !strings.HasSuffix(rec.Email, "@example.com") || !strings.HasPrefix(rec.Email, "c") {
					t.Fatalf("a temporary email was written to ScriptLock: %+v", rec)
				}
			}
			if extra := e.calls(http.MethodPut, routeOne) - puts; extra > 2*n {
				t.Fatalf("%d PUTs for %d Customers waiting for a person: a retry loop", extra, n)
			}
		})
	}
}

// A bystander keeps its record: when another Customer takes its email, the
// Customer that made and manages the record with that email stays Ready
// on it; the newcomer is the one in Conflict, naming it. Found by the
// explorer (seed 3008).
func TestTakingAnotherCustomersEmailLeavesItsRecordAlone(t *testing.T) {
	e := newEnv(t, managerOpts{})
	c1 := e.waitReadyAfterCreate("c1", "first@example.com")
	// c1 is the older (creation times have whole seconds).
	e.eventually(patience, "a second later", func() error {
		if time.Now().Unix() <= c1.CreationTimestamp.Unix() {
			return fmt.Errorf("same second")
		}
		return nil
	})
	c0 := e.waitReadyAfterCreate("c0", "second@example.com")
	e.update("c1", func(c *v1alpha1.Customer) { c.Spec.Email = "second@example.com" })
	e.waitReason("c1", metav1.ConditionFalse, v1alpha1.ReasonConflict, patience)
	if msg := e.ready("c1").Message; !strings.Contains(msg, e.ns+"/c0") {
		t.Fatalf("the newcomer's Conflict must name the Customer that has the email: %q", msg)
	}
	n := e.reconcilesOf("c0")
	e.update("c0", func(c *v1alpha1.Customer) { c.Labels = map[string]string{"poke": "1"} })
	e.eventually(patience, "a pass of c0", func() error {
		if e.reconcilesOf("c0") <= n {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	got := e.waitReady("c0")
	if got.Status.CustomerID != c0.Status.CustomerID {
		t.Fatalf("the bystander lost its record: %q -> %q", c0.Status.CustomerID, got.Status.CustomerID)
	}
	if evs := e.events("c0", v1alpha1.ReasonConflict); len(evs) != 0 {
		t.Fatalf("the bystander was put in Conflict: %s", evs[0].Note)
	}
}

// A Customer whose own create's answer was lost keeps the record it made
// when another Customer, which manages a record of its own, asks for the
// same email meanwhile: that one never takes another record (it would PUT
// its own, refused while this record has the email), so it is no rival of
// this one's record, however its claims compare (README: "the one that
// already manages a record keeps it"). Found by the explorer (seed 100777).
func TestALostCreateKeepsItsRecordWhenAManagerWantsItsEmail(t *testing.T) {
	e := newEnv(t, managerOpts{})
	c1 := e.waitReadyAfterCreate("c1", "first@example.com")
	e.sim.CommitNextCreateLate(4*time.Second, sim.LoseWith504)
	e.create(e.customer("c0", "second@example.com"))
	e.eventually(patience, "c0's create under way", func() error {
		if c := e.get("c0"); proof(c) == nil {
			return fmt.Errorf("no pending create yet")
		}
		return nil
	})
	e.update("c1", func(c *v1alpha1.Customer) { c.Spec.Email = "second@example.com" })
	got := e.waitReason("c0", metav1.ConditionTrue, v1alpha1.ReasonAvailable, 30*time.Second)
	if evs := e.events("c0", v1alpha1.ReasonConflict); len(evs) != 0 {
		t.Fatalf("the Customer that made the record was put in Conflict: %s", evs[0].Note)
	}
	recs := e.records()
	if len(recs) != 2 {
		t.Fatalf("want two records (c1's and c0's), got %+v", recs)
	}
	for _, rec := range recs {
		if rec.Email == "second@example.com" && rec.ID != got.Status.CustomerID {
			t.Fatalf("c0 is bound to %q, yet its email's record is %q", got.Status.CustomerID, rec.ID)
		}
	}
	e.waitReason("c1", metav1.ConditionFalse, v1alpha1.ReasonConflict, patience)
	if now := e.get("c1"); now.Status.CustomerID != c1.Status.CustomerID {
		t.Fatalf("c1 lost its own record: %q -> %q", c1.Status.CustomerID, now.Status.CustomerID)
	}
}

// A newcomer that wants an email two Customers are trading names the
// Customer that holds the record with it, not only the one that wants it
// too: after a swap, c0's record still has the email c0's spec gave up.
// Found by the explorer (seeds 101388, 100117).
func TestANewcomerNamesTheHolderOfItsEmailsRecord(t *testing.T) {
	e := newEnv(t, managerOpts{})
	e.waitReadyAfterCreate("c0", "first@example.com")
	e.waitReadyAfterCreate("c1", "second@example.com")
	e.update("c0", func(c *v1alpha1.Customer) { c.Spec.Email = "second@example.com" })
	e.update("c1", func(c *v1alpha1.Customer) { c.Spec.Email = "first@example.com" })
	e.waitReason("c0", metav1.ConditionFalse, v1alpha1.ReasonConflict, patience)
	e.waitReason("c1", metav1.ConditionFalse, v1alpha1.ReasonConflict, patience)
	e.create(e.customer("c2", "first@example.com"))
	e.waitReason("c2", metav1.ConditionFalse, v1alpha1.ReasonConflict, patience)
	if msg := e.ready("c2").Message; !strings.Contains(msg, e.ns+"/c0") {
		t.Fatalf("the newcomer's Conflict must name c0, which holds the record with its email: %q", msg)
	}
	if n := len(e.records()); n != 2 {
		t.Fatalf("want the two records only, got %d", n)
	}
}

// A Conflict over something else names the holder of the record with the
// Customer's email too (explorer seed 200144): a Customer that manages a
// record, given another record's id in spec.customerID and, in the same
// change, the email of a record a third Customer holds, names both the
// Customer that manages the id it was given and the one that holds its
// email's record, which a person has to deal with next.
func TestAConflictOverAnotherIDNamesTheHolderOfItsEmailsRecord(t *testing.T) {
	e := newEnv(t, managerOpts{})
	emailHolder := e.waitReadyAfterCreate("c1", "first@example.com")
	idHolder := e.waitReadyAfterCreate("c3", "third@example.com")
	e.waitReadyAfterCreate("c0", "zero@example.com")
	e.update("c0", func(c *v1alpha1.Customer) {
		c.Spec.CustomerID = idHolder.Status.CustomerID
		c.Spec.Email = emailHolder.Spec.Email
	})
	e.waitReason("c0", metav1.ConditionFalse, v1alpha1.ReasonConflict, patience)
	msg := e.ready("c0").Message
	if !strings.Contains(msg, e.ns+"/c3") {
		t.Fatalf("the Conflict must name c3, which manages the record spec.customerID names: %q", msg)
	}
	if !strings.Contains(msg, e.ns+"/c1") {
		t.Fatalf("the Conflict must name c1, which holds the record with c0's email: %q", msg)
	}
	for _, name := range []string{"c1", "c3"} {
		if got := e.waitReady(name); got.Status.CustomerID == "" {
			t.Fatalf("%s lost its record", name)
		}
	}
}

// A Customer that manages a record, told by spec.customerID to take
// another Customer's record, is the one in Conflict: it keeps its own record
// for life, so it never takes that one, and the Customer that manages it
// stays Ready however old the other is. Found by the explorer (seed 100090).
func TestAManagerToldToTakeAnotherRecordLeavesItsHolderAlone(t *testing.T) {
	e := newEnv(t, managerOpts{})
	older := e.waitReadyAfterCreate("older", "older@example.com")
	e.eventually(patience, "a second later", func() error {
		if time.Now().Unix() <= older.CreationTimestamp.Unix() {
			return fmt.Errorf("same second")
		}
		return nil
	})
	holder := e.waitReadyAfterCreate("holder", "holder@example.com")
	e.update("older", func(c *v1alpha1.Customer) { c.Spec.CustomerID = holder.Status.CustomerID })
	e.waitReason("older", metav1.ConditionFalse, v1alpha1.ReasonConflict, patience)
	n := e.reconcilesOf("holder")
	e.update("holder", func(c *v1alpha1.Customer) { c.Labels = map[string]string{"poke": "1"} })
	e.eventually(patience, "a pass of the holder", func() error {
		if e.reconcilesOf("holder") <= n {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if got := e.waitReady("holder"); got.Status.CustomerID != holder.Status.CustomerID {
		t.Fatalf("the holder lost its record: %q -> %q", holder.Status.CustomerID, got.Status.CustomerID)
	}
	if evs := e.events("holder", v1alpha1.ReasonConflict); len(evs) != 0 {
		t.Fatalf("the holder was put in Conflict: %s", evs[0].Note)
	}
}
