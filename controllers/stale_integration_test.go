package controllers_test

// The status can never be rolled back by a stale read: a pass on a cached
// copy older than the operator's own last write of that object acts on the
// newest copy instead.

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// staleReads serves, once per key, a copy of a Customer it was given
// instead of the cache's: the cache lagging the operator's own writes.
type staleReads struct {
	client.Client
	mu     sync.Mutex
	copies map[client.ObjectKey]*v1alpha1.Customer
}

func (s *staleReads) serveOnce(c *v1alpha1.Customer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.copies[client.ObjectKeyFromObject(c)] = c.DeepCopy()
}

func (s *staleReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	s.mu.Lock()
	stale, ok := s.copies[key]
	delete(s.copies, key)
	s.mu.Unlock()
	if c, isCustomer := obj.(*v1alpha1.Customer); ok && isCustomer {
		stale.DeepCopyInto(c)
		return nil
	}
	return s.Client.Get(ctx, key, obj, opts...)
}

// pokeWithStale has the next reconcile of c read the stale copy c, makes
// one happen (a label change), and waits until it is done.
func (e *env) pokeWithStale(stale *staleReads, c *v1alpha1.Customer) {
	e.t.Helper()
	n := e.reconcilesOf(c.Name)
	stale.serveOnce(c)
	e.update(c.Name, func(c *v1alpha1.Customer) { c.Labels = map[string]string{"poke": "1"} })
	e.eventually(patience, "the stale copy served and the pass done", func() error {
		stale.mu.Lock()
		_, waiting := stale.copies[client.ObjectKeyFromObject(c)]
		stale.mu.Unlock()
		if waiting || e.reconcilesOf(c.Name) <= n {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

func newStaleEnv(t *testing.T) (*env, *staleReads) {
	stale := &staleReads{copies: map[client.ObjectKey]*v1alpha1.Customer{}}
	e := newEnv(t, managerOpts{wrapClient: func(c client.Client) client.Client {
		stale.Client = c
		return stale
	}})
	return e, stale
}

// After a recreate, a copy from before it (bound to the vanished record)
// must not make the Customer report its new record missing.
func TestAStaleCopyAfterARecreateChangesNothing(t *testing.T) {
	e, stale := newStaleEnv(t)
	before := e.waitReadyAfterCreate("acme", "stale@example.com")
	e.sim.DeleteOutOfBand(canaryKey, before.Status.CustomerID)
	e.sweep()
	e.waitEvent("acme", "Created")
	now := e.waitReady("acme")
	if now.Status.CustomerID == before.Status.CustomerID {
		t.Fatal("no recreate")
	}
	readsOfOld := func() int {
		n := 0
		for _, call := range e.sim.CallLog() {
			if call.Method == http.MethodGet && call.ID == before.Status.CustomerID {
				n++
			}
		}
		return n
	}
	reads := readsOfOld()
	e.pokeWithStale(stale, before)
	if got := e.get("acme"); got.Status.CustomerID != now.Status.CustomerID || !condTrue(got, v1alpha1.ConditionReady) {
		t.Fatalf("a stale copy changed the status: %+v", got.Status)
	}
	if n := readsOfOld() - reads; n != 0 {
		t.Fatalf("a stale copy made the operator look for the record it no longer holds (%d reads)", n)
	}
}

// Of the same kind: a copy from before a spec change the operator already
// wrote must not put the old values back into ScriptLock.
func TestAStaleCopyNeverWritesAnOldSpec(t *testing.T) {
	e, stale := newStaleEnv(t)
	before := e.waitReadyAfterCreate("acme", "oldspec@example.com")
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "New" })
	e.waitEvent("acme", "Updated")
	e.waitReady("acme")
	puts := e.calls(http.MethodPut, routeOne)
	e.pokeWithStale(stale, before)
	if n := e.calls(http.MethodPut, routeOne); n != puts {
		t.Fatalf("a stale copy sent %d PUTs", n-puts)
	}
	if rec, _ := e.sim.Record(canaryKey, before.Status.CustomerID); rec.LastName != "New" {
		t.Fatalf("ScriptLock holds %q, want the newest spec's", rec.LastName)
	}
}
