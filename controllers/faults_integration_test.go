// Truthful and calm under faults: Ready means checked within two periods,
// the operator's own writes never cut a backoff short, a value ScriptLock
// stores differently is not rewritten every period, one account's failures
// never delay another's, and no retry storm, write loop, starvation or
// wrong reason under ScriptLock's faults.
package controllers_test

import (
	"context"
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
	"github.com/scriptlock/customer-operator/controllers"
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
	t.Run("a Secret's key revoked, then rotated, the record changed meanwhile", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		const key, rotated = "tenant-key-before", "tenant-key-after"
		e.sim.AddAccount(key)
		e.secret(e.ns, "creds", map[string]string{"apiKey": key, "url": e.srv.URL})
		c := e.customerWith("acme", "rotate@example.com", "creds")
		e.create(c)
		id := e.waitReady("acme").Status.CustomerID

		e.sim.RotateKey(key, rotated)
		e.sweep()
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonUnauthorized, 10*time.Second)

		e.sim.EditOutOfBand(rotated, id, func(r *scriptlock.Customer) { r.Company = "Drifted meanwhile" })
		e.setSecret("creds", map[string]string{"apiKey": rotated, "url": e.srv.URL})
		// The record changed while the account could not be read: it is not
		// the record as last synced, so the rotation alone proves nothing
		// until a person accepts the account.
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAccountChanged, patience)
		e.update("acme", func(c *v1alpha1.Customer) {
			c.Annotations = map[string]string{v1alpha1.AcceptAccountAnnotation: scriptlock.AccountID(e.srv.URL, rotated)}
		})
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

// noFasterThanTheBackoff asserts that calls to method and route are
// retried, and no faster than the exponential backoff from 1 s: calls at
// about 0, 1, 3, 7 s..., so once the second has been made no 3 s hold more
// than 2 more, whatever the operator writes to the object meanwhile (a
// backoff cut short by its own writes would start again from 1 s). A
// loaded machine only makes fewer calls, never more.
func (e *env) noFasterThanTheBackoff(method, route string) {
	e.t.Helper()
	var seen int
	e.eventually(patience, "a retry", func() error {
		if seen = e.calls(method, route); seen < 2 {
			return fmt.Errorf("%d calls", seen)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	if n := e.calls(method, route) - seen; n > 2 {
		e.t.Fatalf("%d more calls within 3 s of the second; the exponential backoff allows 2 at most", n)
	}
}

func TestTheOperatorsOwnWritesNeverCutTheBackoffShort(t *testing.T) {
	t.Run("every create answered 429 without Retry-After", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		e.sim.FailNext(http.MethodPost, routeCreate, 1000, http.StatusTooManyRequests, 0)
		e.create(e.customer("acme", "busy@example.com"))
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonRateLimited, 10*time.Second)
		e.noFasterThanTheBackoff(http.MethodPost, routeCreate)
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
		// The 409 may be its own create's (a gateway's retry): it looks
		// for that record, with the proof kept, and retries with backoff.
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonCreating, 10*time.Second)
		e.noFasterThanTheBackoff(http.MethodPost, routeCreate)
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
	slowAccountNeverDelaysAnother(t, managerOpts{timeout: 10 * time.Minute})
}

// The same with the reconciles at once derived from the rate
// (--max-concurrent-reconciles 0): the in-flight caps follow the limit, so
// the slow account's hanging calls hold half of it at most.
func TestASlowAccountNeverDelaysAnotherWithTheDerivedConcurrency(t *testing.T) {
	slowAccountNeverDelaysAnother(t, managerOpts{timeout: 10 * time.Minute, derivedConcurrency: true})
}

func slowAccountNeverDelaysAnother(t *testing.T, o managerOpts) {
	e := newEnv(t, o)
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
	c := e.customerWith("acme", "elsewhere@example.com", "creds")
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

// gatedProxy forwards to the simulator; a request for which hold returns
// true waits until released (or the test ends, or the client gives up)
// before it is forwarded.
type gatedProxy struct {
	next    http.Handler
	hold    atomic.Pointer[func(*http.Request) bool]
	release chan struct{}
	once    sync.Once
	held    atomic.Int64
}

// open lets every held and future request through.
func (p *gatedProxy) open() { p.once.Do(func() { close(p.release) }) }

func (e *env) gatedProxy() (*gatedProxy, string) {
	p := &gatedProxy{next: e.sim, release: make(chan struct{})}
	srv := serve(e.t, p)
	e.t.Cleanup(p.open)
	return p, srv.URL
}

func (p *gatedProxy) setHold(f func(*http.Request) bool) { p.hold.Store(&f) }

func (p *gatedProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f := p.hold.Load(); f != nil && (*f)(r) {
		p.held.Add(1)
		select {
		case <-p.release:
		case <-r.Context().Done():
			return
		}
	}
	p.next.ServeHTTP(w, r)
}

// reconcilesOf counts the controller's "Reconcile done/successful" log lines
// for the named Customer of this test's namespace.
func (e *env) reconcilesOf(name string) int {
	n := 0
	needle := fmt.Sprintf(`"name":"%s","namespace":"%s"`, name, e.ns)
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, needle) && (strings.Contains(line, "Reconcile done") || strings.Contains(line, "Reconcile successful") || strings.Contains(line, "Reconciler error")) {
			n++
		}
	}
	return n
}

// Observe in per-object mode: reconcileObserved refreshes the memory of the
// last sync from the memory itself, so the record is never read again.
func TestPerObjectObserverReadsEachPeriod(t *testing.T) {
	t.Run("drift in ScriptLock is reported", func(t *testing.T) {
		e := newEnv(t, managerOpts{resync: time.Second, drift: controllers.DriftPerObject})
		rec := e.sim.Seed(canaryKey, scriptlock.Customer{Company: "Example Company Inc.", FirstName: "Example", LastName: "Customer", Email: "po-observe@example.com"})
		e.create(e.observer("acme", "po-observe@example.com"))
		e.waitReason("acme", metav1.ConditionTrue, v1alpha1.ReasonObserved, 15*time.Second)
		e.sim.EditOutOfBand(canaryKey, rec.ID, func(r *scriptlock.Customer) { r.Company = "Changed Elsewhere" })
		e.sim.ResetCalls()
		time.Sleep(3 * time.Second)
		if n := e.calls(http.MethodGet, routeOne) + e.calls(http.MethodGet, routeList); n < 2 {
			t.Errorf("resync every second, yet %d reads of ScriptLock in 3 s", n)
		}
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonDiffers, 2*time.Second)
	})
	t.Run("a revoked key is reported", func(t *testing.T) {
		e := newEnv(t, managerOpts{resync: time.Second, drift: controllers.DriftPerObject})
		e.sim.Seed(canaryKey, scriptlock.Customer{Company: "Example Company Inc.", FirstName: "Example", LastName: "Customer", Email: "po-revoked@example.com"})
		e.create(e.observer("acme", "po-revoked@example.com"))
		e.waitReason("acme", metav1.ConditionTrue, v1alpha1.ReasonObserved, 15*time.Second)
		e.sim.RotateKey(canaryKey, "someone-else-has-it-now")
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonUnauthorized, 5*time.Second)
	})
}

// Passing, kept: the managed Customer in per-object mode does re-read, and a
// revoked key shows within a period or two.
func TestPerObjectManagedCustomerSeesARevokedKey(t *testing.T) {
	e := newEnv(t, managerOpts{resync: time.Second, drift: controllers.DriftPerObject})
	e.waitReadyAfterCreate("acme", "po-managed@example.com")
	e.sim.RotateKey(canaryKey, "someone-else-has-it-now")
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonUnauthorized, 5*time.Second)
}

// List mode: the drift detector lists with the client it cached, and no
// Secret is watched; deleting the Secret (e.g. to cut the operator off a
// tenant's account) must still show within two periods, and the key must
// not be used after that.
func TestReadyDropsOnceTheSecretIsDeleted(t *testing.T) {
	e := newEnv(t, managerOpts{})
	const key = "tenant-key-deleted-secret"
	e.sim.AddAccount(key)
	e.secret(e.ns, "creds", map[string]string{"apiKey": key, "url": e.srv.URL})
	c := e.customerWith("acme", "secret-gone@example.com", "creds")
	e.create(c)
	e.waitReady("acme")

	s := &corev1.Secret{}
	s.Namespace, s.Name = e.ns, "creds"
	if err := e.k8s.Delete(e.ctx, s); err != nil {
		t.Fatal(err)
	}
	e.sweep()
	e.sweep() // every second period re-reads every Customer's credentials
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonInvalidCredentials, 5*time.Second)
	e.sim.ResetCalls()
	e.sweep()
	e.sweep()
	if n := e.calls(http.MethodGet, routeList); n != 0 {
		t.Errorf("the deleted Secret's key was still used for %d listings", n)
	}
}

// The sweep's listing refused client-side (the account's one in-flight slot
// is busy with a slow PUT of another Customer): every Customer of the
// account turns RateLimited and retries every ~300 ms against the cached
// error, which only the next sweep clears.
func TestASweepThrottledByTheOperatorItselfFailsNobody(t *testing.T) {
	e := newEnv(t, managerOpts{noStart: true})
	p, url := e.gatedProxy()
	e.opts.url = url
	e.startManager()
	e.waitReadyAfterCreate("quiet", "quiet@example.com")
	e.waitReadyAfterCreate("busy", "busy@example.com")

	p.setHold(func(r *http.Request) bool { return r.Method == http.MethodPut })
	e.update("busy", func(c *v1alpha1.Customer) { c.Spec.LastName = "Slow Put" })
	e.eventually(10*time.Second, "the PUT is held", func() error {
		if p.held.Load() == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	e.sweep()
	time.Sleep(time.Second)
	p.setHold(func(*http.Request) bool { return false })
	p.open() // the PUT goes through; ScriptLock is healthy throughout
	e.waitCalls(http.MethodPut, routeOne, 1)
	time.Sleep(2 * time.Second)
	before := e.reconcilesOf("quiet")
	time.Sleep(2 * time.Second)
	if n := e.reconcilesOf("quiet") - before; n > 2 {
		t.Errorf("%d reconciles of an untouched Customer in 2 s against a healthy ScriptLock", n)
	}
	for _, name := range []string{"quiet", "busy"} {
		if cond := e.ready(name); cond == nil || cond.Status != metav1.ConditionTrue {
			t.Errorf("%s, of a healthy account, is not Ready 4 s after the PUT went through: %+v", name, cond)
		}
	}
}

// The drift detector lists accounts one after another: accounts whose host
// stopped answering delay every other account's drift detection, and the
// next period of everyone, by a whole timeout each.
func TestSlowAccountsDoNotDelayAnotherAccountsDriftDetection(t *testing.T) {
	e := newEnv(t, managerOpts{})
	p, url := e.gatedProxy()
	for i := range 3 {
		key := fmt.Sprintf("tenant-%d-key", i)
		e.sim.AddAccount(key)
		e.secret(e.ns, fmt.Sprintf("creds-%d", i), map[string]string{"apiKey": key, "url": url})
		c := e.customer(fmt.Sprintf("tenant-%d", i), fmt.Sprintf("tenant-%d@example.com", i))
		c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: fmt.Sprintf("creds-%d", i)}
		e.create(c)
	}
	h := e.waitReadyAfterCreate("healthy", "healthy-drift@example.com")
	for i := range 3 {
		e.waitReady(fmt.Sprintf("tenant-%d", i))
	}
	p.setHold(func(*http.Request) bool { return true }) // the tenants' host stops answering
	e.sim.EditOutOfBand(canaryKey, h.Status.CustomerID, func(r *scriptlock.Customer) { r.LastName = "Drifted" })

	e.eventually(10*time.Second, "drift detector waiting", func() error {
		if !e.driftClock.HasWaiters() {
			return fmt.Errorf("no timer set")
		}
		return nil
	})
	start := time.Now()
	e.driftClock.Step(e.opts.resync)
	e.eventually(4*time.Second, "drift of the healthy account corrected", func() error {
		if rec, _ := e.sim.Record(canaryKey, h.Status.CustomerID); rec.LastName != "Customer" {
			return fmt.Errorf("record %+v", rec)
		}
		return nil
	})
	e.eventually(4*time.Second, "the detector ready for the next period", func() error {
		if !e.driftClock.HasWaiters() {
			return fmt.Errorf("still sweeping after %s", time.Since(start).Round(time.Second))
		}
		return nil
	})
}

// A dozen accounts (one Secret each, distinct keys) at one host that never
// answers: each account's own in-flight cap and hold must not add up, or
// every worker waits out timeouts and a healthy account's Customer waits.
// It is Ready while every call to the dead host is still unanswered.
func TestManyDeadAccountsAtOneHostDoNotStarveAnother(t *testing.T) {
	e := newEnv(t, managerOpts{timeout: 10 * time.Minute})
	dead, accepted, ended := blackHole(t)
	for i := range 12 {
		name := fmt.Sprintf("dead-%d", i)
		e.secret(e.ns, name, map[string]string{"apiKey": fmt.Sprintf("dead-key-%d", i), "url": dead})
		c := e.customer(name, name+"@example.com")
		c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: name}
		e.create(c)
	}
	e.eventually(time.Minute, "a call to the dead host under way", func() error {
		if accepted() == 0 {
			return fmt.Errorf("no connection yet")
		}
		return nil
	})
	e.create(e.customer("healthy", "healthy-starved@example.com"))
	e.waitReady("healthy")
	if n := ended(); n != 0 {
		t.Fatalf("the healthy account's Customer was Ready only after %d calls to the dead host ended", n)
	}
}

// An observer bound a record first; a manager took the record later
// (spec.customerID). Switching the older observer to Manage must not take
// the record from its manager: today the switched Customer wins on age,
// overwrites the record with its own spec, and the manager turns Conflict.
func TestAnObserverSwitchedToManageDoesNotTakeAManagedRecord(t *testing.T) {
	e := newEnv(t, managerOpts{})
	rec := e.sim.Seed(canaryKey, scriptlock.Customer{Company: "Example Company Inc.", FirstName: "Example", LastName: "Customer", Email: "taken@example.com"})
	o := e.observer("watcher", "taken@example.com")
	o.Spec.Company = "Watcher's Idea"
	e.create(o)
	e.waitReason("watcher", metav1.ConditionFalse, v1alpha1.ReasonDiffers, 15*time.Second)
	time.Sleep(1100 * time.Millisecond) // a later creationTimestamp for the manager

	m := e.customer("manager", "taken@example.com")
	m.Spec.CustomerID = rec.ID
	e.create(m)
	e.waitReady("manager")

	e.update("watcher", func(c *v1alpha1.Customer) { c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyManage })
	e.eventually(10*time.Second, "the switch reconciled", func() error {
		c := e.get("watcher")
		if cond := e.ready("watcher"); cond == nil || cond.ObservedGeneration != c.Generation {
			return fmt.Errorf("Ready %+v", cond)
		}
		return nil
	})
	e.update("manager", func(c *v1alpha1.Customer) { c.Spec.LastName = "Touched" }) // the manager looks again
	time.Sleep(2 * time.Second)
	if cond := e.ready("watcher"); cond == nil || cond.Reason != v1alpha1.ReasonConflict {
		t.Errorf("the switched Customer took a record another Customer manages: %+v", cond)
	}
	if got, _ := e.sim.Record(canaryKey, rec.ID); got.Company != "Example Company Inc." {
		t.Errorf("the switched Customer wrote over the manager's record: %+v", got)
	}
	if cond := e.ready("manager"); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("the manager lost its record: %+v", cond)
	}
}

// Passing, kept: a Customer whose DELETE is refused, switched to Observe
// while being deleted, is let go without any DELETE after the switch.
func TestSwitchedToObserveWhileDeletionIsBlocked(t *testing.T) {
	e := newEnv(t, managerOpts{})
	c := e.waitReadyAfterCreate("acme", "blocked-then-observe@example.com")
	e.sim.RefuseDelete(canaryKey, c.Status.CustomerID, "customer has 2 active licenses")
	if err := e.k8s.Delete(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonDeletionBlocked, 10*time.Second)
	e.update("acme", func(c *v1alpha1.Customer) { c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve })
	e.sim.AllowDelete(canaryKey, c.Status.CustomerID)
	e.waitGone("acme", 10*time.Second)
	if _, ok := e.sim.Record(canaryKey, c.Status.CustomerID); !ok {
		t.Fatal("the record was deleted after the switch to Observe")
	}
}

// Passing, kept: a listing that keeps failing with different errors shows
// each reason in turn, then recovers.
func TestAListingFailingInDifferentWays(t *testing.T) {
	e := newEnv(t, managerOpts{})
	e.waitReadyAfterCreate("acme", "varied@example.com")
	e.sim.FailNext(http.MethodGet, routeList, 1, http.StatusForbidden, 0)
	e.sweep()
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonUnauthorized, 10*time.Second)
	e.sim.FailNext(http.MethodGet, routeList, 1, http.StatusBadGateway, 0)
	e.sweep()
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAPIError, 10*time.Second)
	e.sim.FailNext(http.MethodGet, routeList, 1, http.StatusTooManyRequests, 2*time.Second)
	e.sweep()
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonRateLimited, 10*time.Second)
	time.Sleep(2 * time.Second) // the hold ends
	e.sweep()
	e.waitReady("acme")
}

// Passing, kept: a create answered 429 with a huge Retry-After is tried once
// and waits; a 400 is stalled and not retried faster than the permanent
// backoff.
func TestCreateRefusalsDoNotStorm(t *testing.T) {
	t.Run("429 with Retry-After of a day", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		e.sim.FailNext(http.MethodPost, routeCreate, 1000, http.StatusTooManyRequests, 24*time.Hour)
		e.create(e.customer("acme", "huge-retry@example.com"))
		e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonRateLimited, 10*time.Second)
		time.Sleep(3 * time.Second)
		if n := e.calls(http.MethodPost, routeCreate); n != 1 {
			t.Fatalf("%d creates in 3 s after Retry-After: 86400", n)
		}
	})
	t.Run("400 on every create", func(t *testing.T) {
		e := newEnv(t, managerOpts{})
		e.sim.FailNext(http.MethodPost, routeCreate, 1000, http.StatusBadRequest, 0)
		e.create(e.customer("acme", "bad-request@example.com"))
		got := e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAPIError, 10*time.Second)
		if !condTrue(got, v1alpha1.ConditionStalled) {
			t.Fatal("a 400 needs a person: Stalled")
		}
		time.Sleep(4 * time.Second)
		// Permanent backoff 1 s doubling to 2 s in tests: about 0, 1, 3 s.
		if n := e.calls(http.MethodPost, routeCreate); n > 4 {
			t.Fatalf("%d creates in about 4 s against a 400", n)
		}
	})
}

// Passing, kept: a back end that capitalises names (another kind of tidy)
// is written once, then StoredDifferently.
func TestABackEndThatChangesCaseIsWrittenOnce(t *testing.T) {
	e := newEnv(t, managerOpts{})
	e.sim.SetTidy(func(v string) string {
		if strings.Contains(v, "@") || v == "" {
			return v
		}
		return strings.ToUpper(v[:1]) + v[1:]
	})
	c := e.customer("acme", "lower@example.com")
	c.Spec.FirstName = "ada"
	e.create(c)
	e.waitReady("acme")
	for range 3 {
		e.sweep()
	}
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonStoredDifferently, 10*time.Second)
	if n := e.calls(http.MethodPut, routeOne); n != 1 {
		t.Fatalf("%d PUTs over three periods; want one", n)
	}
}

// Applying a few Customers at once to a healthy (if not instant) ScriptLock:
// a listing already under way, or the account's in-flight cap, is reported
// as RateLimited with a Warning Event, though ScriptLock limited nothing.
func TestCustomersAppliedTogetherAreNotRateLimited(t *testing.T) {
	e := newEnv(t, managerOpts{})
	e.sim.SetLatency(300 * time.Millisecond)
	for i := range 4 {
		e.create(e.customer(fmt.Sprintf("c%d", i), fmt.Sprintf("together-%d@example.com", i)))
	}
	for i := range 4 {
		e.waitReady(fmt.Sprintf("c%d", i))
	}
	var warned []string
	for i := range 4 {
		for _, ev := range e.events(fmt.Sprintf("c%d", i), v1alpha1.ReasonRateLimited) {
			warned = append(warned, ev.Regarding.Name+": "+ev.Note)
		}
	}
	if len(warned) != 0 {
		t.Fatalf("Warning RateLimited Events while ScriptLock answered every call:\n%s", strings.Join(warned, "\n"))
	}
}

// Passing, kept: per-object mode against a back end that collapses spaces:
// one PUT, then StoredDifferently, not a write every period.
func TestPerObjectTidyIsWrittenOnce(t *testing.T) {
	e := newEnv(t, managerOpts{resync: time.Second, drift: controllers.DriftPerObject})
	e.sim.SetTidy(sim.CollapseSpaces)
	c := e.customer("acme", "po-tidy@example.com")
	c.Spec.Company = "Two  Spaces"
	e.create(c)
	e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonStoredDifferently, 10*time.Second)
	time.Sleep(2500 * time.Millisecond)
	if n := e.calls(http.MethodPut, routeOne); n != 1 {
		t.Fatalf("%d PUTs; want one", n)
	}
}

// Creates that keep failing with 500 while the Customers also meet the
// operator's own in-flight cap: each Customer's retries still back off
// exponentially (1, 2, 4 s...), since only success resets the backoff. A
// loaded machine only makes fewer calls, so the bound is an upper one.
func TestOwnWaitsNeverResetTheBackoffOfFailures(t *testing.T) {
	e := newEnv(t, managerOpts{})
	e.sim.SetLatency(100 * time.Millisecond) // creates overlap: the in-flight cap of 1 is met
	e.sim.FailNext(http.MethodPost, routeCreate, 100000, http.StatusInternalServerError, 0)
	for i := range 8 {
		e.create(e.customer(fmt.Sprintf("c%d", i), fmt.Sprintf("c%d@example.com", i)))
	}
	e.eventually(patience, "every Customer tried", func() error {
		if n := e.calls(http.MethodPost, routeCreate); n < 8 {
			return fmt.Errorf("%d creates", n)
		}
		return nil
	})
	time.Sleep(8 * time.Second)
	// In about 8 s after its first try, each Customer tries at 0, 1, 3 and
	// 7 s (15 s is later): at most 4 each, 32 in all. Retries reset by the
	// in-flight cap come about every second instead: twice as many.
	if n := e.calls(http.MethodPost, routeCreate); n > 8*4 {
		t.Fatalf("%d creates by 8 Customers in about 8 s: their backoff was reset", n)
	}
}

// Fair sharing across accounts: a bulk apply of 1,000 Customers to one
// account, far past its rate limit, parks no worker in that account's
// limiter or in-flight cap: another account's new Customer, queued behind
// the whole bulk, is Ready after one cheap pass of each of them, while the
// bulk waits its turn. Measured in the busy account's creates, not in
// seconds: at one create every 5 s, the busy account makes a few while a
// thousand cheap passes go by, even on a loaded machine; with workers
// waiting their turn in its limiter (5 s each), the other Customer would
// come after the thousand.
func TestABusyAccountsRateLimitNeverDelaysAnother(t *testing.T) {
	const busyKey, n = "busy-account-key", 1000
	e := newEnv(t, managerOpts{qps: 0.2, noStart: true})
	e.sim.AddAccount(busyKey)
	e.secret(e.ns, "busy", map[string]string{"apiKey": busyKey, "url": e.srv.URL})
	for i := range n {
		c := e.customer(fmt.Sprintf("bulk-%04d", i), fmt.Sprintf("bulk-%d@example.com", i))
		c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "busy"}
		e.create(c)
	}
	// Queued last, behind the whole bulk (the cache lists by name).
	e.create(e.customer("healthy", "healthy-fair@example.com"))
	e.startManager()
	const bound = 20 // 100 s of the busy account's turns
	e.eventually(10*time.Minute, "the other account's Customer Ready", func() error {
		if done := len(e.sim.Records(busyKey)); done > bound {
			t.Fatalf("the busy account made %d creates while the other account's new Customer waited (at most %d allowed)", done, bound)
		}
		if !condTrue(e.get("healthy"), v1alpha1.ConditionReady) {
			return fmt.Errorf("not Ready")
		}
		return nil
	})
	t.Logf("the busy account made %d of its %d creates while the other account's Customer was made Ready", len(e.sim.Records(busyKey)), n)
}

// The operator's own throttle is no hot loop: Customers held back by
// their account's in-flight cap wait longer each time (250 ms doubling to
// 4 s), so the passes they cost stay few while one slow call is under way.
// A loaded machine only makes fewer passes, so the bound is an upper one.
func TestWaitingForTheInFlightCapIsNoHotLoop(t *testing.T) {
	e := newEnv(t, managerOpts{})
	const n = 18
	e.sim.SetLatency(3 * time.Second) // one call at a time (the cap is 1), each slow
	for i := range n {
		e.create(e.customer(fmt.Sprintf("w%02d", i), fmt.Sprintf("w%d@example.com", i)))
	}
	e.eventually(patience, "a slow call under way", func() error {
		if len(e.sim.CallLog()) == 0 {
			return fmt.Errorf("no call answered yet")
		}
		return nil
	})
	before := 0
	for i := range n {
		before += e.reconcilesOf(fmt.Sprintf("w%02d", i))
	}
	time.Sleep(10 * time.Second)
	after := 0
	for i := range n {
		after += e.reconcilesOf(fmt.Sprintf("w%02d", i))
	}
	// Waits of 0.25, 0.5, 1, 2, 4, 4 s... (jitter up to half again) make
	// at most 7 passes each in 10 s, plus a wake-up or two; a fixed 250 ms
	// retry makes about 30.
	if passes := after - before; passes > n*9 {
		t.Fatalf("%d passes of %d waiting Customers in 10 s: the operator's own waits do not grow", passes, n)
	}
}

// secretReads counts the Secrets and the Customers read straight from the
// API server.
type secretReads struct {
	client.Reader
	n         atomic.Int32
	customers atomic.Int32
}

func (s *secretReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	switch obj.(type) {
	case *corev1.Secret:
		s.n.Add(1)
	case *v1alpha1.Customer:
		s.customers.Add(1)
	}
	return s.Reader.Get(ctx, key, obj, opts...)
}

// Customers that wait their turn at a busy account do not read their
// credentials Secret, nor themselves, from the API server on every pass:
// what the pass before read is used for a few seconds.
func TestWaitingCustomersDoNotRereadTheirSecret(t *testing.T) {
	reads := &secretReads{}
	e := newEnv(t, managerOpts{wrapAPIReader: func(r client.Reader) client.Reader { reads.Reader = r; return reads }})
	const key, n = "waiting-account-key", 12
	e.sim.AddAccount(key)
	e.sim.SetLatency(2 * time.Second) // one slow call at a time (the cap is 1)
	e.secret(e.ns, "creds", map[string]string{"apiKey": key, "url": e.srv.URL})
	for i := range n {
		c := e.customer(fmt.Sprintf("s%02d", i), fmt.Sprintf("s%d@example.com", i))
		c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds"}
		e.create(c)
	}
	e.eventually(patience, "a slow call under way", func() error {
		if len(e.sim.CallLog()) == 0 {
			return fmt.Errorf("no call answered yet")
		}
		return nil
	})
	before, customersBefore := reads.n.Load(), reads.customers.Load()
	time.Sleep(10 * time.Second)
	// A pass back from the operator's own wait on the same copy reads
	// neither the Secret nor the Customer again (a wait of 4 s, with
	// jitter up to 6 s, may outlast the 5 s of freshness now and then); a
	// read per pass would be dozens of each. A loaded machine only reads
	// less.
	if got := reads.n.Load() - before; got > 2*n {
		t.Fatalf("%d Secret reads in 10 s by %d Customers waiting their turn", got, n)
	}
	if got := reads.customers.Load() - customersBefore; got > 2*n {
		t.Fatalf("%d fresh reads of Customers in 10 s by %d Customers waiting their turn", got, n)
	}
}
