package controllers_test

// A Customer switched from Manage to Observe still has a record of its
// own: the one it managed. Its observations must not move its binding to
// another record, because a switch back to Manage takes the record
// observed (the consent to manage it), and the Customer would then hold a
// second record while its own is left behind (fault explorer seed 801965:
// created record 1, observed, credentials pointed at another account
// holding a copy of record 1, managed again: the copy was taken).

import (
	"net/http"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

func TestAnObserverKeepsTheRecordItManaged(t *testing.T) {
	const keyA, keyB = "observed-account-key", "other-account-key"
	setup := func(t *testing.T, before func(e *env)) (*env, *v1alpha1.Customer) {
		e := newEnv(t, managerOpts{})
		e.sim.AddAccount(keyA)
		before(e)
		e.secret(e.ns, "creds", map[string]string{"apiKey": keyA, "url": e.srv.URL})
		c := e.customerWith("acme", "own@example.com", "creds")
		e.create(c)
		c = e.waitReady("acme")
		e.update("acme", func(c *v1alpha1.Customer) { c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve })
		e.waitReason("acme", metav1.ConditionTrue, v1alpha1.ReasonObserved, patience)
		return e, c
	}
	// The credentials now name another account at the same URL with a copy
	// of the record (same id, email and fields) while the old key still
	// works: a move, not a rotation.
	t.Run("credentials pointed at another account holding a copy", func(t *testing.T) {
		e, c := setup(t, func(*env) {})
		own := c.Status.Account
		twin, _ := e.sim.Record(keyA, c.Status.CustomerID)
		e.sim.Put(keyB, twin)
		e.setSecret("creds", map[string]string{"apiKey": keyB, "url": e.srv.URL})
		e.update("acme", func(c *v1alpha1.Customer) { c.Labels = map[string]string{"poke": "1"} })
		got := e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAccountChanged, patience)
		if got.Status.Account != own || got.Status.CustomerID != c.Status.CustomerID {
			t.Fatalf("the observer moved its binding to the other account: %+v", got.Status)
		}
		puts := e.calls(http.MethodPut, routeOne)
		e.update("acme", func(c *v1alpha1.Customer) {
			c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyManage
			c.Spec.LastName = "Changed"
		})
		got = e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAccountChanged, patience)
		if got.Status.Account != own {
			t.Fatalf("switched back to Manage, it took the other account's copy: %+v", got.Status)
		}
		if n := e.calls(http.MethodPut, routeOne); n != puts {
			t.Fatalf("%d PUTs after the switch back to Manage", n-puts)
		}
		if rec, _ := e.sim.Record(keyB, twin.ID); rec != twin {
			t.Fatalf("the other account's copy was written: %+v", rec)
		}
	})
	// The spec's email changes while it observes, to the email of a record
	// nobody holds: it reports how its own record differs, and switched
	// back to Manage it never takes the other record.
	t.Run("email changed to a record nobody holds", func(t *testing.T) {
		var other scriptlock.Customer
		e, c := setup(t, func(e *env) {
			other = e.sim.Seed(keyA, scriptlock.Customer{Company: "Other Co", FirstName: "O", LastName: "Ther", Email: "loose@example.com"})
		})
		e.update("acme", func(c *v1alpha1.Customer) { c.Spec.Email = "loose@example.com" })
		got := e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonDiffers, patience)
		if got.Status.CustomerID != c.Status.CustomerID {
			t.Fatalf("the observer moved its binding to record %s", got.Status.CustomerID)
		}
		e.update("acme", func(c *v1alpha1.Customer) { c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyManage })
		got = e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonConflict, patience)
		if got.Status.CustomerID != c.Status.CustomerID {
			t.Fatalf("switched back to Manage, it took record %s", got.Status.CustomerID)
		}
		if rec, _ := e.sim.Record(keyA, other.ID); rec != other {
			t.Fatalf("the other record was written: %+v", rec)
		}
	})
}
