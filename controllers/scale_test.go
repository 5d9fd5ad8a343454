package controllers_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// TestARestartListsEachAccountOnceAndWritesNothing: after a restart the
// operator's memory of ScriptLock is empty, yet checking every Ready
// Customer again costs one listing of the account, no read per Customer,
// and no write to the API server (no status patch, no Event).
func TestARestartListsEachAccountOnceAndWritesNothing(t *testing.T) {
	e := newEnv(t, managerOpts{drift: controllers.DriftByList})
	const n = 12
	for i := range n {
		e.create(e.customer(fmt.Sprintf("c%d", i), fmt.Sprintf("c%d@example.com", i)))
	}
	for i := range n {
		e.waitReady(fmt.Sprintf("c%d", i))
	}
	time.Sleep(500 * time.Millisecond) // let the creation settle
	e.stopManager()
	rvs := map[string]string{}
	for i := range n {
		c := e.get(fmt.Sprintf("c%d", i))
		rvs[c.Name] = c.ResourceVersion
	}
	events := e.eventCount()
	e.sim.ResetCalls()

	e.startManager()
	e.eventually(10*time.Second, "the restarted operator lists the account", func() error {
		if e.calls(http.MethodGet, routeList) == 0 {
			return fmt.Errorf("no listing yet")
		}
		return nil
	})
	time.Sleep(2 * time.Second) // every Customer's first pass has run
	calls := e.sim.Calls()
	if lists := e.calls(http.MethodGet, routeList); lists != 1 {
		t.Fatalf("want one listing after the restart, got %d (%v)", lists, calls)
	}
	for k, c := range calls {
		if !strings.HasPrefix(k, "GET "+routeList+" ") {
			t.Fatalf("the restart made other calls than the listing: %s x%d", k, c)
		}
	}
	for name, rv := range rvs {
		if got := e.get(name).ResourceVersion; got != rv {
			t.Fatalf("the restart wrote Customer %s (resourceVersion %s -> %s)", name, rv, got)
		}
	}
	if got := e.eventCount(); got != events {
		t.Fatalf("the restart emitted %d Events", got-events)
	}
}

// TestABigAccountCostsOneListingAndNoReads: an account holding many records
// no Customer manages. Creating Customers there, and the periodic check,
// cost one listing each time (shared by the creates), a POST per
// Customer, and no read; a Customer whose email an unmanaged record already
// has is told so (Conflict, naming the record), read with one GET.
func TestABigAccountCostsOneListingAndNoReads(t *testing.T) {
	e := newEnv(t, managerOpts{drift: controllers.DriftByList})
	const unmanaged = 5000
	for i := range unmanaged {
		e.sim.Seed(canaryKey, scriptlock.Customer{Company: "Other", FirstName: "F", LastName: "L", Email: fmt.Sprintf("other%d@example.com", i)})
	}
	taken := e.sim.Records(canaryKey)[unmanaged/2]
	const n = 6
	for i := range n {
		e.create(e.customer(fmt.Sprintf("c%d", i), fmt.Sprintf("c%d@example.com", i)))
	}
	for i := range n {
		e.waitReady(fmt.Sprintf("c%d", i))
	}
	if got := e.calls(http.MethodPost, routeCreate); got != n {
		t.Fatalf("want %d creates, got %d", n, got)
	}
	if got := e.calls(http.MethodGet, routeOne); got != 0 {
		t.Fatalf("creating next to unmanaged records read %d of them", got)
	}

	e.sim.ResetCalls()
	e.sweep()
	time.Sleep(500 * time.Millisecond)
	for k, c := range e.sim.Calls() {
		if !strings.HasPrefix(k, "GET "+routeList+" ") || c != 1 {
			t.Fatalf("a period costs one listing and nothing else, got %s x%d", k, c)
		}
	}

	e.create(e.customer("late", strings.ToUpper(taken.Email)))
	c := e.waitReason("late", "False", "Conflict", 20*time.Second)
	if msg := e.ready("late").Message; !strings.Contains(msg, taken.ID) {
		t.Fatalf("the Conflict must name the record that has the email (%s): %s", taken.ID, msg)
	}
	if len(e.sim.Records(canaryKey)) != unmanaged+n {
		t.Fatalf("a record was created for %s", c.Name)
	}
}

// eventCount is the number of Events in the test's namespace.
func (e *env) eventCount() int {
	e.t.Helper()
	list := &eventsv1.EventList{}
	if err := e.k8s.List(e.ctx, list, client.InNamespace(e.ns)); err != nil {
		e.t.Fatal(err)
	}
	return len(list.Items)
}

// TestTheCacheDropsKubectlsCopyOfTheManifestButTheServerKeepsIt: the
// informer cache does not hold kubectl's last-applied-configuration (a copy
// of the whole manifest), and the operator's writes never remove it from
// the server, so `kubectl apply` keeps working as before.
func TestTheCacheDropsKubectlsCopyOfTheManifestButTheServerKeepsIt(t *testing.T) {
	e := newEnv(t, managerOpts{})
	const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"
	c := e.customer("acme", "applied@example.com")
	c.Annotations = map[string]string{lastApplied: `{"apiVersion":"licensing.scriptlock.com/v1alpha1","kind":"Customer"}`, "team": "sales"}
	e.create(c)
	e.waitReady("acme")
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.Company = "Renamed Inc." })
	e.eventually(20*time.Second, "the new company in ScriptLock", func() error {
		if recs := e.records(); len(recs) != 1 || recs[0].Company != "Renamed Inc." {
			return fmt.Errorf("records %+v", recs)
		}
		return nil
	})
	got := e.waitReady("acme")
	if got.Annotations[lastApplied] == "" || got.Annotations["team"] != "sales" {
		t.Fatalf("the operator's writes removed annotations: %v", got.Annotations)
	}
	out, err := controllers.CacheTransform()(got.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if cached := out.(*v1alpha1.Customer); cached.Annotations[lastApplied] != "" || cached.Annotations["team"] != "sales" || cached.ManagedFields != nil {
		t.Fatalf("the cache must drop managedFields and kubectl's copy only: %v", cached.Annotations)
	}
}

// TestAConflictIsRetriedWithOneReadNotAListing: a Customer whose email
// another record has is retried with the permanent backoff; each retry
// reads that record (does it still have the email?) instead of listing the
// whole account, and lists again only once it no longer does.
func TestAConflictIsRetriedWithOneReadNotAListing(t *testing.T) {
	e := newEnv(t, managerOpts{drift: controllers.DriftByList, permanentBackoff: time.Second})
	other := e.sim.Seed(canaryKey, scriptlock.Customer{Company: "Other", FirstName: "F", LastName: "L", Email: "taken@example.com"})
	e.create(e.customer("acme", "taken@example.com"))
	e.waitReason("acme", "False", "Conflict", 20*time.Second)
	e.sim.ResetCalls()
	e.eventually(20*time.Second, "two retries", func() error {
		if n := e.calls(http.MethodGet, routeOne); n < 2 {
			return fmt.Errorf("%d reads", n)
		}
		return nil
	})
	if n := e.calls(http.MethodGet, routeList); n != 0 {
		t.Fatalf("Conflict retries listed the account %d times", n)
	}

	// The other record gives the email up: the next retry lists, finds
	// the email free and creates.
	e.sim.EditOutOfBand(canaryKey, other.ID, func(c *scriptlock.Customer) { c.Email = "moved@example.com" })
	got := e.waitReady("acme")
	if got.Status.CustomerID == other.ID {
		t.Fatalf("bound the other record %s", other.ID)
	}
}
