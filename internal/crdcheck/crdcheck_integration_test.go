package crdcheck

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scriptlock/customer-operator/test/apiserver"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// TestCheckAgainstTheAPIServer installs one CRD after another in a real
// kube-apiserver, as an upgrade that left the CRD behind would, and runs
// the manager's start-up check on each: it passes only the CRD the manager
// was built with, and otherwise names what is missing and how to update.
func TestCheckAgainstTheAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg, c := startAPIServer(t)

	cases := []struct {
		name string
		crd  *apiextensionsv1.CustomResourceDefinition // nil: none installed
		want []string                                  // nil: the check passes
	}{
		{"no CRD at all", nil, []string{"is not installed", "kubectl apply --server-side -f " + crdFile}},
		{"an older CRD without status.pendingCreate, status.account and status.url",
			edit(t, dropFields("status.pendingCreate", "status.account", "status.url")),
			[]string{"v1alpha1 has no field status.account, status.pendingCreate, status.url", "kubectl apply --server-side -f " + crdFile, "make install"}},
		{"an older CRD without spec.managementPolicy (an Observe Customer would be managed)",
			edit(t, dropFields("spec.managementPolicy")), []string{"v1alpha1 has no field spec.managementPolicy ("}},
		{"status.customerID of another type",
			edit(t, func(v *apiextensionsv1.CustomResourceDefinitionVersion) {
				st := v.Schema.OpenAPIV3Schema.Properties["status"]
				st.Properties["customerID"] = apiextensionsv1.JSONSchemaProps{Type: "integer"}
			}), []string{"status.customerID is integer, not string"}},
		{"v1alpha1 no longer served",
			edit(t, func(v *apiextensionsv1.CustomResourceDefinitionVersion) { v.Served = false }),
			[]string{"v1alpha1 is not served"}},
		{"the status subresource off",
			edit(t, func(v *apiextensionsv1.CustomResourceDefinitionVersion) { v.Subresources = nil }),
			[]string{"v1alpha1 has no status subresource"}},
		{"status kept whole (x-kubernetes-preserve-unknown-fields)",
			edit(t, func(v *apiextensionsv1.CustomResourceDefinitionVersion) {
				v.Schema.OpenAPIV3Schema.Properties["status"] = apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: new(true)}
			}), nil},
		{"the CRD this manager was built with", current(t), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.crd != nil {
				install(ctx, t, c, tc.crd)
			}
			expect(t, Check(ctx, cfg), tc.want)
		})
	}

	// A namespace-scoped manager may not read the CRD (its Role cannot
	// grant a cluster-scoped resource): the check then reads the schema the
	// API server publishes, which lags the CRD by a moment.
	team := rest.CopyConfig(cfg)
	team.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:team-a:scriptlock-controller-manager", Groups: []string{"system:authenticated"}}
	teamClient, err := client.New(team, client.Options{Scheme: c.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := teamClient.Get(ctx, client.ObjectKey{Name: current(t).Name}, &apiextensionsv1.CustomResourceDefinition{}); !apierrors.IsForbidden(err) {
		t.Fatalf("a namespace-scoped manager reads the CRD (%v): the published schema would go untested", err)
	}
	for _, tc := range []struct {
		name string
		crd  *apiextensionsv1.CustomResourceDefinition
		want []string
	}{
		{"may not read the CRD: an older published schema", edit(t, dropFields("status.pendingCreate", "status.account", "status.url")),
			[]string{"v1alpha1 has no field status.account, status.pendingCreate, status.url"}},
		{"may not read the CRD: the current published schema", current(t), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			install(ctx, t, c, tc.crd)
			var err error
			for ctx.Err() == nil {
				if err = Check(ctx, team); matches(err, tc.want) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			expect(t, err, tc.want)
		})
	}
}

// TestAnOlderCRDDropsTheProof is why the check exists: with a CRD that
// lacks status.pendingCreate, the API server accepts a status write that
// holds the create-time proof and silently drops it.
func TestAnOlderCRDDropsTheProof(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, c := startAPIServer(t)
	install(ctx, t, c, edit(t, dropFields("status.pendingCreate", "status.account", "status.url")))

	cu := &v1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ada"},
		Spec:       v1alpha1.CustomerSpec{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"},
	}
	for {
		err := c.Create(ctx, cu)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err) // the Customer API never became usable
		}
		time.Sleep(200 * time.Millisecond)
	}
	cu.Status.Account = "acct-1"
	cu.Status.PendingCreate = &v1alpha1.PendingCreate{UID: string(cu.UID), Account: "acct-1", Email: cu.Spec.Email,
		Digests: []string{"0123456789abcdef"}, Since: metav1.Now()}
	if err := c.Status().Update(ctx, cu); err != nil {
		t.Fatalf("the status write is refused, not dropped: %v", err)
	}
	got := &v1alpha1.Customer{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(cu), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.PendingCreate != nil || got.Status.Account != "" {
		t.Fatalf("the older CRD kept status.pendingCreate and status.account: %+v", got.Status)
	}
}

func expect(t *testing.T, err error, want []string) {
	t.Helper()
	if !matches(err, want) {
		t.Fatalf("Check: %v\nwant an error with %q", err, want)
	}
}

// matches is whether err is nil when want is, and otherwise says each of
// want.
func matches(err error, want []string) bool {
	if err == nil || want == nil {
		return (err == nil) == (want == nil)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			return false
		}
	}
	return true
}

// current is the CRD the manager was built with.
func current(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(customerCRD, crd); err != nil {
		t.Fatal(err)
	}
	return crd
}

// edit is the current CRD with f applied to its v1alpha1 version.
func edit(t *testing.T, f func(*apiextensionsv1.CustomResourceDefinitionVersion)) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	crd := current(t)
	for i := range crd.Spec.Versions {
		if crd.Spec.Versions[i].Name == v1alpha1.GroupVersion.Version {
			f(&crd.Spec.Versions[i])
			return crd
		}
	}
	t.Fatal("the built-in CRD has no v1alpha1")
	return nil
}

// dropFields removes fields ("status.url") from the schema, as a CRD
// generated before they existed lacks them.
func dropFields(paths ...string) func(*apiextensionsv1.CustomResourceDefinitionVersion) {
	return func(v *apiextensionsv1.CustomResourceDefinitionVersion) {
		for _, p := range paths {
			parent, field, _ := strings.Cut(p, ".")
			delete(v.Schema.OpenAPIV3Schema.Properties[parent].Properties, field)
		}
	}
}

// install creates crd, or replaces the spec of the one installed, and
// waits until it is established.
func install(ctx context.Context, t *testing.T, c client.Client, crd *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	old := &apiextensionsv1.CustomResourceDefinition{}
	switch err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, old); {
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, crd); err != nil {
			t.Fatal(err)
		}
	case err != nil:
		t.Fatal(err)
	default:
		old.Spec = crd.Spec
		if err := c.Update(ctx, old); err != nil {
			t.Fatal(err)
		}
	}
	for {
		got := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, got); err != nil {
			t.Fatal(err)
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("the CRD was never established: %v", got.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startAPIServer starts kube-apiserver and etcd with no CRD installed.
func startAPIServer(t *testing.T) (*rest.Config, client.Client) {
	t.Helper()
	return apiserver.Start(t)
}
