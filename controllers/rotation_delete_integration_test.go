package controllers_test

// A deletion that lets go without a DELETE (RecordKept) is final: the
// record stays, with its licenses, and no Customer is left to manage it. So
// after a key rotation, what a deletion decides on is what a pass decides
// a disappearance on: never one answer. One 404 from a lagging replica for
// the record under the new key, or no answer to the check that the old key
// is refused, is no evidence that the record is not this Customer's own
// (explorer seed 200192).

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// failOldKeyOnce answers the first read made with key 503 and passes every
// other call on: ScriptLock busy when the operator checks the old key.
type failOldKeyOnce struct {
	next   http.Handler
	key    string
	failed atomic.Bool
}

func (p *failOldKeyOnce) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/customer/") &&
		r.Header.Get("Authorization") == "Basic "+p.key && p.failed.CompareAndSwap(false, true) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	p.next.ServeHTTP(w, r)
}

func TestADeletionAfterARotationIsNotLetGoOnOneAnswer(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fault func(e *env)
	}{
		{"a read under the new key from a lagging replica answers 404", func(e *env) { e.sim.VanishNext(2) }},
		{"the check that the old key is refused gets no answer (503)", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const rotated = "deletion-after-rotation-key"
			e := newEnv(t, managerOpts{noStart: true})
			proxy := &failOldKeyOnce{next: e.sim, key: canaryKey}
			if tt.fault == nil {
				e.opts.url = serve(t, proxy).URL
			} else {
				proxy.failed.Store(true)
			}
			e.startManager()
			id := e.waitReadyAfterCreate("acme", "rotated-delete@example.com").Status.CustomerID
			// The default key rotated: the old one is refused from now on,
			// and the operator's default is the new one (as the key file
			// watcher sets it). No pass has run since.
			e.sim.RotateKey(canaryKey, rotated)
			e.pool.SetDefaultAPIKey(rotated)
			if tt.fault != nil {
				tt.fault(e)
			} else {
				proxy.failed.Store(false)
			}
			e.deleteAndWait("acme")
			if evs := e.events("acme", "RecordKept"); len(evs) != 0 {
				t.Fatalf("let go without a DELETE on one answer: %s", evs[0].Note)
			}
			if _, ok := e.sim.Record(rotated, id); ok {
				t.Fatal("the Customer went, and its record stayed in ScriptLock with its licenses")
			}
			e.waitEvent("acme", "LicensesRevoked")
		})
	}
}

// A key rotation and a new email in the spec at once: the record under the
// new key is exactly as last synced, which is the proof; the new email is
// then written to it. Before, the proof also asked for the spec's email,
// so the Customer stayed AccountChanged and its deletion kept the record
// (explorer history rotation-then-crash.txt, once its crash no longer
// hid it).
func TestARotationAndAnEmailChangeAtOnce(t *testing.T) {
	const rotated = "rotation-and-email-key"
	e := newEnv(t, managerOpts{})
	id := e.waitReadyAfterCreate("acme", "before@example.com").Status.CustomerID
	e.sim.RotateKey(canaryKey, rotated)
	e.pool.SetDefaultAPIKey(rotated)
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.Email = "after@example.com" })
	e.eventually(patience, "Ready with the new email", func() error {
		got := e.get("acme")
		if got.Status.ObservedGeneration != got.Generation || !condTrue(got, v1alpha1.ConditionReady) {
			return fmt.Errorf("status %+v", got.Status)
		}
		if got.Status.CustomerID != id {
			t.Fatalf("the rotation changed the record: %s -> %s", id, got.Status.CustomerID)
		}
		return nil
	})
	if rec, ok := e.sim.Record(rotated, id); !ok || rec.Email != "after@example.com" {
		t.Fatalf("record %+v", rec)
	}
	e.deleteAndWait("acme")
	if _, ok := e.sim.Record(rotated, id); ok {
		t.Fatal("the Customer went, and its record stayed in ScriptLock with its licenses")
	}
}

// failDeletes answers every DELETE 503 while on is set, and passes every
// other call on: ScriptLock busy for deletions.
type failDeletes struct {
	next http.Handler
	on   atomic.Bool
}

func (p *failDeletes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete && p.on.Load() {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	p.next.ServeHTTP(w, r)
}

// A manager that started before the key was rotated knows the old key as
// soon as it resolved the Customer's credentials to the account its record
// is bound in, even if no pass of it ever saw the record in sync (the first
// pass after the restart was the deletion, its DELETE answered 503; or a
// read found the record missing). A rotation then is proven as it is for a
// Customer synced under this manager: the DELETE goes to the record under
// the new key. Before, the old key was remembered only once a pass saw the
// record in sync, so the deletion took the rotation for an unproven move
// and kept the record (RecordKept) — explorer seed 800315: `crash api`,
// then `fail DELETE 503`, `massdelete`, `rotate`.
func TestARotationAfterARestartBeforeAnySyncIsProvenByTheKeyThisManagerUsed(t *testing.T) {
	const rotated = "rotation-after-restart-key"
	e := newEnv(t, managerOpts{noStart: true})
	proxy := &failDeletes{next: e.sim}
	e.opts.url = serve(t, proxy).URL
	e.startManager()
	id := e.waitReadyAfterCreate("acme", "restarted-delete@example.com").Status.CustomerID
	// The manager restarts; the Customer is deleted meanwhile, so the new
	// manager's first pass of it is the deletion, whose DELETE ScriptLock
	// answers 503.
	e.stopManager()
	proxy.on.Store(true)
	if err := e.k8s.Delete(e.ctx, e.get("acme")); err != nil {
		t.Fatal(err)
	}
	e.startManager()
	e.eventually(patience, "a DELETE answered 503", func() error {
		if c := e.ready("acme"); c == nil || !strings.Contains(c.Message, "503") {
			return fmt.Errorf("Ready %+v", c)
		}
		return nil
	})
	// The default key rotated: the old one is refused from now on, and the
	// operator's default is the new one (as the key file watcher sets it).
	e.sim.RotateKey(canaryKey, rotated)
	e.pool.SetDefaultAPIKey(rotated)
	proxy.on.Store(false)
	e.waitGone("acme", 15*time.Second)
	if evs := e.events("acme", "RecordKept"); len(evs) != 0 {
		t.Fatalf("let go without a DELETE: %s", evs[0].Note)
	}
	if _, ok := e.sim.Record(rotated, id); ok {
		t.Fatal("the Customer went, and its record stayed in ScriptLock with its licenses")
	}
	e.waitEvent("acme", "LicensesRevoked")
}
