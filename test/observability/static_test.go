package observability

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestQueriesParse parses every expression of the alerts and the dashboard
// (panels and variables) with Prometheus' own PromQL parser.
func TestQueriesParse(t *testing.T) {
	qs := append(alertQueries(t), dashboardQueries(t)...)
	for _, q := range qs {
		if strings.TrimSpace(q.expr) == "" {
			t.Errorf("%s: no expression", q.where)
			continue
		}
		p := parse(t, q)
		if len(p.metrics) == 0 && !t.Failed() {
			t.Errorf("%s: uses no metric", q.where)
		}
	}
}

// TestAlertRunbooks: every alert has a severity, a summary, a description
// and a runbook_url whose anchor is a section of docs/runbooks.md, and every
// alert section of docs/runbooks.md is an alert.
func TestAlertRunbooks(t *testing.T) {
	md := string(readFile(t, runbooksFile))
	have := anchors(md)
	var names []string
	for _, r := range alertRules(t) {
		if r.Alert == "" {
			t.Errorf("%s: a rule that is not an alert (record %q): give it a runbook or move it", alertsFile, r.Record)
			continue
		}
		names = append(names, r.Alert)
		if r.Labels["severity"] == "" {
			t.Errorf("alert %s: no severity label", r.Alert)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s: no %s annotation", r.Alert, a)
			}
		}
		u := r.Annotations["runbook_url"]
		anchor, ok := strings.CutPrefix(u, runbookBase)
		if !ok {
			t.Errorf("alert %s: runbook_url %q does not start with %s", r.Alert, u, runbookBase)
			continue
		}
		if !have[anchor] {
			t.Errorf("alert %s: runbook_url anchor #%s is no heading of %s", r.Alert, anchor, runbooksFile)
		}
		if anchor != strings.ToLower(r.Alert) {
			t.Errorf("alert %s: runbook_url anchor #%s, want the alert's own section #%s", r.Alert, anchor, strings.ToLower(r.Alert))
		}
	}
	// Sections named like alerts must be alerts: a renamed or removed
	// alert leaves no stale runbook behind.
	for _, m := range regexp.MustCompile(`(?m)^## (ScriptLock\w+)\s*$`).FindAllStringSubmatch(md, -1) {
		if !slices.Contains(names, m[1]) {
			t.Errorf("%s: section %q is no alert of %s", runbooksFile, m[1], alertsFile)
		}
	}
	if !slices.Contains(names, "ScriptLockOperatorAbsent") {
		t.Error("no alert for the operator being absent")
	}
}

// TestRunbookBaseOverride: the overlay that docs/runbooks.md shows points
// every runbook_url at another base and keeps each anchor.
func TestRunbookBaseOverride(t *testing.T) {
	const dir = "test/observability/testdata/runbook-override"
	want := map[string]string{}
	for _, r := range alertRules(t) {
		_, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "#")
		want[r.Alert] = "https://wiki.example.com/scriptlock/runbooks#" + anchor
	}
	got := map[string]string{}
	for _, o := range render(t, dir) {
		if o.GetKind() == "ConfigMap" {
			t.Errorf("%s: the local-config ConfigMap %s is in the output", dir, o.GetName())
		}
		if o.GetKind() != "PrometheusRule" {
			continue
		}
		groups, _, _ := unstructured.NestedSlice(o.Object, "spec", "groups")
		for _, g := range groups {
			rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
			for _, r := range rules {
				alert, _, _ := unstructured.NestedString(r.(map[string]any), "alert")
				got[alert], _, _ = unstructured.NestedString(r.(map[string]any), "annotations", "runbook_url")
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d alerts, want %d", dir, len(got), len(want))
	}
	for a, u := range want {
		if got[a] != u {
			t.Errorf("%s: alert %s: runbook_url %q, want %q", dir, a, got[a], u)
		}
	}
}

// TestGrafanaConfigMap: config/grafana renders to one ConfigMap with the
// sidecar's label and, byte for byte, the dashboard JSON file.
func TestGrafanaConfigMap(t *testing.T) {
	objs := render(t, "config/grafana")
	if len(objs) != 1 || objs[0].GetKind() != "ConfigMap" {
		t.Fatalf("config/grafana renders %d objects, want one ConfigMap", len(objs))
	}
	cm := objs[0]
	if got := cm.GetLabels()["grafana_dashboard"]; got != "1" {
		t.Errorf("label grafana_dashboard=%q, want \"1\" (the sidecar's default)", got)
	}
	if cm.GetName() != "scriptlock-customer-operator-dashboard" {
		t.Errorf("name %q: want scriptlock-customer-operator-dashboard, without a hash suffix", cm.GetName())
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	if len(data) != 1 {
		t.Fatalf("data has %d keys, want the dashboard only", len(data))
	}
	if got, want := data["scriptlock-customer-operator.json"], string(readFile(t, dashboardFile)); got != want {
		t.Errorf("the ConfigMap's dashboard differs from %s", dashboardFile)
	}
	// The client-side `kubectl apply` copies the object into an annotation
	// limited to 256 KiB.
	if n := len(readFile(t, dashboardFile)); n > 200<<10 {
		t.Errorf("%s is %d bytes: too big for kubectl apply's last-applied annotation", dashboardFile, n)
	}
}

// TestDashboardModel: the dashboard imports as it is (uid, title, unique
// panel ids, a Prometheus data source variable that every query uses) and
// shows what an operator needs to see (alerts, panels, runbooks).
func TestDashboardModel(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("no uid or title")
	}
	var hasDS bool
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && strings.Contains(string(v.Query), "prometheus") {
			hasDS = true
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s does not query ${datasource}", v.Name)
		}
	}
	if !hasDS {
		t.Error("no data source variable of type prometheus: the dashboard would name one Grafana's data source")
	}
	ids := map[int]string{}
	used := map[string]bool{}
	for _, p := range allPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use ${datasource}", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q, query %s does not use ${datasource}", p.Title, tg.RefID)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q missing or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if !strings.Contains(tg.Expr, `namespace=~"$namespace"`) {
				t.Errorf("panel %q, query %s ignores the namespace variable", p.Title, tg.RefID)
			}
			for _, m := range parse(t, query{where: p.Title, expr: tg.Expr}).metrics {
				used[m] = true
			}
		}
	}
	for _, m := range []string{
		"scriptlock_customers",
		"scriptlock_requests_total",
		"scriptlock_request_duration_seconds_bucket",
		"scriptlock_drift_listing_failures_total",
		"scriptlock_list_records_skipped_total",
		"workqueue_depth",
		"workqueue_queue_duration_seconds_bucket",
		"workqueue_work_duration_seconds_bucket",
		"controller_runtime_reconcile_total",
		"controller_runtime_reconcile_errors_total",
	} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}
