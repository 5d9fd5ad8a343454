package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"

	"github.com/scriptlock/customer-operator/hack/localenv"
)

// The benchmark's environment is hack/localenv's parts (the demo's):
// etcd and kube-apiserver through envtest, bin/scriptlock-sim and
// bin/manager, all on loopback. It puts them together itself for what the
// demo does not need: a simulator seeded with a big account, a manager
// with its own memory settings and a pprof endpoint, started only after
// the API-server ceiling was measured, and stopped and started again on
// the same control plane (the restart phase).

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
	cp         *localenv.ControlPlane
	config     *rest.Config // a system:masters connection for the benchmark's own clients
	kubeconfig string
	sim        *localenv.Sim
	simURL     string
	manager    *localenv.Manager
}

// startEnv brings up the control plane and the simulator. The manager is
// started separately (newManager), so that the API-server ceiling can be
// measured before it runs.
func startEnv(ctx context.Context, o envOptions) (_ *benchEnv, retErr error) {
	e := &benchEnv{opts: o, kubeconfig: filepath.Join(o.dir, "kubeconfig")}
	defer func() {
		if retErr != nil {
			e.stop()
		}
	}()
	var err error
	if e.cp, err = localenv.StartControlPlane(ctx, o.root, e.kubeconfig, localenv.Logf); err != nil {
		return nil, err
	}
	e.config = e.cp.Config
	e.sim, err = localenv.StartSim(ctx, localenv.SimOptions{
		Root: o.root, APIKey: o.apiKey, Latency: o.simLatency, Seed: o.seedFile,
		Log: filepath.Join(o.dir, "scriptlock-sim.log"), Logf: localenv.Logf,
	})
	if err != nil {
		return nil, err
	}
	e.simURL = e.sim.URL
	return e, nil
}

// stop stops the manager, the simulator and the control plane, in that
// order. It is safe on a partly started environment.
func (e *benchEnv) stop() {
	localenv.StopAll(localenv.Logf, e.manager, e.sim, e.cp)
}

// newManager prepares (does not start) the manager with the environment's
// kubeconfig, the simulator as its default account, the run's memory
// settings and a pprof endpoint for the heap profiles.
func (e *benchEnv) newManager() (*localenv.Manager, error) {
	var env []string
	if e.opts.memLimit != "" {
		env = append(env, "GOMEMLIMIT="+e.opts.memLimit)
	}
	if e.opts.memoryLimit > 0 {
		env = append(env, fmt.Sprintf("MEMORY_LIMIT=%d", e.opts.memoryLimit))
	}
	m, err := localenv.NewManager(localenv.ManagerOptions{
		Root: e.opts.root, Dir: e.opts.dir, Kubeconfig: e.kubeconfig, SimURL: e.simURL, APIKey: e.opts.apiKey,
		Args: e.opts.managerArgs, Env: env, Pprof: true, Logf: localenv.Logf,
	})
	if err != nil {
		return nil, err
	}
	e.manager = m
	return m, nil
}
