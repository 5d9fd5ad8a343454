// Command demo runs the operator end to end on loopback: etcd and
// kube-apiserver (envtest), the ScriptLock simulator, the manager as its own
// process, then applies config/samples with kubectl and waits for the
// sample Customer to be Ready. `make demo` runs it.
//
// It keeps running until Ctrl-C (or SIGTERM) so that you can play with the
// Customer; DEMO_EXIT=1 makes it stop after printing the results, for
// scripts and CI. Either way everything it started is stopped.
package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/scriptlock/customer-operator/hack/localenv"
)

//go:embed hints.txt
var hintsText string

// demoKey is the API key of the simulator's only account. It is a demo
// value, not a secret.
const demoKey = "demo-api-key"

func main() {
	ctx, stop := localenv.SignalContext()
	err := run(ctx)
	stop()
	if err != nil {
		localenv.Logf("demo failed: %v", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	logf := localenv.Logf
	root, err := localenv.RepoRoot()
	if err != nil {
		return err
	}
	samples := filepath.Join(root, "config", "samples")
	if _, err := os.Stat(filepath.Join(samples, "kustomization.yaml")); err != nil {
		return fmt.Errorf("config/samples/kustomization.yaml is missing: %w", err)
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		return fmt.Errorf("kubectl is needed on PATH: %w", err)
	}

	logf("starting the local environment: control plane, ScriptLock simulator, operator")
	env, err := localenv.Start(ctx, localenv.Options{
		Root:   root,
		APIKey: demoKey,
		// A short resync so that a record edited in the simulator is put
		// back within half a minute while you watch.
		ManagerArgs: []string{"--resync-period", "30s"},
	})
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping the operator, the simulator and the control plane")
		env.Stop()
		logf("stopped; nothing left running")
	}()

	kubectl := func(args ...string) ([]byte, error) {
		args = append([]string{"--kubeconfig", env.KubeconfigPath}, args...)
		logf("$ kubectl %s", strings.Join(args[2:], " "))
		cmd := exec.CommandContext(ctx, "kubectl", args...)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err != nil {
			return out.Bytes(), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args[2:], " "), err, out.String())
		}
		return out.Bytes(), nil
	}

	logf("applying the samples")
	out, err := kubectl("apply", "-k", "config/samples")
	if err != nil {
		return err
	}
	fmt.Print(indent(out))
	logf("waiting for customer/example-customer to be Ready")
	start := time.Now()
	if _, err := kubectl("-n", "default", "wait", "--for=condition=Ready", "customer/example-customer", "--timeout=60s"); err != nil {
		if desc, derr := kubectl("-n", "default", "describe", "customer/example-customer"); derr == nil {
			fmt.Print(indent(desc))
		}
		return fmt.Errorf("%w (manager log: %s)", err, env.ManagerLog)
	}
	logf("Ready after %s", time.Since(start).Round(time.Millisecond))
	if out, err = kubectl("get", "customers", "-A", "-o", "wide"); err != nil {
		return err
	}
	fmt.Print(indent(out))
	logf("the simulator's records (GET %s/_sim/records)", env.SimURL)
	recs, err := simRecords(ctx, env.SimURL)
	if err != nil {
		return err
	}
	fmt.Print(indent(recs))

	if os.Getenv("DEMO_EXIT") == "1" {
		logf("DEMO_EXIT=1: done")
		return nil
	}
	fmt.Print(hints(env, firstID(recs)))
	<-ctx.Done()
	fmt.Println()
	logf("interrupted")
	return nil
}

// simRecords returns the simulator's records, indented.
func simRecords(ctx context.Context, base string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_sim/records", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /_sim/records: %s: %s", resp.Status, body)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "", "  "); err != nil {
		return body, nil
	}
	pretty.WriteByte('\n')
	return pretty.Bytes(), nil
}

func indent(b []byte) string {
	s := strings.TrimRight(string(b), "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

// firstID is the id of the first record, for the hints; "1" if none.
func firstID(recs []byte) string {
	var list []struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(recs, &list); err != nil || len(list) == 0 {
		return "1"
	}
	return strings.Trim(string(list[0].ID), `"`)
}

// hints is what to try while the demo runs: hints.txt with the
// kubeconfig, the simulator's URL, the manager's log and a record's id.
func hints(env *localenv.Env, id string) string {
	return "\n" + fmt.Sprintf(hintsText, env.KubeconfigPath, env.SimURL, env.ManagerLog, id)
}
