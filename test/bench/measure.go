package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
	"k8s.io/client-go/rest"
)

// series is one sample of a Prometheus text exposition.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics is a parsed /metrics page.
type metrics []series

// sum adds the samples of name whose labels pass keep (nil keeps all).
func (m metrics) sum(name string, keep func(map[string]string) bool) float64 {
	var total float64
	for _, s := range m {
		if s.name == name && (keep == nil || keep(s.labels)) {
			total += s.value
		}
	}
	return total
}

// byLabel adds the samples of name whose labels pass keep (nil keeps all)
// by the value of their label label.
func (m metrics) byLabel(name, label string, keep func(map[string]string) bool) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m {
		if s.name == name && (keep == nil || keep(s.labels)) {
			out[s.labels[label]] += s.value
		}
	}
	return out
}

// parseMetrics reads a /metrics page in the Prometheus text format, each
// histogram and summary as its _bucket, _sum and _count samples.
func parseMetrics(r io.Reader) (metrics, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	var out metrics
	for _, f := range families {
		samples, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{}, f)
		if err != nil {
			return nil, err
		}
		for _, smp := range samples {
			s := series{name: string(smp.Metric[model.MetricNameLabel]), labels: map[string]string{}, value: float64(smp.Value)}
			for k, v := range smp.Metric {
				if k != model.MetricNameLabel {
					s.labels[string(k)] = string(v)
				}
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// getMetrics scrapes a /metrics page. It asks for no compression: the
// benchmark scrapes the manager every second while it waits, and gzip
// writers that promhttp keeps for reuse would otherwise show in the
// manager's heap profile.
func getMetrics(ctx context.Context, hc *http.Client, url string) (metrics, error) {
	body, err := httpGet(ctx, hc, url, map[string]string{"Accept-Encoding": "identity"})
	if err != nil {
		return nil, err
	}
	return parseMetrics(bytes.NewReader(body))
}

// apiserverMetrics scrapes kube-apiserver's own /metrics with the admin
// connection.
func apiserverMetrics(ctx context.Context, cfg *rest.Config) (metrics, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return getMetrics(ctx, hc, strings.TrimRight(cfg.Host, "/")+"/metrics")
}

func httpGet(ctx context.Context, hc *http.Client, url string, hdr map[string]string) ([]byte, error) {
	return httpDo(ctx, hc, http.MethodGet, url, hdr)
}

func httpDo(ctx context.Context, hc *http.Client, method, url string, hdr map[string]string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return body, nil
}

// simCalls returns the simulator's call counters: "METHOD ROUTE STATUS" → n.
func simCalls(ctx context.Context, hc *http.Client, base string) (map[string]int, error) {
	body, err := httpGet(ctx, hc, base+"/_sim/calls", nil)
	if err != nil {
		return nil, err
	}
	calls := map[string]int{}
	if err := json.Unmarshal(body, &calls); err != nil {
		return nil, fmt.Errorf("decoding /_sim/calls: %w", err)
	}
	return calls, nil
}

func resetSimCalls(ctx context.Context, hc *http.Client, base string) error {
	_, err := httpDo(ctx, hc, http.MethodDelete, base+"/_sim/calls", nil)
	return err
}

// callCounts groups simulator counters by "METHOD ROUTE", keeping the
// statuses apart only in the detail string.
type callCounts struct {
	byRoute map[string]int            // "GET /api/customers" → n
	detail  map[string]map[string]int // "GET /api/customers" → status → n
}

func groupCalls(calls map[string]int) callCounts {
	c := callCounts{byRoute: map[string]int{}, detail: map[string]map[string]int{}}
	for k, n := range calls {
		f := strings.Fields(k)
		if len(f) != 3 {
			continue
		}
		route := f[0] + " " + f[1]
		c.byRoute[route] += n
		if c.detail[route] == nil {
			c.detail[route] = map[string]int{}
		}
		c.detail[route][f[2]] += n
	}
	return c
}

func (c callCounts) total() int {
	n := 0
	for _, v := range c.byRoute {
		n += v
	}
	return n
}

// procStats is what /proc says of the manager.
type procStats struct {
	cpuSeconds float64 // utime + stime
	rssKiB     int64   // VmRSS
	hwmKiB     int64   // VmHWM: peak resident set size
}

func readProc(pid int) (procStats, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procStats{}, err
	}
	stat, err := p.Stat()
	if err != nil {
		return procStats{}, err
	}
	status, err := p.NewStatus()
	if err != nil {
		return procStats{}, err
	}
	//nolint:gosec // G115: a resident set in KiB is far below 2^63.
	return procStats{cpuSeconds: stat.CPUTime(), rssKiB: int64(status.VmRSS / 1024), hwmKiB: int64(status.VmHWM / 1024)}, nil
}

// writes counts API-server writes, by the manager's client (all
// resources) and by the API server (by resource, all clients).
type writes struct {
	client        float64 // manager: rest_client_requests_total, POST|PUT|PATCH|DELETE
	customers     float64 // server: PATCH|PUT|APPLY on customers (metadata)
	status        float64 // server: PATCH|PUT|APPLY on customers/status
	events        float64 // server: any write on events (core or events.k8s.io)
	customerPosts float64 // server: POST on customers (the benchmark's own creates)
}

func isWriteVerb(v string) bool {
	switch v {
	case "POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION", "CREATE", "UPDATE":
		return true
	}
	return false
}

func countWrites(mgr, apiserver metrics) writes {
	var w writes
	w.client = mgr.sum("rest_client_requests_total", func(l map[string]string) bool {
		return isWriteVerb(l["method"])
	})
	w.customers = apiserver.sum("apiserver_request_total", func(l map[string]string) bool {
		return l["resource"] == "customers" && l["subresource"] == "" && isWriteVerb(l["verb"]) && l["verb"] != "POST"
	})
	w.status = apiserver.sum("apiserver_request_total", func(l map[string]string) bool {
		return l["resource"] == "customers" && l["subresource"] == "status" && isWriteVerb(l["verb"])
	})
	w.events = apiserver.sum("apiserver_request_total", func(l map[string]string) bool {
		return l["resource"] == "events" && isWriteVerb(l["verb"])
	})
	w.customerPosts = apiserver.sum("apiserver_request_total", func(l map[string]string) bool {
		return l["resource"] == "customers" && l["subresource"] == "" && l["verb"] == "POST"
	})
	return w
}

func (w writes) minus(o writes) writes {
	return writes{
		client:        w.client - o.client,
		customers:     w.customers - o.customers,
		status:        w.status - o.status,
		events:        w.events - o.events,
		customerPosts: w.customerPosts - o.customerPosts,
	}
}

// scanLog counts the drift detector's failed listings and the error lines
// in the manager's log.
func scanLog(path string) (listFailures, errorLines int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "listing ScriptLock customers failed") {
			listFailures++
		}
		if strings.Contains(line, `"level":"error"`) || strings.Contains(line, "\tERROR\t") {
			errorLines++
		}
	}
	return listFailures, errorLines
}
