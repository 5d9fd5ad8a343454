package observability

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/test/kustomized"
)

const (
	dashboardFile = "config/grafana/scriptlock-customer-operator.json"
	alertsFile    = "config/prometheus/alerts.yaml"
	runbooksFile  = "docs/runbooks.md"
	// runbookBase is what every runbook_url starts with; the anchor after
	// it names a section of docs/runbooks.md.
	runbookBase = "https://github.com/scriptlock/customer-operator/blob/main/docs/runbooks.md#"
)

// repoRoot is the module's root directory, found from this file's path so
// that the tests work from any working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	return kustomized.RepoRoot()
}

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// render builds a kustomization as `kubectl kustomize` does, with the
// kustomize library in process.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := kustomized.Build(filepath.Join(repoRoot(t), dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return objs
}

// query is one PromQL expression and where it comes from, for messages.
type query struct {
	where string
	expr  string
	// legend is the panel target's legendFormat (dashboard only).
	legend string
}

// rule is an alerting rule of config/prometheus/alerts.yaml.
type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func alertRules(t *testing.T) []rule {
	t.Helper()
	// Strict: a misspelt field of a rule (anotations, label) fails here
	// rather than being ignored by Prometheus.
	var doc struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Metadata   map[string]any `json:"metadata"`
		Spec       struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []rule `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, alertsFile), &doc); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	if doc.Kind != "PrometheusRule" {
		t.Fatalf("%s: kind %q, want PrometheusRule", alertsFile, doc.Kind)
	}
	var rules []rule
	for _, g := range doc.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s holds no rules", alertsFile)
	}
	return rules
}

func alertQueries(t *testing.T) []query {
	t.Helper()
	var qs []query
	for _, r := range alertRules(t) {
		qs = append(qs, query{where: alertsFile + ": alert " + r.Alert, expr: r.Expr})
	}
	return qs
}

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID        string      `json:"refId"`
		Expr         string      `json:"expr"`
		LegendFormat string      `json:"legendFormat"`
		Datasource   *datasource `json:"datasource"`
	} `json:"targets"`
	// Panels of a collapsed row.
	Panels []panel `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(readFile(t, dashboardFile))))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens rows: the panels of a collapsed row are nested in it.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

func dashboardQueries(t *testing.T) []query {
	t.Helper()
	d := loadDashboard(t)
	var qs []query
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, query{where: dashboardFile + ": panel " + p.Title + " " + tg.RefID, expr: tg.Expr, legend: tg.LegendFormat})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("%s: variable %s: query: %v", dashboardFile, v.Name, err)
		}
		m := labelValuesQuery.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("%s: variable %s: %q is not label_values(<selector>, <label>)", dashboardFile, v.Name, q.Query)
		}
		// The selector as a query of its own, grouped by the label, so that
		// the label is checked as every other one is.
		qs = append(qs, query{where: dashboardFile + ": variable " + v.Name, expr: "count by (" + m[2] + ") (" + m[1] + ")"})
	}
	return qs
}

// grafanaVar matches Grafana's variables in an expression: $name, ${name}
// and ${name:format}.
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)

// expandGrafana replaces Grafana's variables with what Grafana would put
// there, so that the result is PromQL: intervals for the interval
// variables, a plain value (inside the quotes of a matcher) for the others.
func expandGrafana(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		name := strings.Trim(v, "${}")
		name, _, _ = strings.Cut(name, ":")
		switch name {
		case "__rate_interval", "__interval", "__range", "__range_s":
			return "5m"
		default:
			return "value"
		}
	})
}

// parsed is what one expression uses.
type parsed struct {
	metrics []string
	// labels are the label names in matchers and in by/without/on/ignoring
	// clauses; matchers are the equality matchers, by label.
	labels   []string
	matchers []*labels.Matcher
}

func parse(t *testing.T, q query) parsed {
	t.Helper()
	if strings.Contains(q.expr, "[[") {
		t.Errorf("%s: the deprecated [[var]] syntax", q.where)
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(expandGrafana(q.expr))
	if err != nil {
		t.Errorf("%s: %v\n%s", q.where, err, q.expr)
		return parsed{}
	}
	var out parsed
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			name := n.Name
			for _, m := range n.LabelMatchers {
				if m.Name == model.MetricNameLabel {
					if m.Type != labels.MatchEqual {
						t.Errorf("%s: metric name matched by %s: name metrics literally so that they can be checked", q.where, m)
					}
					name = m.Value
					continue
				}
				out.labels = append(out.labels, m.Name)
				out.matchers = append(out.matchers, m)
			}
			if name == "" {
				t.Errorf("%s: a selector without a metric name", q.where)
			}
			out.metrics = append(out.metrics, name)
		case *parser.AggregateExpr:
			out.labels = append(out.labels, n.Grouping...)
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				out.labels = append(out.labels, n.VectorMatching.MatchingLabels...)
				out.labels = append(out.labels, n.VectorMatching.Include...)
			}
		}
		return nil
	})
	return out
}

// anchors returns the GitHub anchors of the headings of a Markdown file:
// lower case, punctuation other than '-' and '_' dropped, spaces as '-'.
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	inFence := false
	for line := range strings.SplitSeq(md, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}
