package controllers_test

// What the operator costs the API server: the writes a new Customer needs
// until it is Ready, and the reads a pass makes on a cached copy that is
// the operator's own last write.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// writeCounter counts, per Customer name, the writes the reconciler sends
// through its client: metadata patches and updates, and status patches and
// updates.
type writeCounter struct {
	mu     sync.Mutex
	meta   map[string]int
	status map[string]int
}

func newWriteCounter() *writeCounter {
	return &writeCounter{meta: map[string]int{}, status: map[string]int{}}
}

func (w *writeCounter) count(m map[string]int, obj client.Object) {
	if _, ok := obj.(*v1alpha1.Customer); !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	m[obj.GetName()]++
}

func (w *writeCounter) of(name string) (meta, status int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.meta[name], w.status[name]
}

func (w *writeCounter) wrap(c client.Client) client.Client { return &countingClient{Client: c, w: w} }

type countingClient struct {
	client.Client
	w *writeCounter
}

func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.w.count(c.w.meta, obj)
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.w.count(c.w.meta, obj)
	return c.Client.Update(ctx, obj, opts...)
}

func (c *countingClient) Status() client.SubResourceWriter {
	return &countingStatus{SubResourceWriter: c.Client.Status(), w: c.w}
}

type countingStatus struct {
	client.SubResourceWriter
	w *writeCounter
}

func (s *countingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.w.count(s.w.status, obj)
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

func (s *countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	s.w.count(s.w.status, obj)
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

// eventsAbout returns the reasons of every Event about the named Customer.
func (e *env) eventsAbout(name string) []string {
	e.t.Helper()
	evs := &eventsv1.EventList{}
	if err := e.k8s.List(e.ctx, evs, client.InNamespace(e.ns)); err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range evs.Items {
		if ev.Regarding.Name == name {
			out = append(out, ev.Reason)
		}
	}
	return out
}

// TestANewCustomerCostsThreeWrites: a new Customer costs the API server one
// metadata patch (the finalizer with the create-time proof, before the
// POST), one status patch (the record bound, Ready=True) and one Event
// (Created), and still has its proof, bound to its UID, on the object
// before the create is sent.
func TestANewCustomerCostsThreeWrites(t *testing.T) {
	w := newWriteCounter()
	e := newEnv(t, managerOpts{wrapClient: w.wrap})
	e.create(e.customer("acme", "three@example.com"))
	got := e.waitReady("acme")
	// Let every pass the writes wake settle: none may write again.
	e.eventually(10*time.Second, "the Created Event", func() error {
		if len(e.events("acme", "Created")) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	time.Sleep(time.Second)
	meta, status := w.of("acme")
	events := e.eventsAbout("acme")
	if meta != 1 || status != 1 || len(events) != 1 {
		t.Fatalf("a new Customer cost %d metadata patches, %d status patches and Events %v (%d writes); want 1, 1 and [Created] (3)",
			meta, status, events, meta+status+len(events))
	}
	if !containsString(got.Finalizers, v1alpha1.Finalizer) {
		t.Fatalf("no finalizer on a Customer with a record: %v", got.Finalizers)
	}
	if got.Status.PendingCreate != nil {
		t.Fatalf("status.pendingCreate kept after the record was bound: %+v", got.Status.PendingCreate)
	}
	if n := e.calls(http.MethodPost, routeCreate); n != 1 {
		t.Fatalf("want one create, got %d", n)
	}
}

// readCounter counts the reads of Customers that go straight to the API
// server.
type readCounter struct {
	client.Reader
	mu sync.Mutex
	n  int
}

func (r *readCounter) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*v1alpha1.Customer); ok {
		r.mu.Lock()
		r.n++
		r.mu.Unlock()
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

func (r *readCounter) reads() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// TestAPassOnItsOwnLastWriteReadsNothingFresh: a Customer without a record
// (here in Conflict: its email is another record's) is retried on its
// stalled backoff; each retry's cached copy is the operator's own last
// write of it (the Conflict status), which holds everything the operator
// wrote, so no retry reads the object again from the API server.
func TestAPassOnItsOwnLastWriteReadsNothingFresh(t *testing.T) {
	rc := &readCounter{}
	e := newEnv(t, managerOpts{wrapAPIReader: func(r client.Reader) client.Reader { rc.Reader = r; return rc }})
	taken := e.sim.Seed(canaryKey, scriptlock.Customer{FirstName: "Some", LastName: "One", Email: "taken@example.com"})
	e.create(e.customer("acme", "taken@example.com"))
	c := e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonConflict, 20*time.Second)
	rv := c.ResourceVersion
	// Each retry reads the record that has the email (findTaken): two
	// more of them are two more passes.
	reads, before := rc.reads(), e.calls(http.MethodGet, routeOne)
	e.eventually(30*time.Second, "two more passes", func() error {
		if n := e.calls(http.MethodGet, routeOne); n < before+2 {
			return fmt.Errorf("%d record reads since, want 2", n-before)
		}
		return nil
	})
	if got := e.get("acme").ResourceVersion; got != rv {
		t.Fatalf("test setup: the retries wrote the Customer (resourceVersion %s -> %s)", rv, got)
	}
	if n := rc.reads() - reads; n != 0 {
		t.Fatalf("%d fresh reads of a Customer whose cached copy is the operator's own last write", n)
	}
	if recs := e.records(); len(recs) != 1 || recs[0].ID != taken.ID {
		t.Fatalf("want only the record that had the email, got %+v", recs)
	}
}

// proof returns the create-time proof c holds, as the README states it:
// the annotation licensing.scriptlock.com/pending-create naming c's UID
// while no record is bound, else status.pendingCreate; nil if none.
func proof(c *v1alpha1.Customer) *v1alpha1.PendingCreate {
	if v, ok := c.Annotations[v1alpha1.PendingCreateAnnotation]; ok && c.Status.CustomerID == "" {
		p := &v1alpha1.PendingCreate{}
		if json.Unmarshal([]byte(v), p) == nil && p.UID == string(c.UID) {
			return p
		}
	}
	return c.Status.PendingCreate
}

// TestACopyMadeWhileACreateIsUnansweredProvesNothing: the operator dies
// after the POST, before the status write; a copy of the object is made
// meanwhile (kubectl get -o yaml, renamed), carrying the create-time proof
// annotation with the original's UID. The original finds its record; the
// copy proves nothing with that annotation: Conflict, no write to the
// record, and it never binds it, not even once the original is gone
// (Orphan) and its record stays.
func TestACopyMadeWhileACreateIsUnansweredProvesNothing(t *testing.T) {
	e := newEnv(t, managerOpts{noStart: true})
	e.createThenCrash("orig", "unanswered@example.com")
	if p := proof(e.get("orig")); p == nil {
		t.Fatal("test setup: no proof on the original")
	}
	e.copyOf("orig", "copy", nil)
	if _, ok := e.get("copy").Annotations[v1alpha1.PendingCreateAnnotation]; !ok {
		t.Fatal("test setup: the copy does not carry the annotation")
	}
	e.startManager()
	orig := e.waitReady("orig")
	e.waitReason("copy", metav1.ConditionFalse, v1alpha1.ReasonConflict, 20*time.Second)
	e.update("orig", func(c *v1alpha1.Customer) { c.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan })
	e.deleteAndWait("orig")
	e.waitReason("copy", metav1.ConditionFalse, v1alpha1.ReasonConflict, 20*time.Second)
	if c := e.get("copy"); c.Status.CustomerID != "" {
		t.Fatalf("the copy bound %q", c.Status.CustomerID)
	}
	if recs := e.records(); len(recs) != 1 || recs[0].ID != orig.Status.CustomerID {
		t.Fatalf("want only the original's record %s, got %+v", orig.Status.CustomerID, recs)
	}
	if puts, deletes := e.writes(); puts+deletes != 0 {
		t.Fatalf("%d PUTs and %d DELETEs: the copy wrote a record it cannot prove", puts, deletes)
	}
}

// A Customer that takes a record it did not create and finds it equal to
// its spec writes nothing to ScriptLock, so no create-time proof carries
// its finalizer: it must still have one before it is bound, or deleting it
// would go without the operator and leave the record (checked for the
// explorer's seeds 300137, 300283 and 300765, whose deletions followed a
// change of key: not the cause there).
func TestACustomerThatTakesARecordWithoutWritingHasItsFinalizer(t *testing.T) {
	for name, tell := range map[string]func(c *v1alpha1.Customer, id string){
		"adoption IfExists":   func(c *v1alpha1.Customer, _ string) { c.Spec.Adoption = v1alpha1.AdoptionIfExists },
		"spec.customerID set": func(c *v1alpha1.Customer, id string) { c.Spec.CustomerID = id },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, managerOpts{})
			c := e.customer("acme", "taken-as-is@example.com")
			rec := e.sim.Seed(canaryKey, scriptlock.Customer{Company: c.Spec.Company, FirstName: c.Spec.FirstName, LastName: c.Spec.LastName, Email: c.Spec.Email})
			tell(c, rec.ID)
			e.create(c)
			got := e.waitReady("acme")
			if got.Status.CustomerID != rec.ID {
				t.Fatalf("bound %q, want %q", got.Status.CustomerID, rec.ID)
			}
			if n := e.calls(http.MethodPut, routeOne) + e.calls(http.MethodPost, routeCreate); n != 0 {
				t.Fatalf("a record equal to the spec was written %d times", n)
			}
			if !containsString(got.Finalizers, v1alpha1.Finalizer) {
				t.Fatalf("bound without the finalizer: %v", got.Finalizers)
			}
			e.deleteAndWait("acme")
			if _, ok := e.sim.Record(canaryKey, rec.ID); ok {
				t.Fatal("the Customer went, and the record it took stayed in ScriptLock")
			}
		})
	}
}
