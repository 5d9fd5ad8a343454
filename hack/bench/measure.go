package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

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

// parseMetrics reads the Prometheus text format: enough of it for counters
// and gauges (no timestamps, which neither endpoint sends).
func parseMetrics(r io.Reader) (metrics, error) {
	var out metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s := series{labels: map[string]string{}}
		var rest string
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			s.name = line[:i]
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("malformed metric line %q", line)
			}
			if err := parseLabels(line[i+1:j], s.labels); err != nil {
				return nil, fmt.Errorf("%w in %q", err, line)
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			s.name, rest = f[0], f[1]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseLabels(s string, into map[string]string) error {
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return fmt.Errorf("malformed labels")
		}
		key := strings.TrimSpace(s[:eq])
		var val strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			val.WriteByte(s[i])
		}
		into[key] = val.String()
		s = strings.TrimLeft(s[min(i+1, len(s)):], ", ")
	}
	return nil
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

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports (the kernel ABI fixes it;
// sysconf(_SC_CLK_TCK) would need cgo).
const clkTck = 100

func readProc(pid int) (procStats, error) {
	var ps procStats
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	// The command name may hold spaces; the fields after it do not.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return ps, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseFloat(f[11], 64) // field 14
	stime, _ := strconv.ParseFloat(f[12], 64) // field 15
	ps.cpuSeconds = (utime + stime) / clkTck
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			ps.rssKiB = n
		case "VmHWM":
			ps.hwmKiB = n
		}
	}
	return ps, nil
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
