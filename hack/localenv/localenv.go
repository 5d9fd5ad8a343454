// Package localenv starts, on loopback only, everything the operator needs:
// kube-apiserver and etcd (through envtest, with the Customer CRD
// installed), the ScriptLock simulator and the manager, the last two as
// separate processes built from this repository. Start brings all three up
// for the demo (hack/demo) and test/observability; the benchmark
// (test/bench) uses the parts (StartControlPlane, StartSim, Manager) to
// seed the simulator and to restart the manager on the same control plane.
//
// Every process it starts runs in its own process group, so that a Ctrl-C in
// the terminal reaches only the calling program, which then stops the
// manager, the simulator and the control plane in that order.
package localenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// Options say what Start starts.
type Options struct {
	// Root is the repository root; empty means RepoRoot.
	Root string
	// Logf reports progress; nil means Logf of this package.
	Logf func(format string, args ...any)
	// APIKey is the key of the simulator's only account and the manager's
	// default account.
	APIKey string
	// SimLatency is added by the simulator to every API answer.
	SimLatency time.Duration
	// ManagerArgs are appended to the manager's command line.
	ManagerArgs []string
	// SkipBuild uses bin/manager and bin/scriptlock-sim as they are.
	SkipBuild bool
}

// Env is a running local environment. Its files (kubeconfig, logs) live in
// Dir, which Stop removes unless KeepDir is set.
type Env struct {
	Dir            string
	KubeconfigPath string
	// Config is an admin connection to the API server, for the caller's
	// own clients.
	Config *rest.Config
	// SimURL is the simulator's base URL, e.g. http://127.0.0.1:40123.
	SimURL string
	// MetricsURL and ProbeURL are the manager's endpoints.
	MetricsURL, ProbeURL string
	// ManagerLog and SimLog are the files the two processes write to.
	ManagerLog, SimLog string
	// KeepDir keeps Dir after Stop (for reading the logs).
	KeepDir bool

	Manager *Manager
	Sim     *Sim

	logf     func(format string, args ...any)
	cp       *ControlPlane
	stopOnce sync.Once
}

// Logf prints a progress line with a timestamp to stderr.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// operatorModule is the module path of the repository's root go.mod.
const operatorModule = "github.com/scriptlock/customer-operator"

// RepoRoot returns the nearest folder at or above the working directory
// whose go.mod is the operator's module (test/bench, for one, has a go.mod
// of its own).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && slices.Contains(strings.Split(string(b), "\n"), "module "+operatorModule) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory: run from the repository", operatorModule)
		}
		dir = parent
	}
}

// Build builds bin/manager and bin/scriptlock-sim under root as `make
// build` does.
func Build(ctx context.Context, root string) error {
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

// Start brings everything up. On error, whatever was started is stopped
// again; on success the caller must call Stop.
func Start(ctx context.Context, o Options) (_ *Env, retErr error) {
	if o.Logf == nil {
		o.Logf = Logf
	}
	if o.APIKey == "" {
		o.APIKey = "local-demo-key"
	}
	if o.Root == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		o.Root = root
	}
	dir, err := os.MkdirTemp("", "scriptlock-localenv-")
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, logf: o.Logf, KubeconfigPath: filepath.Join(dir, "kubeconfig"), SimLog: filepath.Join(dir, "scriptlock-sim.log")}
	defer func() {
		if retErr != nil {
			e.KeepDir = true // the logs explain the failure
			e.Stop()
			o.Logf("logs kept in %s", dir)
		}
	}()
	if !o.SkipBuild {
		o.Logf("building bin/manager and bin/scriptlock-sim (go build; cached after the first time)")
		if err := Build(ctx, o.Root); err != nil {
			return nil, err
		}
	}
	if e.cp, err = StartControlPlane(ctx, o.Root, e.KubeconfigPath, o.Logf); err != nil {
		return nil, err
	}
	e.Config = e.cp.Config
	if e.Sim, err = StartSim(ctx, SimOptions{Root: o.Root, APIKey: o.APIKey, Latency: o.SimLatency, Log: e.SimLog, Logf: o.Logf}); err != nil {
		return nil, err
	}
	e.SimURL = e.Sim.URL
	if e.Manager, err = NewManager(ManagerOptions{Root: o.Root, Dir: dir, Kubeconfig: e.KubeconfigPath, SimURL: e.SimURL, APIKey: o.APIKey, Args: o.ManagerArgs, Logf: o.Logf}); err != nil {
		return nil, err
	}
	e.MetricsURL, e.ProbeURL = e.Manager.MetricsURL, e.Manager.ProbeURL
	if err := e.Manager.Start(ctx); err != nil {
		return nil, err
	}
	e.ManagerLog = e.Manager.Log
	o.Logf("manager ready (probe %s/readyz, metrics %s, log %s)", e.ProbeURL, e.MetricsURL, e.ManagerLog)
	return e, nil
}

// Stop stops the manager, the simulator and the control plane, in that
// order, and removes Dir unless KeepDir is set. It is safe to call more
// than once and on a partly started Env.
func (e *Env) Stop() {
	e.stopOnce.Do(func() {
		StopAll(e.logf, e.Manager, e.Sim, e.cp)
		if !e.KeepDir {
			_ = os.RemoveAll(e.Dir)
		}
	})
}

// StopAll stops the manager, the simulator and the control plane, in that
// order; any may be nil (not started).
func StopAll(logf func(format string, args ...any), m *Manager, s *Sim, cp *ControlPlane) {
	if m != nil {
		if _, err := m.Stop(); err != nil {
			logf("stopping the manager: %v", err)
		}
	}
	if s != nil {
		if err := s.Stop(10 * time.Second); err != nil {
			logf("stopping the simulator: %v", err)
		}
	}
	if cp != nil {
		if err := cp.Stop(); err != nil {
			logf("stopping the control plane: %v", err)
		}
	}
}

// ControlPlane is etcd and kube-apiserver on loopback (envtest) with the
// CRDs of config/crd/bases installed.
type ControlPlane struct {
	// Config is a system:masters connection, the user of the kubeconfig
	// StartControlPlane wrote.
	Config *rest.Config
	env    *envtest.Environment
}

// StartControlPlane starts the control plane from KUBEBUILDER_ASSETS
// (default root/bin/k8s) and writes a kubeconfig for a system:masters user
// to kubeconfig.
func StartControlPlane(ctx context.Context, root, kubeconfig string, logf func(format string, args ...any)) (*ControlPlane, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run `make controlplane` first (it builds kube-apiserver and etcd from source)", b, assets)
		}
	}
	// envtest logs through controller-runtime's logger; keep only errors.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	logf("starting etcd and kube-apiserver on loopback (binaries from %s)", assets)
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd: %w", err) // envtest stops what it started
	}
	cp := &ControlPlane{env: env}
	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err == nil {
		var kc []byte
		if kc, err = user.KubeConfig(); err == nil {
			err = os.WriteFile(kubeconfig, kc, 0o600)
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		_ = cp.Stop()
		return nil, err
	}
	cp.Config = rest.CopyConfig(user.Config())
	logf("control plane up at %s in %s; CRDs from config/crd/bases installed; kubeconfig %s", cfg.Host, time.Since(start).Round(time.Millisecond), kubeconfig)
	return cp, nil
}

// Stop stops kube-apiserver and etcd.
func (c *ControlPlane) Stop() error { return c.env.Stop() }

// SimOptions say how to run bin/scriptlock-sim.
type SimOptions struct {
	Root    string        // repository root: runs root/bin/scriptlock-sim
	Bin     string        // or this binary
	Listen  string        // its address; default a free loopback port
	APIKey  string        // the key of its only account
	Latency time.Duration // added to every API answer
	Seed    string        // a JSON file of records for the account; "" for none
	Log     string        // the file it writes to
	Logf    func(format string, args ...any)
}

// Sim is the running simulator.
type Sim struct {
	*Process
	URL string // its base URL, e.g. http://127.0.0.1:40123
}

// StartSim runs the simulator (on a free loopback port unless told
// otherwise) and waits for its "listening on" line, printed once the seed
// file is loaded.
func StartSim(ctx context.Context, o SimOptions) (*Sim, error) {
	if o.Bin == "" {
		o.Bin = filepath.Join(o.Root, "bin", "scriptlock-sim")
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	args := []string{"--listen", o.Listen, "--api-key", o.APIKey}
	if o.Latency > 0 {
		args = append(args, "--latency", o.Latency.String())
	}
	wait := 30 * time.Second
	if o.Seed != "" {
		args = append(args, "--seed", o.Seed)
		wait = 5 * time.Minute // a seed of a million records takes a while
	}
	logf, err := os.Create(o.Log)
	if err != nil {
		return nil, err
	}
	lines := make(chan string, 16)
	// A long-lived child: Stop ends it through its process group, not a
	// context.
	cmd := exec.Command(o.Bin, args...) //nolint:noctx // see above
	cmd.Env = WithoutEnv(os.Environ(), "SCRIPTLOCK_API_KEY", "GOMEMLIMIT")
	cmd.Stdout, cmd.Stderr = &LineTee{W: logf, Lines: lines}, logf
	p, err := StartProcess("scriptlock-sim", cmd, logf)
	if err != nil {
		return nil, err
	}
	timeout := time.After(wait)
	for {
		select {
		case l := <-lines:
			if url, ok := strings.CutPrefix(l, "listening on "); ok {
				s := &Sim{Process: p, URL: strings.TrimSpace(url)}
				o.Logf("ScriptLock simulator (pid %d) listening on %s, latency %s, log %s", p.PID(), s.URL, o.Latency, o.Log)
				return s, nil
			}
		case <-p.Done():
			return nil, fmt.Errorf("the simulator exited at start: see %s", o.Log)
		case <-timeout:
			_ = p.Stop(time.Second)
			return nil, fmt.Errorf("the simulator did not say it was listening within %s", wait)
		case <-ctx.Done():
			_ = p.Stop(time.Second)
			return nil, ctx.Err()
		}
	}
}

// ManagerOptions say how to run bin/manager.
type ManagerOptions struct {
	Root       string   // repository root: runs root/bin/manager
	Dir        string   // where its logs go
	Kubeconfig string   // the control plane's
	SimURL     string   // the default account's ScriptLock
	APIKey     string   // the default account's key
	Args       []string // appended to its command line
	Env        []string // appended to its environment (NAME=value)
	Pprof      bool     // serve /debug/pprof on a loopback port too
	Logf       func(format string, args ...any)
}

// Manager is bin/manager run against the environment. Its addresses are
// chosen once, so that a restarted manager serves the same URLs.
type Manager struct {
	MetricsURL, ProbeURL, PprofURL string
	// Log is the current process's log file: manager.log, then
	// manager-2.log, ... for each Start.
	Log    string
	Starts int

	args, env []string
	o         ManagerOptions
	proc      *Process
}

// NewManager prepares (does not start) the manager with plain HTTP
// metrics on loopback: the callers scrape them with no ServiceAccount
// token (in a cluster they are HTTPS, guarded by TokenReview and
// SubjectAccessReview).
func NewManager(o ManagerOptions) (*Manager, error) {
	addrs, err := FreeLoopbackAddrs(3)
	if err != nil {
		return nil, err
	}
	m := &Manager{o: o, MetricsURL: "http://" + addrs[0] + "/metrics", ProbeURL: "http://" + addrs[1]}
	m.args = []string{
		"--kubeconfig", o.Kubeconfig,
		"--metrics-secure=false",
		"--metrics-bind-address", addrs[0],
		"--health-probe-bind-address", addrs[1],
	}
	if o.Pprof {
		m.PprofURL = "http://" + addrs[2] + "/debug/pprof"
		m.args = append(m.args, "--pprof-bind-address", addrs[2])
	}
	m.args = append(m.args, o.Args...)
	m.env = append(WithoutEnv(os.Environ(), "SCRIPTLOCK_URL", "SCRIPTLOCK_API_KEY", "KUBECONFIG", "GOMEMLIMIT", "MEMORY_LIMIT"),
		"SCRIPTLOCK_URL="+o.SimURL, "SCRIPTLOCK_API_KEY="+o.APIKey)
	m.env = append(m.env, o.Env...)
	return m, nil
}

// Start runs the manager and waits until its readiness probe answers.
func (m *Manager) Start(ctx context.Context) error {
	m.Starts++
	m.Log = filepath.Join(m.o.Dir, "manager.log")
	if m.Starts > 1 {
		m.Log = filepath.Join(m.o.Dir, fmt.Sprintf("manager-%d.log", m.Starts))
	}
	logf, err := os.Create(m.Log)
	if err != nil {
		return err
	}
	// A long-lived child: Stop ends it through its process group, not a
	// context.
	cmd := exec.Command(filepath.Join(m.o.Root, "bin", "manager"), m.args...) //nolint:noctx // see above
	cmd.Env = m.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if m.proc, err = StartProcess("manager", cmd, logf); err != nil {
		return err
	}
	m.o.Logf("manager (pid %d) started: bin/manager %s", m.proc.PID(), strings.Join(m.args, " "))
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := ping(ctx, hc, m.ProbeURL+"/readyz"); err == nil {
			return nil
		}
		select {
		case <-m.proc.Done():
			return fmt.Errorf("the manager exited at start: see %s", m.Log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager was not ready within 2 minutes: see %s", m.Log)
		}
	}
}

// Stop sends SIGTERM and waits for the manager to exit (SIGKILL after 45 s:
// its graceful shutdown timeout is 30 s). It returns how long the exit took.
func (m *Manager) Stop() (time.Duration, error) {
	if m.proc == nil {
		return 0, nil
	}
	start := time.Now()
	err := m.proc.Stop(45 * time.Second)
	return time.Since(start), err
}

// PID is the current process's id.
func (m *Manager) PID() int { return m.proc.PID() }

func ping(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// FreeLoopbackAddrs returns n distinct loopback addresses whose ports were
// free a moment ago. The listeners stay open until all are chosen, or the
// kernel may hand out the same port twice.
func FreeLoopbackAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// WithoutEnv returns env (NAME=value entries) without the variables names.
func WithoutEnv(env []string, names ...string) []string {
	out := env[:0:0]
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// LineTee copies a child's output to W and offers each complete line on
// Lines (dropping lines nobody waits for).
type LineTee struct {
	W     io.Writer
	Lines chan<- string
	buf   []byte
}

func (t *LineTee) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			break
		}
		select {
		case t.Lines <- string(t.buf[:i]):
		default:
		}
		t.buf = t.buf[i+1:]
	}
	return t.W.Write(p)
}

// Process is a child process in its own process group.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  io.Closer
}

// StartProcess starts cmd in its own process group; log is closed when it
// exits.
func StartProcess(name string, cmd *exec.Cmd, log io.Closer) (*Process, error) {
	// Own process group: Ctrl-C reaches the caller only, which stops the
	// children in order. Pdeathsig: if the caller is killed outright, the
	// kernel kills the child rather than leave it running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, done: make(chan struct{}), log: log}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s did not stop within %s after SIGTERM; killed", p.name, grace)
}

// SignalContext returns a context that ends on SIGINT, SIGTERM or SIGHUP,
// or when the parent process exits. The last matters under `make` and
// `go run`: a SIGTERM to make kills make and go run but does not reach the
// program they started, which would otherwise keep the control plane
// running with nobody to stop it.
func SignalContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	parent := os.Getppid()
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if os.Getppid() != parent {
					Logf("the parent process (pid %d) exited: stopping", parent)
					cancel()
					return
				}
			}
		}
	}()
	return ctx, func() { cancel(); stop() }
}
