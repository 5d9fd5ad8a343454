package manifests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// allowedManagerRules is everything the manager may do, by "group/resource":
// its own API, events, a plain get of the Secret a Customer names, and a
// get of its own CRD (the start-up check of its schema), and a get of a
// namespace (the revocation brake's approve-deletion annotation on a
// Customer's namespace). Secrets are never
// listed or watched: that would let the operator read every Secret of the
// cluster.
var allowedManagerRules = map[string][]string{
	"licensing.scriptlock.com/customers":            {"get", "list", "watch", "patch", "update"},
	"licensing.scriptlock.com/customers/status":     {"get", "patch", "update"},
	"licensing.scriptlock.com/customers/finalizers": {"update"},
	"/secrets":             {"get"},
	"/namespaces":          {"get"},
	"/events":              {"create", "patch"},
	"events.k8s.io/events": {"create", "patch"},
	"apiextensions.k8s.io/customresourcedefinitions": {"get"},
}

// namedOnly are the resources a rule may grant only by name: the manager
// reads its own CRD and no other.
var namedOnly = map[string][]string{
	"apiextensions.k8s.io/customresourcedefinitions": {"customers.licensing.scriptlock.com"},
}

// excessRules returns what rules grant beyond allowed, one line each.
func excessRules(rules []rbacv1.PolicyRule, allowed map[string][]string) []string {
	var bad []string
	for i, r := range rules {
		if len(r.NonResourceURLs) > 0 {
			bad = append(bad, fmt.Sprintf("rule %d grants non-resource URLs %v", i, r.NonResourceURLs))
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				key := g + "/" + res
				names, named := namedOnly[key]
				switch {
				case named && !slices.Equal(r.ResourceNames, names):
					bad = append(bad, fmt.Sprintf("rule %d grants %s by the names %v, want exactly %v", i, key, r.ResourceNames, names))
				case !named && len(r.ResourceNames) > 0:
					// Not a widening, but nothing in the markers asks for it.
					bad = append(bad, fmt.Sprintf("rule %d names resources %v", i, r.ResourceNames))
				}
				for _, v := range r.Verbs {
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
		"every CRD":              {APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get"}},
		"another CRD": {APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get"},
			ResourceNames: []string{"customers.licensing.scriptlock.com", "secrets.example.com"}},
		"list on its CRD": {APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"list"},
			ResourceNames: []string{"customers.licensing.scriptlock.com"}},
	} {
		if len(excessRules([]rbacv1.PolicyRule{rule}, allowedManagerRules)) == 0 {
			t.Errorf("%s: not reported", name)
		}
	}
}

// metricsAuthRules are what the manager needs to guard its metrics
// endpoint: it asks the API server who a scraper is and whether it may GET
// /metrics.
var metricsAuthRules = map[string][]string{
	"authentication.k8s.io/tokenreviews":        {"create"},
	"authorization.k8s.io/subjectaccessreviews": {"create"},
}

// viewerRules and editorRules are what the roles for people grant: read
// Customers; read and write them. Nothing else, Secrets least of all.
var (
	viewerRules = map[string][]string{
		"licensing.scriptlock.com/customers":        {"get", "list", "watch"},
		"licensing.scriptlock.com/customers/status": {"get"},
	}
	editorRules = map[string][]string{
		"licensing.scriptlock.com/customers":        {"create", "delete", "get", "list", "patch", "update", "watch"},
		"licensing.scriptlock.com/customers/status": {"get"},
	}
)

// renderedClusterRoles are the ClusterRoles of config/default, each with
// exactly what it grants (metrics-reader, which grants a non-resource URL,
// is checked on its own).
var renderedClusterRoles = map[string]map[string][]string{
	"scriptlock-manager-role":      allowedManagerRules,
	"scriptlock-metrics-auth-role": metricsAuthRules,
	"scriptlock-metrics-reader":    nil,
	"scriptlock-customer-viewer":   viewerRules,
	"scriptlock-customer-editor":   editorRules,
}

// checkExactRules fails unless rules grant all of want and nothing more.
func checkExactRules(t *testing.T, what string, rules []rbacv1.PolicyRule, want map[string][]string) {
	t.Helper()
	if bad := excessRules(rules, want); len(bad) > 0 {
		t.Errorf("%s grants too much:\n  %s", what, strings.Join(bad, "\n  "))
	}
	for key, verbs := range want {
		for _, v := range verbs {
			if !grants(rules, key, v) {
				t.Errorf("%s does not grant %s on %s", what, v, key)
			}
		}
	}
}

// TestRenderedRBACStaysScoped checks the RBAC users actually install: in
// config/default the ClusterRoles grant exactly what they are for (the
// generated manager role, the metrics authentication and reading, the
// roles for people), only the manager's ServiceAccount is bound
// cluster-wide (to the manager role and the metrics authentication), and
// the leader-election Role holds leases and events only; config/namespaced
// has nothing cluster-wide at all.
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
	var names []string
	for _, cr := range byKind(def, "ClusterRole") {
		names = append(names, cr.GetName())
		want, known := renderedClusterRoles[cr.GetName()]
		switch rules := toRules(t, cr); {
		case !known:
			t.Errorf("config/default holds the unexpected ClusterRole %s", cr.GetName())
		case cr.GetName() == "scriptlock-metrics-reader":
			if len(rules) != 1 || len(rules[0].APIGroups)+len(rules[0].Resources)+len(rules[0].ResourceNames) != 0 ||
				!slices.Equal(rules[0].NonResourceURLs, []string{"/metrics"}) || !slices.Equal(rules[0].Verbs, []string{"get"}) {
				t.Errorf("ClusterRole scriptlock-metrics-reader should grant get on /metrics and nothing else: %v", rules)
			}
		default:
			checkExactRules(t, "ClusterRole "+cr.GetName(), rules, want)
		}
	}
	if len(names) != len(renderedClusterRoles) {
		t.Errorf("config/default holds the ClusterRoles %v, want those of renderedClusterRoles", names)
	}
	wantBindings := map[string]string{
		"scriptlock-manager-rolebinding":      "scriptlock-manager-role",
		"scriptlock-metrics-auth-rolebinding": "scriptlock-metrics-auth-role",
	}
	bindings := byKind(def, "ClusterRoleBinding")
	if len(bindings) != len(wantBindings) {
		t.Errorf("config/default should hold the ClusterRoleBindings %v, got %d", wantBindings, len(bindings))
	}
	for _, o := range bindings {
		b := convert[rbacv1.ClusterRoleBinding](t, o)
		if want := wantBindings[b.Name]; b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != want || want == "" {
			t.Errorf("ClusterRoleBinding %s binds %s %q", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
		}
		if len(b.Subjects) != 1 || b.Subjects[0].Kind != "ServiceAccount" ||
			b.Subjects[0].Namespace != operatorNamespace || b.Subjects[0].Name != "scriptlock-controller-manager" {
			t.Errorf("ClusterRoleBinding %s should bind the manager's ServiceAccount only: %v", b.Name, b.Subjects)
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

// aggregateLabel is the label prefix by which the built-in roles (view,
// edit, admin) pull in other ClusterRoles' rules.
const aggregateLabel = "rbac.authorization.k8s.io/aggregate-to-"

// TestRolesForPeopleAreAggregatedOnlyWhereSafe: customer-viewer carries
// the label that aggregates it into the built-in `view` role, and no
// other; customer-editor carries none, so that no built-in role (`edit`,
// `admin`) lets anyone create Customers, which spends the namespace's
// ScriptLock key. The rules themselves are checked by
// TestRenderedRBACStaysScoped.
func TestRolesForPeopleAreAggregatedOnlyWhereSafe(t *testing.T) {
	idx := index(render(t, "default"))
	aggregatedTo := func(name string) []string {
		o, ok := idx["rbac.authorization.k8s.io/ClusterRole "+name]
		if !ok {
			t.Fatalf("config/default holds no ClusterRole %s", name)
		}
		var to []string
		for k, v := range o.GetLabels() {
			if role, ok := strings.CutPrefix(k, aggregateLabel); ok && v == "true" {
				to = append(to, role)
			}
		}
		return to
	}
	if got := aggregatedTo("scriptlock-customer-viewer"); !slices.Equal(got, []string{"view"}) {
		t.Errorf("customer-viewer should be aggregated to view only, it is to %v", got)
	}
	if got := aggregatedTo("scriptlock-customer-editor"); len(got) != 0 {
		t.Errorf("customer-editor must not be aggregated to any built-in role (creating a Customer spends the namespace's ScriptLock key), it is to %v", got)
	}
}

// TestRolesForPeopleOnAPIServer binds the rendered roles as
// docs/operations.md says, on a real kube-apiserver (RBAC authorizer):
// a person bound to customer-viewer in team-a reads the Customers there
// and may not write them; an onboarding pipeline's ServiceAccount bound to
// customer-editor creates, changes and deletes them; neither reads a
// Secret, nor anything in another namespace. The API server's own built-in
// roles show the aggregation: their aggregation rules select the viewer
// for `view` and the editor for neither `edit` nor `admin` (nor `view`).
func TestRolesForPeopleOnAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, c := startControlPlane(t)
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	idx := index(render(t, "default"))
	for _, key := range []string{
		"apiextensions.k8s.io/CustomResourceDefinition customers.licensing.scriptlock.com",
		"rbac.authorization.k8s.io/ClusterRole scriptlock-customer-viewer",
		"rbac.authorization.k8s.io/ClusterRole scriptlock-customer-editor",
	} {
		if err := apply(ctx, c, idx[key], false); err != nil {
			t.Fatalf("applying %s: %v", key, err)
		}
	}
	waitEstablished(ctx, t, c, "customers.licensing.scriptlock.com")

	t.Run("aggregation by the built-in roles", func(t *testing.T) {
		selects := func(builtin, name string) bool {
			t.Helper()
			role := &rbacv1.ClusterRole{}
			if err := c.Get(ctx, client.ObjectKey{Name: builtin}, role); err != nil {
				t.Fatalf("the built-in ClusterRole %s: %v", builtin, err)
			}
			if role.AggregationRule == nil || len(role.AggregationRule.ClusterRoleSelectors) == 0 {
				t.Fatalf("the built-in ClusterRole %s aggregates nothing", builtin)
			}
			l := labels.Set(idx["rbac.authorization.k8s.io/ClusterRole "+name].GetLabels())
			for _, ls := range role.AggregationRule.ClusterRoleSelectors {
				sel, err := metav1.LabelSelectorAsSelector(&ls)
				if err != nil {
					t.Fatal(err)
				}
				if sel.Matches(l) {
					return true
				}
			}
			return false
		}
		if !selects("view", "scriptlock-customer-viewer") {
			t.Error("the built-in view role does not aggregate customer-viewer")
		}
		for _, builtin := range []string{"view", "edit", "admin"} {
			if selects(builtin, "scriptlock-customer-editor") {
				t.Errorf("the built-in %s role aggregates customer-editor: whoever has %s in a namespace could spend its ScriptLock key", builtin, builtin)
			}
		}
	})

	// Two namespaces, a Customer and a Secret in each.
	sample := &v1alpha1.Customer{}
	if err := yaml.UnmarshalStrict(readFile(t, "config/samples/licensing_v1alpha1_customer.yaml"), sample); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"team-a", "team-b"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, fieldOwner); err != nil {
			t.Fatal(err)
		}
		cu := sample.DeepCopy()
		cu.Namespace = ns
		if err := c.Create(ctx, cu, fieldOwner); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scriptlock-credentials"},
			StringData: map[string]string{"apiKey": "not-a-real-key"}}, fieldOwner); err != nil {
			t.Fatal(err)
		}
	}
	// The bindings of docs/operations.md: a person views team-a, the
	// onboarding pipeline's ServiceAccount edits team-a.
	for _, rb := range []*rbacv1.RoleBinding{
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "alice-customer-viewer"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "scriptlock-customer-viewer"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "alice"}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "onboarding-customer-editor"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "scriptlock-customer-editor"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "team-a", Name: "onboarding"}},
		},
	} {
		if err := c.Create(ctx, rb, fieldOwner); err != nil {
			t.Fatal(err)
		}
	}

	newClient := func(cfg *rest.Config) client.Client {
		t.Helper()
		cl, err := client.New(cfg, client.Options{Scheme: c.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	aliceCfg := rest.CopyConfig(admin)
	aliceCfg.Impersonate = rest.ImpersonationConfig{UserName: "alice", Groups: []string{"system:authenticated"}}
	// The pipeline connects with its ServiceAccount's own token.
	pipelineCfg := &rest.Config{
		Host:            admin.Host,
		BearerToken:     serviceAccountToken(ctx, t, c, cs, "team-a", "onboarding"),
		TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData},
	}
	people := map[string]client.Client{"viewer": newClient(aliceCfg), "editor": newClient(pipelineCfg)}

	// allowed runs op as who and checks that the API server allows it or
	// refuses it (403) as want says.
	allowed := func(who, what string, want bool, op func(client.Client) error) {
		t.Helper()
		err := op(people[who])
		switch {
		case want && err != nil:
			t.Errorf("the %s may %s, but: %v", who, what, err)
		case !want && err == nil:
			t.Errorf("the %s may not %s, yet it succeeded", who, what)
		case !want && !apierrors.IsForbidden(err):
			t.Errorf("the %s may not %s: want 403 Forbidden, got %v", who, what, err)
		}
	}
	key := func(ns string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: sample.Name} }
	newCustomer := func(name string) *v1alpha1.Customer {
		cu := sample.DeepCopy()
		cu.Namespace, cu.Name, cu.Spec.Email = "team-a", name, name+"@example.com"
		return cu
	}
	relabel := func(cl client.Client) error {
		cu := &v1alpha1.Customer{}
		if err := cl.Get(ctx, key("team-a"), cu); err != nil {
			return err
		}
		return cl.Patch(ctx, cu, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"reviewed":"yes"}}}`)))
	}

	for _, who := range []string{"viewer", "editor"} {
		allowed(who, "get a Customer of team-a", true, func(cl client.Client) error {
			return cl.Get(ctx, key("team-a"), &v1alpha1.Customer{})
		})
		allowed(who, "list the Customers of team-a", true, func(cl client.Client) error {
			return cl.List(ctx, &v1alpha1.CustomerList{}, client.InNamespace("team-a"))
		})
		allowed(who, "get a Secret of team-a", false, func(cl client.Client) error {
			return cl.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "scriptlock-credentials"}, &corev1.Secret{})
		})
		allowed(who, "list the Secrets of team-a", false, func(cl client.Client) error {
			return cl.List(ctx, &corev1.SecretList{}, client.InNamespace("team-a"))
		})
		allowed(who, "get a Customer of team-b", false, func(cl client.Client) error {
			return cl.Get(ctx, key("team-b"), &v1alpha1.Customer{})
		})
		allowed(who, "list the Customers of every namespace", false, func(cl client.Client) error {
			return cl.List(ctx, &v1alpha1.CustomerList{})
		})
		allowed(who, "create a Customer in team-b", false, func(cl client.Client) error {
			cu := newCustomer("by-the-" + who)
			cu.Namespace = "team-b"
			return cl.Create(ctx, cu)
		})
	}

	allowed("viewer", "create a Customer", false, func(cl client.Client) error {
		return cl.Create(ctx, newCustomer("by-the-viewer"))
	})
	allowed("viewer", "change a Customer", false, relabel)
	allowed("viewer", "delete a Customer", false, func(cl client.Client) error {
		return cl.Delete(ctx, &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: sample.Name}})
	})

	allowed("editor", "create a Customer", true, func(cl client.Client) error {
		return cl.Create(ctx, newCustomer("onboarded"))
	})
	allowed("editor", "change a Customer", true, relabel)
	allowed("editor", "update a Customer", true, func(cl client.Client) error {
		cu := &v1alpha1.Customer{}
		if err := cl.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "onboarded"}, cu); err != nil {
			return err
		}
		cu.Spec.Company = "Renamed Inc."
		return cl.Update(ctx, cu)
	})
	allowed("editor", "delete a Customer", true, func(cl client.Client) error {
		return cl.Delete(ctx, &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "onboarded"}})
	})
}
