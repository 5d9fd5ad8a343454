package manifests

// The release's install files, dist/crds.yaml and dist/install.yaml, as
// `make build-installer IMG=...` writes them (hack/build-installer.sh, run
// here with bin/kustomize).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

const installerImage = "registry.example.com/scriptlock/customer-operator:v0.1.0"

// buildInstaller runs hack/build-installer.sh for img and returns the
// objects of the two files it writes, in each file's order. It checks that
// the checkout's config/manager/kustomization.yaml is left as it was.
func buildInstaller(t *testing.T, img string) (install, crds []*unstructured.Unstructured) {
	t.Helper()
	kustomize := os.Getenv("KUSTOMIZE")
	if kustomize == "" {
		kustomize = filepath.Join(repoRoot(t), "bin", "kustomize")
	}
	if _, err := os.Stat(kustomize); err != nil {
		t.Skipf("no kustomize binary at %s: `make test` builds bin/kustomize (or set KUSTOMIZE)", kustomize)
	}
	before := readFile(t, "config/manager/kustomization.yaml")
	out := filepath.Join(t.TempDir(), "dist", "install.yaml")
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "hack", "build-installer.sh"), img, out)
	cmd.Env = append(os.Environ(), "KUSTOMIZE="+kustomize)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/build-installer.sh %s: %v\n%s", img, err, b)
	}
	if after := readFile(t, "config/manager/kustomization.yaml"); !bytes.Equal(before, after) {
		t.Errorf("building the installer changed config/manager/kustomization.yaml:\n%s", after)
	}
	return readObjects(t, out), readObjects(t, filepath.Join(filepath.Dir(out), "crds.yaml"))
}

// readObjects returns the objects of a multi-document YAML file, in order.
func readObjects(t *testing.T, file string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.TrimSpace(string(j)); s == "null" || s == "" {
			continue // a comment only
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(j); err != nil {
			t.Fatalf("%s: %v\n%s", filepath.Base(file), err, doc)
		}
		objs = append(objs, o)
	}
	return objs
}

// managerImages returns the image of every container of every Deployment.
func managerImages(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	var images []string
	for _, o := range byKind(objs, "Deployment") {
		containers, _, err := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range containers {
			img, _, _ := unstructured.NestedString(c.(map[string]any), "image")
			images = append(images, img)
		}
	}
	return images
}

// TestInstallerIsConfigDefaultWithTheImage: dist/crds.yaml holds the CRD
// and nothing else, dist/install.yaml everything else; together they are
// exactly the objects of config/default (same kinds, names, namespaces and
// content) but for the manager's image, which is IMG, by tag or by digest;
// building them leaves the checkout's config/manager as it was.
func TestInstallerIsConfigDefaultWithTheImage(t *testing.T) {
	for _, img := range []string{
		installerImage,
		"registry.example.com:5000/scriptlock/customer-operator@sha256:" + strings.Repeat("0123456789abcdef", 4),
	} {
		install, crds := buildInstaller(t, img)
		if len(crds) != 1 || crds[0].GetKind() != "CustomResourceDefinition" {
			t.Errorf("IMG=%s: crds.yaml should hold the CRD alone, it holds %d objects", img, len(crds))
		}
		if n := len(byKind(install, "CustomResourceDefinition")); n != 0 {
			t.Errorf("IMG=%s: install.yaml holds %d CRDs: deleting it would delete every Customer", img, n)
		}
		got := slices.Concat(crds, install)
		if images := managerImages(t, got); !slices.Equal(images, []string{img}) {
			t.Errorf("IMG=%s: the Deployment runs %v", img, images)
		}
		want := render(t, "default")
		for _, o := range byKind(want, "Deployment") {
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range containers {
				c.(map[string]any)["image"] = img
			}
			if err := unstructured.SetNestedSlice(o.Object, containers, "spec", "template", "spec", "containers"); err != nil {
				t.Fatal(err)
			}
		}
		gotIdx, wantIdx := index(got), index(want)
		if len(gotIdx) != len(got) {
			t.Errorf("IMG=%s: crds.yaml and install.yaml hold an object twice", img)
		}
		for k, w := range wantIdx {
			switch g, ok := gotIdx[k]; {
			case !ok:
				t.Errorf("IMG=%s: crds.yaml and install.yaml lack config/default's %s", img, k)
			case !reflect.DeepEqual(g.Object, w.Object):
				t.Errorf("IMG=%s: the installer's %s differs from config/default's with the image set", img, k)
			}
		}
		for k := range gotIdx {
			if _, ok := wantIdx[k]; !ok {
				t.Errorf("IMG=%s: the installer holds %s, which config/default does not", img, k)
			}
		}
	}
}

// TestInstallerAppliesToAnEmptyCluster: `kubectl apply -f crds.yaml -f
// install.yaml` on a cluster with nothing else works: each object in the
// files' order is accepted by a real kube-apiserver (server-side dry run,
// then applied, so that the Namespace and the CRD exist before what needs
// them). Then `kubectl delete -f install.yaml` leaves the CRD in place.
func TestInstallerAppliesToAnEmptyCluster(t *testing.T) {
	install, crds := buildInstaller(t, installerImage)
	objs := slices.Concat(crds, install)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := startAPIServer(t)
	for _, o := range objs {
		if err := apply(ctx, c, o, true); err != nil {
			t.Fatalf("the API server refuses %s (dry run): %v", id(o), err)
		}
		if err := apply(ctx, c, o, false); err != nil {
			t.Fatalf("applying %s: %v", id(o), err)
		}
	}
	for _, o := range objs {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o.DeepCopy()); err != nil {
			t.Errorf("%s is not there after the install: %v", id(o), err)
		}
	}
	waitEstablished(ctx, t, c, "customers.licensing.scriptlock.com")
	for _, o := range install {
		if err := c.Delete(ctx, o.DeepCopy()); err != nil {
			t.Errorf("deleting %s: %v", id(o), err)
		}
	}
	for _, o := range crds {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o.DeepCopy()); err != nil {
			t.Errorf("%s is gone after deleting install.yaml: %v", id(o), err)
		}
	}
}
