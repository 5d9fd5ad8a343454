package controllers_test

// A move is not a proof: when a Customer's credentials name another
// account than the one its record was bound in, the same id with the same
// email (or even every field equal) there proves nothing by itself. A
// rotated key is accepted only when the old key is refused and the record
// is the one last synced; any other move waits in AccountChanged until a
// person accepts the new account, and a binding nobody accepted never
// DELETEs.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

func TestAMoveToAnAccountThatLooksTheSameIsNotAProof(t *testing.T) {
	const keyA, keyB = "staging-account-key", "production-account-key"
	setup := func(t *testing.T) (*env, *v1alpha1.Customer) {
		e := newEnv(t, managerOpts{})
		e.sim.AddAccount(keyA)
		e.secret(e.ns, "creds", map[string]string{"apiKey": keyA, "url": e.srv.URL})
		c := e.customerWith("acme", "twin@example.com", "creds")
		e.create(c)
		return e, e.waitReady("acme")
	}
	// Another account at the same URL holds the same id with the same
	// email and fields (accounts filled from one CRM in the same order),
	// and the old key still works: a production key pasted into a staging
	// Secret, not a rotation.
	t.Run("another account at the same URL, same id and email", func(t *testing.T) {
		e, c := setup(t)
		twin, _ := e.sim.Record(keyA, c.Status.CustomerID)
		e.sim.Put(keyB, twin)
		e.setSecret("creds", map[string]string{"apiKey": keyB, "url": e.srv.URL})
		e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Changed" })
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAccountChanged, patience)
		if msg := e.ready("acme").Message; !strings.Contains(msg, v1alpha1.AcceptAccountAnnotation) {
			t.Fatalf("the condition must say how to accept the new account: %q", msg)
		}
		e.deleteAndWait("acme")
		if rec, ok := e.sim.Record(keyB, twin.ID); !ok || rec != twin {
			t.Fatalf("the other account's record was written or deleted: %+v", rec)
		}
		if len(e.events("acme", "RecordKept")) != 1 {
			t.Fatal("want a RecordKept Warning")
		}
	})
	// Of the same kind: another instance restored from a backup (the same
	// ids and data) behind the Secret's new URL.
	t.Run("a cloned instance at another URL", func(t *testing.T) {
		e, c := setup(t)
		clone := e.sim.Clone()
		cloneURL := serve(t, clone).URL
		e.setSecret("creds", map[string]string{"apiKey": keyA, "url": cloneURL})
		// Every field equal: the spec is unchanged, so is the clone.
		e.update("acme", func(c *v1alpha1.Customer) { c.Labels = map[string]string{"poke": "1"} })
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAccountChanged, patience)
		e.deleteAndWait("acme")
		if n := clone.CallCount(http.MethodPut, routeOne) + clone.CallCount(http.MethodDelete, routeOne); n != 0 {
			t.Fatalf("%d writes to the clone", n)
		}
		if _, ok := clone.Record(keyA, c.Status.CustomerID); !ok {
			t.Fatal("the clone's record was deleted")
		}
	})
	// A person accepts the new account by its fingerprint: the binding
	// carries over, and the Customer writes there.
	t.Run("accepted by a person", func(t *testing.T) {
		e, c := setup(t)
		clone := e.sim.Clone()
		cloneURL := serve(t, clone).URL
		e.setSecret("creds", map[string]string{"apiKey": keyA, "url": cloneURL})
		e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Changed" })
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAccountChanged, patience)
		fp := scriptlock.AccountID(cloneURL, keyA)
		e.update("acme", func(c *v1alpha1.Customer) {
			c.Annotations = map[string]string{v1alpha1.AcceptAccountAnnotation: fp}
		})
		got := e.waitReady("acme")
		if got.Status.Account != fp || got.Status.CustomerID != c.Status.CustomerID {
			t.Fatalf("want the same record in the accepted account %s: %+v", fp, got.Status)
		}
		if rec, _ := clone.Record(keyA, c.Status.CustomerID); rec.LastName != "Changed" {
			t.Fatalf("the accepted account's record was not put to the spec: %+v", rec)
		}
	})
}

// A key rotation costs one listing of the new account and one check that
// the old key is refused, not a read per Customer.
func TestAKeyRotationCostsOneListingNotAReadPerCustomer(t *testing.T) {
	const key, rotated = "rotation-key-before", "rotation-key-after"
	e := newEnv(t, managerOpts{})
	e.sim.AddAccount(key)
	e.secret(e.ns, "creds", map[string]string{"apiKey": key, "url": e.srv.URL})
	ids := map[string]string{}
	for i := range 6 {
		name := fmt.Sprintf("c%d", i)
		c := e.customerWith(name, name+"@example.com", "creds")
		e.create(c)
		ids[name] = e.waitReady(name).Status.CustomerID
	}
	e.sim.RotateKey(key, rotated)
	e.setSecret("creds", map[string]string{"apiKey": rotated, "url": e.srv.URL})
	e.sim.ResetCalls()
	e.sweep()
	e.sweep() // every second sweep has every Customer read its credentials again
	fp := scriptlock.AccountID(e.srv.URL, rotated)
	for name, id := range ids {
		e.eventually(patience, name+" in the new account", func() error {
			got := e.get(name)
			if got.Status.Account != fp || !condTrue(got, v1alpha1.ConditionReady) {
				return fmt.Errorf("status %+v", got.Status)
			}
			if got.Status.CustomerID != id {
				t.Fatalf("%s: the rotation changed the record: %s -> %s", name, id, got.Status.CustomerID)
			}
			return nil
		})
	}
	if n := e.calls(http.MethodGet, routeOne); n > 1 {
		t.Fatalf("%d reads by id for 6 Customers: want one listing, and at most one check of the old key", n)
	}
	// The listings are per account, not per Customer: each of the two
	// sweeps lists the accounts in use (the old one, refused, and the new
	// one once a Customer moved), and one Customer's pass lists the new
	// account for all of them.
	if n := e.calls(http.MethodGet, routeList); n > 5 {
		t.Fatalf("%d listings for 6 Customers of one account", n)
	}
}

// A rotation proven by one manager (it alone knew the old key, now
// refused) is written down before the first write under the new key: a
// manager killed right after that PUT leaves a status that names the new
// account, and the next manager goes on with the record instead of
// reporting AccountChanged (which would keep the record when the Customer
// is deleted).
func TestARotationProvenBeforeACrashIsNotLost(t *testing.T) {
	const key, rotated = "crash-rotation-before", "crash-rotation-after"
	e := newEnv(t, managerOpts{noStart: true})
	e.sim.AddAccount(key)
	proxy := &crashProxy{next: e.sim, method: http.MethodPut, created: make(chan struct{}), release: make(chan struct{})}
	ps := serve(t, proxy)
	t.Cleanup(func() { close(proxy.release) })
	e.opts.url = ps.URL
	e.startManager()
	e.secret(e.ns, "creds", map[string]string{"apiKey": key, "url": ps.URL})
	c := e.customerWith("acme", "rotate@example.com", "creds")
	e.create(c)
	id := e.waitReady("acme").Status.CustomerID

	e.sim.RotateKey(key, rotated)
	e.setSecret("creds", map[string]string{"apiKey": rotated, "url": ps.URL})
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.Company = "Rotated Co" })
	select {
	case <-proxy.created:
	case <-time.After(patience):
		t.Fatal("the operator never sent the update under the new key")
	}
	e.stopManager()
	fp := scriptlock.AccountID(ps.URL, rotated)
	if got := e.get("acme").Status.Account; got != fp {
		t.Fatalf("status.account %q when the PUT under the new key was sent; want the new account %q written before it", got, fp)
	}

	e.startManager()
	e.eventually(patience, "Ready on its record in the new account", func() error {
		got := e.get("acme")
		if got.Status.CustomerID != id || got.Status.Account != fp || !condTrue(got, v1alpha1.ConditionReady) {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
	if recs := e.sim.Records(rotated); len(recs) != 1 || recs[0].Company != "Rotated Co" {
		t.Fatalf("records %+v", recs)
	}
}

// A create whose answer was lost, then the credentials name another account
// at the same URL (another account's key pasted into the Secret) before the
// record showed: the first create may have stored a record in the first
// account, so creating (or adopting) one in the new account would leave
// the Customer with two records. It waits in AccountChanged, writes nothing
// to the new account, and ends Ready on the one record of its create once
// the credentials name the first account again (explorer seed 100118).
func TestACreateOfUnknownOutcomeDoesNotMoveWithTheCredentials(t *testing.T) {
	const keyA, keyB = "first-account-key", "second-account-key"
	e := newEnv(t, managerOpts{})
	e.sim.AddAccount(keyA)
	e.sim.AddAccount(keyB)
	e.secret(e.ns, "creds", map[string]string{"apiKey": keyA, "url": e.srv.URL})
	e.sim.CommitNextCreateLate(6*time.Second, sim.LoseWith504)
	c := e.customerWith("acme", "unknown-outcome@example.com", "creds")
	c.Spec.Adoption = v1alpha1.AdoptionIfExists
	e.create(c)
	e.eventually(patience, "the create's proof persisted", func() error {
		if proof(e.get("acme")) == nil {
			return fmt.Errorf("no create-time proof yet")
		}
		return nil
	})
	e.setSecret("creds", map[string]string{"apiKey": keyB, "url": e.srv.URL})
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAccountChanged, patience)
	if msg := e.ready("acme").Message; !strings.Contains(msg, v1alpha1.AcceptAccountAnnotation) {
		t.Fatalf("the condition must say how to accept the new account: %q", msg)
	}
	if recs := e.sim.Records(keyB); len(recs) != 0 {
		t.Fatalf("a record was made in the new account while the first create's outcome is unknown: %+v", recs)
	}
	if n := e.calls(http.MethodPost, routeCreate); n != 1 {
		t.Fatalf("%d creates while the credentials named the second account, want the first one only", n)
	}
	e.setSecret("creds", map[string]string{"apiKey": keyA, "url": e.srv.URL})
	got := e.waitReason("acme", metav1.ConditionTrue, v1alpha1.ReasonAvailable, 30*time.Second)
	if recs := e.sim.Records(keyA); len(recs) != 1 || recs[0].ID != got.Status.CustomerID {
		t.Fatalf("want its own single record %q, got %+v", got.Status.CustomerID, recs)
	}
	if recs := e.sim.Records(keyB); len(recs) != 0 {
		t.Fatalf("want nothing in the second account: %+v", recs)
	}
}
