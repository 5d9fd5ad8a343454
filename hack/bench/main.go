// Command bench measures what the operator costs at scale, once per drift
// detection mode (--drift-detection=list and per-object), each on a fresh
// local control plane (hack/localenv): the manager runs as its own process
// against kube-apiserver, etcd and the ScriptLock simulator on loopback.
//
// For each mode it creates N Customers through the API server in parallel,
// records how many are Ready over time until all are, then leaves the
// operator idle for a few resync periods. It counts, separately for the
// create phase and the idle phase, the ScriptLock calls by method and route
// (the simulator's counters), the API-server writes (the manager's client
// metrics and kube-apiserver's own), and the manager's CPU time and peak
// memory (/proc). It writes docs/benchmarks.md and a PNG chart beside it.
//
//	go run ./hack/bench -n 1000
//	go run ./hack/bench -n 10000 -append
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/hack/localenv"
)

// params are the benchmark's flags.
type params struct {
	n             int
	latency       time.Duration
	resync        time.Duration
	idlePeriods   int
	workers       int
	qps           float64
	burst         int
	createWorkers int
	timeout       time.Duration
	out           string
	modes         []string
	appendTo      bool
	keepLogs      bool
}

const (
	benchKey       = "bench-api-key"
	benchNamespace = "bench"
)

func main() {
	var p params
	var modes string
	flag.IntVar(&p.n, "n", 1000, "number of Customers")
	flag.DurationVar(&p.latency, "latency", 20*time.Millisecond, "latency the simulator adds to every ScriptLock answer")
	flag.DurationVar(&p.resync, "resync", 30*time.Second, "the manager's --resync-period")
	flag.IntVar(&p.idlePeriods, "idle-periods", 3, "how many resync periods the idle phase lasts")
	flag.IntVar(&p.workers, "workers", 8, "the manager's --max-concurrent-reconciles")
	flag.Float64Var(&p.qps, "qps", 200, "the manager's --scriptlock-qps")
	flag.IntVar(&p.burst, "burst", 200, "the manager's --scriptlock-burst")
	flag.IntVar(&p.createWorkers, "create-workers", 16, "goroutines creating Customers through the API server")
	flag.DurationVar(&p.timeout, "timeout", time.Hour, "give up when not every Customer is Ready after this long")
	flag.StringVar(&p.out, "out", "docs/benchmarks.md", "Markdown report to write; the chart goes beside it")
	flag.StringVar(&modes, "modes", "list,per-object", "drift detection modes to run, comma-separated")
	flag.BoolVar(&p.appendTo, "append", false, "add (or replace) this N's section in -out instead of rewriting the file")
	flag.BoolVar(&p.keepLogs, "keep-logs", false, "keep the manager's and the simulator's logs")
	flag.Parse()
	for _, m := range strings.Split(modes, ",") {
		if m = strings.TrimSpace(m); m != "" {
			p.modes = append(p.modes, m)
		}
	}
	ctx, stop := localenv.SignalContext()
	err := run(ctx, p)
	stop()
	if err != nil {
		localenv.Logf("bench failed: %v", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, p params) error {
	if p.n < 1 || p.idlePeriods < 0 || len(p.modes) == 0 {
		return errors.New("-n must be at least 1, -idle-periods at least 0, -modes not empty")
	}
	root, err := localenv.RepoRoot()
	if err != nil {
		return err
	}
	out := p.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	var results []*result
	for i, mode := range p.modes {
		localenv.Logf("=== mode %s (%d/%d): N=%d, latency %s, resync %s, %d workers, ScriptLock qps %g burst %d",
			mode, i+1, len(p.modes), p.n, p.latency, p.resync, p.workers, p.qps, p.burst)
		r, err := runMode(ctx, p, root, mode, i > 0)
		if err != nil {
			return fmt.Errorf("mode %s: %w", mode, err)
		}
		results = append(results, r)
		localenv.Logf("=== mode %s: all %d Ready in %s; create phase %d ScriptLock calls, idle phase %d; idle API writes %.0f",
			mode, p.n, r.allReady.Round(time.Millisecond), r.createCalls.total(), r.idleCalls.total(), r.idleWrites.client)
	}
	if err := writeReport(out, p, results); err != nil {
		return err
	}
	localenv.Logf("wrote %s", out)
	return nil
}

// result is what one mode measured.
type result struct {
	mode                     string
	created                  time.Duration // until the last create answered
	allReady                 time.Duration // until the last Customer was Ready
	settled                  time.Duration // until the manager's queue was empty
	samples                  []sample
	createCalls, idleCalls   callCounts
	createWrites, idleWrites writes
	createCPU, idleCPU       float64
	peakRSSKiB, endRSSKiB    int64
	idle                     time.Duration
	listFailures, logErrors  int
	listingBytes             int
	readyDropsDuringIdle     int
	drained                  bool    // the work queue emptied after the creates
	queueAfterCreate         float64 // its depth when the create phase ended
	queueAfterIdle           float64 // its depth when the idle phase ended
	managerLog               string
}

// sample is the number of Ready Customers t after the first create.
type sample struct {
	t     time.Duration
	ready int
}

func runMode(ctx context.Context, p params, root, mode string, skipBuild bool) (*result, error) {
	env, err := localenv.Start(ctx, localenv.Options{
		Root: root, APIKey: benchKey, SimLatency: p.latency, SkipBuild: skipBuild,
		ManagerArgs: []string{
			"--drift-detection", mode,
			"--resync-period", p.resync.String(),
			"--max-concurrent-reconciles", fmt.Sprint(p.workers),
			"--scriptlock-qps", fmt.Sprint(p.qps),
			"--scriptlock-burst", fmt.Sprint(p.burst),
		},
	})
	if err != nil {
		return nil, err
	}
	env.KeepDir = p.keepLogs
	defer env.Stop()
	// Close the benchmark's own watches before the control plane stops:
	// an open watch makes kube-apiserver wait out its stop timeout.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &result{mode: mode, managerLog: env.ManagerLog}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 5000, 10000 // the creates must not wait on client-side throttling
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace}}); err != nil {
		return nil, err
	}
	tr, err := watchReady(ctx, cfg, scheme)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	pid := env.Manager.PID()
	if err := warmUp(ctx, k8s); err != nil {
		return nil, err
	}

	// Baseline, then the create phase.
	if err := resetSimCalls(ctx, hc, env.SimURL); err != nil {
		return nil, err
	}
	w0, err := scrapeWrites(ctx, hc, env)
	if err != nil {
		return nil, err
	}
	ps0, err := readProc(pid)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	tr.start(start, p.n)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			n := tr.count()
			r.samples = append(r.samples, sample{t: time.Since(start), ready: n})
			if n >= p.n {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	localenv.Logf("creating %d Customers with %d goroutines", p.n, p.createWorkers)
	if err := createCustomers(ctx, k8s, p.n, p.createWorkers); err != nil {
		return nil, err
	}
	r.created = time.Since(start)
	localenv.Logf("all %d Customers created in %s; waiting for Ready", p.n, r.created.Round(time.Millisecond))
	if err := tr.waitAll(ctx, p.n, p.timeout, func(n int) {
		localenv.Logf("  %d/%d Ready after %s", n, p.n, time.Since(start).Round(time.Second))
	}); err != nil {
		return nil, fmt.Errorf("%w (manager log: %s)", err, env.ManagerLog)
	}
	r.allReady = tr.allReadyAt().Sub(start)
	<-samplerDone
	// End the curve at the exact moment the last Customer became Ready.
	for len(r.samples) > 0 && r.samples[len(r.samples)-1].t >= r.allReady {
		r.samples = r.samples[:len(r.samples)-1]
	}
	r.samples = append(r.samples, sample{t: r.allReady, ready: p.n})
	localenv.Logf("all %d Ready after %s; waiting for the manager's work queue to drain", p.n, r.allReady.Round(time.Millisecond))
	if r.queueAfterCreate, r.drained, err = waitQueueEmpty(ctx, hc, env.MetricsURL, time.Minute); err != nil {
		return nil, err
	}
	if !r.drained {
		localenv.Logf("the work queue did not drain within a minute (depth %.0f): ending the create phase anyway", r.queueAfterCreate)
	}
	r.settled = time.Since(start)

	// End of the create phase: snapshot, reset the simulator's counters.
	createCalls, err := simCalls(ctx, hc, env.SimURL)
	if err != nil {
		return nil, err
	}
	if err := resetSimCalls(ctx, hc, env.SimURL); err != nil {
		return nil, err
	}
	w1, err := scrapeWrites(ctx, hc, env)
	if err != nil {
		return nil, err
	}
	ps1, err := readProc(pid)
	if err != nil {
		return nil, err
	}
	r.createCalls, r.createWrites, r.createCPU = groupCalls(createCalls), w1.minus(w0), ps1.cpuSeconds-ps0.cpuSeconds

	// Idle phase.
	idleStart := time.Now()
	idle := time.Duration(p.idlePeriods) * p.resync
	localenv.Logf("idle phase: %d resync periods (%s)", p.idlePeriods, idle)
	tr.resetDrops()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(idle):
	}
	idleCalls, err := simCalls(ctx, hc, env.SimURL)
	if err != nil {
		return nil, err
	}
	w2, err := scrapeWrites(ctx, hc, env)
	if err != nil {
		return nil, err
	}
	ps2, err := readProc(pid)
	if err != nil {
		return nil, err
	}
	r.idle = time.Since(idleStart)
	r.idleCalls, r.idleWrites, r.idleCPU = groupCalls(idleCalls), w2.minus(w1), ps2.cpuSeconds-ps1.cpuSeconds
	r.peakRSSKiB, r.endRSSKiB = ps2.hwmKiB, ps2.rssKiB
	r.readyDropsDuringIdle = tr.drops()
	if r.queueAfterIdle, _, err = queueState(ctx, hc, env.MetricsURL); err != nil {
		return nil, err
	}

	// What a listing of the account weighs (the client refuses bodies over
	// 1 MiB), read after the counters were taken.
	if body, err := httpGet(ctx, hc, env.SimURL+"/api/customers", map[string]string{"Authorization": "Basic " + benchKey}); err == nil {
		r.listingBytes = len(body)
	}
	r.listFailures, r.logErrors = scanLog(env.ManagerLog)
	return r, nil
}

// scrapeWrites reads both write counters at once.
func scrapeWrites(ctx context.Context, hc *http.Client, env *localenv.Env) (writes, error) {
	mgr, err := getMetrics(ctx, hc, env.MetricsURL)
	if err != nil {
		return writes{}, fmt.Errorf("manager metrics: %w", err)
	}
	api, err := apiserverMetrics(ctx, env.Config)
	if err != nil {
		return writes{}, fmt.Errorf("kube-apiserver metrics: %w", err)
	}
	return countWrites(mgr, api), nil
}

// waitQueueEmpty waits until the manager's customer work queue is empty
// and no worker is busy, twice in a row a second apart, so that the
// reconciles a create triggers are counted in the create phase. It gives up
// after limit and returns the depth then: with per-object drift detection
// and many Customers, resyncs keep the queue busy for good.
func waitQueueEmpty(ctx context.Context, hc *http.Client, url string, limit time.Duration) (depth float64, drained bool, err error) {
	quiet := 0
	deadline := time.Now().Add(limit)
	for {
		var active float64
		if depth, active, err = queueState(ctx, hc, url); err != nil {
			return 0, false, err
		}
		if depth == 0 && active == 0 {
			quiet++
		} else {
			quiet = 0
		}
		if quiet >= 2 {
			return 0, true, nil
		}
		if time.Now().After(deadline) {
			return depth, false, nil
		}
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// queueState reads the depth of the manager's customer work queue and its
// busy workers.
func queueState(ctx context.Context, hc *http.Client, url string) (depth, active float64, err error) {
	m, err := getMetrics(ctx, hc, url)
	if err != nil {
		return 0, 0, err
	}
	depth = m.sum("workqueue_depth", func(l map[string]string) bool { return l["name"] == "customer" })
	active = m.sum("controller_runtime_active_workers", func(l map[string]string) bool { return l["controller"] == "customer" })
	return depth, active, nil
}

// warmUp sends dry-run creates until the API server answers one in under
// 50 ms (at most 20 s): a fresh kube-apiserver is slow on its first
// Customers (CRD handler, validation rules), which is not the operator's
// cost. Dry runs store nothing, so the manager sees none of them.
func warmUp(ctx context.Context, k8s client.Client) error {
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		c := benchCustomer(1_000_000 + i)
		start := time.Now()
		if err := k8s.Create(ctx, c, client.DryRunAll); err != nil {
			return fmt.Errorf("warm-up dry-run create: %w", err)
		}
		if time.Since(start) < 50*time.Millisecond || time.Now().After(deadline) {
			return nil
		}
	}
}

// benchCustomer is the i-th Customer, with record fields of realistic size.
func benchCustomer(i int) *v1alpha1.Customer {
	return &v1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: fmt.Sprintf("bench-%05d", i)},
		Spec: v1alpha1.CustomerSpec{
			Company:   fmt.Sprintf("Bench Company %05d Inc.", i),
			FirstName: "Bench",
			LastName:  fmt.Sprintf("Customer %05d", i),
			Email:     fmt.Sprintf("bench-%05d@example.com", i),
		},
	}
}

func createCustomers(ctx context.Context, k8s client.Client, n, workers int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > n || ctx.Err() != nil {
					return
				}
				c := benchCustomer(i)
				if err := k8s.Create(ctx, c); err != nil && !apierrors.IsAlreadyExists(err) {
					once.Do(func() { firstErr = fmt.Errorf("creating %s: %w", c.Name, err); cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// readyTracker follows the Ready condition of every Customer of the
// benchmark's namespace through an informer (a watch, not polling, so that
// the benchmark adds little load to the API server it measures).
type readyTracker struct {
	mu       sync.Mutex
	ready    map[string]bool
	n        int
	startAt  time.Time
	doneAt   time.Time
	target   int
	dropped  int // Ready → not Ready transitions since resetDrops
	changed  chan struct{}
	informer cache.Informer
}

func watchReady(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) (*readyTracker, error) {
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, DefaultNamespaces: map[string]cache.Config{benchNamespace: {}}})
	if err != nil {
		return nil, err
	}
	inf, err := c.GetInformer(ctx, &v1alpha1.Customer{})
	if err != nil {
		return nil, err
	}
	t := &readyTracker{ready: map[string]bool{}, changed: make(chan struct{}, 1), informer: inf}
	update := func(obj any) {
		cu, ok := obj.(*v1alpha1.Customer)
		if !ok {
			return
		}
		t.set(cu.Name, meta.IsStatusConditionTrue(cu.Status.Conditions, v1alpha1.ConditionReady))
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    update,
		UpdateFunc: func(_, obj any) { update(obj) },
		DeleteFunc: func(obj any) {
			if cu, ok := obj.(*v1alpha1.Customer); ok {
				t.set(cu.Name, false)
			}
		},
	}); err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, errors.New("the benchmark's Customer informer did not sync")
	}
	return t, nil
}

// start marks the first create and the number of Customers to wait for.
func (t *readyTracker) start(at time.Time, target int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.startAt, t.target = at, target
}

func (t *readyTracker) set(name string, ready bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	was := t.ready[name]
	if was == ready {
		return
	}
	t.ready[name] = ready
	if ready {
		t.n++
		if t.target > 0 && t.n >= t.target && t.doneAt.IsZero() {
			t.doneAt = time.Now()
		}
	} else {
		t.n--
		t.dropped++
	}
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

func (t *readyTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

func (t *readyTracker) allReadyAt() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.doneAt
}

func (t *readyTracker) resetDrops() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropped = 0
}

func (t *readyTracker) drops() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// waitAll waits until target Customers are Ready, reporting progress every
// ten seconds.
func (t *readyTracker) waitAll(ctx context.Context, target int, timeout time.Duration, progress func(int)) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		if n := t.count(); n >= target {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("only %d of %d Customers Ready after %s", t.count(), target, timeout)
		case <-tick.C:
			progress(t.count())
		case <-t.changed:
		}
	}
}

// scanLog counts the drift detector's failed listings and the error lines
// in the manager's log.
func scanLog(path string) (listFailures, errorLines int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "listing ScriptLock customers failed") {
			listFailures++
		}
		if strings.Contains(line, `"level":"error"`) || strings.Contains(line, "\tERROR\t") {
			errorLines++
		}
	}
	return listFailures, errorLines
}
