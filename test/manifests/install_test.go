package manifests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scriptlock/customer-operator/test/apiserver"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

const fieldOwner = client.FieldOwner("test-manifests")

// startAPIServer starts kube-apiserver and etcd from KUBEBUILDER_ASSETS
// (bin/k8s, built by `make controlplane`; the Makefile exports it).
func startAPIServer(t *testing.T) client.Client {
	t.Helper()
	_, c := startControlPlane(t)
	return c
}

// startControlPlane starts kube-apiserver and etcd with no CRD installed.
func startControlPlane(t *testing.T) (*rest.Config, client.Client) {
	t.Helper()
	return apiserver.Start(t)
}

// apply server-side applies o, for real or as a dry run.
func apply(ctx context.Context, c client.Client, o *unstructured.Unstructured, dryRun bool) error {
	opts := []client.ApplyOption{fieldOwner, client.ForceOwnership}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), opts...)
}

// TestRenderedManifestsInstallAndProtectCustomers renders config/default as
// users apply it, has a real kube-apiserver accept every object (the CRD,
// the namespace and the admission policy for real, the rest as server-side
// dry runs), checks that the manager's pod meets the namespace's Pod
// Security "restricted" enforcement, and that the deletion-protection
// policy refuses to delete a protected Customer with a message that says
// how to proceed, while an unprotected one deletes.
func TestRenderedManifestsInstallAndProtectCustomers(t *testing.T) { //nolint:gocyclo // one install on one API server, checked property by property, each a line
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := startAPIServer(t)
	objs := render(t, "default")

	// Cluster-scoped prerequisites first, for real: the CRD (established
	// before any Customer) and the namespace of everything else.
	for _, kind := range []string{"CustomResourceDefinition", "Namespace"} {
		for _, o := range byKind(objs, kind) {
			if err := apply(ctx, c, o, false); err != nil {
				t.Fatalf("applying %s %s: %v", kind, o.GetName(), err)
			}
		}
	}
	crds := byKind(objs, "CustomResourceDefinition")
	if len(crds) != 1 {
		t.Fatalf("config/default should hold the Customer CRD, got %d CRDs", len(crds))
	}
	waitFor(ctx, t, "the CRD to be established", func() (bool, error) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: crds[0].GetName()}, crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})

	// Every object, as `kubectl apply --server-side --dry-run=server` would.
	for _, o := range objs {
		if err := apply(ctx, c, o, true); err != nil {
			t.Errorf("the API server refuses %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}

	t.Run("manager pod meets Pod Security restricted", func(t *testing.T) {
		deps := byKind(objs, "Deployment")
		if len(deps) != 1 {
			t.Fatalf("want one Deployment, got %d", len(deps))
		}
		tmpl, found, err := unstructured.NestedMap(deps[0].Object, "spec", "template")
		if err != nil || !found {
			t.Fatalf("Deployment has no pod template: %v", err)
		}
		pod := &unstructured.Unstructured{Object: tmpl}
		pod.SetAPIVersion("v1")
		pod.SetKind("Pod")
		pod.SetName("manager-pod-security-check")
		pod.SetNamespace(deps[0].GetNamespace())
		// Creating a Deployment only warns about Pod Security; creating its
		// pod is what the namespace's enforce label refuses.
		if err := apply(ctx, c, pod, true); err != nil {
			t.Fatalf("namespace %s refuses the manager's pod: %v", deps[0].GetNamespace(), err)
		}
		ns := &corev1.Namespace{}
		if err := c.Get(ctx, client.ObjectKey{Name: deps[0].GetNamespace()}, ns); err != nil {
			t.Fatal(err)
		}
		if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("namespace %s does not enforce Pod Security restricted: labels %v", ns.Name, ns.Labels)
		}
	})

	t.Run("deletion protection", func(t *testing.T) {
		// The policy and its binding, for real this time.
		for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
			found := byKind(objs, kind)
			if len(found) != 1 {
				t.Fatalf("config/default should hold one %s, got %d", kind, len(found))
			}
			if err := apply(ctx, c, found[0], false); err != nil {
				t.Fatalf("applying %s: %v", kind, err)
			}
		}

		sample := &v1alpha1.Customer{}
		if err := yaml.UnmarshalStrict(readFile(t, "config/samples/licensing_v1alpha1_customer.yaml"), sample); err != nil {
			t.Fatal(err)
		}
		protected := sample.DeepCopy()
		protected.Annotations = map[string]string{v1alpha1.DeletionProtectionAnnotation: "true"}
		unprotected := sample.DeepCopy()
		unprotected.Name = "unprotected-customer"
		unprotected.Spec.Email = "unprotected@example.com"
		notTrue := sample.DeepCopy()
		notTrue.Name = "protection-off"
		notTrue.Spec.Email = "off@example.com"
		notTrue.Annotations = map[string]string{v1alpha1.DeletionProtectionAnnotation: "false"}
		for _, cu := range []*v1alpha1.Customer{protected, unprotected, notTrue} {
			if err := c.Create(ctx, cu, fieldOwner); err != nil {
				t.Fatalf("creating the sample Customer %s: %v", cu.Name, err)
			}
		}

		// A policy is enforced a moment after it is created: probe with dry
		// runs, which go through admission but delete nothing.
		enforced, cancelWait := context.WithTimeout(ctx, 30*time.Second)
		defer cancelWait()
		waitFor(enforced, t, "the policy to be enforced", func() (bool, error) {
			return c.Delete(ctx, protected.DeepCopy(), client.DryRunAll) != nil, nil
		})
		err := c.Delete(ctx, protected.DeepCopy())
		if err == nil {
			t.Fatal("deleting a Customer annotated deletion-protection=\"true\" was allowed")
		}
		if !apierrors.IsForbidden(err) {
			t.Errorf("want 403 Forbidden, got %v", err)
		}
		for _, want := range []string{
			"Customer default/example-customer is protected from deletion",
			`licensing.scriptlock.com/deletion-protection="true"`,
			"kubectl annotate customer example-customer -n default licensing.scriptlock.com/deletion-protection-",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the refusal should say %q; it says: %v", want, err)
			}
		}
		// `kubectl delete customers --all` is refused item by item.
		if err := c.DeleteAllOf(ctx, &v1alpha1.Customer{}, client.InNamespace("default")); err == nil {
			t.Error("deleting all Customers of the namespace was allowed")
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(protected), &v1alpha1.Customer{}); err != nil {
			t.Fatalf("the protected Customer should still exist: %v", err)
		}

		// Following the message's advice makes the delete go through.
		if err := c.Patch(ctx, protected.DeepCopy(), client.RawPatch("application/merge-patch+json",
			[]byte(`{"metadata":{"annotations":{"licensing.scriptlock.com/deletion-protection":null}}}`))); err != nil {
			t.Fatal(err)
		}
		for _, cu := range []*v1alpha1.Customer{protected, unprotected, notTrue} {
			if err := c.Delete(ctx, cu.DeepCopy()); client.IgnoreNotFound(err) != nil {
				t.Errorf("deleting unprotected Customer %s: %v", cu.Name, err)
			}
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(protected), &v1alpha1.Customer{}); !apierrors.IsNotFound(err) {
			t.Errorf("Customer %s should be gone once unprotected, got %v", protected.Name, err)
		}
	})
}

// waitFor polls cond every 100 ms until it holds; it fails the test when ctx
// ends first.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		return cond()
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
