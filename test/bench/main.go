// Command bench measures what the operator costs at scale, once per drift
// detection mode (--drift-detection=list and per-object), each on a fresh
// local control plane: the manager runs as its own process against
// kube-apiserver, etcd and the ScriptLock simulator on loopback.
//
// For each mode it first measures what the API server absorbs at full
// speed with no operator running (the ceiling), then starts the manager,
// creates N Customers through the API server in parallel and records how
// many are Ready over time until all are, leaves the operator idle for a
// few resync periods, and finally restarts the manager and waits until it
// has checked every Customer again. It counts, per phase, the ScriptLock
// calls by method and route (the simulator's counters), the API-server
// writes (the manager's client metrics and kube-apiserver's own), the
// manager's CPU time, peak memory (/proc) and live heap (heap profiles
// from --pprof-bind-address). It writes a Markdown report (by default
// docs/benchmarks.md), its numbers per N in a JSON file beside it
// (docs/benchmarks.json) and charts (PNG) beside both.
//
//	make bench BENCH_ARGS="-n 1000"
//	cd test/bench && go run . -n 10000 -append
//
// It is a module of its own so that its chart and profile libraries stay
// out of the operator's go.mod; it resolves paths from the repository root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/scriptlock/customer-operator/hack/localenv"
)

// params are the benchmark's flags.
type params struct {
	n              int
	latency        time.Duration
	resync         time.Duration
	idlePeriods    int
	workers        int
	qps            float64
	burst          int
	createWorkers  int
	ceilingN       int
	ceilingWorkers int
	seedRecords    int
	memLimit       string
	memoryLimit    string
	restart        bool
	timeout        time.Duration
	out            string
	modes          []string
	appendTo       bool
	keepLogs       bool
	profileDir     string
	root           string
	skipBuild      bool
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
	flag.IntVar(&p.workers, "workers", 0, "the manager's --max-concurrent-reconciles; 0 leaves the manager's default")
	flag.Float64Var(&p.qps, "qps", 200, "the manager's --scriptlock-qps")
	flag.IntVar(&p.burst, "burst", 200, "the manager's --scriptlock-burst")
	flag.IntVar(&p.createWorkers, "create-workers", 16, "goroutines creating Customers through the API server")
	flag.IntVar(&p.ceilingN, "ceiling-n", 5000, "Customers the API-server ceiling is measured with (at most N; 0 skips it)")
	flag.IntVar(&p.ceilingWorkers, "ceiling-workers", 32, "goroutines writing at full speed for the API-server ceiling")
	flag.IntVar(&p.seedRecords, "seed-records", 0, "records no Customer manages, seeded into the simulator's account before the run (a big account)")
	flag.StringVar(&p.memoryLimit, "memory-limit", "deployment", "the container memory limit the manager is told of (MEMORY_LIMIT, as the Deployment's resourceFieldRef sets it; the manager derives its Go memory limit from it): deployment (config/manager's limits.memory), none, or a quantity such as 512Mi")
	flag.StringVar(&p.memLimit, "memlimit", "", "GOMEMLIMIT of the manager process (e.g. 230MiB), which the manager obeys instead of -memory-limit; empty leaves it unset")
	flag.BoolVar(&p.restart, "restart", true, "after the idle phase, restart the manager and measure until it has checked every Customer")
	flag.DurationVar(&p.timeout, "timeout", time.Hour, "give up when not every Customer is Ready (or checked after the restart) after this long")
	flag.StringVar(&p.out, "out", "docs/benchmarks.md", "Markdown report to write, relative to the repository root; the JSON numbers and the charts go beside it")
	flag.StringVar(&modes, "modes", "list,per-object", "drift detection modes to run, comma-separated")
	flag.BoolVar(&p.appendTo, "append", false, "add (or replace) this run's section in -out and its entry in the JSON file instead of starting both anew")
	flag.BoolVar(&p.keepLogs, "keep-logs", false, "keep the run's folder: logs of the manager and the simulator, kubeconfig, heap profiles")
	flag.StringVar(&p.profileDir, "profile-dir", "", "save the heap profiles here (default: the run's folder, kept with -keep-logs)")
	flag.StringVar(&p.root, "root", "", "repository root (default: found from the working directory)")
	flag.BoolVar(&p.skipBuild, "skip-build", false, "use bin/manager and bin/scriptlock-sim as they are (make bench has just built them)")
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
	if p.n < 1 || p.idlePeriods < 0 || len(p.modes) == 0 || p.seedRecords < 0 || p.ceilingN < 0 {
		return errors.New("-n must be at least 1, -idle-periods, -seed-records and -ceiling-n at least 0, -modes not empty")
	}
	root := p.root
	if root == "" {
		var err error
		if root, err = localenv.RepoRoot(); err != nil {
			return err
		}
	}
	out := p.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	if !p.skipBuild {
		localenv.Logf("building bin/manager and bin/scriptlock-sim")
		if err := localenv.Build(ctx, root); err != nil {
			return err
		}
	}
	var results []*result
	for i, mode := range p.modes {
		localenv.Logf("=== mode %s (%d/%d): N=%d, latency %s, resync %s, ScriptLock qps %g burst %d, %d unmanaged records",
			mode, i+1, len(p.modes), p.n, p.latency, p.resync, p.qps, p.burst, p.seedRecords)
		r, err := runModeInDir(ctx, p, root, mode)
		if err != nil {
			return fmt.Errorf("mode %s: %w", mode, err)
		}
		results = append(results, r)
		localenv.Logf("=== mode %s: all %d Ready in %s; create phase %d ScriptLock calls, idle phase %d; idle API writes %.0f; peak RSS %d MiB",
			mode, p.n, r.allReady.Round(time.Millisecond), r.createCalls.total(), r.idleCalls.total(), r.idleWrites.client, r.peakRSSKiB()/1024)
	}
	if err := writeReport(out, root, p, results); err != nil {
		return err
	}
	localenv.Logf("wrote %s and %s", out, jsonPath(out))
	return nil
}

// runModeInDir runs one mode in a fresh folder, kept with -keep-logs (and
// always when the mode failed: the logs explain it).
func runModeInDir(ctx context.Context, p params, root, mode string) (_ *result, retErr error) {
	dir, err := os.MkdirTemp("", "scriptlock-bench-"+mode+"-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if p.keepLogs || retErr != nil {
			localenv.Logf("logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	return runMode(ctx, p, root, dir, mode)
}
