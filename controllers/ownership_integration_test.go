package controllers_test

// The ownership rule of issue 8, input by input: a ScriptLock record is
// written or deleted only by the one Customer that can prove it owns it.
// Each test is one failing input seen before the rule, and at least one
// more input of the same kind.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

// copyOf creates a Customer named name from the stored object from, as a
// user does with kubectl get -o json: status, uid, resourceVersion,
// creationTimestamp, generation and managedFields dropped, everything else
// (finalizers, annotations) kept.
func (e *env) copyOf(from, name string, mutate func(*v1alpha1.Customer)) {
	e.t.Helper()
	src := e.get(from)
	c := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: e.ns, Labels: src.Labels, Annotations: src.Annotations, Finalizers: src.Finalizers,
	}, Spec: src.Spec}
	if mutate != nil {
		mutate(c)
	}
	e.create(c)
}

// dropStatus empties the status of the Customer, as a restore without
// status does.
func (e *env) dropStatus(name string) {
	e.t.Helper()
	e.eventually(10*time.Second, "drop the status of "+name, func() error {
		c := e.get(name)
		c.Status = v1alpha1.CustomerStatus{}
		return e.k8s.Status().Update(e.ctx, c)
	})
}

// writes counts the PUT and DELETE calls the simulator has seen.
func (e *env) writes() (puts, deletes int) {
	return e.calls(http.MethodPut, routeOne), e.calls(http.MethodDelete, routeOne)
}

func (e *env) deleteAndWait(name string) {
	e.t.Helper()
	if err := e.k8s.Delete(e.ctx, e.get(name)); err != nil {
		e.t.Fatal(err)
	}
	e.waitGone(name, 15*time.Second)
}

func TestACopiedCustomerNeverTouchesTheOriginalsRecord(t *testing.T) {
	t.Run("copy with another email gets a record of its own", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		orig := e.waitReadyAfterCreate("orig", "orig@example.com")
		before, _ := e.sim.Record(canaryKey, orig.Status.CustomerID)
		e.copyOf("orig", "copy", func(c *v1alpha1.Customer) {
			c.Spec.FirstName, c.Spec.Email = "Other", "other@example.com"
		})
		cp := e.waitReady("copy")
		if cp.Status.CustomerID == orig.Status.CustomerID {
			t.Fatalf("the copy bound the original's record %s", orig.Status.CustomerID)
		}
		e.sweep()
		if after, _ := e.sim.Record(canaryKey, orig.Status.CustomerID); after != before {
			t.Fatalf("the original's record was written: %+v -> %+v", before, after)
		}
		if puts, _ := e.writes(); puts != 0 {
			t.Fatalf("%d PUTs: nothing had to be updated", puts)
		}
		e.deleteAndWait("copy")
		if _, ok := e.sim.Record(canaryKey, orig.Status.CustomerID); !ok {
			t.Fatal("deleting the copy deleted the original's record")
		}
		if _, ok := e.sim.Record(canaryKey, cp.Status.CustomerID); ok {
			t.Fatal("deleting the copy kept its own record")
		}
	})
	t.Run("copy with the same email is a Conflict and deletes nothing", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		orig := e.waitReadyAfterCreate("orig", "orig@example.com")
		before, _ := e.sim.Record(canaryKey, orig.Status.CustomerID)
		e.copyOf("orig", "copy", func(c *v1alpha1.Customer) { c.Spec.FirstName = "Other" })
		e.waitReason("copy", metav1.ConditionFalse, v1alpha1.ReasonConflict, 15*time.Second)
		e.deleteAndWait("copy")
		if after, ok := e.sim.Record(canaryKey, orig.Status.CustomerID); !ok || after != before {
			t.Fatalf("the original's record changed: %+v -> %+v (exists %v)", before, after, ok)
		}
		if puts, deletes := e.writes(); puts+deletes != 0 {
			t.Fatalf("the copy wrote to ScriptLock: %d PUTs, %d DELETEs", puts, deletes)
		}
		if n := len(e.events("copy", "LicensesRevoked")); n != 0 {
			t.Fatalf("the copy never had a record, yet claims to have revoked licenses (%d Events)", n)
		}
	})
}

func TestAnUnrelatedRecordWithTheEmailIsNeverAdoptedWithoutConsent(t *testing.T) {
	cases := []struct {
		name string
		// afterListing seeds the record after the account was listed, so
		// the create is sent and ScriptLock answers it.
		afterListing bool
		fault        func(*sim.Server)
	}{
		{name: "listed before the create"},
		{name: "created after the listing, create answered 409", afterListing: true},
		{name: "created after the listing, create answered 503 that created nothing", afterListing: true, fault: func(s *sim.Server) {
			s.FailNext(http.MethodPost, routeCreate, 1, http.StatusServiceUnavailable, 0)
		}},
		{name: "held back by a Retry-After, then listed", fault: func(s *sim.Server) {
			s.FailNext(http.MethodGet, routeList, 1, http.StatusTooManyRequests, time.Second)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, managerOpts{})
			seed := func() scriptlock.Customer {
				return e.sim.Seed(canaryKey, scriptlock.Customer{FirstName: "Someone", LastName: "Else", Email: "taken@example.com"})
			}
			var existing scriptlock.Customer
			if tc.afterListing {
				e.waitReadyAfterCreate("first", "first@example.com") // the account is listed now
				existing = seed()
			} else {
				existing = seed()
			}
			if tc.fault != nil {
				tc.fault(e.sim)
			}
			e.create(e.customer("acme", "taken@example.com"))
			c := e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonConflict, 20*time.Second)
			if c.Status.CustomerID != "" {
				t.Fatalf("bound %q without consent", c.Status.CustomerID)
			}
			if msg := e.ready("acme").Message; !strings.Contains(msg, existing.ID) {
				t.Fatalf("the message must name record %s: %q", existing.ID, msg)
			}
			e.deleteAndWait("acme")
			if rec, ok := e.sim.Record(canaryKey, existing.ID); !ok || rec != existing {
				t.Fatalf("the unrelated record was changed: %+v (exists %v)", rec, ok)
			}
			if puts, deletes := e.writes(); puts+deletes != 0 {
				t.Fatalf("wrote to ScriptLock: %d PUTs, %d DELETEs", puts, deletes)
			}
		})
	}
}

func TestAStaleMarkerNeverBindsAnotherCustomersRecord(t *testing.T) {
	setup := func(t *testing.T) (*env, *v1alpha1.Customer, *v1alpha1.Customer) {
		e := newEnv(t, managerOpts{})
		x := e.waitReadyAfterCreate("x", "a@example.com")
		e.update("x", func(c *v1alpha1.Customer) { c.Spec.Email = "b@example.com" })
		e.eventually(15*time.Second, "x moved to b@", func() error {
			if rec, _ := e.sim.Record(canaryKey, x.Status.CustomerID); rec.Email != "b@example.com" {
				return fmt.Errorf("record %+v", rec)
			}
			return nil
		})
		y := e.waitReadyAfterCreate("y", "a@example.com")
		return e, x, y
	}
	t.Run("the same object loses its status", func(t *testing.T) {
		e, x, y := setup(t)
		e.dropStatus("x")
		e.update("x", func(c *v1alpha1.Customer) { c.Spec.LastName = "Touched" }) // reconcile it now
		e.eventually(15*time.Second, "x reconciled", func() error {
			c := e.get("x")
			if c.Status.ObservedGeneration != c.Generation {
				return fmt.Errorf("not yet")
			}
			if id := c.Status.CustomerID; id != "" && id != x.Status.CustomerID {
				t.Fatalf("x bound record %s, not its own %s", id, x.Status.CustomerID)
			}
			return nil
		})
		e.deleteAndWait("x")
		if _, ok := e.sim.Record(canaryKey, y.Status.CustomerID); !ok {
			t.Fatal("deleting x deleted y's record")
		}
		if got := e.waitReady("y"); got.Status.CustomerID != y.Status.CustomerID {
			t.Fatalf("y lost its record: %q", got.Status.CustomerID)
		}
	})
	t.Run("a restore: a new object with the old metadata and no status", func(t *testing.T) {
		e, x, y := setup(t)
		e.update("x", func(c *v1alpha1.Customer) { c.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan })
		e.copyOf("x", "x-restored", func(c *v1alpha1.Customer) { c.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete })
		e.deleteAndWait("x")
		c := e.waitReason("x-restored", metav1.ConditionFalse, v1alpha1.ReasonConflict, 15*time.Second)
		if msg := e.ready("x-restored").Message; !strings.Contains(msg, x.Status.CustomerID) {
			t.Fatalf("the Conflict must name its old record %s and how to take it: %q", x.Status.CustomerID, msg)
		}
		if c.Status.CustomerID != "" {
			t.Fatalf("bound %q", c.Status.CustomerID)
		}
		e.deleteAndWait("x-restored")
		for _, id := range []string{x.Status.CustomerID, y.Status.CustomerID} {
			if _, ok := e.sim.Record(canaryKey, id); !ok {
				t.Fatalf("record %s was deleted", id)
			}
		}
	})
}

func TestAChangedAccountWritesNothingUntilTheRecordIsProvenThere(t *testing.T) {
	const key = "tenant-key-account-a"
	setup := func(t *testing.T) (*env, *v1alpha1.Customer) {
		e := newEnv(t, managerOpts{})
		e.sim.AddAccount(key)
		e.secret(e.ns, "creds", map[string]string{"apiKey": key, "url": e.srv.URL})
		c := e.customer("acme", "tenant@example.com")
		c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds"}
		e.create(c)
		return e, e.waitReady("acme")
	}
	t.Run("url pointed at another ScriptLock where the id is someone else", func(t *testing.T) {
		e, c := setup(t)
		other, otherURL := e.otherScriptLock(key)
		someone := other.Seed(key, scriptlock.Customer{FirstName: "Some", LastName: "One", Email: "someone@example.com"})
		if someone.ID != c.Status.CustomerID {
			t.Fatalf("test setup: the other ScriptLock's record is %s, want %s", someone.ID, c.Status.CustomerID)
		}
		e.setSecret("creds", map[string]string{"apiKey": key, "url": otherURL})
		e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Changed" })
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAccountChanged, 15*time.Second)
		e.deleteAndWait("acme")
		if rec, _ := other.Record(key, someone.ID); rec != someone {
			t.Fatalf("someone else's record was written: %+v", rec)
		}
		if n := other.CallCount(http.MethodPut, routeOne) + other.CallCount(http.MethodDelete, routeOne) + other.CallCount(http.MethodPost, routeCreate); n != 0 {
			t.Fatalf("%d writes to the other ScriptLock", n)
		}
		if _, ok := e.sim.Record(key, c.Status.CustomerID); !ok {
			t.Fatal("the record in the first ScriptLock was deleted")
		}
	})
	t.Run("same url, key of another account", func(t *testing.T) {
		e, c := setup(t)
		const otherKey = "tenant-key-account-b"
		e.sim.AddAccount(otherKey)
		e.setSecret("creds", map[string]string{"apiKey": otherKey, "url": e.srv.URL})
		e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Changed" })
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAccountChanged, 15*time.Second)
		if len(e.events("acme", v1alpha1.ReasonRemoteDeleted)) != 0 {
			t.Fatal("a false RemoteDeleted")
		}
		e.deleteAndWait("acme")
		if recs := e.sim.Records(otherKey); len(recs) != 0 {
			t.Fatalf("a second record was created in the other account: %+v", recs)
		}
		if _, ok := e.sim.Record(key, c.Status.CustomerID); !ok {
			t.Fatal("the record was deleted")
		}
	})
	t.Run("a rotated key of the same account carries on", func(t *testing.T) {
		e, c := setup(t)
		const newKey = "tenant-key-account-a-rotated"
		e.sim.RotateKey(key, newKey)
		e.setSecret("creds", map[string]string{"apiKey": newKey, "url": e.srv.URL})
		e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Changed" })
		e.eventually(15*time.Second, "updated under the new key", func() error {
			if rec, _ := e.sim.Record(newKey, c.Status.CustomerID); rec.LastName != "Changed" {
				return fmt.Errorf("record %+v", rec)
			}
			return nil
		})
		got := e.waitReady("acme")
		if got.Status.CustomerID != c.Status.CustomerID || got.Status.Account == c.Status.Account {
			t.Fatalf("want the same record under a new account fingerprint: %+v -> %+v", c.Status, got.Status)
		}
		if n := e.calls(http.MethodPost, routeCreate); n != 1 {
			t.Fatalf("%d creates: a rotation must not create", n)
		}
	})
}

func TestAClaimantWhoseSecretCannotBeReadStillClaims(t *testing.T) {
	for _, breakSecret := range []string{"deleted", "apiKey removed"} {
		t.Run(breakSecret, func(t *testing.T) {
			e := newEnv(t, managerOpts{})
			e.secret(e.ns, "creds", map[string]string{"apiKey": canaryKey, "url": e.srv.URL})
			y := e.customer("y", "y@example.com")
			y.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds"}
			e.create(y)
			yid := e.waitReady("y").Status.CustomerID
			s := &corev1.Secret{}
			if err := e.k8s.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "creds"}, s); err != nil {
				t.Fatal(err)
			}
			if breakSecret == "deleted" {
				err := e.k8s.Delete(e.ctx, s)
				if err != nil {
					t.Fatal(err)
				}
			} else {
				s.Data = map[string][]byte{"url": []byte(e.srv.URL)}
				if err := e.k8s.Update(e.ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			x := e.customer("x", "x@example.com")
			x.Spec.CustomerID = yid
			e.create(x)
			e.waitReason("x", metav1.ConditionFalse, v1alpha1.ReasonConflict, 15*time.Second)
			e.deleteAndWait("x")
			if _, ok := e.sim.Record(canaryKey, yid); !ok {
				t.Fatal("deleting x deleted y's record")
			}
			if puts, deletes := e.writes(); puts+deletes != 0 {
				t.Fatalf("x wrote to y's record: %d PUTs, %d DELETEs", puts, deletes)
			}
		})
	}
}

func TestALateCommittedCreateIsAdoptedByItsCreator(t *testing.T) {
	for name, mode := range map[string]sim.LoseMode{"answered 504": sim.LoseWith504, "connection dropped": sim.LoseByDroppingConnection} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, managerOpts{})
			e.sim.CommitNextCreateLate(1500*time.Millisecond, mode)
			e.create(e.customer("acme", "late@example.com"))
			got := e.waitReason("acme", metav1.ConditionTrue, v1alpha1.ReasonAvailable, 30*time.Second)
			if recs := e.records(); len(recs) != 1 || recs[0].ID != got.Status.CustomerID {
				t.Fatalf("want its own single record %q, got %+v", got.Status.CustomerID, recs)
			}
			if len(e.events("acme", v1alpha1.ReasonConflict)) != 0 {
				t.Fatal("the Customer went through Conflict with its own record")
			}
		})
	}
}

// A create that may have created the record is transient, never stalled:
// with a one-minute stalled backoff, a misclassified answer would not be
// Ready within 20 s.
// Another input of the kind "retried forever": ScriptLock keeps answering
// 409 for the email of this Customer's lost create, and no listing shows the
// record for longer than any late commit (PendingCreateWindow, 6 s here).
// The Customer must turn Stalled with a reason a person can act on instead
// of looping as transient, and still recover when the record shows.
func TestACreateNeverListedStallsInsteadOfRetryingForever(t *testing.T) {
	e := newEnv(t, managerOpts{})
	e.sim.CommitNextCreateLate(12*time.Second, sim.LoseWith504)
	e.create(e.customer("acme", "never-listed@example.com"))
	c := e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonConflict, 15*time.Second)
	if !condTrue(c, v1alpha1.ConditionStalled) || !strings.Contains(e.ready("acme").Message, "spec.customerID") {
		t.Fatalf("want Stalled with what to do: %+v", c.Status.Conditions)
	}
	got := e.waitReason("acme", metav1.ConditionTrue, v1alpha1.ReasonAvailable, 20*time.Second)
	if recs := e.records(); len(recs) != 1 || recs[0].ID != got.Status.CustomerID {
		t.Fatalf("want its own single record %q, got %+v", got.Status.CustomerID, recs)
	}
}

func TestACreateAnsweredOddlyEndsReadyWithOneRecord(t *testing.T) {
	for _, status := range []int{http.StatusOK, http.StatusAccepted, http.StatusNoContent, http.StatusFound, http.StatusSeeOther} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newEnv(t, managerOpts{permanentBackoff: time.Minute})
			e.sim.AnswerNextCreate(status)
			e.create(e.customer("acme", "odd@example.com"))
			got := e.waitReason("acme", metav1.ConditionTrue, v1alpha1.ReasonAvailable, 20*time.Second)
			if recs := e.records(); len(recs) != 1 || recs[0].ID != got.Status.CustomerID {
				t.Fatalf("want one record %q, got %+v", got.Status.CustomerID, recs)
			}
		})
	}
	// Another answer of the same kind: 201 Created with neither a body nor
	// a Location, so the id is unknown although the record exists.
	t.Run("Created without an id", func(t *testing.T) {
		e := newEnv(t, managerOpts{noStart: true, permanentBackoff: time.Minute})
		var once sync.Once
		e.opts.url = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			first := false
			if r.Method == http.MethodPost {
				once.Do(func() { first = true })
			}
			if !first {
				e.sim.ServeHTTP(w, r)
				return
			}
			e.sim.ServeHTTP(httptest.NewRecorder(), r) // the record is created
			w.WriteHeader(http.StatusCreated)
		})).URL
		e.startManager()
		e.create(e.customer("acme", "noid@example.com"))
		got := e.waitReason("acme", metav1.ConditionTrue, v1alpha1.ReasonAvailable, 20*time.Second)
		if recs := e.records(); len(recs) != 1 || recs[0].ID != got.Status.CustomerID {
			t.Fatalf("want one record %q, got %+v", got.Status.CustomerID, recs)
		}
	})
}

func TestAFinalizerRemovedByAReplaceIsPutBack(t *testing.T) {
	for name, strip := range map[string]func(*v1alpha1.Customer){
		"kubectl replace without the finalizer": func(c *v1alpha1.Customer) { c.Finalizers = nil },
		"the manifest from Git replaces the metadata": func(c *v1alpha1.Customer) {
			c.Finalizers, c.Annotations = nil, nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, managerOpts{})
			c := e.waitReadyAfterCreate("acme", "replace@example.com")
			e.update("acme", strip)
			e.eventually(10*time.Second, "finalizer back", func() error {
				if !containsString(e.get("acme").Finalizers, v1alpha1.Finalizer) {
					return fmt.Errorf("no finalizer")
				}
				return nil
			})
			e.deleteAndWait("acme")
			if _, ok := e.sim.Record(canaryKey, c.Status.CustomerID); ok {
				t.Fatal("the record outlived its Customer: the delete went unseen")
			}
			if n := e.calls(http.MethodPost, routeCreate); n != 1 {
				t.Fatalf("%d creates, want 1", n)
			}
		})
	}
}

func TestARenameMovesTheRecordWithoutRevokingLicenses(t *testing.T) {
	for _, order := range []string{"newcomer first", "newcomer pinned from the start"} {
		t.Run(order, func(t *testing.T) {
			e := newEnv(t, managerOpts{})
			old := e.waitReadyAfterCreate("old-name", "moved@example.com")
			id := old.Status.CustomerID
			nc := e.customer("new-name", "moved@example.com")
			if order == "newcomer pinned from the start" {
				nc.Spec.CustomerID = id
			}
			e.create(nc)
			e.waitReason("new-name", metav1.ConditionFalse, v1alpha1.ReasonConflict, 15*time.Second)
			msg := e.ready("new-name").Message
			for _, want := range []string{"deletionPolicy: Orphan", "spec.customerID", id, "old-name"} {
				if !strings.Contains(msg, want) {
					t.Fatalf("the Conflict must say how to move the record (%q missing): %q", want, msg)
				}
			}
			// The documented safe move.
			e.update("old-name", func(c *v1alpha1.Customer) { c.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan })
			e.waitReady("old-name")
			e.deleteAndWait("old-name")
			if order == "newcomer first" {
				e.update("new-name", func(c *v1alpha1.Customer) { c.Spec.CustomerID = id })
			}
			got := e.waitReason("new-name", metav1.ConditionTrue, v1alpha1.ReasonAvailable, 20*time.Second)
			if got.Status.CustomerID != id {
				t.Fatalf("the newcomer manages %q, want %q", got.Status.CustomerID, id)
			}
			if _, deletes := e.writes(); deletes != 0 {
				t.Fatalf("%d DELETEs: the move revoked licenses", deletes)
			}
			if recs := e.records(); len(recs) != 1 {
				t.Fatalf("want the one record, got %+v", recs)
			}
		})
	}
}
