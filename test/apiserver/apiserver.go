// Package apiserver starts a real kube-apiserver and etcd (envtest) for a
// test, with a client that knows the core types, CRDs and the Customer:
// the one way the manifest, CRD-check and plugin tests get an API server.
package apiserver

import (
	"os"
	"path/filepath"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/test/kustomized"
)

// Start starts kube-apiserver and etcd with no CRD installed, stopped when
// t ends. The binaries are KUBEBUILDER_ASSETS, else bin/k8s of the
// repository (`make controlplane`); without them the test is skipped.
func Start(t testing.TB) (*rest.Config, client.Client) {
	t.Helper()
	env := &envtest.Environment{}
	cfg := StartEnv(t, env)
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, c
}

// AdminKubeconfig writes a kubeconfig of a user named name in
// system:masters of env into a temporary file and returns its path.
func AdminKubeconfig(t testing.TB, env *envtest.Environment, cfg *rest.Config, name string) string {
	t.Helper()
	user, err := env.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// StartEnv starts env (its CRDs installed), stopped when t ends, with the
// binaries Start finds.
func StartEnv(t testing.TB, env *envtest.Environment) *rest.Config {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		assets := filepath.Join(kustomized.RepoRoot(), "bin", "k8s")
		if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
			t.Skip("no control plane: run `make controlplane`, or set KUBEBUILDER_ASSETS")
		}
		t.Setenv("KUBEBUILDER_ASSETS", assets)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	return cfg
}
