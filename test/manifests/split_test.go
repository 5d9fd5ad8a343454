package manifests

// The split install: config/cluster holds the shared, cluster-scoped parts
// (the CRD, the deletion-protection policy and its binding), applied once by
// a cluster administrator; config/namespaced, one per team, holds nothing
// cluster-scoped. So a team's `kubectl delete -k config/namespaced` can
// never delete the CRD, which would delete every Customer of every team and
// have every other team's operator revoke their licenses.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// operatorNamespace is the namespace config/default and config/namespaced
// install into.
const operatorNamespace = "scriptlock-system"

// namespacedKinds classifies every kind that config/ renders, by
// "group/Kind": true for namespaced, false for cluster-scoped. A kind missing
// here fails the tests instead of passing unchecked;
// TestSplitInstallOnAPIServer checks the classification against a real
// kube-apiserver's discovery.
var namespacedKinds = map[string]bool{
	"/Namespace": false,
	"apiextensions.k8s.io/CustomResourceDefinition":                 false,
	"admissionregistration.k8s.io/ValidatingAdmissionPolicy":        false,
	"admissionregistration.k8s.io/ValidatingAdmissionPolicyBinding": false,
	"rbac.authorization.k8s.io/ClusterRole":                         false,
	"rbac.authorization.k8s.io/ClusterRoleBinding":                  false,
	"/ServiceAccount":                       true,
	"/Service":                              true,
	"/Secret":                               true,
	"apps/Deployment":                       true,
	"rbac.authorization.k8s.io/Role":        true,
	"rbac.authorization.k8s.io/RoleBinding": true,
	"networking.k8s.io/NetworkPolicy":       true,
	"licensing.scriptlock.com/Customer":     true,
	// config/prometheus, should it be added to config/default.
	"monitoring.coreos.com/ServiceMonitor": true,
	"monitoring.coreos.com/PrometheusRule": true,
}

func groupKind(o *unstructured.Unstructured) string {
	return o.GroupVersionKind().Group + "/" + o.GetKind()
}

// id names an object as "group/Kind namespace/name" (no namespace for a
// cluster-scoped one).
func id(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return groupKind(o) + " " + ns + "/" + o.GetName()
	}
	return groupKind(o) + " " + o.GetName()
}

func index(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		m[id(o)] = o
	}
	return m
}

// isNamespaced says whether o's kind is namespaced; an unclassified kind
// fails the test.
func isNamespaced(t *testing.T, o *unstructured.Unstructured) bool {
	t.Helper()
	namespaced, known := namespacedKinds[groupKind(o)]
	if !known {
		t.Fatalf("%s: the kind %s is not in namespacedKinds: add it there, as namespaced or cluster-scoped", id(o), groupKind(o))
	}
	return namespaced
}

func convert[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	v := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, v); err != nil {
		t.Fatalf("%s: %v", id(o), err)
	}
	return v
}

// checkNamespacedInstall checks a rendered namespace-scoped install: no
// cluster-scoped object at all, everything in namespace ns, and all that the
// operator needs to run there, self-contained (the Deployment watching its
// own namespace, its ServiceAccount, the manager and leader-election Roles
// bound to that ServiceAccount in ns).
func checkNamespacedInstall(t *testing.T, objs []*unstructured.Unstructured, ns string) {
	t.Helper()
	for _, o := range objs {
		switch {
		case !isNamespaced(t, o):
			t.Errorf("%s is cluster-scoped: a namespaced install must not carry it (uninstalling one team would delete it for all); it belongs in config/cluster", id(o))
		case o.GetNamespace() != ns:
			t.Errorf("%s is not in namespace %s", id(o), ns)
		}
	}
	idx := index(objs)

	deps := byKind(objs, "Deployment")
	if len(deps) != 1 {
		t.Fatalf("want one Deployment, got %d", len(deps))
	}
	dep := convert[appsv1.Deployment](t, deps[0])
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) == 0 {
		t.Fatal("the Deployment has no container")
	}
	mgr := pod.Containers[0]
	if !slices.Contains(mgr.Args, "--watch-namespace=$(POD_NAMESPACE)") {
		t.Errorf("the manager should run with --watch-namespace=$(POD_NAMESPACE), args %v", mgr.Args)
	}
	if !slices.ContainsFunc(mgr.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	}) {
		t.Error("the manager should get POD_NAMESPACE from the downward API (metadata.namespace)")
	}
	sa := pod.ServiceAccountName
	if _, ok := idx["/ServiceAccount "+ns+"/"+sa]; sa == "" || !ok {
		t.Errorf("the Deployment runs as ServiceAccount %q, which the install does not hold", sa)
	}

	// Every RoleBinding binds a Role of this install; the manager's and the
	// leader election's reach the manager's ServiceAccount in ns.
	bound := map[string]bool{}
	for _, o := range byKind(objs, "RoleBinding") {
		rb := convert[rbacv1.RoleBinding](t, o)
		if _, ok := idx["rbac.authorization.k8s.io/"+rb.RoleRef.Kind+" "+ns+"/"+rb.RoleRef.Name]; rb.RoleRef.Kind != "Role" || !ok {
			t.Errorf("RoleBinding %s binds %s %s, which is not a Role of this install", rb.Name, rb.RoleRef.Kind, rb.RoleRef.Name)
			continue
		}
		for _, s := range rb.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == ns {
				bound[rb.RoleRef.Name] = true
			} else {
				t.Errorf("RoleBinding %s binds %s %s/%s, not the manager's ServiceAccount %s/%s", rb.Name, s.Kind, s.Namespace, s.Name, ns, sa)
			}
		}
	}
	for _, role := range []string{"scriptlock-manager-role", "scriptlock-leader-election-role"} {
		if !bound[role] {
			t.Errorf("no RoleBinding gives the manager's ServiceAccount the Role %s in %s", role, ns)
		}
	}
	if o, ok := idx["rbac.authorization.k8s.io/Role "+ns+"/scriptlock-manager-role"]; ok {
		rules := convert[rbacv1.Role](t, o).Rules
		for key, verbs := range allowedManagerRules {
			for _, v := range verbs {
				if !grants(rules, key, v) {
					t.Errorf("the Role scriptlock-manager-role does not grant %s on %s, which the operator needs", v, key)
				}
			}
		}
	}
}

// TestNamespacedOverlayHoldsNoClusterScopedObject: config/namespaced carries
// nothing cluster-scoped (no CRD, policy, ClusterRole(Binding) or
// Namespace), so deleting it touches no other team, and holds everything
// its operator needs in scriptlock-system.
func TestNamespacedOverlayHoldsNoClusterScopedObject(t *testing.T) {
	checkNamespacedInstall(t, render(t, "namespaced"), operatorNamespace)
}

// The image a team's overlay pins.
const (
	teamImageName = "registry.example.com/scriptlock/customer-operator"
	teamImageTag  = "v0.1.0"
	teamImage     = teamImageName + ":" + teamImageTag
)

// renderTeamOverlay renders the install of another team as
// docs/operations.md shows it: an overlay of config/namespaced that sets
// `namespace: ns` and pins the image, nothing else.
func renderTeamOverlay(t *testing.T, ns string) []*unstructured.Unstructured {
	t.Helper()
	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(repoRoot(t), "config", "namespaced"))
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
resources:
- %s
images:
- name: scriptlock/customer-operator
  newName: %s
  newTag: %s
`, ns, filepath.ToSlash(base), teamImageName, teamImageTag)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	return renderPath(t, dir, "an overlay of config/namespaced with namespace: "+ns)
}

// TestTeamOverlayMovesTheWholeInstall: a team's overlay that sets its
// namespace moves every object, the RoleBindings' subjects included, still
// carries nothing cluster-scoped, and runs the image it pins.
func TestTeamOverlayMovesTheWholeInstall(t *testing.T) {
	objs := renderTeamOverlay(t, "team-a")
	checkNamespacedInstall(t, objs, "team-a")
	for _, o := range byKind(objs, "Deployment") {
		if c := convert[appsv1.Deployment](t, o).Spec.Template.Spec.Containers; len(c) == 0 || c[0].Image != teamImage {
			t.Errorf("the team's overlay should run %s", teamImage)
		}
	}
}

// sharedClusterParts are what config/cluster must hold, no more, no less
// (sorted).
var sharedClusterParts = []string{
	"admissionregistration.k8s.io/ValidatingAdmissionPolicy scriptlock-customer-deletion-protection",
	"admissionregistration.k8s.io/ValidatingAdmissionPolicyBinding scriptlock-customer-deletion-protection",
	"apiextensions.k8s.io/CustomResourceDefinition customers.licensing.scriptlock.com",
	"rbac.authorization.k8s.io/ClusterRole scriptlock-customer-editor",
	"rbac.authorization.k8s.io/ClusterRole scriptlock-customer-viewer",
	"rbac.authorization.k8s.io/ClusterRole scriptlock-metrics-auth-role",
	"rbac.authorization.k8s.io/ClusterRole scriptlock-metrics-reader",
}

// TestClusterOverlayHoldsExactlyTheSharedParts: config/cluster is the CRD
// (as generated in config/crd/bases), the deletion-protection policy and the
// binding that enforces it, and the ClusterRoles every install shares
// (metrics, roles for people), which grant nothing until someone binds
// them; nothing namespaced, no workload, no binding of any role.
func TestClusterOverlayHoldsExactlyTheSharedParts(t *testing.T) {
	objs := render(t, "cluster")
	var got []string
	for _, o := range objs {
		got = append(got, id(o))
		if isNamespaced(t, o) || o.GetNamespace() != "" {
			t.Errorf("%s is namespaced: config/cluster holds cluster-scoped objects only", id(o))
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, sharedClusterParts) {
		t.Errorf("config/cluster holds\n  %s\nwant exactly\n  %s", strings.Join(got, "\n  "), strings.Join(sharedClusterParts, "\n  "))
	}

	if p, b := byKind(objs, "ValidatingAdmissionPolicy"), byKind(objs, "ValidatingAdmissionPolicyBinding"); len(p) == 1 && len(b) == 1 {
		ref, _, _ := unstructured.NestedString(b[0].Object, "spec", "policyName")
		actions, _, _ := unstructured.NestedStringSlice(b[0].Object, "spec", "validationActions")
		if ref != p[0].GetName() || !slices.Equal(actions, []string{"Deny"}) {
			t.Errorf("the binding should enforce (Deny) the policy %s, it binds %q with %v", p[0].GetName(), ref, actions)
		}
	}
	if crds := byKind(objs, "CustomResourceDefinition"); len(crds) == 1 {
		generated := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(readFile(t, "config/crd/bases/licensing.scriptlock.com_customers.yaml"), generated); err != nil {
			t.Fatal(err)
		}
		if got := convert[apiextensionsv1.CustomResourceDefinition](t, crds[0]); !reflect.DeepEqual(got.Spec, generated.Spec) {
			t.Error("config/cluster's CRD differs from the generated config/crd/bases")
		}
	}
}

// inDefaultOnly are the cluster-scoped objects of config/default that the
// split install leaves out on purpose: the all-in-one operator's namespace
// (a team creates its own), its cluster-wide RBAC (a Role and a
// RoleBinding in namespaced mode) and the binding that lets its
// ServiceAccount check scrapers' tokens (a cluster admin binds each team's
// ServiceAccount instead, docs/operations.md).
var inDefaultOnly = []string{
	"/Namespace " + operatorNamespace,
	"rbac.authorization.k8s.io/ClusterRole scriptlock-manager-role",
	"rbac.authorization.k8s.io/ClusterRoleBinding scriptlock-manager-rolebinding",
	"rbac.authorization.k8s.io/ClusterRoleBinding scriptlock-metrics-auth-rolebinding",
}

// TestSplitInstallIsConfigDefaultSplitInTwo: config/cluster plus
// config/namespaced install what config/default does, split where it must
// be. The shared objects are the very same objects (names, labels,
// content), so that moving a cluster from one install to the other leaves
// no second policy behind; a cluster-scoped object added to config/default
// fails here until it is placed in config/cluster (or listed in
// inDefaultOnly); and namespaced mode loses nothing of the operator
// (Service, NetworkPolicy, ...), only trading the ClusterRole(Binding) for
// a Role(Binding).
func TestSplitInstallIsConfigDefaultSplitInTwo(t *testing.T) {
	def, cluster, namespaced := render(t, "default"), render(t, "cluster"), render(t, "namespaced")
	defIdx, clusterIdx, nsIdx := index(def), index(cluster), index(namespaced)

	for _, o := range cluster {
		switch d, ok := defIdx[id(o)]; {
		case !ok:
			t.Errorf("config/cluster's %s is not in config/default", id(o))
		case !reflect.DeepEqual(o.Object, d.Object):
			t.Errorf("config/cluster's %s differs from config/default's: both must install the same object", id(o))
		}
	}
	for _, d := range def {
		switch _, inNamespaced := nsIdx[id(d)]; {
		case isNamespaced(t, d) && !inNamespaced:
			t.Errorf("config/default's %s is missing from config/namespaced", id(d))
		case !isNamespaced(t, d) && clusterIdx[id(d)] == nil && !slices.Contains(inDefaultOnly, id(d)):
			t.Errorf("config/default's cluster-scoped %s is not in config/cluster: a namespaced install cannot carry it, so put it in config/cluster (or, if only the all-in-one install needs it, in inDefaultOnly)", id(d))
		}
	}
	replacements := []string{
		"rbac.authorization.k8s.io/Role " + operatorNamespace + "/scriptlock-manager-role",
		"rbac.authorization.k8s.io/RoleBinding " + operatorNamespace + "/scriptlock-manager-rolebinding",
	}
	for _, o := range namespaced {
		if defIdx[id(o)] == nil && !slices.Contains(replacements, id(o)) {
			t.Errorf("config/namespaced's %s is in neither config/default nor the Role(Binding) that replace its ClusterRole(Binding)", id(o))
		}
	}
}

// TestSplitInstallOnAPIServer installs the way docs/operations.md says, on a
// real kube-apiserver: config/cluster first (the cluster admin, once), then
// two teams, each into a namespace created beforehand (config/namespaced in
// scriptlock-system, an overlay of it in team-a), with a Customer each. The
// server's discovery confirms the scope of every kind (and namespacedKinds).
// Then team-a uninstalls, deleting every object its overlay renders as
// `kubectl delete -k` does: the CRD, the policy, every Customer (team-a's
// own included) and the other team's operator must all still be there, and
// deletion protection still enforced.
func TestSplitInstallOnAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := startAPIServer(t)
	cluster := render(t, "cluster")
	teams := []string{operatorNamespace, "team-a"}
	installs := map[string][]*unstructured.Unstructured{
		operatorNamespace: render(t, "namespaced"),
		"team-a":          renderTeamOverlay(t, "team-a"),
	}

	// The cluster admin, once.
	for _, o := range cluster {
		if err := apply(ctx, c, o, false); err != nil {
			t.Fatalf("applying config/cluster's %s: %v", id(o), err)
		}
	}
	waitEstablished(ctx, t, c, "customers.licensing.scriptlock.com")

	t.Run("scopes from discovery", func(t *testing.T) {
		check := func(o *unstructured.Unstructured, want *bool) {
			t.Helper()
			got, err := c.IsObjectNamespaced(o)
			if err != nil {
				t.Errorf("%s: the API server does not know the kind: %v", id(o), err)
				return
			}
			if got != isNamespaced(t, o) {
				t.Errorf("%s: the API server says namespaced=%v, namespacedKinds says %v", id(o), got, !got)
			}
			if want != nil && got != *want {
				t.Errorf("%s: namespaced=%v, want %v", id(o), got, *want)
			}
		}
		no, yes := false, true
		for _, o := range cluster {
			check(o, &no)
		}
		for _, team := range teams {
			for _, o := range installs[team] {
				check(o, &yes)
			}
		}
		for _, o := range render(t, "default") {
			check(o, nil)
		}
	})

	sample := &v1alpha1.Customer{}
	if err := yaml.UnmarshalStrict(readFile(t, "config/samples/licensing_v1alpha1_customer.yaml"), sample); err != nil {
		t.Fatal(err)
	}
	customers := map[string]*v1alpha1.Customer{}
	for _, team := range teams {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: team}}, fieldOwner); err != nil {
			t.Fatalf("creating namespace %s: %v", team, err)
		}
		for _, o := range installs[team] {
			if err := apply(ctx, c, o, false); err != nil {
				t.Fatalf("installing %s: %v", id(o), err)
			}
		}
		cu := sample.DeepCopy()
		cu.Namespace = team
		cu.Annotations = map[string]string{v1alpha1.DeletionProtectionAnnotation: "true"}
		if err := c.Create(ctx, cu, fieldOwner); err != nil {
			t.Fatalf("creating a Customer in %s: %v", team, err)
		}
		customers[team] = cu
	}

	// team-a uninstalls: `kubectl delete -k` of its overlay.
	for _, o := range installs["team-a"] {
		if err := c.Delete(ctx, o.DeepCopy()); client.IgnoreNotFound(err) != nil {
			t.Fatalf("deleting %s: %v", id(o), err)
		}
	}

	stillThere := func(o client.Object, what string) {
		t.Helper()
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			t.Errorf("after team-a's uninstall, %s is gone: %v", what, err)
		} else if o.GetDeletionTimestamp() != nil {
			t.Errorf("after team-a's uninstall, %s is being deleted", what)
		}
	}
	for _, o := range cluster {
		stillThere(o.DeepCopy(), "config/cluster's "+id(o))
	}
	for _, o := range installs[operatorNamespace] {
		stillThere(o.DeepCopy(), "the other team's "+id(o))
	}
	for team, cu := range customers {
		stillThere(cu.DeepCopy(), "the Customer of "+team)
	}
	for _, o := range installs["team-a"] {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o.DeepCopy()); client.IgnoreNotFound(err) != nil || err == nil {
			t.Errorf("team-a's %s should be gone, got %v", id(o), err)
		}
	}

	// The policy still refuses to delete a protected Customer (it is
	// enforced a moment after its creation: probe with dry runs).
	enforced, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	defer cancelWait()
	for _, cu := range customers {
		waitFor(enforced, t, "deletion protection of "+cu.Namespace+"/"+cu.Name, func() (bool, error) {
			return c.Delete(ctx, cu.DeepCopy(), client.DryRunAll) != nil, nil
		})
	}
}

// waitEstablished waits for the CRD name to be established.
func waitEstablished(ctx context.Context, t *testing.T, c client.Client, name string) {
	t.Helper()
	waitFor(ctx, t, "the CRD "+name+" to be established", func() (bool, error) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}
