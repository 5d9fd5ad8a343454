package manifests

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/scriptlock/customer-operator/test/kustomized"
)

// repoRoot is the module's root directory, found from this file's path so
// that the tests work from any working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	return kustomized.RepoRoot()
}

// render builds the kustomization in config/<dir> exactly as `kubectl
// kustomize` does, with the kustomize library in process: no binary needed.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return renderPath(t, filepath.Join(repoRoot(t), "config", dir), "config/"+dir)
}

// renderPath builds the kustomization in the directory path (named dir in
// messages), for overlays that live outside config/.
func renderPath(t *testing.T, path, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := kustomized.Build(path)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	if len(objs) == 0 {
		t.Fatalf("%s renders nothing", dir)
	}
	return objs
}

// byKind returns the rendered objects of one kind.
func byKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// readFile reads a file of the repository.
func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
