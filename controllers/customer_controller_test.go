package controllers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

const (
	routeCreate = sim.RouteCustomer
	routeOne    = sim.RouteCustomerID
	routeList   = sim.RouteCustomers
)

func TestNewCustomerIsCreatedOnceAndBecomesReady(t *testing.T) {
	e := newEnv(t, managerOpts{})
	c := e.customer("acme", "Buyer@Example.com")
	c.Spec.Company = ""
	e.create(c)

	got := e.waitReady("acme")
	recs := e.records()
	if len(recs) != 1 {
		t.Fatalf("want exactly one record, got %+v", recs)
	}
	want := scriptlock.Customer{ID: got.Status.CustomerID, Company: "", FirstName: "Example", LastName: "Customer", Email: "Buyer@Example.com"}
	if recs[0] != want {
		t.Fatalf("record %+v, want %+v", recs[0], want)
	}
	if !containsString(got.Finalizers, v1alpha1.Finalizer) {
		t.Fatalf("finalizer missing: %v", got.Finalizers)
	}
	if n := e.calls(http.MethodPost, routeCreate); n != 1 {
		t.Fatalf("want exactly 1 create call, got %d (%v)", n, e.sim.Calls())
	}
	e.waitEvent("acme", "Created")
	time.Sleep(300 * time.Millisecond) // any other Event of the create has been sent
	evs := &eventsv1.EventList{}
	if err := e.k8s.List(e.ctx, evs, client.InNamespace(e.ns)); err != nil {
		t.Fatal(err)
	}
	if len(evs.Items) != 1 {
		t.Fatalf("want one Event per create (Created), got %d", len(evs.Items))
	}

	// A reconcile of an unchanged Customer costs nothing: no ScriptLock
	// call and no write to the API server.
	time.Sleep(time.Second)
	before := e.sim.Calls()
	e.update("acme", func(c *v1alpha1.Customer) { c.Labels = map[string]string{"touch": "1"} })
	rv := e.get("acme").ResourceVersion
	time.Sleep(2 * time.Second)
	if after := e.sim.Calls(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("an unchanged Customer made ScriptLock calls: before %v after %v", before, after)
	}
	if now := e.get("acme").ResourceVersion; now != rv {
		t.Fatalf("a reconcile with nothing to do wrote the object (resourceVersion %s -> %s)", rv, now)
	}
}

func TestSpecChangeIsPut(t *testing.T) {
	e := newEnv(t, managerOpts{})
	e.create(e.customer("acme", "a@example.com"))
	first := e.waitReady("acme")
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Renamed"; c.Spec.Company = "" })
	e.eventually(20*time.Second, "spec change applied", func() error {
		c := e.get("acme")
		if c.Status.ObservedGeneration != c.Generation || c.Generation == first.Generation {
			return fmt.Errorf("generation %d observed %d", c.Generation, c.Status.ObservedGeneration)
		}
		rec, ok := e.sim.Record(canaryKey, first.Status.CustomerID)
		if !ok || rec.LastName != "Renamed" || rec.Company != "" {
			return fmt.Errorf("record is %+v", rec)
		}
		return nil
	})
	e.waitReady("acme")
	if n := e.calls(http.MethodPut, routeOne); n != 1 {
		t.Fatalf("want one PUT, got %d", n)
	}
	if n := e.calls(http.MethodPost, routeCreate); n != 1 {
		t.Fatalf("a spec change must not create: %d creates", n)
	}
}

func TestDriftIsPutBackWithinTheResyncPeriod(t *testing.T) {
	for _, mode := range []controllers.DriftDetection{controllers.DriftByList, controllers.DriftPerObject} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, managerOpts{resync: 2 * time.Second, drift: mode})
			c := e.waitReadyAfterCreate("acme", "drift@example.com")
			e.sim.EditOutOfBand(canaryKey, c.Status.CustomerID, func(r *scriptlock.Customer) { r.Company = "Hijacked" })
			if mode == controllers.DriftByList {
				e.sweep()
			}
			e.eventually(10*time.Second, "drift corrected", func() error {
				rec, _ := e.sim.Record(canaryKey, c.Status.CustomerID)
				if rec.Company != "Example Company Inc." {
					return fmt.Errorf("record still %+v", rec)
				}
				return nil
			})
			e.waitEvent("acme", "DriftCorrected")
		})
	}
}

func TestIdleCostInListModeIsOneListPerAccountPerPeriod(t *testing.T) {
	e := newEnv(t, managerOpts{drift: controllers.DriftByList})
	for i := range 5 {
		e.create(e.customer(fmt.Sprintf("c%d", i), fmt.Sprintf("c%d@example.com", i)))
	}
	rvs := map[string]string{}
	for i := range 5 {
		c := e.waitReady(fmt.Sprintf("c%d", i))
		rvs[c.Name] = c.ResourceVersion
	}
	time.Sleep(500 * time.Millisecond) // let the creation settle
	e.sim.ResetCalls()
	for range 3 {
		e.sweep()
	}
	time.Sleep(500 * time.Millisecond) // anything the sweeps enqueued has run
	calls := e.sim.Calls()
	if lists := e.calls(http.MethodGet, routeList); lists != 3 {
		t.Fatalf("want one listing per period, 3 in 3 periods, got %d (%v)", lists, calls)
	}
	for k, n := range calls {
		if !strings.HasPrefix(k, "GET "+routeList+" ") {
			t.Fatalf("idle phase made other calls than the listing: %s x%d", k, n)
		}
	}
	for name, rv := range rvs {
		if got := e.get(name).ResourceVersion; got != rv {
			t.Fatalf("idle phase wrote Customer %s (resourceVersion %s -> %s)", name, rv, got)
		}
	}
}

func TestRecordDeletedInScriptLockIsRecreated(t *testing.T) {
	for _, mode := range []controllers.DriftDetection{controllers.DriftByList, controllers.DriftPerObject} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, managerOpts{resync: 2 * time.Second, drift: mode})
			c := e.waitReadyAfterCreate("acme", "gone@example.com")
			old := c.Status.CustomerID
			e.sim.DeleteOutOfBand(canaryKey, old)
			if mode == controllers.DriftByList {
				e.sweep()
			}
			e.eventually(15*time.Second, "recreated with a new id", func() error {
				c := e.get("acme")
				if c.Status.CustomerID == "" || c.Status.CustomerID == old {
					return fmt.Errorf("status.customerID %q", c.Status.CustomerID)
				}
				return nil
			})
			e.waitReady("acme")
			ev := e.waitEvent("acme", v1alpha1.ReasonRemoteDeleted)
			if ev.Type != corev1.EventTypeWarning {
				t.Fatalf("RemoteDeleted must be a Warning, got %s", ev.Type)
			}
			if recs := e.records(); len(recs) != 1 {
				t.Fatalf("want one record, got %+v", recs)
			}
		})
	}
}

func TestCreateConflictWithoutAdoptionNamesTheRecordAndDoesNotStorm(t *testing.T) {
	e := newEnv(t, managerOpts{})
	existing := e.sim.Seed(canaryKey, scriptlock.Customer{FirstName: "Other", LastName: "Person", Email: "taken@example.com"})
	e.create(e.customer("acme", "TAKEN@example.com"))
	c := e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonConflict, 15*time.Second)
	msg := e.ready("acme").Message
	if !strings.Contains(msg, existing.ID) || !strings.Contains(msg, "adoption: IfExists") {
		t.Fatalf("message must name record %s and how to adopt it: %q", existing.ID, msg)
	}
	if c.Status.CustomerID != "" {
		t.Fatalf("a conflicting Customer must not claim the record: %q", c.Status.CustomerID)
	}
	if ev := e.waitEvent("acme", v1alpha1.ReasonConflict); ev.Type != corev1.EventTypeWarning {
		t.Fatalf("the Conflict state change must be a Warning Event, got %s", ev.Type)
	}
	if proof(c) != nil {
		t.Fatal("no create may be pending once the email is known to be taken")
	}
	time.Sleep(4 * time.Second) // backoff in tests: 1 s doubling to 2 s
	if n := e.calls(http.MethodPost, routeCreate); n != 0 {
		t.Fatalf("the listing before the create shows the email: want no create attempt, got %d", n)
	}
	if n := e.calls(http.MethodGet, routeList); n > 5 {
		t.Fatalf("retry storm: %d listings in about 5 s", n)
	}
	if recs := e.records(); len(recs) != 1 || recs[0] != existing {
		t.Fatalf("the existing record must be untouched and alone: %+v", recs)
	}
	// A spec change retries at once: adopting it now.
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.Adoption = v1alpha1.AdoptionIfExists })
	got := e.waitReady("acme")
	if got.Status.CustomerID != existing.ID {
		t.Fatalf("adopted %q, want %q", got.Status.CustomerID, existing.ID)
	}
}

func TestCreateConflictWithAdoptionTakesTheRecordOverAndUpdatesIt(t *testing.T) {
	e := newEnv(t, managerOpts{})
	existing := e.sim.Seed(canaryKey, scriptlock.Customer{Company: "Old", FirstName: "Other", LastName: "Person", Email: "taken@example.com"})
	c := e.customer("acme", "Taken@Example.com")
	c.Spec.Adoption = v1alpha1.AdoptionIfExists
	e.create(c)
	got := e.waitReady("acme")
	if got.Status.CustomerID != existing.ID {
		t.Fatalf("adopted %q, want %q", got.Status.CustomerID, existing.ID)
	}
	rec, _ := e.sim.Record(canaryKey, existing.ID)
	if rec.FirstName != "Example" || rec.Company != "Example Company Inc." || rec.Email != "Taken@Example.com" {
		t.Fatalf("adopted record not updated to the spec: %+v", rec)
	}
	if recs := e.records(); len(recs) != 1 {
		t.Fatalf("want one record, got %+v", recs)
	}
	e.waitEvent("acme", "Adopted")
}

func TestSpecCustomerIDIsObservedThenUpdated(t *testing.T) {
	e := newEnv(t, managerOpts{})
	existing := e.sim.Seed(canaryKey, scriptlock.Customer{FirstName: "Old", LastName: "Name", Email: "old@example.com"})
	c := e.customer("acme", "new@example.com")
	c.Spec.CustomerID = existing.ID
	e.create(c)
	got := e.waitReady("acme")
	if got.Status.CustomerID != existing.ID {
		t.Fatalf("status.customerID %q, want %q", got.Status.CustomerID, existing.ID)
	}
	rec, _ := e.sim.Record(canaryKey, existing.ID)
	if rec.Email != "new@example.com" || rec.FirstName != "Example" {
		t.Fatalf("record not updated: %+v", rec)
	}
	if n := e.calls(http.MethodPost, routeCreate); n != 0 {
		t.Fatalf("spec.customerID must never create, got %d creates", n)
	}

	missing := e.customer("missing", "missing@example.com")
	missing.Spec.CustomerID = "999999"
	e.create(missing)
	e.waitReason("missing", metav1.ConditionFalse, v1alpha1.ReasonNotFound, 15*time.Second)
	if n := e.calls(http.MethodPost, routeCreate); n != 0 {
		t.Fatalf("spec.customerID must never create, got %d creates", n)
	}
}

func TestTwoCustomersClaimingOneRecordOrEmail(t *testing.T) {
	e := newEnv(t, managerOpts{})
	first := e.waitReadyAfterCreate("first", "shared@example.com")

	e.create(e.customer("same-email", "SHARED@example.com"))
	e.waitReason("same-email", metav1.ConditionFalse, v1alpha1.ReasonConflict, 15*time.Second)
	if msg := e.ready("same-email").Message; !strings.Contains(msg, "first") {
		t.Fatalf("the message must name the Customer that holds the record: %q", msg)
	}

	byID := e.customer("same-id", "other@example.com")
	byID.Spec.CustomerID = first.Status.CustomerID
	e.create(byID)
	e.waitReason("same-id", metav1.ConditionFalse, v1alpha1.ReasonConflict, 15*time.Second)

	if recs := e.records(); len(recs) != 1 {
		t.Fatalf("want one record, got %+v", recs)
	}
	if rec, _ := e.sim.Record(canaryKey, first.Status.CustomerID); rec.Email != "shared@example.com" {
		t.Fatalf("the loser changed the record: %+v", rec)
	}
	// Deleting a loser must never delete the winner's record.
	for _, name := range []string{"same-email", "same-id"} {
		if err := e.k8s.Delete(e.ctx, e.get(name)); err != nil {
			t.Fatal(err)
		}
		e.waitGone(name, 15*time.Second)
	}
	if n := e.calls(http.MethodDelete, routeOne); n != 0 {
		t.Fatalf("a losing Customer's deletion called DELETE %d times", n)
	}
	if recs := e.records(); len(recs) != 1 {
		t.Fatalf("want the winner's record kept, got %+v", recs)
	}
}

// crashProxy forwards to the simulator; on the first create (or the first
// call of method, when set) it lets the simulator do it, then never
// answers, as if the operator had died with the answer on the wire.
type crashProxy struct {
	next    http.Handler
	method  string
	once    sync.Once
	created chan struct{}
	release chan struct{}
}

func (p *crashProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	first := false
	if p.method == "" && r.Method == http.MethodPost && r.URL.Path == "/api/customer" ||
		p.method != "" && r.Method == p.method && strings.HasPrefix(r.URL.Path, "/api/customer/") {
		p.once.Do(func() { first = true })
	}
	if !first {
		p.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	p.next.ServeHTTP(rec, r)
	close(p.created)
	select {
	case <-p.release:
	case <-r.Context().Done():
	}
}

// createThenCrash runs a manager that reaches ScriptLock through a
// crashProxy, creates a Customer and stops the manager (as a kill would)
// once the record exists but before the create's answer is read.
func (e *env) createThenCrash(name, email string) {
	e.t.Helper()
	proxy := &crashProxy{next: e.sim, created: make(chan struct{}), release: make(chan struct{})}
	ps := serve(e.t, proxy)
	e.t.Cleanup(func() { close(proxy.release) })
	e.opts.url = ps.URL
	e.startManager()
	e.create(e.customer(name, email))
	select {
	case <-proxy.created:
	case <-time.After(patience):
		e.t.Fatal("the operator never created the record")
	}
	e.stopManager()
	// Later managers reach ScriptLock at the same address, as a restarted
	// operator would; the proxy holds back only the first create.
}

func TestOperatorKilledBetweenCreateAndStatusWriteAdoptsItsRecord(t *testing.T) {
	e := newEnv(t, managerOpts{noStart: true})
	e.createThenCrash("acme", "crash@example.com")

	c := e.get("acme")
	if c.Status.CustomerID != "" {
		t.Fatalf("test setup: status already written: %q", c.Status.CustomerID)
	}
	if proof(c) == nil || !containsString(c.Finalizers, v1alpha1.Finalizer) {
		t.Fatalf("the finalizer and the pending create must be persisted before the create: %+v %+v", c.ObjectMeta, c.Status)
	}
	e.startManager()
	got := e.waitReady("acme")
	recs := e.records()
	if len(recs) != 1 || recs[0].ID != got.Status.CustomerID {
		t.Fatalf("want exactly one record, the adopted one %q: %+v", got.Status.CustomerID, recs)
	}
	if n := e.calls(http.MethodPost, routeCreate); n != 1 {
		t.Fatalf("want one create in all, got %d", n)
	}
}

func TestLostCreateAnswerLeavesOneRecord(t *testing.T) {
	for name, mode := range map[string]sim.LoseMode{"answered 500": sim.LoseWith500, "connection dropped": sim.LoseByDroppingConnection} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, managerOpts{})
			e.sim.LoseNextCreate(mode)
			e.create(e.customer("acme", "lost@example.com"))
			got := e.waitReady("acme")
			recs := e.records()
			if len(recs) != 1 || recs[0].ID != got.Status.CustomerID {
				t.Fatalf("want one record %q, got %+v", got.Status.CustomerID, recs)
			}
		})
	}
}

func TestDeletePolicies(t *testing.T) {
	e := newEnv(t, managerOpts{})
	del := e.waitReadyAfterCreate("delete-me", "delete@example.com")
	orphan := e.customer("orphan-me", "orphan@example.com")
	orphan.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
	e.create(orphan)
	orphaned := e.waitReady("orphan-me")

	for _, c := range []*v1alpha1.Customer{del, orphaned} {
		if err := e.k8s.Delete(e.ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	e.waitGone("delete-me", 15*time.Second)
	e.waitGone("orphan-me", 15*time.Second)
	if _, ok := e.sim.Record(canaryKey, del.Status.CustomerID); ok {
		t.Fatal("deletionPolicy Delete must delete the record")
	}
	if _, ok := e.sim.Record(canaryKey, orphaned.Status.CustomerID); !ok {
		t.Fatal("deletionPolicy Orphan must keep the record")
	}
	if n := e.calls(http.MethodDelete, routeOne); n != 1 {
		t.Fatalf("want exactly one DELETE, got %d", n)
	}
	e.waitEvent("delete-me", "LicensesRevoked")
	e.waitEvent("orphan-me", "Orphaned")
}

func TestDeleteOfARecordAlreadyGoneCompletes(t *testing.T) {
	e := newEnv(t, managerOpts{})
	c := e.waitReadyAfterCreate("acme", "already@example.com")
	e.sim.DeleteOutOfBand(canaryKey, c.Status.CustomerID)
	if err := e.k8s.Delete(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	e.waitGone("acme", 15*time.Second)
}

func TestDeleteRefusedKeepsTheFinalizerUntilScriptLockAllowsIt(t *testing.T) {
	e := newEnv(t, managerOpts{})
	c := e.waitReadyAfterCreate("acme", "blocked@example.com")
	e.sim.RefuseDelete(canaryKey, c.Status.CustomerID, "customer has active licenses under review")
	if err := e.k8s.Delete(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	e.eventually(15*time.Second, "DeletionBlocked", func() error {
		cond := e.ready("acme")
		if cond == nil || cond.Reason != v1alpha1.ReasonDeletionBlocked {
			return fmt.Errorf("Ready %+v", cond)
		}
		if !strings.Contains(cond.Message, "active licenses under review") {
			return fmt.Errorf("message must carry ScriptLock's: %q", cond.Message)
		}
		return nil
	})
	if !containsString(e.get("acme").Finalizers, v1alpha1.Finalizer) {
		t.Fatal("the finalizer must stay while ScriptLock refuses")
	}
	if ev := e.waitEvent("acme", v1alpha1.ReasonDeletionBlocked); !strings.Contains(ev.Note, "active licenses under review") {
		t.Fatalf("the DeletionBlocked Event must carry ScriptLock's message: %q", ev.Note)
	}
	time.Sleep(3 * time.Second)
	if n := e.calls(http.MethodDelete, routeOne); n > 4 {
		t.Fatalf("retry storm: %d DELETEs in about 4 s", n)
	}
	e.sim.AllowDelete(canaryKey, c.Status.CustomerID)
	e.waitGone("acme", 15*time.Second)
	if _, ok := e.sim.Record(canaryKey, c.Status.CustomerID); ok {
		t.Fatal("the record must be deleted once allowed")
	}
}

func TestUnauthorizedBacksOff(t *testing.T) {
	e := newEnv(t, managerOpts{})
	e.secret(e.ns, "wrong", map[string]string{"apiKey": "not-a-key-the-simulator-knows", "url": e.srv.URL})
	c := e.customerWith("acme", "unauth@example.com", "wrong")
	e.create(c)
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonUnauthorized, 15*time.Second)
	time.Sleep(3 * time.Second)
	if n := e.sim.Calls()["POST /api/customer 401"] + e.sim.Calls()["GET /api/customers 401"]; n < 1 || n > 4 {
		t.Fatalf("want a few backed-off attempts, got %d (%v)", n, e.sim.Calls())
	}
	// Nothing was created, so deleting it needs no word from ScriptLock.
	e.sim.ResetCalls()
	if err := e.k8s.Delete(e.ctx, e.get("acme")); err != nil {
		t.Fatal(err)
	}
	e.waitGone("acme", 10*time.Second)
	// A backed-off retry may still list the account; the deletion itself
	// sends nothing.
	if calls := e.sim.Calls(); e.calls(http.MethodDelete, routeOne)+e.calls(http.MethodPost, routeCreate) != 0 {
		t.Fatalf("deleting a Customer that never had a record wrote to ScriptLock: %v", calls)
	}
}

func TestDeletedWhileTheCreateOutcomeWasUnknownDeletesTheRecord(t *testing.T) {
	e := newEnv(t, managerOpts{noStart: true})
	e.createThenCrash("acme", "limbo@example.com")
	if err := e.k8s.Delete(e.ctx, e.get("acme")); err != nil {
		t.Fatal(err)
	}
	e.startManager()
	e.waitGone("acme", 15*time.Second)
	if recs := e.records(); len(recs) != 0 {
		t.Fatalf("the record created before the crash was left behind: %+v", recs)
	}
}

func TestSecretOfAnotherNamespaceIsNeverUsed(t *testing.T) {
	e := newEnv(t, managerOpts{})
	other := e.ns + "-other"
	if err := e.k8s.Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}}); err != nil {
		t.Fatal(err)
	}
	const foreignKey = "foreign-namespace-key-7c1e"
	e.sim.AddAccount(foreignKey)
	e.secret(other, "creds", map[string]string{"apiKey": foreignKey, "url": e.srv.URL})
	c := e.customerWith("acme", "foreign@example.com", "creds")
	e.create(c)
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonInvalidCredentials, 15*time.Second)
	if msg := e.ready("acme").Message; !strings.Contains(msg, "not found in namespace "+`"`+e.ns+`"`) {
		t.Fatalf("message: %q", msg)
	}
	if calls := e.sim.Calls(); len(calls) != 0 {
		t.Fatalf("no ScriptLock call may be made: %v", calls)
	}
	if recs := e.sim.Records(foreignKey); len(recs) != 0 {
		t.Fatalf("the other namespace's account was used: %+v", recs)
	}
}

func TestCredentialsSecretSelectsTheAccount(t *testing.T) {
	e := newEnv(t, managerOpts{})
	const secondKey = "second-account-key-91ab"
	e.sim.AddAccount(secondKey)
	e.secret(e.ns, "creds", map[string]string{"apiKey": secondKey, "url": e.srv.URL})
	c := e.customerWith("acme", "second@example.com", "creds")
	e.create(c)
	got := e.waitReady("acme")
	if recs := e.sim.Records(secondKey); len(recs) != 1 || recs[0].ID != got.Status.CustomerID {
		t.Fatalf("record not in the Secret's account: %+v", recs)
	}
	if recs := e.records(); len(recs) != 0 {
		t.Fatalf("record created in the default account: %+v", recs)
	}
	// The same email in the default account is another record, not a conflict.
	e.create(e.customer("default-acct", "second@example.com"))
	e.waitReady("default-acct")
}

func TestRetryAfterIsHonoured(t *testing.T) {
	e := newEnv(t, managerOpts{})
	e.sim.FailNext(http.MethodPost, routeCreate, 1, http.StatusServiceUnavailable, 2*time.Second)
	start := time.Now()
	e.create(e.customer("acme", "busy@example.com"))
	e.waitReady("acme")
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("Ready after %s: Retry-After of 2 s was not honoured", d)
	}
	if recs := e.records(); len(recs) != 1 {
		t.Fatalf("want one record, got %+v", recs)
	}
}

func TestOtherErrorsAreReportedThenRecovered(t *testing.T) {
	e := newEnv(t, managerOpts{})
	e.sim.FailNext(http.MethodPost, routeCreate, 2, http.StatusBadGateway, 0)
	e.create(e.customer("acme", "flaky@example.com"))
	e.eventually(10*time.Second, "APIError with the status code", func() error {
		c := e.ready("acme")
		if c == nil || c.Reason != v1alpha1.ReasonAPIError || !strings.Contains(c.Message, "502") {
			return fmt.Errorf("Ready %+v", c)
		}
		return nil
	})
	e.waitReady("acme")
	if recs := e.records(); len(recs) != 1 {
		t.Fatalf("want one record, got %+v", recs)
	}
}

func TestPausedCustomerIsLeftAlone(t *testing.T) {
	e := newEnv(t, managerOpts{})
	c := e.customer("acme", "paused@example.com")
	c.Annotations = map[string]string{v1alpha1.PausedAnnotation: "true"}
	e.create(c)
	time.Sleep(2 * time.Second)
	if calls := e.sim.Calls(); len(calls) != 0 {
		t.Fatalf("a paused Customer made ScriptLock calls: %v", calls)
	}
	if got := e.get("acme"); len(got.Finalizers) != 0 || len(got.Status.Conditions) != 0 {
		t.Fatalf("a paused Customer was changed: %+v", got)
	}
	e.update("acme", func(c *v1alpha1.Customer) { delete(c.Annotations, v1alpha1.PausedAnnotation) })
	ready := e.waitReady("acme")

	// Paused, then deleted: the finalizer stays until unpaused.
	e.update("acme", func(c *v1alpha1.Customer) {
		metav1.SetMetaDataAnnotation(&c.ObjectMeta, v1alpha1.PausedAnnotation, "true")
	})
	time.Sleep(500 * time.Millisecond)
	if err := e.k8s.Delete(e.ctx, ready); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if got := e.get("acme"); !containsString(got.Finalizers, v1alpha1.Finalizer) {
		t.Fatal("a paused Customer lost its finalizer")
	}
	if n := e.calls(http.MethodDelete, routeOne); n != 0 {
		t.Fatalf("a paused Customer's record was deleted (%d calls)", n)
	}
	e.update("acme", func(c *v1alpha1.Customer) { delete(c.Annotations, v1alpha1.PausedAnnotation) })
	e.waitGone("acme", 15*time.Second)
	if n := e.calls(http.MethodDelete, routeOne); n != 1 {
		t.Fatalf("want one DELETE after unpausing, got %d", n)
	}
}

func TestBadManifestsAreRefusedAtAdmission(t *testing.T) {
	e := newEnv(t, managerOpts{noStart: true})
	long := strings.Repeat("x", 256)
	cases := []struct {
		name   string
		mutate func(*v1alpha1.Customer)
		want   string
	}{
		{"missing first name", func(c *v1alpha1.Customer) { c.Spec.FirstName = "" }, "spec.firstName"},
		{"missing email", func(c *v1alpha1.Customer) { c.Spec.Email = "" }, "spec.email"},
		{"malformed email", func(c *v1alpha1.Customer) { c.Spec.Email = "not-an-email" }, "email must be a valid address"},
		{"over-long company", func(c *v1alpha1.Customer) { c.Spec.Company = long }, "spec.company"},
		{"over-long last name", func(c *v1alpha1.Customer) { c.Spec.LastName = long }, "spec.lastName"},
		{"over-long email", func(c *v1alpha1.Customer) { c.Spec.Email = strings.Repeat("a", 250) + "@x.io" }, "spec.email"},
		{"unknown deletion policy", func(c *v1alpha1.Customer) { c.Spec.DeletionPolicy = "Keep" }, "spec.deletionPolicy"},
		{"unknown adoption", func(c *v1alpha1.Customer) { c.Spec.Adoption = "Always" }, "spec.adoption"},
		{"unknown management policy", func(c *v1alpha1.Customer) { c.Spec.ManagementPolicy = "Watch" }, "spec.managementPolicy"},
		{"customerID with a slash", func(c *v1alpha1.Customer) { c.Spec.CustomerID = "../42" }, "spec.customerID"},
		{"company with a trailing space", func(c *v1alpha1.Customer) { c.Spec.Company = "Spaced Co " }, "spec.company: Invalid value"},
		{"first name with a leading tab", func(c *v1alpha1.Customer) { c.Spec.FirstName = "\tAnn" }, "spec.firstName: Invalid value"},
		{"last name with a newline inside", func(c *v1alpha1.Customer) { c.Spec.LastName = "Doe\nInjected" }, "spec.lastName: Invalid value"},
		{"company with a control character", func(c *v1alpha1.Customer) { c.Spec.Company = "Bell\aCo" }, "must not contain control characters"},
		{"email with a trailing space", func(c *v1alpha1.Customer) { c.Spec.Email = "ok@example.com " }, "spec.email: Invalid value"},
		{"Secret name with spaces", func(c *v1alpha1.Customer) {
			c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: " creds"}
		}, "spec.credentialsSecretRef.name"},
	}
	for i, tc := range cases {
		c := e.customer(fmt.Sprintf("bad-%d", i), "ok@example.com")
		tc.mutate(c)
		err := e.k8s.Create(e.ctx, c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error naming %q, got %v", tc.name, tc.want, err)
		}
	}

	c := e.customer("pinned", "ok@example.com")
	c.Spec.CustomerID = "42"
	e.create(c)
	for name, mutate := range map[string]func(*v1alpha1.Customer){
		"change": func(c *v1alpha1.Customer) { c.Spec.CustomerID = "43" },
		"remove": func(c *v1alpha1.Customer) { c.Spec.CustomerID = "" },
	} {
		got := e.get("pinned")
		mutate(got)
		err := e.k8s.Update(e.ctx, got)
		if err == nil || !strings.Contains(err.Error(), "spec.customerID is immutable") {
			t.Errorf("%s of spec.customerID: want the immutability message, got %v", name, err)
		}
	}
	def := e.create(e.customer("defaults", "ok@example.com"))
	if def.Spec.DeletionPolicy != v1alpha1.DeletionPolicyDelete || def.Spec.Adoption != v1alpha1.AdoptionNever || def.Spec.ManagementPolicy != v1alpha1.ManagementPolicyManage {
		t.Fatalf("defaults not applied: %+v", def.Spec)
	}
}

func TestDefaultAccountMissingIsReported(t *testing.T) {
	e := newEnv(t, managerOpts{noKey: true})
	e.create(e.customer("acme", "nokey@example.com"))
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonInvalidCredentials, 15*time.Second)
	if calls := e.sim.Calls(); len(calls) != 0 {
		t.Fatalf("no call may be made without a key: %v", calls)
	}
}

// waitReadyAfterCreate creates a valid Customer and waits for Ready.
func (e *env) waitReadyAfterCreate(name, email string) *v1alpha1.Customer {
	e.t.Helper()
	e.create(e.customer(name, email))
	return e.waitReady(name)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

var (
	_               = io.Discard
	_               = context.Background
	_ client.Object = (*v1alpha1.Customer)(nil)
)

func TestPerObjectResyncReadsEachRecordAndWritesNothing(t *testing.T) {
	e := newEnv(t, managerOpts{resync: time.Second, drift: controllers.DriftPerObject})
	c := e.waitReadyAfterCreate("acme", "resync@example.com")
	time.Sleep(1500 * time.Millisecond)
	rv := e.get("acme").ResourceVersion
	e.sim.ResetCalls()
	time.Sleep(3500 * time.Millisecond)
	if n := e.calls(http.MethodGet, routeOne); n < 2 || n > 5 {
		t.Fatalf("want about one read a second, got %d (%v)", n, e.sim.Calls())
	}
	if n := len(e.sim.Calls()); n != 1 {
		t.Fatalf("a resync that finds nothing to do must only read: %v", e.sim.Calls())
	}
	if got := e.get("acme").ResourceVersion; got != rv {
		t.Fatalf("a resync with nothing to do wrote the object (resourceVersion %s -> %s)", rv, got)
	}
	if got := e.get("acme").Status.CustomerID; got != c.Status.CustomerID {
		t.Fatalf("status.customerID changed: %s -> %s", c.Status.CustomerID, got)
	}
}

func TestKubectlGetShowsTheContractColumns(t *testing.T) {
	e := newEnv(t, managerOpts{noStart: true})
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	if err := e.k8s.Get(e.ctx, client.ObjectKey{Name: "customers.licensing.scriptlock.com"}, crd); err != nil {
		t.Fatal(err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	if len(versions) != 1 {
		t.Fatalf("want one served version, got %d", len(versions))
	}
	cols, _, _ := unstructured.NestedSlice(versions[0].(map[string]any), "additionalPrinterColumns")
	got := map[string]string{}
	for _, c := range cols {
		m := c.(map[string]any)
		got[m["name"].(string)] = m["jsonPath"].(string)
	}
	for name, path := range map[string]string{
		"Email": ".spec.email", "Company": ".spec.company", "Customer ID": ".status.customerID",
		"Ready": `.status.conditions[?(@.type=="Ready")].status`, "Age": ".metadata.creationTimestamp",
	} {
		if got[name] != path {
			t.Errorf("column %q: jsonPath %q, want %q", name, got[name], path)
		}
	}
	if sub, _, _ := unstructured.NestedMap(versions[0].(map[string]any), "subresources", "status"); sub == nil {
		t.Error("the status subresource is missing")
	}
}

func TestAJustAppliedCustomerIsInProgressForKstatus(t *testing.T) {
	e := newEnv(t, managerOpts{noStart: true})
	e.create(e.customer("acme", "fresh@example.com"))
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Customer"))
	if err := e.k8s.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "acme"}, u); err != nil {
		t.Fatal(err)
	}
	res, err := kstatus.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != kstatus.InProgressStatus {
		t.Fatalf("a Customer the operator has not reached yet is %s to kstatus (%s), want InProgress: a pipeline would move on before the record exists",
			res.Status, res.Message)
	}
	// Once the operator has been there, it is Current.
	e.startManager()
	e.waitReady("acme")
	if err := e.k8s.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "acme"}, u); err != nil {
		t.Fatal(err)
	}
	if res, err := kstatus.Compute(u); err != nil || res.Status != kstatus.CurrentStatus {
		t.Fatalf("a Ready Customer is %v to kstatus (%v)", res, err)
	}
}

// A spec change that ScriptLock already holds is read, not written: no PUT,
// no Updated Event, Ready at the new generation.
func TestASpecChangeScriptLockAlreadyHoldsWritesNothing(t *testing.T) {
	e := newEnv(t, managerOpts{})
	c := e.waitReadyAfterCreate("acme", "same@example.com")
	// Someone made the record what the spec is about to say.
	e.sim.EditOutOfBand(canaryKey, c.Status.CustomerID, func(r *scriptlock.Customer) { r.LastName = "Renamed" })
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Renamed" })
	e.eventually(10*time.Second, "the new generation observed", func() error {
		if got := e.get("acme"); got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("observed %d, generation %d", got.Status.ObservedGeneration, got.Generation)
		}
		return nil
	})
	e.waitReady("acme")
	if n := len(e.events("acme", "Updated")) + len(e.events("acme", "DriftCorrected")); n != 0 {
		t.Fatalf("nothing changed in ScriptLock, yet %d Updated/DriftCorrected Events", n)
	}
	if n := e.calls(http.MethodPut, routeOne); n != 0 {
		t.Fatalf("%d PUTs for a spec ScriptLock already holds", n)
	}
}
