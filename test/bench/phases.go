package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/hack/localenv"
)

// result is what one mode measured.
type result struct {
	mode string

	// What the manager says it runs with (/metrics): 0 when it does not.
	workers    float64 // controller_runtime_max_concurrent_reconciles
	limit      float64 // scriptlock_reconcile_concurrency_limit at the end of the create phase
	goMemLimit float64 // go_gc_gomemlimit_bytes; math.MaxInt64 for none

	ceiling ceiling // before the manager started; zero when skipped

	// Create phase.
	created          time.Duration // until the last create answered
	allReady         time.Duration // until the last Customer was Ready
	settled          time.Duration // until the manager's queue was empty
	samples          []sample
	createCalls      callCounts
	createWrites     writes
	createCPU        float64 // seconds
	drained          bool    // the work queue emptied after the creates
	queueAfterCreate float64 // its depth when the create phase ended
	memCreate        memory  // at the end of the create phase
	// The manager's controller_runtime_reconcile_total{controller="customer"}
	// by result, and its scriptlock_waits_total by wait, at the end of the
	// create phase.
	createReconciles map[string]float64
	createWaits      map[string]float64

	// Idle phase.
	idle                 time.Duration
	idleCalls            callCounts
	idleWrites           writes
	idleCPU              float64 // seconds
	readyDropsDuringIdle int
	queueAfterIdle       float64
	hwmKiB               int64 // the first manager process's VmHWM at the end of the idle phase

	restart *restartResult // nil when -restart=false

	listFailures, logErrors int
	listingBytes            int // one listing of the account, at the end
}

// peakRSSKiB is the highest VmHWM of the manager processes of the run.
func (r *result) peakRSSKiB() int64 {
	if r.restart != nil {
		return max(r.hwmKiB, r.restart.mem.hwmKiB)
	}
	return r.hwmKiB
}

// restartResult is what the restart phase measured: from SIGTERM to the
// old manager until the new one has checked every Customer.
type restartResult struct {
	stopTook     time.Duration      // SIGTERM until the old process exited
	readyAfter   time.Duration      // the new process's start until /readyz answered
	checkedAfter time.Duration      // the new process's start until every Customer was checked
	checked      bool               // false: the deadline passed first
	reconciles   float64            // controller_runtime_reconcile_total of the new process then
	byResult     map[string]float64 // the same by its result label (success, requeue, requeue_after, error)
	calls        callCounts
	writes       writes // server side from SIGTERM on; client: the new process's own counter
	cpu          float64
	drops        int // Customers that left Ready
	mem          memory
}

// sample is the number of Ready Customers t after the first create.
type sample struct {
	t     time.Duration
	ready int
}

// runMode runs the phases of one mode on a fresh environment in dir.
func runMode(ctx context.Context, p params, root, dir, mode string) (*result, error) {
	seedFile := ""
	if p.seedRecords > 0 {
		seedFile = filepath.Join(dir, "seed.json")
		localenv.Logf("writing %d unmanaged records to %s", p.seedRecords, seedFile)
		if err := writeSeed(seedFile, p.seedRecords); err != nil {
			return nil, err
		}
	}
	managerArgs := []string{
		"--drift-detection", mode,
		"--resync-period", p.resync.String(),
		"--scriptlock-qps", fmt.Sprint(p.qps),
		"--scriptlock-burst", fmt.Sprint(p.burst),
	}
	if p.workers > 0 {
		managerArgs = append(managerArgs, "--max-concurrent-reconciles", fmt.Sprint(p.workers))
	}
	memoryLimit, err := containerMemoryLimit(p.memoryLimit, root)
	if err != nil {
		return nil, err
	}
	env, err := startEnv(ctx, envOptions{
		root: root, dir: dir, apiKey: benchKey, simLatency: p.latency, seedFile: seedFile,
		managerArgs: managerArgs, memLimit: p.memLimit, memoryLimit: memoryLimit,
	})
	if err != nil {
		return nil, err
	}
	defer env.stop()
	// Close the benchmark's own watches before the control plane stops:
	// an open watch makes kube-apiserver wait out its stop timeout.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &result{mode: mode}
	profileDir := p.profileDir
	if profileDir == "" {
		profileDir = dir
	}
	if err := os.MkdirAll(profileDir, 0o755); err != nil {
		return nil, err
	}

	k8s, cfg, err := benchClient(env.config)
	if err != nil {
		return nil, err
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace}}); err != nil {
		return nil, err
	}
	if err := warmUp(ctx, k8s); err != nil {
		return nil, err
	}
	if n := min(p.ceilingN, p.n); n > 0 {
		if r.ceiling, err = measureCeiling(ctx, k8s, n, p.ceilingWorkers); err != nil {
			return nil, fmt.Errorf("API-server ceiling: %w", err)
		}
	}

	mgr, err := env.newManager()
	if err != nil {
		return nil, err
	}
	if err := mgr.Start(ctx); err != nil {
		return nil, err
	}
	tr, err := watchReady(ctx, cfg, k8s.Scheme())
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 60 * time.Second}
	defer hc.CloseIdleConnections()
	ph := &phases{p: p, env: env, k8s: k8s, hc: hc, tr: tr, r: r, profileDir: profileDir}
	if err := ph.create(ctx); err != nil {
		return nil, err
	}
	// Read once the controller has surely started (it sets the gauge then).
	m, err := getMetrics(ctx, hc, mgr.MetricsURL)
	if err != nil {
		return nil, err
	}
	r.workers = m.sum("controller_runtime_max_concurrent_reconciles", isCustomerController)
	r.limit = m.sum("scriptlock_reconcile_concurrency_limit", nil)
	r.goMemLimit = m.sum("go_gc_gomemlimit_bytes", nil)
	r.createReconciles, r.createWaits = m.byLabel("controller_runtime_reconcile_total", "result", isCustomerController), m.byLabel("scriptlock_waits_total", "wait", nil)
	localenv.Logf("the manager ran %.0f workers (reconciles at once: %.0f) with a Go memory limit of %s", r.workers, r.limit, memLimitText(r.goMemLimit))
	if err := ph.idle(ctx); err != nil {
		return nil, err
	}
	if p.restart {
		if err := ph.restart(ctx); err != nil {
			return nil, err
		}
	}

	// What a listing of the account weighs, read after the counters were
	// taken.
	if body, err := httpGet(ctx, hc, env.simURL+"/api/customers", map[string]string{"Authorization": "Basic " + benchKey}); err == nil {
		r.listingBytes = len(body)
	}
	for i := 1; i <= mgr.Starts; i++ {
		log := filepath.Join(dir, "manager.log")
		if i > 1 {
			log = filepath.Join(dir, fmt.Sprintf("manager-%d.log", i))
		}
		lf, le := scanLog(log)
		r.listFailures += lf
		r.logErrors += le
	}
	return r, nil
}

// benchClient is an unthrottled client of the API server with the
// Customer types: the creates must not wait on client-side throttling.
func benchClient(admin *rest.Config) (client.Client, *rest.Config, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, nil, err
	}
	cfg := rest.CopyConfig(admin)
	cfg.QPS, cfg.Burst = 5000, 10000
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	return k8s, cfg, err
}

// phases holds what the phases of one mode share.
type phases struct {
	p          params
	env        *benchEnv
	k8s        client.Client
	hc         *http.Client
	tr         *readyTracker
	r          *result
	profileDir string

	// Counters at the end of the previous phase.
	writes writes
	proc   procStats
}

func (ph *phases) profilePath(phase string) string {
	name := fmt.Sprintf("heap-%s-n%d-%s.pb.gz", ph.r.mode, ph.p.n, phase)
	if ph.p.seedRecords > 0 {
		name = fmt.Sprintf("heap-%s-n%d-seed%d-%s.pb.gz", ph.r.mode, ph.p.n, ph.p.seedRecords, phase)
	}
	return filepath.Join(ph.profileDir, name)
}

// create creates N Customers and waits until all are Ready and the
// manager's work queue is empty.
func (ph *phases) create(ctx context.Context) error {
	p, r, env, hc := ph.p, ph.r, ph.env, ph.hc
	mgr := env.manager
	if err := resetSimCalls(ctx, hc, env.simURL); err != nil {
		return err
	}
	w0, err := scrapeWrites(ctx, hc, mgr.MetricsURL, env.config)
	if err != nil {
		return err
	}
	ps0, err := readProc(mgr.PID())
	if err != nil {
		return err
	}
	start := time.Now()
	ph.tr.start(start, p.n)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			n := ph.tr.count()
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
	if err := parallel(ctx, p.n, p.createWorkers, func(ctx context.Context, i int) error {
		c := benchCustomer(i)
		if err := ph.k8s.Create(ctx, c); err != nil {
			return fmt.Errorf("creating %s: %w", c.Name, err)
		}
		return nil
	}); err != nil {
		return err
	}
	r.created = time.Since(start)
	localenv.Logf("all %d Customers created in %s; waiting for Ready", p.n, r.created.Round(time.Millisecond))
	if err := ph.tr.waitAll(ctx, p.n, p.timeout, func(n int) {
		localenv.Logf("  %d/%d Ready after %s", n, p.n, time.Since(start).Round(time.Second))
	}); err != nil {
		return fmt.Errorf("%w (manager log: %s)", err, mgr.Log)
	}
	r.allReady = ph.tr.allReadyAt().Sub(start)
	<-samplerDone
	// End the curve at the exact moment the last Customer became Ready.
	for len(r.samples) > 0 && r.samples[len(r.samples)-1].t >= r.allReady {
		r.samples = r.samples[:len(r.samples)-1]
	}
	r.samples = append(r.samples, sample{t: r.allReady, ready: p.n})
	localenv.Logf("all %d Ready after %s; waiting for the manager's work queue to drain", p.n, r.allReady.Round(time.Millisecond))
	if r.queueAfterCreate, r.drained, err = waitQueueEmpty(ctx, hc, mgr.MetricsURL, time.Minute); err != nil {
		return err
	}
	if !r.drained {
		localenv.Logf("the work queue did not drain within a minute (depth %.0f): ending the create phase anyway", r.queueAfterCreate)
	}
	r.settled = time.Since(start)

	// End of the create phase: snapshot, reset the simulator's counters.
	calls, err := simCalls(ctx, hc, env.simURL)
	if err != nil {
		return err
	}
	if err := resetSimCalls(ctx, hc, env.simURL); err != nil {
		return err
	}
	if ph.writes, err = scrapeWrites(ctx, hc, mgr.MetricsURL, env.config); err != nil {
		return err
	}
	if ph.proc, err = readProc(mgr.PID()); err != nil {
		return err
	}
	r.createCalls, r.createWrites, r.createCPU = groupCalls(calls), ph.writes.minus(w0), ph.proc.cpuSeconds-ps0.cpuSeconds
	// The profile's forced GC and its transfer cost the manager a little
	// CPU, which falls in the idle phase; it is taken after the counters.
	if r.memCreate, err = takeMemory(ctx, hc, mgr, ph.profilePath("create")); err != nil {
		return err
	}
	localenv.Logf("create phase: live heap %s (profile), heap in use %s, peak RSS %s; profile %s",
		mib(float64(r.memCreate.profileInuse)), mib(r.memCreate.heapInuse), mib(float64(r.memCreate.hwmKiB)*1024), r.memCreate.profilePath)
	return nil
}

// idle leaves the operator alone for idlePeriods resync periods.
func (ph *phases) idle(ctx context.Context) error {
	p, r, env, hc := ph.p, ph.r, ph.env, ph.hc
	mgr := env.manager
	start := time.Now()
	d := time.Duration(p.idlePeriods) * p.resync
	localenv.Logf("idle phase: %d resync periods (%s)", p.idlePeriods, d)
	ph.tr.resetDrops()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
	}
	calls, err := simCalls(ctx, hc, env.simURL)
	if err != nil {
		return err
	}
	w, err := scrapeWrites(ctx, hc, mgr.MetricsURL, env.config)
	if err != nil {
		return err
	}
	ps, err := readProc(mgr.PID())
	if err != nil {
		return err
	}
	r.idle = time.Since(start)
	r.idleCalls, r.idleWrites, r.idleCPU = groupCalls(calls), w.minus(ph.writes), ps.cpuSeconds-ph.proc.cpuSeconds
	r.hwmKiB = ps.hwmKiB
	r.readyDropsDuringIdle = ph.tr.drops()
	if r.queueAfterIdle, _, err = queueState(ctx, hc, mgr.MetricsURL); err != nil {
		return err
	}
	ph.writes, ph.proc = w, ps
	return nil
}

// restart stops the manager with SIGTERM, starts it again and waits until
// it has checked every Customer (waitChecked).
func (ph *phases) restart(ctx context.Context) error {
	p, r, env, hc := ph.p, ph.r, ph.env, ph.hc
	mgr := env.manager
	rr := &restartResult{}
	r.restart = rr
	if err := resetSimCalls(ctx, hc, env.simURL); err != nil {
		return err
	}
	w0, err := scrapeWrites(ctx, hc, mgr.MetricsURL, env.config)
	if err != nil {
		return err
	}
	ph.tr.resetDrops()
	localenv.Logf("restart phase: stopping the manager (SIGTERM)")
	if rr.stopTook, err = mgr.Stop(); err != nil {
		return err
	}
	start := time.Now()
	if err := mgr.Start(ctx); err != nil {
		return err
	}
	rr.readyAfter = time.Since(start)
	localenv.Logf("manager ready again after %s; waiting until it has checked all %d Customers", rr.readyAfter.Round(time.Millisecond), p.n)
	if rr.checked, err = waitChecked(ctx, hc, mgr.MetricsURL, env.simURL, r.mode, p.n, p.timeout); err != nil {
		return err
	}
	rr.checkedAfter = time.Since(start)
	if !rr.checked {
		localenv.Logf("the restarted manager had not checked every Customer after %s", p.timeout)
	}
	m, err := getMetrics(ctx, hc, mgr.MetricsURL)
	if err != nil {
		return err
	}
	rr.reconciles = m.sum("controller_runtime_reconcile_total", isCustomerController)
	rr.byResult = m.byLabel("controller_runtime_reconcile_total", "result", isCustomerController)
	calls, err := simCalls(ctx, hc, env.simURL)
	if err != nil {
		return err
	}
	w1, err := scrapeWrites(ctx, hc, mgr.MetricsURL, env.config)
	if err != nil {
		return err
	}
	// The server-side counters span both processes; the client counter
	// is the new process's own, from zero.
	rr.writes = w1.minus(w0)
	rr.writes.client = w1.client
	ps, err := readProc(mgr.PID())
	if err != nil {
		return err
	}
	rr.calls, rr.cpu, rr.drops = groupCalls(calls), ps.cpuSeconds, ph.tr.drops()
	if rr.mem, err = takeMemory(ctx, hc, mgr, ph.profilePath("restart")); err != nil {
		return err
	}
	localenv.Logf("restart phase: every Customer checked %s after the start; %d ScriptLock calls, %.0f writes; live heap %s, peak RSS %s",
		rr.checkedAfter.Round(time.Millisecond), rr.calls.total(), rr.writes.client, mib(float64(rr.mem.profileInuse)), mib(float64(rr.mem.hwmKiB)*1024))
	return nil
}

// scrapeWrites reads the manager's and kube-apiserver's write counters at
// once.
func scrapeWrites(ctx context.Context, hc *http.Client, metricsURL string, admin *rest.Config) (writes, error) {
	mgr, err := getMetrics(ctx, hc, metricsURL)
	if err != nil {
		return writes{}, fmt.Errorf("manager metrics: %w", err)
	}
	api, err := apiserverMetrics(ctx, admin)
	if err != nil {
		return writes{}, fmt.Errorf("kube-apiserver metrics: %w", err)
	}
	return countWrites(mgr, api), nil
}

// waitQueueEmpty waits until the manager's customer work queue is empty
// and no worker is busy, twice in a row a second apart, so that the
// reconciles a create triggers are counted in the create phase. It gives
// up after limit and returns the depth then: with per-object drift
// detection and many Customers, resyncs keep the queue busy for good.
func waitQueueEmpty(ctx context.Context, hc *http.Client, url string, limit time.Duration) (depth float64, drained bool, err error) {
	quiet := 0
	deadline := time.Now().Add(limit)
	for {
		m, err := getMetrics(ctx, hc, url)
		if err != nil {
			return 0, false, err
		}
		d, active := queueOf(m)
		if d == 0 && active == 0 {
			quiet++
		} else {
			quiet = 0
		}
		if quiet >= 2 {
			return 0, true, nil
		}
		if time.Now().After(deadline) {
			return d, false, nil
		}
		if err := sleep(ctx, time.Second); err != nil {
			return 0, false, err
		}
	}
}

// waitChecked waits until a restarted manager has checked every one of n
// Customers: its controller_runtime_reconcile_total has reached n and
// either its work queue is empty with no busy worker, twice in a row a
// second apart, or (per-object mode, whose resyncs may keep the queue
// busy for good) the simulator has answered n reads of single records
// since its counters were reset. It reports false when limit passed first.
func waitChecked(ctx context.Context, hc *http.Client, metricsURL, simURL, mode string, n int, limit time.Duration) (bool, error) {
	quiet := 0
	deadline := time.Now().Add(limit)
	for {
		m, err := getMetrics(ctx, hc, metricsURL)
		if err != nil {
			return false, err
		}
		reached := m.sum("controller_runtime_reconcile_total", isCustomerController) >= float64(n)
		d, active := queueOf(m)
		if reached && d == 0 && active == 0 {
			quiet++
		} else {
			quiet = 0
		}
		if quiet >= 2 {
			return true, nil
		}
		if reached && mode != "list" {
			calls, err := simCalls(ctx, hc, simURL)
			if err != nil {
				return false, err
			}
			if groupCalls(calls).byRoute[routeRead] >= n {
				return true, nil
			}
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		if err := sleep(ctx, time.Second); err != nil {
			return false, err
		}
	}
}

// routeRead is the simulator's counter key of a read of one record.
const routeRead = "GET /api/customer/{id}"

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// queueState reads the depth of the manager's customer work queue and its
// busy workers.
func queueState(ctx context.Context, hc *http.Client, url string) (depth, active float64, err error) {
	m, err := getMetrics(ctx, hc, url)
	if err != nil {
		return 0, 0, err
	}
	depth, active = queueOf(m)
	return depth, active, nil
}

func queueOf(m metrics) (depth, active float64) {
	depth = m.sum("workqueue_depth", func(l map[string]string) bool { return l["name"] == "customer" })
	// Events still waiting to be sent are work of the phase too.
	depth += m.sum("scriptlock_events_queued", nil)
	active = m.sum("controller_runtime_active_workers", isCustomerController)
	return depth, active
}

func isCustomerController(l map[string]string) bool { return l["controller"] == "customer" }

// warmUp sends dry-run creates until the API server answers one in under
// 50 ms (at most 20 s): a fresh kube-apiserver is slow on its first
// Customers (CRD handler, validation rules), which is not the operator's
// cost. Dry runs store nothing.
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

func mib(bytes float64) string { return fmt.Sprintf("%.0f MiB", bytes/(1<<20)) }

// memLimitText reads go_gc_gomemlimit_bytes: math.MaxInt64 (or nothing
// scraped) is no limit.
func memLimitText(v float64) string {
	if v <= 0 || v >= math.MaxInt64 {
		return "none"
	}
	return fmt.Sprintf("%.0f MiB", v/(1<<20))
}

// containerMemoryLimit is -memory-limit in bytes: the Deployment's limit,
// none (0), or a quantity.
func containerMemoryLimit(flagValue, root string) (int64, error) {
	switch flagValue {
	case "deployment":
		return deploymentMemoryLimit(root)
	case "", "none":
		return 0, nil
	}
	q, err := resource.ParseQuantity(flagValue)
	if err != nil {
		return 0, fmt.Errorf("-memory-limit: %w", err)
	}
	return q.Value(), nil
}
