package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/scriptlock/customer-operator/hack/localenv"
)

// The benchmark starts its own environment rather than hack/localenv's
// (which the demo uses) because it needs three things localenv does not
// offer: a simulator seeded with a big account (--seed), an environment
// of the manager's own (GOMEMLIMIT, which must not reach kube-apiserver or
// etcd), and a manager that is stopped and started again on the same
// control plane (the restart phase). The processes are the same: etcd and
// kube-apiserver through envtest, bin/scriptlock-sim and bin/manager, all
// on loopback.

// envOptions say what to start for one mode.
type envOptions struct {
	root        string        // repository root
	dir         string        // the run's files: kubeconfig, logs, seed, profiles
	apiKey      string        // the simulator's only account, the manager's default
	simLatency  time.Duration // added by the simulator to every API answer
	seedFile    string        // JSON records for the simulator's account; "" for none
	managerArgs []string      // appended to the manager's command line
	memLimit    string        // GOMEMLIMIT of the manager; "" leaves it unset
	memoryLimit int64         // MEMORY_LIMIT of the manager, bytes, as the Deployment sets it; 0 leaves it unset
}

// benchEnv is a running environment for one mode. stop ends it.
type benchEnv struct {
	opts       envOptions
	cp         *envtest.Environment
	config     *rest.Config // a system:masters connection for the benchmark's own clients
	kubeconfig string
	simURL     string
	simLog     string
	sim        *localenv.Process
	manager    *managerProcess
}

// startEnv brings up the control plane and the simulator. The manager is
// started separately (startManager), so that the API-server ceiling can be
// measured before it runs.
func startEnv(ctx context.Context, o envOptions) (_ *benchEnv, retErr error) {
	e := &benchEnv{opts: o, kubeconfig: filepath.Join(o.dir, "kubeconfig"), simLog: filepath.Join(o.dir, "scriptlock-sim.log")}
	defer func() {
		if retErr != nil {
			e.stop()
		}
	}()
	if err := e.startControlPlane(ctx); err != nil {
		return nil, err
	}
	if err := e.startSim(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// startControlPlane runs etcd and kube-apiserver (envtest) with the
// Customer CRD installed, and writes a kubeconfig for the manager.
func (e *benchEnv) startControlPlane(ctx context.Context) error {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(e.opts.root, "bin", "k8s")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return fmt.Errorf("%s not found in %s: run `make controlplane` first", b, assets)
		}
	}
	// envtest and the benchmark's informer log through controller-runtime's
	// logger; keep only errors.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	e.cp = &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(e.opts.root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	start := time.Now()
	if _, err := e.cp.Start(); err != nil {
		e.cp = nil // envtest stops what it started when Start fails
		return fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	user, err := e.cp.AddUser(envtest.User{Name: "bench", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the benchmark's user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(e.kubeconfig, kc, 0o600); err != nil {
		return err
	}
	e.config = rest.CopyConfig(user.Config())
	localenv.Logf("control plane up at %s in %s", e.config.Host, time.Since(start).Round(time.Millisecond))
	return nil
}

// startSim runs bin/scriptlock-sim on a free loopback port and waits for
// its "listening on" line (printed after the seed file was loaded).
func (e *benchEnv) startSim(ctx context.Context) error {
	args := []string{"--listen", "127.0.0.1:0", "--api-key", e.opts.apiKey}
	if e.opts.simLatency > 0 {
		args = append(args, "--latency", e.opts.simLatency.String())
	}
	if e.opts.seedFile != "" {
		args = append(args, "--seed", e.opts.seedFile)
	}
	logf, err := os.Create(e.simLog)
	if err != nil {
		return err
	}
	lines := make(chan string, 16)
	// A long-lived child: stop ends it through its process group.
	cmd := exec.Command(filepath.Join(e.opts.root, "bin", "scriptlock-sim"), args...) //nolint:noctx // see above
	cmd.Env = localenv.WithoutEnv(os.Environ(), "SCRIPTLOCK_API_KEY", "GOMEMLIMIT")
	cmd.Stdout, cmd.Stderr = &localenv.LineTee{W: logf, Lines: lines}, logf
	p, err := localenv.StartProcess("scriptlock-sim", cmd, logf)
	if err != nil {
		return err
	}
	e.sim = p
	urls := make(chan string, 1)
	go func() {
		for l := range lines {
			if u, ok := strings.CutPrefix(l, "listening on "); ok {
				urls <- strings.TrimSpace(u)
				return
			}
		}
	}()
	select {
	case e.simURL = <-urls:
		localenv.Logf("ScriptLock simulator (pid %d) on %s, latency %s, log %s", p.PID(), e.simURL, e.opts.simLatency, e.simLog)
		return nil
	case <-p.Done():
		return fmt.Errorf("the simulator exited at start: see %s", e.simLog)
	case <-time.After(5 * time.Minute): // a seed of a million records takes a while
		return errors.New("the simulator did not say it was listening within 5 minutes")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop stops the manager, the simulator and the control plane, in that
// order. It is safe on a partly started environment.
func (e *benchEnv) stop() {
	if e.manager != nil {
		if _, err := e.manager.stop(); err != nil {
			localenv.Logf("stopping the manager: %v", err)
		}
	}
	if e.sim != nil {
		if err := e.sim.Stop(10 * time.Second); err != nil {
			localenv.Logf("stopping the simulator: %v", err)
		}
	}
	if e.cp != nil {
		if err := e.cp.Stop(); err != nil {
			localenv.Logf("stopping the control plane: %v", err)
		}
	}
}

// managerProcess is bin/manager run against the environment. Its
// addresses are chosen once, so that a restarted manager serves the same
// metrics, probe and pprof URLs.
type managerProcess struct {
	bin                  string
	args, env            []string
	metricsURL, pprofURL string
	probeURL             string
	logDir               string
	starts               int
	proc                 *localenv.Process
	log                  string // the current process's log file
}

// newManager prepares (does not start) the manager with the environment's
// kubeconfig and the simulator as its default account.
func (e *benchEnv) newManager() (*managerProcess, error) {
	addrs, err := localenv.FreeLoopbackAddrs(3)
	if err != nil {
		return nil, err
	}
	m := &managerProcess{
		bin:        filepath.Join(e.opts.root, "bin", "manager"),
		metricsURL: "http://" + addrs[0] + "/metrics",
		probeURL:   "http://" + addrs[1] + "/readyz",
		pprofURL:   "http://" + addrs[2] + "/debug/pprof",
		logDir:     e.opts.dir,
	}
	// Plain HTTP metrics on loopback: the benchmark scrapes them with no
	// ServiceAccount token (in a cluster they are HTTPS).
	m.args = append([]string{
		"--kubeconfig", e.kubeconfig,
		"--metrics-secure=false",
		"--metrics-bind-address", addrs[0],
		"--health-probe-bind-address", addrs[1],
		"--pprof-bind-address", addrs[2],
	}, e.opts.managerArgs...)
	m.env = append(localenv.WithoutEnv(os.Environ(), "SCRIPTLOCK_URL", "SCRIPTLOCK_API_KEY", "KUBECONFIG", "GOMEMLIMIT", "MEMORY_LIMIT"),
		"SCRIPTLOCK_URL="+e.simURL, "SCRIPTLOCK_API_KEY="+e.opts.apiKey)
	if e.opts.memLimit != "" {
		m.env = append(m.env, "GOMEMLIMIT="+e.opts.memLimit)
	}
	if e.opts.memoryLimit > 0 {
		m.env = append(m.env, fmt.Sprintf("MEMORY_LIMIT=%d", e.opts.memoryLimit))
	}
	e.manager = m
	return m, nil
}

// start runs the manager and waits until its readiness probe answers. Each
// start writes its own log: manager.log, manager-2.log, ...
func (m *managerProcess) start(ctx context.Context) error {
	m.starts++
	m.log = filepath.Join(m.logDir, "manager.log")
	if m.starts > 1 {
		m.log = filepath.Join(m.logDir, fmt.Sprintf("manager-%d.log", m.starts))
	}
	logf, err := os.Create(m.log)
	if err != nil {
		return err
	}
	cmd := exec.Command(m.bin, m.args...) //nolint:noctx // a long-lived child, ended through its process group
	cmd.Env = m.env
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := localenv.StartProcess("manager", cmd, logf)
	if err != nil {
		return err
	}
	m.proc = p
	localenv.Logf("manager (pid %d) started: bin/manager %s", p.PID(), strings.Join(m.args, " "))
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := httpGet(ctx, hc, m.probeURL, nil); err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("the manager exited at start: see %s", m.log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager was not ready within 2 minutes: see %s", m.log)
		}
	}
}

// stop sends SIGTERM and waits for the manager to exit (SIGKILL after 45 s:
// its graceful shutdown timeout is 30 s). It returns how long the exit took.
func (m *managerProcess) stop() (time.Duration, error) {
	if m.proc == nil {
		return 0, nil
	}
	start := time.Now()
	err := m.proc.Stop(45 * time.Second)
	return time.Since(start), err
}

func (m *managerProcess) pid() int { return m.proc.PID() }

// repoRoot is the nearest folder at or above dir whose go.mod is the
// operator's module (test/bench has a go.mod of its own).
func repoRoot(dir string) (string, error) {
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(string(b)) == operatorModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory: run from the repository or pass -root", operatorModule)
		}
		dir = parent
	}
}

const operatorModule = "github.com/scriptlock/customer-operator"

// modulePath is the module line of a go.mod.
func modulePath(gomod string) string {
	for _, l := range strings.Split(gomod, "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
			return strings.Trim(strings.TrimSpace(p), `"`)
		}
	}
	return ""
}

// build builds bin/manager and bin/scriptlock-sim as `make build` does.
func build(ctx context.Context, root string) error {
	for _, b := range []struct{ out, pkg string }{{"bin/manager", "."}, {"bin/scriptlock-sim", "./cmd/scriptlock-sim"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", b.out, b.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build -o %s %s: %w", b.out, b.pkg, err)
		}
	}
	return nil
}
