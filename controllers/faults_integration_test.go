package controllers_test

// Truthful and calm under faults (issue 9): Ready means checked, the
// operator's own writes never cut a backoff short, a value ScriptLock
// stores differently is not rewritten every period, and one account's
// failures never delay another's.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

func (e *env) setSecret(name string, data map[string]string) {
	e.t.Helper()
	s := &corev1.Secret{}
	if err := e.k8s.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: name}, s); err != nil {
		e.t.Fatal(err)
	}
	s.Data, s.StringData = nil, data
	if err := e.k8s.Update(e.ctx, s); err != nil {
		e.t.Fatal(err)
	}
}

func TestReadyMeansTheAccountWasCheckedRecently(t *testing.T) {
	t.Run("a Secret's key revoked, then rotated", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		const key, rotated = "tenant-key-before", "tenant-key-after"
		e.sim.AddAccount(key)
		e.secret(e.ns, "creds", map[string]string{"apiKey": key, "url": e.srv.URL})
		c := e.customer("acme", "rotate@example.com")
		c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds"}
		e.create(c)
		id := e.waitReady("acme").Status.CustomerID

		e.sim.RotateKey(key, rotated)
		e.sweep()
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonUnauthorized, 10*time.Second)

		e.sim.EditOutOfBand(rotated, id, func(r *scriptlock.Customer) { r.Company = "Drifted meanwhile" })
		e.setSecret("creds", map[string]string{"apiKey": rotated, "url": e.srv.URL})
		got := e.waitReason("acme", metav1.ConditionTrue, v1alpha1.ReasonAvailable, 15*time.Second)
		if got.Status.CustomerID != id {
			t.Fatalf("the rotation changed the record: %s -> %s", id, got.Status.CustomerID)
		}
		if rec, _ := e.sim.Record(rotated, id); rec.Company != "Example Company Inc." {
			t.Fatalf("the drift made while the account could not be read was not put back: %+v", rec)
		}
	})
	t.Run("the default account's key revoked, then rotated", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		const rotated = "default-key-after-rotation"
		id := e.waitReadyAfterCreate("acme", "default@example.com").Status.CustomerID
		e.sim.RotateKey(canaryKey, rotated)
		e.sweep()
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonUnauthorized, 10*time.Second)
		e.pool.SetDefaultAPIKey(rotated) // what the key file watcher does
		got := e.waitReason("acme", metav1.ConditionTrue, v1alpha1.ReasonAvailable, 15*time.Second)
		if got.Status.CustomerID != id || len(e.sim.Records(rotated)) != 1 {
			t.Fatalf("want the same single record %s, got %s and %+v", id, got.Status.CustomerID, e.sim.Records(rotated))
		}
	})
	t.Run("a listing that fails with 503, then works again", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		e.waitReadyAfterCreate("acme", "flaky-list@example.com")
		e.sim.FailNext(http.MethodGet, routeList, 1, http.StatusServiceUnavailable, 0)
		e.sweep()
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAPIError, 10*time.Second)
		e.sweep()
		e.waitReady("acme")
	})
}

func TestTheOperatorsOwnWritesNeverCutTheBackoffShort(t *testing.T) {
	t.Run("every create answered 429 without Retry-After", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		e.sim.FailNext(http.MethodPost, routeCreate, 1000, http.StatusTooManyRequests, 0)
		e.create(e.customer("acme", "busy@example.com"))
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonRateLimited, 10*time.Second)
		time.Sleep(4 * time.Second)
		// Backoff from 1 s doubling: attempts at about 0, 1, 3 s (and 7 s).
		if n := e.calls(http.MethodPost, routeCreate); n < 2 || n > 4 {
			t.Fatalf("%d creates in about 4 s; want the exponential backoff's 3", n)
		}
	})
	t.Run("a 409 whose record the listing does not show yet", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		// Someone else's create of the email, committed but not listed for a while.
		e.sim.CommitNextCreateLate(time.Minute, sim.LoseWith504)
		form := url.Values{"company": {""}, "firstname": {"Some"}, "lastname": {"One"}, "email": {"hidden@example.com"}}
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/api/customer", strings.NewReader(form.Encode()))
		req.Header.Set("Authorization", "Basic "+canaryKey)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
		}
		e.sim.ResetCalls()
		e.create(e.customer("acme", "hidden@example.com"))
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAPIError, 10*time.Second)
		time.Sleep(4 * time.Second)
		if n := e.calls(http.MethodPost, routeCreate); n < 2 || n > 4 {
			t.Fatalf("%d creates in about 4 s; want the exponential backoff's 3", n)
		}
	})
}

func TestAValueScriptLockStoresDifferentlyIsWrittenOnce(t *testing.T) {
	for _, when := range []string{"on create", "on a spec change"} {
		t.Run(when, func(t *testing.T) {
			e := newEnv(t, managerOpts{})
			e.sim.SetTidy(sim.CollapseSpaces)
			c := e.customer("acme", "tidy@example.com")
			if when == "on create" {
				c.Spec.Company = "Two  Spaces"
			}
			e.create(c)
			e.waitReady("acme")
			if when == "on a spec change" {
				e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Double  Barrelled" })
				e.eventually(10*time.Second, "the spec change written", func() error {
					if e.calls(http.MethodPut, routeOne) == 0 {
						return fmt.Errorf("no PUT yet")
					}
					return nil
				})
			}
			for range 3 {
				e.sweep()
			}
			got := e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonStoredDifferently, 10*time.Second)
			if !condTrue(got, v1alpha1.ConditionStalled) {
				t.Fatal("StoredDifferently needs a person: Stalled must be True")
			}
			field := "company"
			if when == "on a spec change" {
				field = "lastName"
			}
			if msg := e.ready("acme").Message; !strings.Contains(msg, field) || strings.Contains(msg, "Spaces") || strings.Contains(msg, "Barrelled") {
				t.Fatalf("the message must name the field, not its value: %q", msg)
			}
			if n := e.calls(http.MethodPut, routeOne); n != 1 {
				t.Fatalf("%d PUTs over three periods: want the one write", n)
			}
			if n := len(e.events("acme", v1alpha1.ReasonStoredDifferently)); n != 1 {
				t.Fatalf("%d StoredDifferently Events, want it said once", n)
			}
			if when == "on create" {
				// Its one PUT was answered 304 Not Modified: nothing changed,
				// so no Updated Event (SPEC: "none for 304").
				if e.sim.Calls()["PUT "+routeOne+" 304"] != 1 || len(e.events("acme", "Updated")) != 0 {
					t.Fatalf("want one PUT answered 304 and no Updated Event: %v, %d Updated", e.sim.Calls(), len(e.events("acme", "Updated")))
				}
			}
		})
	}
}

func condTrue(c *v1alpha1.Customer, condType string) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == condType {
			return cond.Status == metav1.ConditionTrue
		}
	}
	return false
}

// blackHole accepts connections and never answers, as a ScriptLock behind
// a broken proxy does. accepted counts the connections it took, ended the
// ones the client gave up on (closed): a call to it has "returned" only
// then.
func blackHole(t *testing.T) (url string, accepted, ended func() int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		conns  []net.Conn
		opened atomic.Int32
		closed atomic.Int32
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			opened.Add(1)
			go func() {
				// Read (and drop) the request until the client hangs up.
				_, _ = io.Copy(io.Discard, c)
				closed.Add(1)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + l.Addr().String(), func() int { return int(opened.Load()) }, func() int { return int(closed.Load()) }
}

// A slow account's calls never hold back another account's Customer: it
// is Ready while every call to the slow account is still waiting for its
// answer (their timeout is longer than the test).
func TestASlowAccountNeverDelaysAnother(t *testing.T) {
	e := newEnv(t, managerOpts{timeout: 10 * time.Minute})
	slow, accepted, ended := blackHole(t)
	e.secret(e.ns, "slow", map[string]string{"apiKey": "slow-account-key", "url": slow})
	for i := range 12 {
		c := e.customer(fmt.Sprintf("slow-%d", i), fmt.Sprintf("slow-%d@example.com", i))
		c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "slow"}
		e.create(c)
	}
	e.eventually(time.Minute, "a call to the slow account under way", func() error {
		if accepted() == 0 {
			return fmt.Errorf("no connection yet")
		}
		return nil
	})
	e.create(e.customer("healthy", "healthy@example.com"))
	e.waitReady("healthy")
	if n := ended(); n != 0 {
		t.Fatalf("the healthy account's Customer was Ready only after %d calls to the slow account ended", n)
	}
}

func TestSmallSharpEdges(t *testing.T) {
	t.Run("an unusable id is stalled with its own reason", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		e.waitReadyAfterCreate("acme", "badid@example.com")
		e.eventually(10*time.Second, "set a bad id", func() error {
			c := e.get("acme")
			c.Status.CustomerID = strings.Repeat("9", 300) // longer than any URL segment ScriptLock takes
			return e.k8s.Status().Update(e.ctx, c)
		})
		e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Touched" })
		got := e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonInvalidID, 10*time.Second)
		if !condTrue(got, v1alpha1.ConditionStalled) || condTrue(got, v1alpha1.ConditionReconciling) {
			t.Fatalf("want Stalled and not Reconciling: %+v", got.Status.Conditions)
		}
	})
	t.Run("a listed record without an id does not blind drift detection", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		c := e.waitReadyAfterCreate("acme", "noid@example.com")
		raw, _ := json.Marshal(map[string]string{"company": "X", "email": "ghost@example.com"})
		e.sim.AddRawListItem(canaryKey, raw)
		e.sim.EditOutOfBand(canaryKey, c.Status.CustomerID, func(r *scriptlock.Customer) { r.FirstName = "Drifted" })
		e.sweep()
		e.eventually(10*time.Second, "drift corrected", func() error {
			if rec, _ := e.sim.Record(canaryKey, c.Status.CustomerID); rec.FirstName != "Example" {
				return fmt.Errorf("record %+v", rec)
			}
			return nil
		})
	})
	t.Run("a Customer being deleted is not Ready", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		c := e.waitReadyAfterCreate("acme", "deleting@example.com")
		e.sim.FailNext(http.MethodDelete, routeOne, 3, http.StatusBadGateway, 0)
		if err := e.k8s.Delete(e.ctx, c); err != nil {
			t.Fatal(err)
		}
		e.eventually(10*time.Second, "not Ready while deleting", func() error {
			cond := e.ready("acme")
			if cond == nil || cond.Status == metav1.ConditionTrue {
				return fmt.Errorf("Ready %+v", cond)
			}
			return nil
		})
		e.waitGone("acme", 20*time.Second)
	})
}

func TestASecretMayPointOnlyAtAnAllowedHost(t *testing.T) {
	e := newEnv(t, managerOpts{allowedHosts: []string{"127.0.0.1"}})
	elsewhere := sim.New(sim.WithAccount("tenant-key"))
	srv := serve(t, elsewhere)
	// The same listener under a name that is not on the list.
	u := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	e.secret(e.ns, "creds", map[string]string{"apiKey": "tenant-key", "url": u})
	c := e.customer("acme", "elsewhere@example.com")
	c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds"}
	e.create(c)
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonInvalidCredentials, 10*time.Second)
	if msg := e.ready("acme").Message; !strings.Contains(msg, "localhost") || !strings.Contains(msg, "--allowed-scriptlock-hosts") {
		t.Fatalf("the message must name the host and the flag: %q", msg)
	}
	if calls := elsewhere.Calls(); len(calls) != 0 {
		t.Fatalf("a host not on the list was called: %v", calls)
	}
	// The allowed spelling works.
	e.setSecret("creds", map[string]string{"apiKey": "tenant-key", "url": srv.URL})
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.LastName = "Retry" })
	e.waitReady("acme")
}
