package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// allowedManagerRules is everything the manager may do, by "group/resource":
// its own API, events, and a plain get of the Secret a Customer names.
// Secrets are never listed or watched: that would let the operator read
// every Secret of the cluster.
var allowedManagerRules = map[string][]string{
	"licensing.scriptlock.com/customers":            {"get", "list", "watch", "patch", "update"},
	"licensing.scriptlock.com/customers/status":     {"get", "patch", "update"},
	"licensing.scriptlock.com/customers/finalizers": {"update"},
	"/secrets":             {"get"},
	"/events":              {"create", "patch"},
	"events.k8s.io/events": {"create", "patch"},
}

// excessRules returns what rules grant beyond allowed, one line each.
func excessRules(rules []rbacv1.PolicyRule, allowed map[string][]string) []string {
	var bad []string
	for i, r := range rules {
		if len(r.NonResourceURLs) > 0 {
			bad = append(bad, fmt.Sprintf("rule %d grants non-resource URLs %v", i, r.NonResourceURLs))
		}
		if len(r.ResourceNames) > 0 {
			// Not a widening, but nothing in the markers asks for it.
			bad = append(bad, fmt.Sprintf("rule %d names resources %v", i, r.ResourceNames))
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					key := g + "/" + res
					switch {
					case g == "*" || res == "*" || v == "*":
						bad = append(bad, fmt.Sprintf("rule %d grants a wildcard: %s %s", i, v, key))
					case res == "secrets" && (v == "list" || v == "watch"):
						bad = append(bad, fmt.Sprintf("rule %d grants %s on secrets: the operator must only get the one Secret a Customer names", i, v))
					case !slices.Contains(allowed[key], v):
						bad = append(bad, fmt.Sprintf("rule %d grants %s on %s, which the operator does not need", i, v, key))
					}
				}
			}
		}
	}
	return bad
}

// decodeAll decodes every YAML document of b into a new T.
func decodeAll[T any](t *testing.T, b []byte) []*T {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*T
	for {
		v := new(T)
		err := dec.Decode(v)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
}

func TestGeneratedManagerRoleIsLeastPrivilege(t *testing.T) {
	roles := decodeAll[rbacv1.ClusterRole](t, readFile(t, "config/rbac/role.yaml"))
	if len(roles) != 1 || roles[0].Kind != "ClusterRole" || roles[0].Name != "manager-role" {
		t.Fatalf("config/rbac/role.yaml should hold the one ClusterRole manager-role, got %d objects", len(roles))
	}
	if bad := excessRules(roles[0].Rules, allowedManagerRules); len(bad) > 0 {
		t.Errorf("config/rbac/role.yaml grants more than the operator needs (fix the +kubebuilder:rbac markers in controllers/, then `make manifests`):\n  %s", strings.Join(bad, "\n  "))
	}
	// The operator cannot work without these: a missing one shows up as a
	// Forbidden error only in a real cluster.
	for key, verbs := range allowedManagerRules {
		for _, v := range verbs {
			if !grants(roles[0].Rules, key, v) {
				t.Errorf("config/rbac/role.yaml does not grant %s on %s, which the operator needs", v, key)
			}
		}
	}
}

func grants(rules []rbacv1.PolicyRule, key, verb string) bool {
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				if g+"/"+res == key && slices.Contains(r.Verbs, verb) {
					return true
				}
			}
		}
	}
	return false
}

func TestExcessRulesCatchesWhatItMust(t *testing.T) {
	for name, rule := range map[string]rbacv1.PolicyRule{
		"list on secrets":        {APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}},
		"watch on secrets":       {APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"watch"}},
		"every verb on secrets":  {APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"*"}},
		"every resource":         {APIGroups: []string{""}, Resources: []string{"*"}, Verbs: []string{"get"}},
		"every group":            {APIGroups: []string{"*"}, Resources: []string{"customers"}, Verbs: []string{"get"}},
		"an unexpected resource": {APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}},
		"delete on customers":    {APIGroups: []string{"licensing.scriptlock.com"}, Resources: []string{"customers"}, Verbs: []string{"delete"}},
		"a non-resource URL":     {NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
	} {
		if len(excessRules([]rbacv1.PolicyRule{rule}, allowedManagerRules)) == 0 {
			t.Errorf("%s: not reported", name)
		}
	}
}

// TestRenderedRBACStaysScoped checks the RBAC users actually install: in
// config/default only the generated ClusterRole is cluster-wide, and the
// leader-election Role holds leases and events only; config/namespaced has
// nothing cluster-wide at all.
func TestRenderedRBACStaysScoped(t *testing.T) {
	toRules := func(t *testing.T, u *unstructured.Unstructured) []rbacv1.PolicyRule {
		t.Helper()
		var r rbacv1.Role
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r); err != nil {
			t.Fatal(err)
		}
		return r.Rules
	}
	leaderElection := map[string][]string{
		"coordination.k8s.io/leases": {"get", "list", "watch", "create", "update", "patch", "delete"},
		"/events":                    {"create", "patch"},
		"events.k8s.io/events":       {"create", "patch"},
	}

	def := render(t, "default")
	if crs := byKind(def, "ClusterRole"); len(crs) != 1 || crs[0].GetName() != "scriptlock-manager-role" {
		t.Errorf("config/default should hold only the ClusterRole scriptlock-manager-role, got %d", len(crs))
	}
	for _, b := range byKind(def, "ClusterRoleBinding") {
		if ref, _, _ := unstructured.NestedString(b.Object, "roleRef", "name"); ref != "scriptlock-manager-role" {
			t.Errorf("ClusterRoleBinding %s binds %q", b.GetName(), ref)
		}
	}
	for _, r := range byKind(def, "Role") {
		if bad := excessRules(toRules(t, r), leaderElection); len(bad) > 0 {
			t.Errorf("Role %s: %s", r.GetName(), strings.Join(bad, "; "))
		}
	}

	ns := render(t, "namespaced")
	if n := len(byKind(ns, "ClusterRole")) + len(byKind(ns, "ClusterRoleBinding")); n != 0 {
		t.Errorf("config/namespaced must grant nothing cluster-wide, got %d ClusterRole(Binding)s", n)
	}
	roles := map[string][]rbacv1.PolicyRule{}
	for _, r := range byKind(ns, "Role") {
		if r.GetNamespace() != "scriptlock-system" {
			t.Errorf("Role %s is in namespace %q", r.GetName(), r.GetNamespace())
		}
		roles[r.GetName()] = toRules(t, r)
	}
	manager := decodeAll[rbacv1.ClusterRole](t, readFile(t, "config/rbac/role.yaml"))[0]
	if got := roles["scriptlock-manager-role"]; !slices.EqualFunc(got, manager.Rules, func(a, b rbacv1.PolicyRule) bool {
		return fmt.Sprint(a) == fmt.Sprint(b)
	}) {
		t.Errorf("config/namespaced's Role scriptlock-manager-role should carry the generated rules, got %v", got)
	}
	for _, b := range byKind(ns, "RoleBinding") {
		if kind, _, _ := unstructured.NestedString(b.Object, "roleRef", "kind"); kind != "Role" {
			t.Errorf("RoleBinding %s refers to a %s", b.GetName(), kind)
		}
	}
	dep := byKind(ns, "Deployment")
	if len(dep) != 1 || !strings.Contains(fmt.Sprint(dep[0].Object), "--watch-namespace=$(POD_NAMESPACE)") {
		t.Error("config/namespaced's manager should run with --watch-namespace=$(POD_NAMESPACE)")
	}
}
