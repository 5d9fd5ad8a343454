package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scriptlock/customer-operator/test/apiserver"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/internal/serving"
)

// TestTheManagerRefusesAnOlderCRD starts the manager (run, as main does)
// against a real kube-apiserver whose Customer CRD predates
// status.pendingCreate, status.account and status.url: it stops before
// anything runs, naming the fields and the command that updates the CRD.
func TestTheManagerRefusesAnOlderCRD(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		assets := filepath.Join("bin", "k8s")
		if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
			t.Skip("no control plane: run `make controlplane`, or set KUBEBUILDER_ASSETS")
		}
		t.Setenv("KUBEBUILDER_ASSETS", assets)
	}
	b, err := os.ReadFile(filepath.Join("config", "crd", "bases", "licensing.scriptlock.com_customers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	older := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(b, older); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"pendingCreate", "account", "url"} {
		delete(older.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["status"].Properties, f)
	}
	env := &envtest.Environment{CRDs: []*apiextensionsv1.CustomResourceDefinition{older}}
	cfg := apiserver.StartEnv(t, env)
	t.Setenv("KUBECONFIG", apiserver.AdminKubeconfig(t, env, cfg, "admin"))

	// A manager that does not refuse starts: its readiness probe answers.
	probe := freeLoopbackAddr(t)
	done := make(chan error, 1)
	go func() {
		done <- run(config{driftDetection: "list", leaderElectionID: "crdcheck-test", probeAddr: probe, metrics: serving.Metrics{BindAddress: "0"}})
	}()
	var startErr error
	for startErr == nil {
		select {
		case startErr = <-done:
			if startErr == nil {
				t.Fatal("the manager stopped without an error")
			}
		case <-time.After(100 * time.Millisecond):
			if ready(probe) {
				t.Fatal("the manager started on a CRD without status.pendingCreate")
			}
		}
	}
	t.Log(startErr)
	for _, want := range []string{"status.account, status.pendingCreate, status.url", "kubectl apply --server-side -f", "make install"} {
		if !strings.Contains(startErr.Error(), want) {
			t.Errorf("the manager's error does not say %q: %v", want, startErr)
		}
	}
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func ready(addr string) bool {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
