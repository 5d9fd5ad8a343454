package explorer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/explore"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

// The reconciler's settings in every history: short stalled and transient
// backoffs and create window so that a history settles in seconds (a
// transient backoff grown to its default 5 minutes, or the default 30 s
// before a failed listing is tried again, would outlast the convergence
// bound); drift detection by
// listing, driven by a fake clock the explorer steps ("sweep").
const (
	resyncPeriod        = time.Hour
	permanentBackoff    = time.Second
	permanentBackoffMax = 2 * time.Second
	transientBackoffMax = 4 * time.Second
	pendingCreateWindow = 6 * time.Second
	callTimeout         = 2 * time.Second
	// A disappearance is confirmed as the README says, by 3 reads 10 s
	// apart, not shortened: a `vanish` step (every read empty while a
	// resync period passes) must end before it could be confirmed, as a
	// failover to an empty replica does. convergeWithin makes room for it.
	vanishReads    = 3
	vanishInterval = 10 * time.Second
)

// Instance names: A is the ScriptLock every Customer starts on; C is a
// clone of it made when a Secret is first pointed at it.
const (
	instA = "A"
	instC = "C"
)

// Account names within an instance.
const (
	acctDefault = "default"
	acctOther   = "other"
)

var worldSeq atomic.Int64

// instance is one ScriptLock: the simulator behind the explorer's tap.
type instance struct {
	name string
	sim  *sim.Server
	srv  *httptest.Server
	url  string
}

// world is everything one history plays in: its namespace, its
// ScriptLock instances, its keys, the manager under test, the ledger and
// the perturbations armed for the next calls.
type world struct {
	ctx    context.Context
	cancel context.CancelFunc
	ns     string
	k8s    client.Client
	led    *explore.Ledger
	clock  *clocktesting.FakeClock

	mu         sync.Mutex
	insts      map[string]*instance
	accounts   map[string]map[string]string // instance -> key -> account name
	keys       []string                     // every key this world ever used
	defaultKey string
	otherKey   string
	rotations  int
	secrets    map[string]secretRef // Secret name -> where it points
	prev       map[string]explore.Account
	tidy       func(string) string
	// violations are reported by the tap and the perturbations as they
	// happen; found is the checked list of the history.
	violations []explore.Violation
	found      []explore.Violation
	stats      map[string]int
	refused    []refusal
	// Perturbations armed for what the operator does next.
	crashAPI, crashSL, staleReads, dropEvents int
	// staleDepth is how many of the operator's writes a stale read goes
	// back: one for `stale`, as far as remembered for `lagstart`.
	staleDepth int
	// versions are the copies of each Customer the operator read or wrote,
	// oldest first, for stale reads.
	versions map[string][]client.Object
	dropped  map[string]bool // "ns/name@resourceVersion" of watch events not delivered
	// after runs once the step under way has settled.
	after []func()

	mgrMu   sync.Mutex
	stopMgr func()
	pool    *scriptlock.Pool
	logFrom int
}

// refusal is a record whose DELETE ScriptLock refuses until the end.
type refusal struct{ inst, key, id string }

// secretRef is where a credentials Secret points.
type secretRef struct {
	inst, key string
	keyInURL  bool
}

func newWorld(ctx context.Context) (*world, error) {
	k8s, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	n := worldSeq.Add(1)
	w := &world{
		k8s: k8s, led: explore.NewLedger(), clock: clocktesting.NewFakeClock(time.Now()),
		ns:       fmt.Sprintf("explore-%d", n),
		insts:    map[string]*instance{},
		accounts: map[string]map[string]string{},
		secrets:  map[string]secretRef{},
		prev:     map[string]explore.Account{},
		stats:    map[string]int{},
		versions: map[string][]client.Object{},
		dropped:  map[string]bool{},
	}
	w.ctx, w.cancel = context.WithCancel(ctx)
	// Keys unique per world, so that a key found in the shared log names
	// the history that leaked it.
	w.defaultKey = fmt.Sprintf("canary-%d-default-key", n)
	w.otherKey = fmt.Sprintf("canary-%d-other-key", n)
	w.keys = []string{w.defaultKey, w.otherKey}
	s := sim.New(sim.WithAccount(w.defaultKey), sim.WithAccount(w.otherKey), sim.WithIDsPerAccount())
	w.addInstance(instA, s)
	w.accounts[instA] = map[string]string{w.defaultKey: acctDefault, w.otherKey: acctOther}
	if err := k8s.Create(w.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}); err != nil {
		return nil, err
	}
	_, w.logFrom = logs.Since(0)
	return w, nil
}

func (w *world) addInstance(name string, s *sim.Server) *instance {
	in := &instance{name: name, sim: s}
	in.srv = httptest.NewServer(&tap{w: w, in: in})
	in.url = in.srv.URL
	w.insts[name] = in
	return in
}

// close stops the manager and the instances; the namespace stays (envtest
// has no namespace controller to empty it).
func (w *world) close() {
	w.stopManager()
	w.cancel()
	for _, in := range w.insts {
		in.srv.Close()
	}
}

// account returns the account key names on instance inst.
func (w *world) account(inst, key string) explore.Account {
	w.mu.Lock()
	defer w.mu.Unlock()
	if name, ok := w.accounts[inst][key]; ok {
		return explore.Account{Instance: inst, Name: name}
	}
	return explore.Account{}
}

// fingerprint is status.account for a key at an instance: the first 12 hex
// digits of sha256(url + "\x00" + key), as the client computes it.
func fingerprint(url, key string) string {
	sum := sha256.Sum256([]byte(url + "\x00" + key))
	return hex.EncodeToString(sum[:])[:12]
}

// byFingerprint resolves a status.account to an account of this world.
func (w *world) byFingerprint(fp string) explore.Account {
	w.mu.Lock()
	defer w.mu.Unlock()
	for inst, keys := range w.accounts {
		for key, name := range keys {
			if fingerprint(w.insts[inst].url, key) == fp {
				return explore.Account{Instance: inst, Name: name}
			}
		}
	}
	return explore.Account{}
}

// startManager runs a new manager with the reconciler under test, as
// controllers/suite_test.go does, with the explorer's client and cache in
// between.
func (w *world) startManager() error {
	w.mgrMu.Lock()
	defer w.mgrMu.Unlock()
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme: scheme,
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{w.ns: {}},
			DefaultTransform:  controllers.CacheTransform(),
		},
		NewCache: func(cfg *rest.Config, o cache.Options) (cache.Cache, error) {
			c, err := cache.New(cfg, o)
			return &coalescingCache{Cache: c, w: w}, err
		},
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		return err
	}
	w.mu.Lock()
	key := w.defaultKey
	w.mu.Unlock()
	w.pool = scriptlock.NewPool(scriptlock.Options{
		BaseURL: w.insts[instA].url, APIKey: key, Timeout: callTimeout, QPS: 100, Burst: 100, MaxInFlight: 1, MaxInFlightPerHost: 1,
	}, nil)
	recorder, err := controllers.NewEventRecorder(mgr)
	if err != nil {
		return err
	}
	r := &controllers.CustomerReconciler{
		Client:              &perturbingClient{Client: mgr.GetClient(), w: w},
		APIReader:           mgr.GetAPIReader(),
		Recorder:            recorder,
		Accounts:            w.pool,
		DriftClock:          w.clock,
		ResyncPeriod:        resyncPeriod,
		DriftDetection:      controllers.DriftByList,
		PermanentBackoff:    permanentBackoff,
		PermanentBackoffMax: permanentBackoffMax,
		TransientBackoffMax: transientBackoffMax,
		RelistAfter:         transientBackoffMax,
		PendingCreateWindow: pendingCreateWindow,
		VanishReads:         vanishReads,
		VanishInterval:      vanishInterval,
	}
	if err := r.SetupWithManager(mgr, 2); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(w.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	w.stopMgr = func() { cancel(); <-done }
	return nil
}

// stopManager stops the manager as a crash would: nothing it was doing is
// allowed to finish.
func (w *world) stopManager() {
	w.mgrMu.Lock()
	defer w.mgrMu.Unlock()
	if w.stopMgr != nil {
		w.stopMgr()
		w.stopMgr = nil
	}
}

// running reports whether a manager is running.
func (w *world) running() bool {
	w.mgrMu.Lock()
	defer w.mgrMu.Unlock()
	return w.stopMgr != nil
}

// restart stops the manager and starts a new one (a crash, a rollout).
func (w *world) restart() {
	w.stopManager()
	w.count("restarts")
	w.led.Restarted()
	if err := w.startManager(); err != nil {
		w.violate(explore.Violation{Kind: "explorer-error", Detail: "restarting the manager: " + err.Error()})
	}
}

// crashSoon restarts the manager from another goroutine: the caller, inside
// the manager, returns once the crash has cancelled its context.
func (w *world) crashSoon() { go w.restart() }

func (w *world) violate(v explore.Violation) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violations = append(w.violations, v)
}

func (w *world) count(what string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stats[what]++
}

// take uses up one of an armed perturbation's n turns, and reports
// whether there was one.
func (w *world) take(n *int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if *n <= 0 {
		return false
	}
	*n--
	return true
}

// countdown counts one write against an armed crash, and reports whether
// this was the write to crash after.
func (w *world) countdown(n *int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if *n <= 0 {
		return false
	}
	*n--
	return *n == 0
}
