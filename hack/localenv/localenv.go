// Package localenv starts, on loopback only, everything the operator needs:
// kube-apiserver and etcd (through envtest, with the Customer CRD
// installed), the ScriptLock simulator and the manager, the last two as
// separate processes built from this repository. The demo (hack/demo) uses
// it; the benchmark (test/bench) starts its own processes (it seeds the
// simulator and restarts the manager) and shares only Logf and
// SignalContext.
//
// Every process it starts runs in its own process group, so that a Ctrl-C in
// the terminal reaches only the calling program, which then stops the
// manager, the simulator and the control plane in that order (Env.Stop).
package localenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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

// Options say what to start.
type Options struct {
	// Root is the repository root; empty means the nearest folder above
	// the working directory that holds go.mod.
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

	Manager, Sim *Process

	opts     Options
	cp       *envtest.Environment
	stopOnce sync.Once
}

// Logf prints a progress line with a timestamp to stderr.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// RepoRoot returns the nearest folder at or above the working directory
// that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run from the repository")
		}
		dir = parent
	}
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
	e := &Env{Dir: dir, opts: o, KubeconfigPath: filepath.Join(dir, "kubeconfig"),
		ManagerLog: filepath.Join(dir, "manager.log"), SimLog: filepath.Join(dir, "scriptlock-sim.log")}
	defer func() {
		if retErr != nil {
			e.KeepDir = true // the logs explain the failure
			e.Stop()
			o.Logf("logs kept in %s", dir)
		}
	}()

	managerBin := filepath.Join(o.Root, "bin", "manager")
	simBin := filepath.Join(o.Root, "bin", "scriptlock-sim")
	if !o.SkipBuild {
		o.Logf("building bin/manager and bin/scriptlock-sim (go build; cached after the first time)")
		if err := goBuild(ctx, o.Root, managerBin, "."); err != nil {
			return nil, err
		}
		if err := goBuild(ctx, o.Root, simBin, "./cmd/scriptlock-sim"); err != nil {
			return nil, err
		}
	}

	if err := e.startControlPlane(ctx); err != nil {
		return nil, err
	}
	if err := e.startSim(ctx, simBin); err != nil {
		return nil, err
	}
	if err := e.startManager(ctx, managerBin); err != nil {
		return nil, err
	}
	return e, nil
}

func goBuild(ctx context.Context, root, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build -o %s %s: %w", out, pkg, err)
	}
	return nil
}

// startControlPlane runs etcd and kube-apiserver on loopback, installs the
// CRDs and writes a kubeconfig for a system:masters user.
func (e *Env) startControlPlane(ctx context.Context) error {
	o := e.opts
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(o.Root, "bin", "k8s")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return fmt.Errorf("%s not found in %s: run `make controlplane` first (it builds kube-apiserver and etcd from source)", b, assets)
		}
	}
	// envtest logs through controller-runtime's logger; keep only errors.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	e.cp = &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(o.Root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	o.Logf("starting etcd and kube-apiserver on loopback (binaries from %s)", assets)
	start := time.Now()
	cfg, err := e.cp.Start()
	if err != nil {
		e.cp = nil // envtest stops what it started when Start fails
		return fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	o.Logf("control plane up at %s in %s; CRDs from config/crd/bases installed", cfg.Host, time.Since(start).Round(time.Millisecond))
	user, err := e.cp.AddUser(envtest.User{Name: "demo", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the demo user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(e.KubeconfigPath, kc, 0o600); err != nil {
		return err
	}
	e.Config = rest.CopyConfig(user.Config())
	o.Logf("kubeconfig written to %s", e.KubeconfigPath)
	return nil
}

// startSim runs the simulator on a free loopback port and waits for its
// "listening on" line.
func (e *Env) startSim(ctx context.Context, bin string) error {
	o := e.opts
	args := []string{"--listen", "127.0.0.1:0", "--api-key", o.APIKey}
	if o.SimLatency > 0 {
		args = append(args, "--latency", o.SimLatency.String())
	}
	logf, err := os.Create(e.SimLog)
	if err != nil {
		return err
	}
	lines := make(chan string, 16)
	// A long-lived child: Stop ends it through its process group, not a
	// context.
	cmd := exec.Command(bin, args...) //nolint:noctx // see above
	cmd.Env = WithoutEnv(os.Environ(), "SCRIPTLOCK_API_KEY")
	cmd.Stdout = &LineTee{W: logf, Lines: lines}
	cmd.Stderr = logf
	p, err := StartProcess("scriptlock-sim", cmd, logf)
	if err != nil {
		return err
	}
	e.Sim = p
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l := <-lines:
			if url, ok := strings.CutPrefix(l, "listening on "); ok {
				e.SimURL = strings.TrimSpace(url)
				o.Logf("ScriptLock simulator (pid %d) listening on %s, latency %s, log %s", p.PID(), e.SimURL, o.SimLatency, e.SimLog)
				return nil
			}
		case <-p.Done():
			return fmt.Errorf("the simulator exited at start: see %s", e.SimLog)
		case <-timeout:
			return errors.New("the simulator did not say it was listening within 30s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// startManager runs bin/manager against the local control plane and the
// simulator, and waits until its readiness probe answers.
func (e *Env) startManager(ctx context.Context, bin string) error {
	o := e.opts
	addrs, err := FreeLoopbackAddrs(2)
	if err != nil {
		return err
	}
	metricsAddr, probeAddr := addrs[0], addrs[1]
	e.MetricsURL = "http://" + metricsAddr + "/metrics"
	e.ProbeURL = "http://" + probeAddr
	// Plain HTTP metrics on loopback: the demo and the benchmark scrape
	// them with no ServiceAccount token (in a cluster they are HTTPS,
	// guarded by TokenReview and SubjectAccessReview).
	args := append([]string{
		"--kubeconfig", e.KubeconfigPath,
		"--metrics-secure=false",
		"--metrics-bind-address", metricsAddr,
		"--health-probe-bind-address", probeAddr,
	}, o.ManagerArgs...)
	logf, err := os.Create(e.ManagerLog)
	if err != nil {
		return err
	}
	// A long-lived child: Stop ends it through its process group, not a
	// context.
	cmd := exec.Command(bin, args...) //nolint:noctx // see above
	cmd.Env = append(WithoutEnv(os.Environ(), "SCRIPTLOCK_URL", "SCRIPTLOCK_API_KEY", "KUBECONFIG"),
		"SCRIPTLOCK_URL="+e.SimURL, "SCRIPTLOCK_API_KEY="+o.APIKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := StartProcess("manager", cmd, logf)
	if err != nil {
		return err
	}
	e.Manager = p
	o.Logf("manager (pid %d) started: %s %s", p.PID(), "bin/manager", strings.Join(args, " "))
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := ping(ctx, hc, e.ProbeURL+"/readyz"); err == nil {
			o.Logf("manager ready (probe %s/readyz, metrics %s, log %s)", e.ProbeURL, e.MetricsURL, e.ManagerLog)
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("the manager exited at start: see %s", e.ManagerLog)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager was not ready within 60s: see %s", e.ManagerLog)
		}
	}
}

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

// Stop stops the manager, the simulator and the control plane, in that
// order, and removes Dir unless KeepDir is set. It is safe to call more
// than once and on a partly started Env.
func (e *Env) Stop() {
	e.stopOnce.Do(func() {
		if e.Manager != nil {
			if err := e.Manager.Stop(35 * time.Second); err != nil {
				e.opts.Logf("stopping the manager: %v", err)
			}
		}
		if e.Sim != nil {
			if err := e.Sim.Stop(10 * time.Second); err != nil {
				e.opts.Logf("stopping the simulator: %v", err)
			}
		}
		if e.cp != nil {
			if err := e.cp.Stop(); err != nil {
				e.opts.Logf("stopping the control plane: %v", err)
			}
		}
		if !e.KeepDir {
			_ = os.RemoveAll(e.Dir)
		}
	})
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
