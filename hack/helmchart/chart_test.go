package main

// The chart, generated afresh from config/ and rendered with Helm's own
// library (no helm binary), against what kustomize renders from the same
// sources.

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// operatorNamespace is the namespace config/default installs into; the
// releases of these tests are named release, so that their names are
// config/default's.
const (
	operatorNamespace = "scriptlock-system"
	release           = "scriptlock"
	// appVersion is what generateChart gives the chart: the default tag.
	appVersion = "v0.1.0"
)

// clusterScoped classifies every kind the chart renders: true for
// cluster-scoped. A kind missing here fails the tests instead of passing
// unchecked (test/manifests checks the same classification against a real
// kube-apiserver).
var clusterScoped = map[string]bool{
	"/Namespace": true,
	"apiextensions.k8s.io/CustomResourceDefinition":                 true,
	"admissionregistration.k8s.io/ValidatingAdmissionPolicy":        true,
	"admissionregistration.k8s.io/ValidatingAdmissionPolicyBinding": true,
	"rbac.authorization.k8s.io/ClusterRole":                         true,
	"rbac.authorization.k8s.io/ClusterRoleBinding":                  true,
	"/ServiceAccount":                       false,
	"/Service":                              false,
	"apps/Deployment":                       false,
	"rbac.authorization.k8s.io/Role":        false,
	"rbac.authorization.k8s.io/RoleBinding": false,
	"networking.k8s.io/NetworkPolicy":       false,
	"monitoring.coreos.com/ServiceMonitor":  false,
	"monitoring.coreos.com/PrometheusRule":  false,
}

func isClusterScoped(t *testing.T, o object) bool {
	t.Helper()
	scoped, known := clusterScoped[groupKind(o)]
	if !known {
		t.Fatalf("%s: the kind %s is not in clusterScoped: add it there", id(o), groupKind(o))
	}
	return scoped
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// generateChart runs the generator as `make helm-chart` does, into a
// temporary directory, and returns that directory.
func generateChart(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "chart")
	if err := run(filepath.Join(repoRoot(t), "config"), dir, "0.1.0", appVersion); err != nil {
		t.Fatalf("generating the chart: %v", err)
	}
	return dir
}

// kustomize renders config/<dir> as `kustomize build` does.
func kustomize(t *testing.T, dir string) []object {
	t.Helper()
	objs, err := build(filepath.Join(repoRoot(t), "config", dir))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// helmTemplate renders the chart in dir as `helm install` would, with vals
// over values.yaml (checked against values.schema.json), and returns its
// objects; not those of `helm test` (templates/tests/, see helmTests).
func helmTemplate(t *testing.T, dir, name, namespace string, vals map[string]any) []object {
	t.Helper()
	objs, err := tryHelmTemplate(dir, name, namespace, vals)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func tryHelmTemplate(dir, name, namespace string, vals map[string]any) ([]object, error) {
	return render(dir, name, namespace, vals, func(path string) bool { return !strings.Contains(path, "/templates/tests/") })
}

// helmTests renders the objects `helm test` creates.
func helmTests(t *testing.T, dir, name, namespace string, vals map[string]any) []object {
	t.Helper()
	objs, err := render(dir, name, namespace, vals, func(path string) bool { return strings.Contains(path, "/templates/tests/") })
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// render renders the chart's templates whose paths keep says.
func render(dir, name, namespace string, vals map[string]any, keep func(path string) bool) ([]object, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartutil.KubeVersion{Version: "v1.37.0", Major: "1", Minor: "37"}
	values, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: name, Namespace: namespace, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	// Strict: a value a template names that does not exist is an error.
	files, err := engine.Engine{Strict: true}.Render(ch, values)
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var objs []object
	for _, p := range paths {
		if !strings.HasSuffix(p, ".yaml") || !keep(p) {
			continue
		}
		docs := releaseutil.SplitManifests(files[p])
		keys := make([]string, 0, len(docs))
		for k := range docs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			var o object
			if err := yaml.UnmarshalStrict([]byte(docs[k]), &o); err != nil {
				return nil, fmt.Errorf("%s: %w\n%s", p, err, docs[k])
			}
			if o != nil {
				objs = append(objs, o)
			}
		}
	}
	return objs, nil
}

func values(yamlText string) map[string]any {
	var v map[string]any
	if err := yaml.Unmarshal([]byte(yamlText), &v); err != nil {
		panic(err)
	}
	return v
}

// unhelm takes off what the chart adds to kustomize's objects, having
// checked it is there: the labels helm.sh/chart and
// app.kubernetes.io/instance (the latter in selectors too),
// app.kubernetes.io/managed-by: Helm for kustomize's "kustomize", the
// CRD's helm.sh/resource-policy: keep, and the manager's image pinned to
// appVersion with pull policy IfNotPresent for config/manager's :latest
// and Always.
func unhelm(t *testing.T, objs []object, name string) []object {
	t.Helper()
	var out []object
	for _, o := range objs {
		o = deepCopy(o)
		l := nested(o, false, "metadata", "labels")
		if l[chartLabel] == nil || l[instanceLabel] != name || l[managedByLabel] != "Helm" {
			t.Errorf("%s: want Helm's labels (%s, %s=%s, %s=Helm), got %v", id(o), chartLabel, instanceLabel, name, managedByLabel, l)
		}
		l[managedByLabel] = "kustomize"
		dropKeys(o, chartLabel, instanceLabel)
		if groupKind(o) == "apiextensions.k8s.io/CustomResourceDefinition" {
			a := nested(o, false, "metadata", "annotations")
			if a[keepAnnotation] != "keep" {
				t.Errorf("the CRD lacks %s: keep, so `helm uninstall` would delete it and every Customer", keepAnnotation)
			}
			delete(a, keepAnnotation)
		}
		if groupKind(o) == "apps/Deployment" {
			for _, c := range nested(o, false, "spec", "template", "spec")["containers"].([]any) {
				c := c.(map[string]any)
				if c["image"] != "scriptlock/customer-operator:"+appVersion || c["imagePullPolicy"] != "IfNotPresent" {
					t.Errorf("%s: the chart's default image should be the appVersion's, pulled IfNotPresent: %v (%v)", id(o), c["image"], c["imagePullPolicy"])
				}
				c["image"], c["imagePullPolicy"] = "scriptlock/customer-operator:latest", "Always"
			}
		}
		out = append(out, o)
	}
	return out
}

func dropKeys(v any, keys ...string) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range keys {
			delete(v, k)
		}
		for _, e := range v {
			dropKeys(e, keys...)
		}
	case []any:
		for _, e := range v {
			dropKeys(e, keys...)
		}
	}
}

// sameObjects fails unless got and want hold the same objects.
func sameObjects(t *testing.T, got, want []object, what string) {
	t.Helper()
	g, w := map[string]object{}, map[string]object{}
	for _, o := range got {
		g[id(o)] = o
	}
	for _, o := range want {
		w[id(o)] = o
	}
	for k, o := range w {
		switch gv, ok := g[k]; {
		case !ok:
			t.Errorf("%s: the chart lacks %s", what, k)
		case !reflect.DeepEqual(gv, o):
			gy, _ := yaml.Marshal(gv)
			wy, _ := yaml.Marshal(o)
			t.Errorf("%s: %s differs.\nchart:\n%s\nkustomize:\n%s", what, k, gy, wy)
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("%s: the chart has %s, which kustomize does not", what, k)
		}
	}
}

func without(objs []object, gk string) []object {
	return slices.DeleteFunc(slices.Clone(objs), func(o object) bool { return groupKind(o) == gk })
}

func only(objs []object, gk string) []object {
	return slices.DeleteFunc(slices.Clone(objs), func(o object) bool { return groupKind(o) != gk })
}

func deployment(t *testing.T, objs []object) *appsv1.Deployment {
	t.Helper()
	deps := only(objs, "apps/Deployment")
	if len(deps) != 1 {
		t.Fatalf("want one Deployment, got %d", len(deps))
	}
	d := &appsv1.Deployment{}
	if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(deps[0], d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestChartDefaultsInstallWhatConfigDefaultInstalls: with its default
// values the chart installs the very objects of config/default (names,
// namespace, content), with Helm's labels and the CRD kept on uninstall;
// only the Namespace is left out (Helm installs into an existing one).
func TestChartDefaultsInstallWhatConfigDefaultInstalls(t *testing.T) {
	got := helmTemplate(t, generateChart(t), release, operatorNamespace, nil)
	want := kustomize(t, "default")
	if ns := only(want, "/Namespace"); len(ns) != 1 {
		t.Fatalf("config/default should hold its Namespace, it holds %d", len(ns))
	}
	sameObjects(t, unhelm(t, got, release), without(want, "/Namespace"), "default values vs config/default")
}

// TestChartNeverDeletesTheCRDOnUninstall: in every mode that installs it,
// the CRD carries helm.sh/resource-policy: keep, so `helm uninstall` (or a
// release that stops installing it) leaves the CRD and every Customer in
// place rather than revoking licenses.
func TestChartNeverDeletesTheCRDOnUninstall(t *testing.T) {
	dir := generateChart(t)
	for _, v := range []string{"", "namespaced: {enabled: true, clusterParts: true}", "sharding: {selector: a=b}"} {
		crds := only(helmTemplate(t, dir, release, operatorNamespace, values(v)), "apiextensions.k8s.io/CustomResourceDefinition")
		if len(crds) != 1 {
			t.Fatalf("values %q: want the CRD, got %d", v, len(crds))
		}
		if a := nested(crds[0], false, "metadata", "annotations"); a[keepAnnotation] != "keep" {
			t.Errorf("values %q: the CRD's annotations %v lack %s: keep", v, a, keepAnnotation)
		}
	}
	if crds := only(helmTemplate(t, dir, release, operatorNamespace, values("crd: {install: false}")), "apiextensions.k8s.io/CustomResourceDefinition"); len(crds) != 0 {
		t.Error("crd.install=false still installs the CRD")
	}
}

// TestChartNamespacedModeInstallsWhatConfigNamespacedInstalls: namespaced
// mode is config/namespaced: --watch-namespace from the downward API, a Role and
// RoleBinding for the ClusterRole(Binding); and installed into another
// namespace, it is a team's overlay of config/namespaced for that
// namespace (every object, subject and reference moves).
func TestChartNamespacedModeInstallsWhatConfigNamespacedInstalls(t *testing.T) {
	dir := generateChart(t)
	team := values("namespaced: {enabled: true}")
	sameObjects(t, unhelm(t, helmTemplate(t, dir, release, operatorNamespace, team), release), kustomize(t, "namespaced"), "namespaced values vs config/namespaced")

	overlay := t.TempDir()
	base, err := filepath.Rel(overlay, filepath.Join(repoRoot(t), "config", "namespaced"))
	if err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: team-a\nresources:\n- " + filepath.ToSlash(base) + "\n"
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := build(overlay)
	if err != nil {
		t.Fatal(err)
	}
	got := helmTemplate(t, dir, release, "team-a", team)
	sameObjects(t, unhelm(t, got, release), want, "namespaced values in team-a vs an overlay of config/namespaced with namespace: team-a")

	// Whatever is switched on, nothing names config/'s namespace any more.
	for _, v := range []string{"namespaced: {enabled: true, clusterParts: true}", ""} {
		everything := values(v + "\nmetrics: {serviceMonitor: {enabled: true}, prometheusRule: {enabled: true}}")
		for _, o := range helmTemplate(t, dir, release, "team-a", everything) {
			if b, _ := yaml.Marshal(o); strings.Contains(string(b), operatorNamespace) {
				t.Errorf("values %q: %s installed into team-a still names %s", v, id(o), operatorNamespace)
			}
		}
	}
}

// TestChartNamespacedModeHoldsNoClusterScopedObjectButTheSharedOnes: a
// team's release in namespaced mode holds nothing cluster-scoped, so that
// `helm uninstall` of it touches no other team. With
// namespaced.clusterParts, its cluster-scoped objects are exactly those of
// config/cluster (the CRD, the policy, the shared ClusterRoles), the CRD
// and the policy still under their own switches.
func TestChartNamespacedModeHoldsNoClusterScopedObjectButTheSharedOnes(t *testing.T) {
	dir := generateChart(t)
	cluster := kustomize(t, "cluster")
	noCRDNorPolicy := without(without(without(cluster, "apiextensions.k8s.io/CustomResourceDefinition"),
		"admissionregistration.k8s.io/ValidatingAdmissionPolicy"), "admissionregistration.k8s.io/ValidatingAdmissionPolicyBinding")
	for _, tc := range []struct {
		values string
		want   []object
	}{
		{"namespaced: {enabled: true}", nil},
		{"namespaced: {enabled: true}\nmetrics: {serviceMonitor: {enabled: true}, prometheusRule: {enabled: true}}", nil},
		{"namespaced: {enabled: true, clusterParts: true}", cluster},
		{"namespaced: {enabled: true, clusterParts: true}\ncrd: {install: false}\ndeletionProtection: {enabled: false}", noCRDNorPolicy},
	} {
		var got []object
		for _, o := range helmTemplate(t, dir, release, "team-a", values(tc.values)) {
			if isClusterScoped(t, o) {
				got = append(got, o)
			} else if ns := str(nested(o, false, "metadata"), "namespace"); ns != "team-a" {
				t.Errorf("values %q: %s is not in the release's namespace team-a", tc.values, id(o))
			}
		}
		sameObjects(t, unhelm(t, got, release), tc.want, fmt.Sprintf("values %q, cluster-scoped objects vs config/cluster", tc.values))
	}
}

// TestChartMetricsValuesAddConfigPrometheus: metrics.serviceMonitor and
// metrics.prometheusRule add config/prometheus' ServiceMonitor and
// PrometheusRule, unchanged but for the release's names, namespace and
// labels (the alerts' {{ $value }} reach Prometheus as written, not as
// Helm templates); off, neither is there.
func TestChartMetricsValuesAddConfigPrometheus(t *testing.T) {
	dir := generateChart(t)
	def := helmTemplate(t, dir, release, operatorNamespace, nil)
	for _, gk := range []string{"monitoring.coreos.com/ServiceMonitor", "monitoring.coreos.com/PrometheusRule"} {
		if len(only(def, gk)) != 0 {
			t.Errorf("the default values install a %s (it needs the Prometheus Operator's CRDs)", gk)
		}
	}
	on := helmTemplate(t, dir, release, operatorNamespace, values("metrics: {serviceMonitor: {enabled: true}, prometheusRule: {enabled: true}}"))
	sameObjects(t, unhelm(t, without(without(on, "monitoring.coreos.com/ServiceMonitor"), "monitoring.coreos.com/PrometheusRule"), release),
		unhelm(t, def, release), "metrics on, the rest")
	for _, gk := range []string{"monitoring.coreos.com/ServiceMonitor", "monitoring.coreos.com/PrometheusRule"} {
		want := only(kustomize(t, "prometheus"), gk)
		got := unhelm(t, only(on, gk), release)
		if len(got) != 1 || len(want) != 1 {
			t.Fatalf("%s: chart has %d, config/prometheus %d", gk, len(got), len(want))
		}
		if !reflect.DeepEqual(got[0]["spec"], want[0]["spec"]) {
			gy, _ := yaml.Marshal(got[0]["spec"])
			wy, _ := yaml.Marshal(want[0]["spec"])
			t.Errorf("%s spec differs from config/prometheus'.\nchart:\n%s\nconfig/prometheus:\n%s", gk, gy, wy)
		}
		md := nested(got[0], false, "metadata")
		if name := "scriptlock-" + str(nested(want[0], false, "metadata"), "name"); md["name"] != name || md["namespace"] != operatorNamespace {
			t.Errorf("%s is %s/%s, want %s/%s", gk, md["namespace"], md["name"], operatorNamespace, name)
		}
	}
}

// TestChartShardsAreReleasesThatNeverCollide: two releases in one namespace
// with disjoint selectors are two shards: no object of one is an object of
// the other (Helm would refuse the second release), each manager gets its
// --selector and a lease of its own, and no selector of one release selects
// the other's manager pods.
func TestChartShardsAreReleasesThatNeverCollide(t *testing.T) {
	dir := generateChart(t)
	a := helmTemplate(t, dir, "shard-a", operatorNamespace, values("sharding: {selector: scriptlock.com/shard=a}"))
	b := helmTemplate(t, dir, "shard-b", operatorNamespace, values("sharding: {selector: scriptlock.com/shard=b}\ncrd: {install: false}\ndeletionProtection: {enabled: false}"))
	ids := map[string]bool{}
	for _, o := range a {
		ids[id(o)] = true
	}
	for _, o := range b {
		if ids[id(o)] {
			t.Errorf("both shards install %s", id(o))
		}
	}
	for name, objs := range map[string][]object{"shard-a": a, "shard-b": b} {
		shard := name[len(name)-1:]
		args := deployment(t, objs).Spec.Template.Spec.Containers[0].Args
		for _, want := range []string{"--selector=scriptlock.com/shard=" + shard, "--leader-election-id=" + name + ".customer-operator.licensing.scriptlock.com"} {
			if !slices.Contains(args, want) {
				t.Errorf("%s: the manager's args %v lack %s", name, args, want)
			}
		}
	}
	podsOfB := labels.Set(deployment(t, b).Spec.Template.Labels)
	for _, o := range a {
		var sel map[string]any
		switch groupKind(o) {
		case "apps/Deployment", "monitoring.coreos.com/ServiceMonitor":
			sel = nested(o, false, "spec", "selector", "matchLabels")
		case "/Service":
			sel = nested(o, false, "spec", "selector")
		case "networking.k8s.io/NetworkPolicy":
			sel = nested(o, false, "spec", "podSelector", "matchLabels")
		default:
			continue
		}
		set := labels.Set{}
		for k, v := range sel {
			set[k], _ = v.(string)
		}
		if len(set) == 0 || set.AsSelector().Matches(podsOfB) {
			t.Errorf("shard-a's %s selects shard-b's manager pods (selector %v)", id(o), sel)
		}
	}
	if explicit := deployment(t, helmTemplate(t, dir, "shard-a", operatorNamespace, values("sharding: {selector: a=b}\nleaderElection: {id: my-lease}"))).Spec.Template.Spec.Containers[0].Args; !slices.Contains(explicit, "--leader-election-id=my-lease") {
		t.Errorf("leaderElection.id should win, args %v", explicit)
	}
	// The brake and the change log: flags only when changed from their defaults.
	if args := deployment(t, helmTemplate(t, dir, "brake", operatorNamespace, values("deletionBudget: {limit: 0, window: 30m}\nchangelog: {values: true}"))).Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--deletion-budget=0") ||
		!slices.Contains(args, "--deletion-budget-window=30m") || !slices.Contains(args, "--changelog-values") {
		t.Errorf("deletionBudget and changelog values should become flags, args %v", args)
	}
	if args := deployment(t, helmTemplate(t, dir, "brake", operatorNamespace, values(""))).Spec.Template.Spec.Containers[0].Args; slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "--deletion-budget") || a == "--changelog-values"
	}) {
		t.Errorf("the defaults should give no brake or change log flag (the manager's defaults), args %v", args)
	}
}

// TestChartValuesReachTheManager: image (tag, digest, pull policy),
// resources (merged into config/manager's, as Helm merges values: null
// drops one), replicas and extra arguments end up in the manager's
// Deployment, the arguments after config/manager's.
func TestChartValuesReachTheManager(t *testing.T) {
	dir := generateChart(t)
	defDep := deployment(t, helmTemplate(t, dir, release, operatorNamespace, nil))
	d := deployment(t, helmTemplate(t, dir, release, operatorNamespace, values(`
image: {repository: registry.example.com/scriptlock/customer-operator, tag: v1.2.3, pullPolicy: IfNotPresent}
replicas: 2
resources: {requests: {cpu: 10m, memory: 32Mi, ephemeral-storage: 32Mi}, limits: {cpu: null, memory: 1Gi, ephemeral-storage: 1Gi}}
extraArgs: ["--resync-period=5m", "--zap-log-level=2"]
`)))
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example.com/scriptlock/customer-operator:v1.2.3" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %s (%s)", c.Image, c.ImagePullPolicy)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v", d.Spec.Replicas)
	}
	wantRes := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi"), corev1.ResourceEphemeralStorage: resource.MustParse("32Mi")},
		// Helm merges values into the defaults; null drops one.
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi"), corev1.ResourceEphemeralStorage: resource.MustParse("1Gi")},
	}
	if !reflect.DeepEqual(c.Resources, wantRes) {
		t.Errorf("resources %v, want %v", c.Resources, wantRes)
	}
	if want := append(slices.Clone(defDep.Spec.Template.Spec.Containers[0].Args), "--resync-period=5m", "--zap-log-level=2"); !slices.Equal(c.Args, want) {
		t.Errorf("args %v, want %v", c.Args, want)
	}

	digest := "sha256:" + strings.Repeat("ab", 32)
	if c := deployment(t, helmTemplate(t, dir, release, operatorNamespace, values("image: {tag: v9, digest: "+digest+"}"))).Spec.Template.Spec.Containers[0]; !strings.HasSuffix(c.Image, "@"+digest) {
		t.Errorf("with a digest the image should be pinned by it, got %s", c.Image)
	}
}

// TestChartRefusesUnknownValues: a misspelt or misplaced value (say
// `namespaced: true` for `namespaced.enabled`) is an error, not a silent
// install of the default.
func TestChartRefusesUnknownValues(t *testing.T) {
	dir := generateChart(t)
	for _, v := range []string{"namespaced: true", "replica: 2", "image: {pullPolicy: Sometimes}", "metrics: {serviceMonitor: true}", "namePrefix: Bad_",
		"nodeSelector: {pool: 1}", "podAnnotation: {a: b}", "serviceAccount: {name: x}", "metrics: {serviceMonitor: {interval: 30}}",
		"metrics: {serviceMonitor: {labels: [release]}}", "credentials: {secretName: Bad_Name}", "imagePullSecrets: [my-registry]",
		"tests: {image: ''}", "dashboard: {enable: true}", "tolerations: {key: x}"} {
		if _, err := tryHelmTemplate(dir, release, operatorNamespace, values(v)); err == nil {
			t.Errorf("values %q were accepted", v)
		}
	}
}

// TestChartPassesHelmLint: `helm lint`, in every mode, finds nothing to
// warn about.
func TestChartPassesHelmLint(t *testing.T) {
	dir := generateChart(t)
	kube := &chartutil.KubeVersion{Version: "v1.30.0", Major: "1", Minor: "30"}
	for _, v := range []string{"", "namespaced: {enabled: true}", "metrics: {serviceMonitor: {enabled: true}, prometheusRule: {enabled: true}}", platformValues} {
		for _, msg := range lint.AllWithKubeVersion(dir, values(v), operatorNamespace, kube).Messages {
			if msg.Severity > support.InfoSev {
				t.Errorf("values %q: helm lint: %s", v, msg)
			}
		}
	}
	ch, err := loader.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for v, ok := range map[string]bool{"v1.30.0": true, "v1.37.2": true, "v1.29.9": false} {
		if got := chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, v); got != ok {
			t.Errorf("kubeVersion %q: Kubernetes %s compatible = %v, want %v", ch.Metadata.KubeVersion, v, got, ok)
		}
	}
}
