package controllers_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

// canaryKey is the default account's API key in every suite. It must appear
// in no log line, event, condition or status: TestMain fails otherwise.
const canaryKey = "canary-5f1d8c0e-key-must-never-leak"

var (
	restCfg *rest.Config
	scheme  = runtime.NewScheme()
	logs    = &syncBuffer{}
	nsSeq   atomic.Int64
)

// syncBuffer collects every log line of the suite, at the highest verbosity.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	flag.Parse()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); assets == "" || err != nil {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS must name a folder with kube-apiserver and etcd: run `make test` (it builds them into bin/k8s)")
		return 1
	}
	out := zapcore.AddSync(logs)
	if testing.Verbose() {
		out = zapcore.AddSync(ioMulti{logs, os.Stderr})
	}
	logger := zap.New(zap.WriteTo(out), zap.Level(zapcore.Level(-10)))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)

	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	if restCfg, err = env.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting kube-apiserver and etcd:", err)
		return 1
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	if strings.Contains(logs.String(), canaryKey) {
		fmt.Fprintln(os.Stderr, "FAIL: the API key appeared in the logs")
		return 1
	}
	if s, ok := canarySpellingIn(logs.String()); ok {
		fmt.Fprintf(os.Stderr, "FAIL: the API key appeared in the logs as %q\n", s)
		return 1
	}
	if nsSeq.Load() > 0 && !strings.Contains(logs.String(), "reconcile") {
		fmt.Fprintln(os.Stderr, "FAIL: the suite captured no reconcile logs; the canary check would prove nothing")
		return 1
	}
	return code
}

type ioMulti struct {
	a, b interface{ Write([]byte) (int, error) }
}

func (m ioMulti) Write(p []byte) (int, error) {
	if _, err := m.a.Write(p); err != nil {
		return 0, err
	}
	return m.b.Write(p)
}

// env is one test's world: its namespace, a ScriptLock simulator over real
// HTTP, a direct (uncached) client and a running manager.
type env struct {
	t      *testing.T
	ctx    context.Context
	ns     string
	sim    *sim.Server
	srv    *httptest.Server
	k8s    client.Client
	opts   managerOpts
	stopMu sync.Mutex
	stop   func()
	// driftClock drives the drift detector unless opts.realDriftClock.
	driftClock *clocktesting.FakeClock
	// pool is the running manager's account pool.
	pool *scriptlock.Pool
}

// managerOpts tune the manager of a test.
type managerOpts struct {
	resync  time.Duration
	drift   controllers.DriftDetection
	url     string // default: the simulator
	noStart bool
	noKey   bool // the default account has no API key
	// realDriftClock drives the drift detector with the real clock; by
	// default a fake one, moved by sweep, so no test sleeps through a
	// resync period.
	realDriftClock bool
	// allowedHosts is the manager's --allowed-scriptlock-hosts.
	allowedHosts []string
	// timeout replaces the client's 5 s per-request timeout.
	timeout time.Duration
	// qps, if set, replaces the client's 100 calls a second per account
	// (burst 1 then).
	qps float64
	// wrapClient, if set, wraps the cache-backed client the reconciler
	// reads and writes through (to serve stale copies, say).
	wrapClient func(client.Client) client.Client
	// wrapAPIReader, if set, wraps the reader that goes straight to the
	// API server (Secrets, fresh copies).
	wrapAPIReader func(client.Reader) client.Reader
	// permanentBackoff replaces the suite's 1 s stalled backoff, so that a
	// test can tell a transient failure from a stalled one by the time a
	// recovery takes.
	permanentBackoff time.Duration
	// changelogValues puts the values written in the change log's lines.
	changelogValues bool
	// deletionBudget and deletionWindow turn the revocation brake on; its
	// Leases live in the test's namespace.
	deletionBudget int
	deletionWindow time.Duration
	// derivedConcurrency wires the manager as main does with
	// --max-concurrent-reconciles left at 0: workers, reconciles at once
	// and the accounts' in-flight caps derived from qps (NewConcurrency)
	// instead of the suite's two workers and one call per account.
	derivedConcurrency bool
}

func newEnv(t *testing.T, o managerOpts) *env {
	t.Helper()
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	k8s, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, k8s: k8s, opts: o, sim: sim.New(sim.WithAccount(canaryKey))}
	e.ns = fmt.Sprintf("t%d-%s", nsSeq.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "_", "-")))
	if len(e.ns) > 60 {
		e.ns = e.ns[:60]
	}
	e.ns = strings.TrimRight(regexp.MustCompile(`[^a-z0-9-]+`).ReplaceAllString(e.ns, "-"), "-")
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}); err != nil {
		t.Fatal(err)
	}
	e.srv = serve(t, e.sim)
	if e.opts.resync == 0 {
		e.opts.resync = time.Hour
	}
	if e.opts.drift == "" {
		e.opts.drift = controllers.DriftByList
	}
	if !o.noStart {
		e.startManager()
	}
	t.Cleanup(func() {
		e.stopManager()
		e.assertNoLeak()
	})
	return e
}

// serve starts h on a loopback HTTP server for the rest of the test: the one
// way every test starts a ScriptLock (the simulator, another instance, a
// proxy in front of one).
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// otherScriptLock starts another ScriptLock instance with an account for
// key; it numbers its records from 1, as a separate installation does.
func (e *env) otherScriptLock(key string) (*sim.Server, string) {
	e.t.Helper()
	s := sim.New(sim.WithAccount(key))
	return s, serve(e.t, s).URL
}

// credsElsewhere starts another ScriptLock instance holding key's account
// and writes the Secret "creds" naming it; it returns that instance.
func (e *env) credsElsewhere(key string) *sim.Server {
	e.t.Helper()
	other, url := e.otherScriptLock(key)
	e.secret(e.ns, "creds", map[string]string{"apiKey": key, "url": url})
	return other
}

// startManager runs a manager that sees only this test's namespace.
func (e *env) startManager() {
	e.t.Helper()
	url := e.opts.url
	if url == "" {
		url = e.srv.URL
	}
	key := canaryKey
	if e.opts.noKey {
		key = ""
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme: scheme,
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{e.ns: {}},
			DefaultTransform:  controllers.CacheTransform(),
		},
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	// One request in flight per account for two workers, as main sets it.
	timeout := 5 * time.Second
	if e.opts.timeout > 0 {
		timeout = e.opts.timeout
	}
	qps, burst := 100.0, 100
	if e.opts.qps > 0 {
		qps, burst = e.opts.qps, 1
	}
	poolOpts := scriptlock.Options{
		BaseURL: url, APIKey: key, Timeout: timeout, QPS: qps, Burst: burst, MaxInFlight: 1, MaxInFlightPerHost: 1,
		AllowedHosts: e.opts.allowedHosts,
		OnWrite:      controllers.NewChangeLog(ctrl.Log.WithName("changelog"), e.opts.changelogValues).Observe,
	}
	var conc *controllers.Concurrency
	if e.opts.derivedConcurrency {
		conc = controllers.NewConcurrency(0, qps)
		poolOpts.MaxInFlightFunc, poolOpts.MaxInFlightPerHostFunc = conc.PerAccount, conc.PerHost
	}
	e.pool = scriptlock.NewPool(poolOpts, nil)
	var driftClock clock.Clock = clock.RealClock{}
	if !e.opts.realDriftClock {
		e.driftClock = clocktesting.NewFakeClock(time.Now())
		driftClock = e.driftClock
	}
	cached := mgr.GetClient()
	if e.opts.wrapClient != nil {
		cached = e.opts.wrapClient(cached)
	}
	apiReader := mgr.GetAPIReader()
	if e.opts.wrapAPIReader != nil {
		apiReader = e.opts.wrapAPIReader(apiReader)
	}
	recorder, err := controllers.NewEventRecorder(mgr)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &controllers.CustomerReconciler{
		Client:              cached,
		APIReader:           apiReader,
		Recorder:            recorder,
		Accounts:            e.pool,
		DriftClock:          driftClock,
		ResyncPeriod:        e.opts.resync,
		DriftDetection:      e.opts.drift,
		PermanentBackoff:    max(time.Second, e.opts.permanentBackoff),
		PermanentBackoffMax: max(2*time.Second, e.opts.permanentBackoff),
		PendingCreateWindow: 6 * time.Second,
		VanishReads:         3,
		VanishInterval:      300 * time.Millisecond,
		// A drift-check-interval annotation may ask for 1s here.
		MinDriftCheckInterval: time.Second,
		DeletionBudget:        e.opts.deletionBudget,
		DeletionBudgetWindow:  e.opts.deletionWindow,
		BrakeNamespace:        e.ns,
		Concurrency:           conc,
	}
	if err := r.SetupWithManager(mgr, 2); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			e.t.Errorf("manager: %v", err)
		}
	}()
	e.stopMu.Lock()
	e.stop = func() { cancel(); <-done }
	e.stopMu.Unlock()
}

// sweep makes the drift detector list every account now, as if a resync
// period had passed, and waits until it has started waiting again.
func (e *env) sweep() {
	e.t.Helper()
	e.eventually(10*time.Second, "drift detector waiting", func() error {
		if !e.driftClock.HasWaiters() {
			return fmt.Errorf("no timer set")
		}
		return nil
	})
	e.driftClock.Step(e.opts.resync)
	e.eventually(10*time.Second, "drift detector swept", func() error {
		if !e.driftClock.HasWaiters() {
			return fmt.Errorf("still sweeping")
		}
		return nil
	})
}

// stopManager stops the manager as a crash would: nothing it was doing is
// allowed to finish.
func (e *env) stopManager() {
	e.stopMu.Lock()
	stop := e.stop
	e.stop = nil
	e.stopMu.Unlock()
	if stop != nil {
		stop()
	}
}

// assertNoLeak checks the canary key is in no Event and no Customer of the
// namespace.
func (e *env) assertNoLeak() {
	e.t.Helper()
	ctx := context.Background()
	evs := &eventsv1.EventList{}
	if err := e.k8s.List(ctx, evs, client.InNamespace(e.ns)); err != nil {
		e.t.Fatal(err)
	}
	for _, ev := range evs.Items {
		if strings.Contains(fmt.Sprintf("%+v", ev), canaryKey) {
			e.t.Errorf("the API key appeared in event %s: %s", ev.Reason, ev.Note)
		}
	}
	cs := &v1alpha1.CustomerList{}
	if err := e.k8s.List(ctx, cs, client.InNamespace(e.ns)); err != nil {
		e.t.Fatal(err)
	}
	for _, c := range cs.Items {
		if strings.Contains(fmt.Sprintf("%+v", c), canaryKey) {
			e.t.Errorf("the API key appeared in Customer %s", c.Name)
		}
	}
	e.assertNoCanarySpelling(evs.Items, cs.Items)
}

// customer returns a valid Customer named name in the test namespace.
func (e *env) customer(name, email string) *v1alpha1.Customer {
	return &v1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: v1alpha1.CustomerSpec{
			Company: "Example Company Inc.", FirstName: "Example", LastName: "Customer", Email: email,
		},
	}
}

// customerWith is customer with its credentials in the Secret secret.
func (e *env) customerWith(name, email, secret string) *v1alpha1.Customer {
	c := e.customer(name, email)
	c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: secret}
	return c
}

func (e *env) create(c *v1alpha1.Customer) *v1alpha1.Customer {
	e.t.Helper()
	if err := e.k8s.Create(e.ctx, c); err != nil {
		e.t.Fatalf("creating Customer %s: %v", c.Name, err)
	}
	return c
}

func (e *env) get(name string) *v1alpha1.Customer {
	e.t.Helper()
	c := &v1alpha1.Customer{}
	if err := e.k8s.Get(e.ctx, types.NamespacedName{Namespace: e.ns, Name: name}, c); err != nil {
		e.t.Fatalf("getting Customer %s: %v", name, err)
	}
	return c
}

// update applies f to the newest copy of the Customer, retrying on conflicts.
func (e *env) update(name string, f func(*v1alpha1.Customer)) {
	e.t.Helper()
	e.eventually(10*time.Second, "update "+name, func() error {
		c := e.get(name)
		f(c)
		return e.k8s.Update(e.ctx, c)
	})
}

// patience is the shortest wait for anything to happen: a timeout here
// bounds liveness (the test fails rather than hang), it measures nothing,
// and a loaded machine may take many times longer than an idle one. A
// condition that holds sooner returns sooner.
const patience = time.Minute

// eventually polls f until it returns nil or timeout passes.
func (e *env) eventually(timeout time.Duration, what string, f func() error) {
	e.t.Helper()
	timeout = max(timeout, patience)
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: still not true after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// condition returns the Ready condition of the Customer, or nil.
func (e *env) ready(name string) *metav1.Condition {
	return meta.FindStatusCondition(e.get(name).Status.Conditions, v1alpha1.ConditionReady)
}

// waitReason waits until Ready has status and reason, and returns the
// Customer.
func (e *env) waitReason(name string, status metav1.ConditionStatus, reason string, timeout time.Duration) *v1alpha1.Customer {
	e.t.Helper()
	var c *v1alpha1.Customer
	e.eventually(timeout, fmt.Sprintf("%s Ready=%s/%s", name, status, reason), func() error {
		c = e.get(name)
		cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
		if cond == nil || cond.Status != status || cond.Reason != reason {
			return fmt.Errorf("Ready is %+v", cond)
		}
		if cond.ObservedGeneration != c.Generation || c.Status.ObservedGeneration != c.Generation {
			return fmt.Errorf("observed generation %d/%d, generation %d", cond.ObservedGeneration, c.Status.ObservedGeneration, c.Generation)
		}
		return nil
	})
	e.checkKstatus(c)
	return c
}

// needsAPerson are the reasons that always mean Stalled: retrying cannot
// fix them. APIError may be either (a 400 is stalled, a 502 is not).
var needsAPerson = map[string]bool{
	v1alpha1.ReasonConflict: true, v1alpha1.ReasonNotFound: true, v1alpha1.ReasonUnauthorized: true,
	v1alpha1.ReasonDeletionBlocked: true, v1alpha1.ReasonInvalidCredentials: true, v1alpha1.ReasonAccountChanged: true,
	v1alpha1.ReasonStoredDifferently: true, v1alpha1.ReasonInvalidID: true,
}

// checkKstatus asserts what Flux and kubectl wait read: Ready=True has
// neither Stalled nor Reconciling; Ready=False has exactly one of them, with
// Ready's reason, and Stalled for every reason that needs a person.
func (e *env) checkKstatus(c *v1alpha1.Customer) {
	e.t.Helper()
	ready := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	stalled := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionStalled)
	reconciling := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReconciling)
	switch {
	case ready == nil:
	case ready.Status == metav1.ConditionTrue:
		if stalled != nil || reconciling != nil {
			e.t.Fatalf("%s is Ready yet has Stalled %v / Reconciling %v", c.Name, stalled, reconciling)
		}
	case (stalled == nil) == (reconciling == nil):
		e.t.Fatalf("%s is not Ready (%s): want exactly one of Stalled and Reconciling, got %v and %v", c.Name, ready.Reason, stalled, reconciling)
	case stalled != nil && stalled.Reason != ready.Reason, reconciling != nil && reconciling.Reason != ready.Reason:
		e.t.Fatalf("%s: Stalled/Reconciling disagree with Ready's reason %s: %v %v", c.Name, ready.Reason, stalled, reconciling)
	case needsAPerson[ready.Reason] && stalled == nil:
		e.t.Fatalf("%s: reason %s needs a person, but Stalled is not True (Reconciling %v)", c.Name, ready.Reason, reconciling)
	}
}

func (e *env) waitReady(name string) *v1alpha1.Customer {
	e.t.Helper()
	return e.waitReason(name, metav1.ConditionTrue, v1alpha1.ReasonAvailable, 20*time.Second)
}

// waitGone waits until the Customer no longer exists.
func (e *env) waitGone(name string, timeout time.Duration) {
	e.t.Helper()
	e.eventually(timeout, name+" deleted", func() error {
		c := &v1alpha1.Customer{}
		err := e.k8s.Get(e.ctx, types.NamespacedName{Namespace: e.ns, Name: name}, c)
		if err == nil {
			return fmt.Errorf("still there, finalizers %v", c.Finalizers)
		}
		return client.IgnoreNotFound(err)
	})
}

// events returns the Events about the named Customer with reason.
func (e *env) events(name, reason string) []eventsv1.Event {
	e.t.Helper()
	evs := &eventsv1.EventList{}
	if err := e.k8s.List(e.ctx, evs, client.InNamespace(e.ns)); err != nil {
		e.t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, ev := range evs.Items {
		if ev.Regarding.Name == name && ev.Reason == reason {
			out = append(out, ev)
		}
	}
	return out
}

func (e *env) waitEvent(name, reason string) eventsv1.Event {
	e.t.Helper()
	var got []eventsv1.Event
	e.eventually(10*time.Second, fmt.Sprintf("event %s on %s", reason, name), func() error {
		if got = e.events(name, reason); len(got) == 0 {
			return fmt.Errorf("no such event")
		}
		return nil
	})
	return got[0]
}

// records returns the default account's records in the simulator.
func (e *env) records() []scriptlock.Customer { return e.sim.Records(canaryKey) }

// calls counts simulator calls of method and route.
func (e *env) calls(method, route string) int { return e.sim.CallCount(method, route) }

// secret creates a credentials Secret in namespace ns.
func (e *env) secret(ns, name string, data map[string]string) {
	e.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	if err := e.k8s.Create(e.ctx, s); err != nil {
		e.t.Fatal(err)
	}
}

var _ http.Handler = (*sim.Server)(nil)
