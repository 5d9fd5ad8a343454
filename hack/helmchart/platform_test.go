package main

// The values platform teams set: where the Pod runs, registry Secrets,
// labels and annotations, the ServiceMonitor's selection, the credentials
// Secret's name, the dashboard, and `helm test`. Each is rendered with
// Helm's library and found where it belongs.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// platformValues sets every value a platform team sets.
const platformValues = `
nodeSelector: {kubernetes.io/os: linux, pool: system}
tolerations: [{key: dedicated, operator: Equal, value: system, effect: NoSchedule}]
affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: pool, operator: In, values: [system]}]}]}}}
topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {control-plane: controller-manager}}}]
priorityClassName: system-cluster-critical
imagePullSecrets: [{name: my-registry}]
podAnnotations: {sidecar.istio.io/inject: "false"}
podLabels: {team: licensing}
commonLabels: {cost-center: "4711"}
serviceAccount: {annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/scriptlock"}}
credentials: {secretName: team-scriptlock-key}
metrics: {serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}, interval: 15s}, prometheusRule: {enabled: true}}
dashboard: {enabled: true, namespace: monitoring}
tests: {image: registry.example.com/mirror/busybox:1.37}
`

func TestChartPlatformValuesReachTheirObjects(t *testing.T) {
	dir := generateChart(t)
	vals := values(platformValues)
	objs := helmTemplate(t, dir, release, operatorNamespace, vals)
	d := deployment(t, objs)
	pod := d.Spec.Template.Spec

	t.Run("where the Pod runs, and its registry Secrets", func(t *testing.T) {
		var want corev1.PodSpec
		podVals := map[string]any{}
		for _, k := range []string{"nodeSelector", "tolerations", "affinity", "topologySpreadConstraints", "priorityClassName", "imagePullSecrets"} {
			podVals[k] = vals[k]
		}
		b, _ := json.Marshal(podVals)
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		for name, pair := range map[string][2]any{
			"nodeSelector":              {pod.NodeSelector, want.NodeSelector},
			"tolerations":               {pod.Tolerations, want.Tolerations},
			"affinity":                  {pod.Affinity, want.Affinity},
			"topologySpreadConstraints": {pod.TopologySpreadConstraints, want.TopologySpreadConstraints},
			"priorityClassName":         {pod.PriorityClassName, want.PriorityClassName},
			"imagePullSecrets":          {pod.ImagePullSecrets, want.ImagePullSecrets},
		} {
			if !reflect.DeepEqual(pair[0], pair[1]) || reflect.ValueOf(pair[1]).IsZero() {
				t.Errorf("%s: the Pod has %+v, want %+v", name, pair[0], pair[1])
			}
		}
		def := deployment(t, helmTemplate(t, dir, release, operatorNamespace, nil)).Spec.Template.Spec
		if def.NodeSelector != nil || def.Tolerations != nil || def.Affinity != nil || def.TopologySpreadConstraints != nil || def.PriorityClassName != "" || def.ImagePullSecrets != nil {
			t.Errorf("the default values set scheduling fields: %+v", def)
		}
	})

	t.Run("Pod annotations and labels join the chart's own; the selector stays", func(t *testing.T) {
		tm := d.Spec.Template.ObjectMeta
		if tm.Annotations["sidecar.istio.io/inject"] != "false" || tm.Annotations["kubectl.kubernetes.io/default-container"] != "manager" {
			t.Errorf("pod annotations %v", tm.Annotations)
		}
		if tm.Labels["team"] != "licensing" || tm.Labels["control-plane"] != "controller-manager" || tm.Labels["cost-center"] != "" {
			t.Errorf("pod labels %v", tm.Labels)
		}
		if _, ok := d.Spec.Selector.MatchLabels["team"]; ok {
			t.Errorf("a Pod label reached the selector (immutable: an upgrade would fail): %v", d.Spec.Selector.MatchLabels)
		}
	})

	t.Run("commonLabels on every object, in no selector", func(t *testing.T) {
		for _, o := range slices.Concat(objs, helmTests(t, dir, release, operatorNamespace, vals)) {
			if _, hook := nested(o, false, "metadata", "annotations")["helm.sh/hook"]; hook {
				continue
			}
			if l := nested(o, false, "metadata", "labels"); l["cost-center"] != "4711" {
				t.Errorf("%s lacks commonLabels: %v", id(o), l)
			}
		}
		if _, ok := d.Spec.Selector.MatchLabels["cost-center"]; ok {
			t.Error("commonLabels reached the Deployment's selector")
		}
	})

	t.Run("ServiceAccount annotations (workload identity)", func(t *testing.T) {
		sas := only(objs, "/ServiceAccount")
		if len(sas) != 1 || nested(sas[0], false, "metadata", "annotations")["eks.amazonaws.com/role-arn"] != "arn:aws:iam::123456789012:role/scriptlock" {
			t.Errorf("ServiceAccounts %v", sas)
		}
		if sa := only(helmTemplate(t, dir, release, operatorNamespace, nil), "/ServiceAccount")[0]; nested(sa, false, "metadata", "annotations") != nil {
			t.Errorf("the default ServiceAccount has annotations %v", nested(sa, false, "metadata", "annotations"))
		}
	})

	t.Run("the ServiceMonitor's labels and interval", func(t *testing.T) {
		sm := only(objs, "monitoring.coreos.com/ServiceMonitor")
		if len(sm) != 1 {
			t.Fatalf("%d ServiceMonitors", len(sm))
		}
		if l := nested(sm[0], false, "metadata", "labels"); l["release"] != "kube-prometheus-stack" || l["control-plane"] != "controller-manager" {
			t.Errorf("ServiceMonitor labels %v", l)
		}
		eps := nested(sm[0], false, "spec")["endpoints"].([]any)
		if len(eps) != 1 || eps[0].(map[string]any)["interval"] != "15s" {
			t.Errorf("endpoints %v", eps)
		}
	})

	t.Run("the credentials Secret's name, for the key file and the URL", func(t *testing.T) {
		c := d.Spec.Template.Spec.Containers[0]
		var mounted string
		for _, v := range pod.Volumes {
			if v.Secret != nil {
				mounted = v.Secret.SecretName
			}
		}
		var urlFrom string
		for _, e := range c.Env {
			if e.Name == "SCRIPTLOCK_URL" {
				urlFrom = e.ValueFrom.SecretKeyRef.Name
			}
		}
		if mounted != "team-scriptlock-key" || urlFrom != "team-scriptlock-key" {
			t.Errorf("the key is mounted from %q, the URL read from %q; want team-scriptlock-key", mounted, urlFrom)
		}
		if !slices.Contains(c.Args, "--scriptlock-api-key-file=/etc/scriptlock/credentials/apiKey") {
			t.Errorf("args %v", c.Args)
		}
	})

	t.Run("the dashboard, where Grafana's sidecar looks", func(t *testing.T) {
		cms := only(objs, "/ConfigMap")
		if len(cms) != 1 {
			t.Fatalf("%d ConfigMaps", len(cms))
		}
		md := nested(cms[0], false, "metadata")
		if md["namespace"] != "monitoring" || nested(md, false, "labels")["grafana_dashboard"] != "1" || md["name"] != "scriptlock-dashboard" {
			t.Errorf("dashboard ConfigMap metadata %v", md)
		}
		want, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "grafana", "scriptlock-customer-operator.json"))
		if err != nil {
			t.Fatal(err)
		}
		if got := nested(cms[0], false, "data")["scriptlock-customer-operator.json"]; got != string(want) {
			t.Error("the dashboard's JSON is not config/grafana's byte for byte")
		}
		if len(only(helmTemplate(t, dir, release, operatorNamespace, nil), "/ConfigMap")) != 0 {
			t.Error("the default values install the dashboard")
		}
		if cm := only(helmTemplate(t, dir, release, operatorNamespace, values("dashboard: {enabled: true}")), "/ConfigMap"); len(cm) != 1 || nested(cm[0], false, "metadata")["namespace"] != operatorNamespace {
			t.Errorf("dashboard.namespace empty should mean the release's: %v", cm)
		}
	})

	t.Run("helm test asks the manager's health probe", func(t *testing.T) {
		tests := helmTests(t, dir, release, operatorNamespace, vals)
		var svc, np, testPod object
		for _, o := range tests {
			if nested(o, false, "metadata", "annotations")["helm.sh/hook"] != "test" {
				t.Errorf("%s in templates/tests is not a test hook", id(o))
			}
			switch groupKind(o) {
			case "/Service":
				svc = o
			case "networking.k8s.io/NetworkPolicy":
				np = o
			case "/Pod":
				testPod = o
			}
		}
		if svc == nil || np == nil || testPod == nil || len(tests) != 3 {
			t.Fatalf("want a Service, a NetworkPolicy and a Pod, got %d objects", len(tests))
		}
		var healthPort int32
		for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
			if p.Name == "health" {
				healthPort = p.ContainerPort
			}
		}
		podLabels := d.Spec.Template.Labels
		for what, sel := range map[string]map[string]any{"Service": nested(svc, false, "spec", "selector"), "NetworkPolicy": nested(np, false, "spec", "podSelector", "matchLabels")} {
			if len(sel) == 0 {
				t.Errorf("%s selects every Pod", what)
			}
			for k, v := range sel {
				if podLabels[k] != v {
					t.Errorf("%s selects %s=%v, which the manager's Pod does not have (%v)", what, k, v, podLabels)
				}
			}
		}
		var p corev1.Pod
		if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(testPod, &p); err != nil {
			t.Fatal(err)
		}
		c := p.Spec.Containers[0]
		script := strings.Join(c.Command, " ")
		if c.Image != "registry.example.com/mirror/busybox:1.37" || !strings.Contains(script, "wget") ||
			!strings.Contains(script, "http://scriptlock-test-health:"+itoa(healthPort)+"/readyz") {
			t.Errorf("test Pod: image %s, command %q", c.Image, script)
		}
		if p.Spec.RestartPolicy != corev1.RestartPolicyNever || len(p.Spec.ImagePullSecrets) != 1 {
			t.Errorf("test Pod: restartPolicy %s, imagePullSecrets %v", p.Spec.RestartPolicy, p.Spec.ImagePullSecrets)
		}
		if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || p.Spec.SecurityContext.RunAsNonRoot == nil {
			t.Error("the test Pod does not meet Pod Security restricted")
		}
		ports := nested(np, false, "spec")["ingress"].([]any)[0].(map[string]any)["ports"].([]any)
		if ports[0].(map[string]any)["port"] != float64(healthPort) {
			t.Errorf("the NetworkPolicy admits %v, the health port is %d", ports, healthPort)
		}
	})
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// TestChartDefaultImageIsTheAppVersion: with no image values the manager
// runs the chart's appVersion, pulled IfNotPresent, never :latest.
func TestChartDefaultImageIsTheAppVersion(t *testing.T) {
	c := deployment(t, helmTemplate(t, generateChart(t), release, operatorNamespace, nil)).Spec.Template.Spec.Containers[0]
	if c.Image != "scriptlock/customer-operator:"+appVersion || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("default image %s (%s), want scriptlock/customer-operator:%s (IfNotPresent)", c.Image, c.ImagePullPolicy, appVersion)
	}
}

// TestChartReadmeListsEveryValue: the generated README has a row for every
// value of values.yaml (leaf or map listed whole), with its default.
func TestChartReadmeListsEveryValue(t *testing.T) {
	dir := generateChart(t)
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vals map[string]any
	if err := yaml.Unmarshal(b, &vals); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"nodeSelector", "tolerations", "affinity", "topologySpreadConstraints", "priorityClassName",
		"imagePullSecrets", "podAnnotations", "podLabels", "commonLabels", "serviceAccount.annotations", "credentials.secretName",
		"metrics.serviceMonitor.labels", "metrics.serviceMonitor.interval", "dashboard.enabled", "image.tag", "image.pullPolicy", "resources", "tests.image"} {
		if !strings.Contains(string(readme), "| `"+key+"` |") {
			t.Errorf("README.md has no row for %s", key)
		}
	}
	for key := range vals {
		if !strings.Contains(string(readme), "| `"+key) {
			t.Errorf("README.md has no row for the value %s", key)
		}
	}
	if !strings.Contains(string(readme), "| `metrics.serviceMonitor.interval` | string | `\"30s\"` | How often") {
		t.Error("the interval's row lacks its type, default or description")
	}
}
