// Command manager runs the ScriptLock Customer operator: flags and wiring
// only; the behaviour lives in controllers/ and internal/scriptlock/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/crdcheck"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/serving"
	"github.com/scriptlock/customer-operator/internal/version"
)

// The version is version.Version, stamped at build time (Makefile
// LDFLAGS, Dockerfile) with
// -ldflags "-X github.com/scriptlock/customer-operator/internal/version.Version=v1.2.3";
// kubectl-scriptlock is stamped the same way, so `manager --version` and
// `kubectl scriptlock version` print the same, and ScriptLock sees it in
// the User-Agent.

// config is everything the flags and the environment say.
type config struct {
	changelog                         logr.Logger // the change log's logger (changelogLogger); not a flag
	scriptlockURL, apiKeyFile, caFile string
	allowInsecureHTTP                 bool
	requestTimeout                    time.Duration
	qps                               float64
	burst                             int
	resync                            time.Duration
	maxConcurrent                     int
	driftDetection                    string
	selector                          string
	watchNamespace                    string
	metrics                           serving.Metrics
	probeAddr, pprofAddr              string
	leaderElect                       bool
	leaderElectionID                  string
	leaderElectionNamespace           string
	allowedHosts                      string
	changelogValues                   bool
	deletionBudget                    int
	deletionBudgetWindow              time.Duration
	deletionBudgetNamespace           string
}

func main() {
	var cfg config
	fs := flag.CommandLine // the kubeconfig flag of controller-runtime lives here
	showVersion := bindFlags(fs, &cfg)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	cfg.changelog = changelogLogger(zapOpts)
	log := ctrl.Log.WithName("setup")
	if err := run(cfg); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

// changelogLogger returns the logger of the change log, named "changelog":
// the manager's zap options (encoder, time encoding, destination), but it
// writes every line, at every --zap-log-level and never sampled.
// controller-runtime's production logger keeps the first 100 lines a
// second of each message and then one in 100: in a storm of creates it
// dropped 1,130 of 50,000 "ScriptLock write" lines, where the change log
// promises one line per POST, PUT and DELETE sent (README). Its level is
// what turns that sampling off (controller-runtime samples only when -2,
// the most verbose V level it allows, is off); the change log writes at
// V(0) only.
func changelogLogger(o zap.Options) logr.Logger {
	o.Level = zapcore.Level(-2)
	return zap.New(zap.UseFlagOptions(&o)).WithName("changelog")
}

// bindFlags registers the manager's own flags on fs, into cfg; the result
// is --version.
func bindFlags(fs *flag.FlagSet, cfg *config) (showVersion *bool) {
	cfg.scriptlockURL = envOr("SCRIPTLOCK_URL", scriptlock.DefaultBaseURL)
	fs.Var(urlFlag{&cfg.scriptlockURL}, "scriptlock-url", "Base URL of the ScriptLock API (env SCRIPTLOCK_URL); no credentials, query or fragment.")
	fs.StringVar(&cfg.apiKeyFile, "scriptlock-api-key-file", "", "File holding the API key of the default ScriptLock account; else the env SCRIPTLOCK_API_KEY holds the key itself.")
	fs.StringVar(&cfg.caFile, "scriptlock-ca-file", os.Getenv("SCRIPTLOCK_CA_FILE"), "PEM bundle of CAs to trust for ScriptLock instead of the system roots (env SCRIPTLOCK_CA_FILE).")
	fs.BoolVar(&cfg.allowInsecureHTTP, "allow-insecure-http", false, "Allow a plain http:// ScriptLock URL on a non-loopback host (the API key then crosses the network in clear text).")
	fs.DurationVar(&cfg.requestTimeout, "scriptlock-timeout", 30*time.Second, "Timeout of one ScriptLock request.")
	fs.Float64Var(&cfg.qps, "scriptlock-qps", 10, "Requests per second allowed to each ScriptLock account.")
	fs.IntVar(&cfg.burst, "scriptlock-burst", 20, "Burst of requests allowed to each ScriptLock account.")
	fs.DurationVar(&cfg.resync, "resync-period", 10*time.Minute, "How often every ScriptLock record is compared with its Customer (drift detection).")
	fs.IntVar(&cfg.maxConcurrent, "max-concurrent-reconciles", 0, "How many Customers are reconciled at once. 0 (the default) derives it from --scriptlock-qps and the time ScriptLock takes to answer (Little's law): 2 x qps x (the average time ScriptLock took to answer a reconcile's calls + the rest of its time, counted up to twice that with few reconciles at once), at least 10, at most the 2 x qps x 1 s workers started (at most 1000; see README \"Sizing\"). A value above 0 fixes it. Half of it may wait on one ScriptLock account at a time.")
	fs.StringVar(&cfg.driftDetection, "drift-detection", string(controllers.DriftByList), "How drift is found: list (one listing per account per resync period) or per-object (one read per Customer per resync period).")
	fs.StringVar(&cfg.selector, "selector", "", "Label selector: only Customers that match it are managed (to shard Customers across several managers).")
	fs.StringVar(&cfg.watchNamespace, "watch-namespace", "", "Manage only the Customers of these namespaces (comma-separated); empty means all.")
	// Secure in a cluster, where other Pods can reach the port; a process
	// run outside one (make run, the demo, a test harness) serves plain
	// HTTP unless told otherwise, like --leader-elect.
	cfg.metrics.BindFlags(fs, inCluster())
	fs.StringVar(&cfg.probeAddr, "health-probe-bind-address", ":8081", "Address of the health and readiness probes.")
	fs.StringVar(&cfg.pprofAddr, "pprof-bind-address", "", "Address of the pprof endpoints (/debug/pprof/), plain HTTP with no authentication: bind it to loopback and use kubectl port-forward. Empty (the default) or 0 disables them.")
	showVersion = fs.Bool("version", false, "Print the version and exit.")
	fs.BoolVar(&cfg.leaderElect, "leader-elect", inCluster(), "Leader election, so that only one manager acts at a time (two managers acting at once would each create every new record). Default: on in a cluster, off outside one; with it off, the manager refuses to start while another holds the lease.")
	fs.StringVar(&cfg.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election lease; default: the Pod's namespace in a cluster, \"default\" outside one.")
	fs.StringVar(&cfg.allowedHosts, "allowed-scriptlock-hosts", "", "Comma-separated hosts (host or host:port) a credentials Secret's url may name; empty allows any host. The host of --scriptlock-url is always allowed.")
	fs.IntVar(&cfg.deletionBudget, "deletion-budget", controllers.DefaultDeletionBudget, "The revocation brake: how many DELETEs (each revokes every license of a customer) one ScriptLock account may be sent per --deletion-budget-window; past it, deletions wait for a person (reason DeletionHeld, annotation licensing.scriptlock.com/approve-deletion). 0 turns the brake off.")
	fs.DurationVar(&cfg.deletionBudgetWindow, "deletion-budget-window", controllers.DefaultDeletionBudgetWindow, "The window of --deletion-budget.")
	fs.StringVar(&cfg.deletionBudgetNamespace, "deletion-budget-namespace", "", "Namespace of the brake's Leases (one per account, holding the DELETEs of the window); default: the Pod's namespace in a cluster, \"default\" outside one.")
	fs.BoolVar(&cfg.changelogValues, "changelog-values", false, "Put the values written (names, emails: personal data) in the change log's lines (logger \"changelog\"), besides the names of the fields; off by default.")
	fs.StringVar(&cfg.leaderElectionID, "leader-election-id", "customer-operator.licensing.scriptlock.com", "Name of the leader-election lease; give each --selector shard its own.")
	return showVersion
}

func run(cfg config) error {
	apiKey, err := readAPIKey(cfg.apiKeyFile)
	if err != nil {
		return err
	}
	var ca []byte
	if cfg.caFile != "" {
		if ca, err = os.ReadFile(cfg.caFile); err != nil {
			return fmt.Errorf("reading --scriptlock-ca-file: %w", err)
		}
	}
	drift := controllers.DriftDetection(cfg.driftDetection)
	if drift != controllers.DriftByList && drift != controllers.DriftPerObject {
		return fmt.Errorf("--drift-detection must be list or per-object, not %q", cfg.driftDetection)
	}
	if cfg.maxConcurrent < 0 {
		return fmt.Errorf("--max-concurrent-reconciles must be 0 (derived from --scriptlock-qps) or more")
	}
	conc := controllers.NewConcurrency(cfg.maxConcurrent, cfg.qps)
	defaults, err := defaultOptions(cfg, conc, apiKey, ca)
	if err != nil {
		return err
	}

	if limit, ok := memoryLimit(os.Getenv("GOMEMLIMIT"), os.Getenv("MEMORY_LIMIT")); ok {
		debug.SetMemoryLimit(limit)
		ctrl.Log.WithName("setup").Info("Go memory limit set from the container's memory limit", "bytes", limit, "containerLimit", os.Getenv("MEMORY_LIMIT"))
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	cacheOpts, err := cacheOptions(cfg)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), managerOptions(cfg, scheme, cacheOpts))
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := crdcheck.Check(context.Background(), mgr.GetConfig()); err != nil {
		return err
	}
	if !cfg.leaderElect {
		if err := refuseBesideALeader(context.Background(), mgr.GetAPIReader(), leaderElectionNamespace(cfg), cfg.leaderElectionID, time.Now()); err != nil {
			return err
		}
	}
	pool := scriptlock.NewPool(defaults, metrics.Registry)
	if cfg.apiKeyFile != "" {
		// A key file mounted from a Secret changes on disk when the key
		// is rotated; the new key is used from the next reconcile on.
		if err := mgr.Add(&keyFileWatcher{file: cfg.apiKeyFile, key: apiKey, pool: pool}); err != nil {
			return err
		}
	}
	if cfg.deletionBudget < 0 || cfg.deletionBudget > 0 && cfg.deletionBudgetWindow <= 0 {
		return fmt.Errorf("--deletion-budget must be 0 (off) or more, with a positive --deletion-budget-window")
	}
	recorder, err := controllers.NewEventRecorder(mgr)
	if err != nil {
		return err
	}
	r := &controllers.CustomerReconciler{
		Client:               mgr.GetClient(),
		APIReader:            mgr.GetAPIReader(),
		Recorder:             recorder,
		Accounts:             pool,
		Clock:                clock.RealClock{},
		ResyncPeriod:         cfg.resync,
		DriftDetection:       drift,
		DeletionBudget:       cfg.deletionBudget,
		DeletionBudgetWindow: cfg.deletionBudgetWindow,
		BrakeNamespace:       brakeNamespace(cfg),
		Concurrency:          conc,
	}
	if err := r.SetupWithManager(mgr, conc.Workers()); err != nil {
		return err
	}
	if err := metrics.Registry.Register(controllers.NewCustomerCollector(mgr.GetClient())); err != nil {
		return fmt.Errorf("registering the Customer gauge: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting manager", "version", version.Version, "scriptlockURL", shownURL(cfg),
		"defaultAccount", apiKey != "", "driftDetection", drift, "resyncPeriod", cfg.resync,
		"deletionBudget", cfg.deletionBudget, "deletionBudgetWindow", cfg.deletionBudgetWindow,
		"workers", conc.Workers(), "concurrencyDerived", conc.Derived(), "concurrencyLimit", conc.Limit(),
		"metricsBindAddress", cfg.metrics.BindAddress, "metricsSecure", cfg.metrics.Secure)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// defaultOptions are the options of the default ScriptLock account, which
// every other account inherits. A bad URL or CA is refused now rather than
// on the first Customer.
func defaultOptions(cfg config, conc *controllers.Concurrency, apiKey string, ca []byte) (scriptlock.Options, error) {
	defaults := scriptlock.Options{
		BaseURL: cfg.scriptlockURL, APIKey: apiKey, CAPEM: ca, Timeout: cfg.requestTimeout,
		QPS: cfg.qps, Burst: cfg.burst, AllowInsecureHTTP: cfg.allowInsecureHTTP,
		// Half the reconciles allowed at once, so that one account that
		// never answers can never hold every worker (the rest fail fast
		// and back off); every account at one host together may hold all
		// but one. Both follow a derived limit as it changes.
		MaxInFlightFunc:        conc.PerAccount,
		MaxInFlightPerHostFunc: conc.PerHost,
		AllowedHosts:           allowedHosts(cfg),
		// One line per POST, PUT and DELETE sent, with why
		// (docs/operations.md, "The change log").
		OnWrite: controllers.NewChangeLog(cfg.changelog, cfg.changelogValues).Observe,
	}
	// The errors name the URL by scheme and host only, and never hold a
	// spelling of the key (internal/scriptlock).
	if err := scriptlock.ValidateBaseURL(cfg.scriptlockURL, cfg.allowInsecureHTTP); err != nil {
		return defaults, fmt.Errorf("--scriptlock-url (or SCRIPTLOCK_URL): %w", err)
	}
	if apiKey != "" {
		if _, err := scriptlock.New(defaults); err != nil {
			return defaults, fmt.Errorf("default ScriptLock account: %w", err)
		}
	}
	return defaults, nil
}

// shownURL is --scriptlock-url as the start line shows it: scheme and host.
func shownURL(cfg config) string { return scriptlock.SafeURL(cfg.scriptlockURL) }

// urlFlag is the value of --scriptlock-url. The flag package prints a
// flag's String as its default in --help and after a mistyped flag, and
// the default comes from SCRIPTLOCK_URL: String shows the scheme and host
// only, as every other text the manager writes about the URL does.
type urlFlag struct{ url *string }

func (f urlFlag) String() string {
	if f.url == nil {
		return ""
	}
	return scriptlock.SafeURL(*f.url)
}

func (f urlFlag) Set(s string) error {
	*f.url = s
	return nil
}

// managerOptions are the controller-runtime manager's options: the
// serving endpoints (metrics as internal/serving makes them, probes,
// pprof) and leader election as the flags say.
func managerOptions(cfg config, scheme *runtime.Scheme, cacheOpts cache.Options) ctrl.Options {
	return ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOpts,
		Client:                  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Metrics:                 cfg.metrics.ServerOptions(),
		HealthProbeBindAddress:  cfg.probeAddr,
		PprofBindAddress:        cfg.pprofAddr,
		LeaderElection:          cfg.leaderElect,
		LeaderElectionID:        cfg.leaderElectionID,
		LeaderElectionNamespace: leaderElectionNamespace(cfg),
		// Every reconcile has stopped when Start returns, so the lease can
		// be handed over at once instead of after it expires.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       new(30 * time.Second),
	}
}

// cacheOptions trims what the informer cache holds and applies the
// sharding selector and namespace scope.
func cacheOptions(cfg config) (cache.Options, error) {
	opts := cache.Options{DefaultTransform: controllers.CacheTransform()}
	if cfg.selector != "" {
		sel, err := labels.Parse(cfg.selector)
		if err != nil {
			return opts, fmt.Errorf("--selector: %w", err)
		}
		opts.ByObject = map[client.Object]cache.ByObject{&v1alpha1.Customer{}: {Label: sel}}
	}
	if cfg.watchNamespace != "" {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range strings.Split(cfg.watchNamespace, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				opts.DefaultNamespaces[ns] = cache.Config{}
			}
		}
	}
	return opts, nil
}

// memoryLimitReserve is the part of the container's memory limit left
// outside the Go memory limit: the binary's pages the kernel counts in the
// resident set (about 45 MiB of it are touched) and the little memory Go
// does not manage, and what the garbage collector overshoots by while live
// memory is close to the limit. With it, the resident set peaks under the
// container's limit, not only the memory Go manages (docs/benchmarks.md).
const memoryLimitReserve = 64 << 20

// memoryLimit returns the Go soft memory limit, in bytes, for a container
// whose memory limit is containerLimit (bytes, as the Deployment's
// resourceFieldRef limits.memory puts it in MEMORY_LIMIT): the limit less
// memoryLimitReserve, but at least half of it. ok is false when GOMEMLIMIT
// is set (the runtime already obeys it), or when containerLimit is empty or
// not a positive number of bytes (no limit).
func memoryLimit(gomemlimit, containerLimit string) (int64, bool) {
	if gomemlimit != "" || containerLimit == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(containerLimit, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return max(n-memoryLimitReserve, n/2), true
}

// readAPIKey returns the default account's key from the file, else from
// SCRIPTLOCK_API_KEY; empty means no default account.
func readAPIKey(file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv("SCRIPTLOCK_API_KEY")), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading --scriptlock-api-key-file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", errors.New("--scriptlock-api-key-file is empty")
	}
	return key, nil
}

// allowedHosts is --allowed-scriptlock-hosts plus the default URL's host.
func allowedHosts(cfg config) []string {
	if strings.TrimSpace(cfg.allowedHosts) == "" {
		return nil
	}
	var out []string
	for _, h := range strings.Split(cfg.allowedHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	if u, err := url.Parse(cfg.scriptlockURL); err == nil && u.Host != "" {
		out = append(out, u.Host)
	}
	return out
}

// leaderElectionNamespace is --leader-election-namespace, else the Pod's
// namespace in a cluster (controller-runtime finds it), else "default", so
// that a manager run outside a cluster (make run, the demo) can elect too.
func leaderElectionNamespace(cfg config) string {
	if cfg.leaderElectionNamespace != "" {
		return cfg.leaderElectionNamespace
	}
	if inCluster() {
		return ""
	}
	return "default"
}

// brakeNamespace is where the revocation brake keeps its Leases:
// --deletion-budget-namespace, else the Pod's namespace (where the
// leader-election Role grants leases), else "default" outside a cluster.
func brakeNamespace(cfg config) string {
	if cfg.deletionBudgetNamespace != "" {
		return cfg.deletionBudgetNamespace
	}
	if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	return "default"
}

// serviceAccountNamespaceFile exists in every Pod with a ServiceAccount token.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

func inCluster() bool {
	_, err := os.Stat(serviceAccountNamespaceFile)
	return err == nil
}

// refuseBesideALeader fails when another manager holds the leader-election
// lease ns/name and has renewed it within its lease duration: a manager
// without leader election next to it would create every new record twice.
func refuseBesideALeader(ctx context.Context, c client.Reader, ns, name string, now time.Time) error {
	lease := &coordinationv1.Lease{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, lease); err != nil {
		if !apierrors.IsNotFound(err) {
			// Only positive evidence of a leader stops the start: a
			// manager that may not read leases still runs.
			ctrl.Log.WithName("setup").Info("could not check for a running leader; starting anyway", "lease", ns+"/"+name, "error", err.Error())
		}
		return nil
	}
	sp := lease.Spec
	if sp.HolderIdentity == nil || *sp.HolderIdentity == "" || sp.RenewTime == nil {
		return nil
	}
	d := 15 * time.Second
	if sp.LeaseDurationSeconds != nil {
		d = time.Duration(*sp.LeaseDurationSeconds) * time.Second
	}
	if now.Before(sp.RenewTime.Add(d)) {
		return fmt.Errorf("another manager (%s) holds the leader-election lease %s/%s: a second manager without leader election would create every new record twice; start this one with --leader-elect, or stop the other",
			*sp.HolderIdentity, ns, name)
	}
	return nil
}

// keyFileWatcher reads the default account's key file every 10 s and hands
// a changed key to the pool, so that a rotated key needs no restart.
type keyFileWatcher struct {
	file string
	key  string
	pool *scriptlock.Pool
}

// NeedLeaderElection is false: every replica keeps its key current.
func (w *keyFileWatcher) NeedLeaderElection() bool { return false }

func (w *keyFileWatcher) Start(ctx context.Context) error {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			key, err := readAPIKey(w.file)
			if err != nil {
				ctrl.Log.WithName("setup").Error(err, "re-reading the default account's key file; keeping the last key")
				continue
			}
			if key != w.key {
				w.key = key
				w.pool.SetDefaultAPIKey(key)
				ctrl.Log.WithName("setup").Info("the default account's key file changed; using the new key")
			}
		}
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
