package observability

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/hack/localenv"
)

// targetLabels are added by Prometheus (and the Prometheus Operator's
// ServiceMonitor) to every scraped series; the manager does not export them.
var targetLabels = []string{"job", "instance", "namespace", "service", "endpoint", "pod", "container"}

// identityLabels are fixed by the code (the controller's and its queue's
// name): an equality matcher on one must name a value the manager exports.
var identityLabels = []string{"controller", "name"}

// exported is what a scrape of the manager holds: each metric name (the
// _bucket, _sum and _count series of histograms and summaries included) with
// its label names, and the values of the identity labels.
type exported struct {
	labels map[string][]string
	values map[string][]string
}

// TestEveryMetricIsExported runs the real manager (bin/manager, built from
// this tree, against kube-apiserver, etcd and the ScriptLock simulator, as
// the demo does), scrapes its /metrics, and checks that every metric, label
// and legend label that the alerts and the dashboard use is in the scrape.
func TestEveryMetricIsExported(t *testing.T) {
	root, err := filepath.Abs(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		if _, err := os.Stat(filepath.Join(root, "bin", "k8s", "kube-apiserver")); err != nil {
			t.Skip("no control plane: run `make controlplane`, or set KUBEBUILDER_ASSETS")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := localenv.Start(ctx, localenv.Options{Root: root, Logf: t.Logf, APIKey: "observability-test-key"})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()

	// Before any Customer: the metric that ScriptLockOperatorAbsent watches
	// is there, and scriptlock_customers is not (which is why the alert
	// cannot use it).
	first := scrape(ctx, t, env.MetricsURL)
	if _, ok := first.labels["scriptlock_customers_list_errors_total"]; !ok {
		t.Error("scriptlock_customers_list_errors_total is not exported while there are no Customers: ScriptLockOperatorAbsent would fire")
	}
	if _, ok := first.labels["scriptlock_customers"]; ok {
		t.Error("scriptlock_customers has series with no Customers: update the comment of ScriptLockOperatorAbsent")
	}

	// One Customer made Ready gives the vectors their series: a call to
	// ScriptLock, a reconcile, the queue's latencies.
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	cust := &v1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Name: "observed", Namespace: "default"},
		Spec: v1alpha1.CustomerSpec{
			Company: "Example Company Inc.", FirstName: "Example", LastName: "Customer", Email: "observed@example.com",
		},
	}
	if err := c.Create(ctx, cust); err != nil {
		t.Fatal(err)
	}
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(cust), cust); err != nil {
			t.Fatal(err)
		}
		if meta.IsStatusConditionTrue(cust.Status.Conditions, v1alpha1.ConditionReady) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the Customer did not become Ready: %+v (manager log: %s)", cust.Status.Conditions, env.ManagerLog)
		case <-time.After(200 * time.Millisecond):
		}
	}
	got := scrape(ctx, t, env.MetricsURL)
	for _, m := range []string{"scriptlock_customers", "scriptlock_requests_total", "workqueue_work_duration_seconds", "controller_runtime_reconcile_time_seconds"} {
		if _, ok := got.labels[m]; !ok {
			t.Fatalf("the scrape after a Ready Customer has no %s: the test's premise is wrong", m)
		}
	}

	for _, q := range append(alertQueries(t), dashboardQueries(t)...) {
		p := parse(t, q)
		known := slices.Clone(targetLabels)
		for _, m := range p.metrics {
			ls, ok := got.labels[m]
			if !ok {
				t.Errorf("%s: %s is not exported by the manager", q.where, m)
				continue
			}
			known = append(known, ls...)
		}
		for _, l := range p.labels {
			if !slices.Contains(known, l) {
				t.Errorf("%s: label %q is on none of %v", q.where, l, p.metrics)
			}
		}
		for _, l := range legendLabels(q.legend) {
			if !slices.Contains(known, l) {
				t.Errorf("%s: legend label %q is on none of %v", q.where, l, p.metrics)
			}
		}
		for _, m := range p.matchers {
			if m.Type == labels.MatchEqual && slices.Contains(identityLabels, m.Name) && !slices.Contains(got.values[m.Name], m.Value) {
				t.Errorf("%s: %s, but the manager exports %s=%q", q.where, m, m.Name, got.values[m.Name])
			}
		}
	}
}

var legendLabel = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

func legendLabels(legend string) []string {
	var out []string
	for _, m := range legendLabel.FindAllStringSubmatch(legend, -1) {
		out = append(out, m[1])
	}
	return out
}

// scrape reads the manager's /metrics (plain HTTP on loopback, as
// localenv runs it).
func scrape(ctx context.Context, t *testing.T, url string) exported {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	e := exported{labels: map[string][]string{}, values: map[string][]string{}}
	for name, f := range fams {
		var ls []string
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !slices.Contains(ls, lp.GetName()) {
					ls = append(ls, lp.GetName())
				}
				if slices.Contains(identityLabels, lp.GetName()) && !slices.Contains(e.values[lp.GetName()], lp.GetValue()) {
					e.values[lp.GetName()] = append(e.values[lp.GetName()], lp.GetValue())
				}
			}
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			e.labels[name+"_bucket"] = append(slices.Clone(ls), "le")
			e.labels[name+"_sum"] = ls
			e.labels[name+"_count"] = ls
		case dto.MetricType_SUMMARY:
			e.labels[name+"_sum"] = ls
			e.labels[name+"_count"] = ls
			ls = append(ls, "quantile")
		}
		e.labels[name] = ls
	}
	if len(e.labels) == 0 {
		t.Fatalf("%s exports nothing", url)
	}
	return e
}
