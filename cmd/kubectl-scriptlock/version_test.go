package main

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/internal/version"
)

// TestVersionPrintsTheStampedVersion: `kubectl scriptlock version --client`
// prints internal/version.Version, the variable the build stamps into
// both the plugin and the manager (test/manifests builds both and
// compares), and nothing else.
func TestVersionPrintsTheStampedVersion(t *testing.T) {
	old := version.Version
	t.Cleanup(func() { version.Version = old })
	version.Version = "v1.2.3-test"

	stdout, stderr, err := runCmd(t, testDeps(nil), "version", "--client")
	if err != nil || stdout != "v1.2.3-test\n" || stderr != "" {
		t.Errorf("version: stdout %q, stderr %q, err %v; want %q", stdout, stderr, err, "v1.2.3-test\n")
	}
	if _, _, err := runCmd(t, testDeps(nil), "version", "extra"); err == nil {
		t.Error("version with an argument should fail")
	}
	if stdout, _, _ := runCmd(t, testDeps(nil), "help"); !strings.Contains(stdout, "version") {
		t.Errorf("the usage does not list the version command:\n%s", stdout)
	}
}

// TestVersionOfTheServer: against a real kube-apiserver, version prints
// the plugin's version, each operator Deployment's (its image's tag or
// digest) and Kubernetes'; -n narrows the Deployments to one namespace;
// -o json and yaml print the same; an unreachable cluster is an error
// after the client's line.
func TestVersionOfTheServer(t *testing.T) {
	old := version.Version
	t.Cleanup(func() { version.Version = old })
	version.Version = "v1.2.3-test"

	c, kubeconfig := startAPIServer(t)
	ctx := context.Background()
	for _, o := range []struct{ ns, name, image string }{
		{"scriptlock-system", "scriptlock-controller-manager", "registry.example.com:5000/scriptlock/customer-operator:v1.2.3"},
		{"team-a", "team-a-controller-manager", "registry.example.com/scriptlock/customer-operator@sha256:abc"},
	} {
		if err := c.Create(ctx, namespace(o.ns)); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{"app.kubernetes.io/name": "customer-operator", "control-plane": "controller-manager"}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: o.name, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: o.image}}},
				},
			},
		}
		if err := c.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// Another Deployment, not the operator's: not listed.
	other := map[string]string{"app": "other"}
	if err := c.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "other", Labels: other},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: other}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: other},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "other:v9"}}},
		}},
	}); err != nil {
		t.Fatal(err)
	}

	d := defaultDeps()
	stdout, stderr, err := runCmd(t, d, "version", "--kubeconfig", kubeconfig)
	if err != nil || stderr != "" {
		t.Fatalf("err %v, stderr %q", err, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	want := []string{
		"Client Version: v1.2.3-test",
		"Operator Version: v1.2.3 (scriptlock-system/scriptlock-controller-manager)",
		"Operator Version: sha256:abc (team-a/team-a-controller-manager)",
	}
	if len(lines) != 4 || strings.Join(lines[:3], "\n") != strings.Join(want, "\n") || !strings.HasPrefix(lines[3], "Kubernetes Version: v1.") {
		t.Errorf("version printed:\n%s\nwant:\n%s\nKubernetes Version: v1.…", stdout, strings.Join(want, "\n"))
	}

	stdout, _, err = runCmd(t, d, "version", "--kubeconfig", kubeconfig, "-n", "team-a")
	if err != nil || strings.Count(stdout, "Operator Version:") != 1 || !strings.Contains(stdout, "team-a/team-a-controller-manager") {
		t.Errorf("-n team-a: err %v\n%s", err, stdout)
	}
	stdout, _, err = runCmd(t, d, "version", "--kubeconfig", kubeconfig, "-n", "default")
	if err != nil || !strings.Contains(stdout, "Operator Version: none found") {
		t.Errorf("-n default: err %v\n%s", err, stdout)
	}

	for _, format := range []string{"json", "yaml"} {
		stdout, _, err := runCmd(t, d, "version", "--kubeconfig", kubeconfig, "-o", format)
		var r versionReport
		if err != nil || yaml.UnmarshalStrict([]byte(stdout), &r) != nil {
			t.Fatalf("-o %s: err %v\n%s", format, err, stdout)
		}
		if r.ClientVersion != "v1.2.3-test" || len(r.Operators) != 2 || r.Operators[0].Version != "v1.2.3" ||
			r.Operators[0].Image != "registry.example.com:5000/scriptlock/customer-operator:v1.2.3" || !strings.HasPrefix(r.KubernetesVersion, "v1.") {
			t.Errorf("-o %s: %+v", format, r)
		}
	}

	stdout, _, err = runCmd(t, d, "version", "--kubeconfig", kubeconfig, "--server", "https://127.0.0.1:1")
	if err == nil || stdout != "Client Version: v1.2.3-test\n" {
		t.Errorf("unreachable cluster: err %v, stdout %q; want an error after the client's line", err, stdout)
	}
}

func TestImageVersion(t *testing.T) {
	for image, want := range map[string]string{
		"registry:5000/scriptlock/customer-operator:v0.1.0": "v0.1.0",
		"scriptlock/customer-operator@sha256:0123":          "sha256:0123",
		"registry:5000/scriptlock/customer-operator":        "latest",
	} {
		if got := imageVersion(image); got != want {
			t.Errorf("imageVersion(%q) = %q, want %q", image, got, want)
		}
	}
}
