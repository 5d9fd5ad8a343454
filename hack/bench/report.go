package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

const reportHeader = `# Benchmarks

What the operator costs as the number of Customers grows, in its two drift
detection modes: ` + "`--drift-detection=list`" + ` (the default: one listing
per ScriptLock account per resync period) and ` + "`per-object`" + ` (one read
per Customer per resync period). ` + "`make bench`" + ` (hack/bench) produces
this file; each section below is one N and is replaced when the benchmark is
run again with ` + "`-append`" + `.

How it is measured, for each mode on a fresh control plane:

- **Setup.** etcd and kube-apiserver on loopback (envtest, binaries built by
  ` + "`make controlplane`" + `), the ScriptLock simulator (` + "`bin/scriptlock-sim`" + `)
  with a fixed latency on every answer, and the manager (` + "`bin/manager`" + `) as
  its own process with the flags shown. All three share the machine's CPUs
  with the benchmark itself.
- **Create phase.** N Customers are created through the API server by a pool
  of goroutines. Readiness is followed with a watch (an informer), not by
  polling, and sampled every 500 ms for the chart. The phase ends when every
  Customer is Ready *and* the manager's work queue is empty
  (` + "`workqueue_depth`" + ` and ` + "`controller_runtime_active_workers`" + ` at 0 on two
  scrapes a second apart), so that the reconciles the last writes trigger
  are counted here, or after a minute if it never empties (per-object
  resyncs of the first Customers start one resync period after they were
  Ready, so with many Customers they fall in this phase too).
- **Idle phase.** Nothing changes for a few resync periods.
- **ScriptLock calls** are the simulator's own counters (` + "`GET /_sim/calls`" + `),
  reset between the phases, by method and route.
- **API-server writes** are the manager's client-go counter
  ` + "`rest_client_requests_total{method=~\"POST|PUT|PATCH|DELETE\"}`" + ` scraped from
  its ` + "`/metrics`" + ` before and after each phase: every write it sends, Events
  included. The split by resource comes from kube-apiserver's own
  ` + "`apiserver_request_total{resource,subresource,verb}`" + `, where the
  benchmark's creates are the only POSTs on ` + "`customers`" + ` and are left out.
- **Manager CPU and memory** come from ` + "`/proc/PID/stat`" + ` (utime + stime, in
  USER_HZ = 100 ticks a second) and ` + "`/proc/PID/status`" + ` (VmHWM, the peak
  resident set, read at the end).
`

// writeReport writes (or, with -append, updates) the Markdown report and
// draws the chart beside it.
func writeReport(path string, p params, results []*result) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	chart := fmt.Sprintf("benchmarks-ready-%d.png", p.n)
	var lines []line
	for i, r := range results {
		lines = append(lines, line{label: "--drift-detection=" + r.mode, color: lineColors[i%len(lineColors)], samples: r.samples})
	}
	title := fmt.Sprintf("Ready Customers over time, N=%s", thousands(p.n))
	if err := drawChart(filepath.Join(filepath.Dir(path), chart), title, p.n, lines); err != nil {
		return err
	}

	section := renderSection(p, results, chart)
	begin, end := fmt.Sprintf("<!-- bench:n=%d -->", p.n), fmt.Sprintf("<!-- /bench:n=%d -->", p.n)
	block := begin + "\n" + section + end + "\n"

	var doc string
	old, err := os.ReadFile(path)
	switch {
	case p.appendTo && err == nil:
		doc = string(old)
		if i := strings.Index(doc, begin); i >= 0 {
			if j := strings.Index(doc[i:], end); j >= 0 {
				tail := strings.TrimPrefix(doc[i+j+len(end):], "\n")
				doc = doc[:i] + block + tail
				break
			}
		}
		doc = strings.TrimRight(doc, "\n") + "\n\n" + block
	case p.appendTo && !os.IsNotExist(err):
		return err
	default:
		doc = reportHeader + "\n" + block
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

func renderSection(p params, results []*result, chart string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "## %s Customers\n\n", thousands(p.n))
	fmt.Fprintf(&b, "Run on %s: %s.\n\n", time.Now().UTC().Format("2006-01-02"), machine())
	fmt.Fprintf(&b, "Parameters: N = %s Customers created by %d goroutines; simulator latency %s on every answer; "+
		"manager `--resync-period=%s --max-concurrent-reconciles=%d --scriptlock-qps=%g --scriptlock-burst=%d`; "+
		"idle phase %d resync periods.\n\n", thousands(p.n), p.createWorkers, p.latency, p.resync, p.workers, p.qps, p.burst, p.idlePeriods)
	fmt.Fprintf(&b, "Reproduce: `%s`\n\n", reproduce())

	two := len(results) == 2
	b.WriteString("| |")
	sep := "|---|"
	for _, r := range results {
		fmt.Fprintf(&b, " %s |", r.mode)
		sep += "--:|"
	}
	if two {
		fmt.Fprintf(&b, " %s ÷ %s |", results[1].mode, results[0].mode)
		sep += "--:|"
	}
	b.WriteString("\n" + sep + "\n")
	row := func(name string, val func(*result) float64, format func(float64) string) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, r := range results {
			fmt.Fprintf(&b, " %s |", format(val(r)))
		}
		if two {
			fmt.Fprintf(&b, " %s |", ratio(val(results[1]), val(results[0])))
		}
		b.WriteString("\n")
	}
	heading := func(name string) {
		fmt.Fprintf(&b, "| **%s** |%s\n", name, strings.Repeat(" |", len(results)+map[bool]int{true: 1}[two]))
	}
	secs := func(v float64) string { return fmt.Sprintf("%.1f s", v) }
	count := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	perN := func(v float64) string { return fmt.Sprintf("%.2f", v) }

	heading("Create phase")
	row("creates answered by the API server", func(r *result) float64 { return r.created.Seconds() }, secs)
	row("time until all Ready", func(r *result) float64 { return r.allReady.Seconds() }, secs)
	row("Customers Ready per second", func(r *result) float64 { return float64(p.n) / r.allReady.Seconds() }, func(v float64) string { return fmt.Sprintf("%.0f", v) })
	for _, route := range routes(results, func(r *result) callCounts { return r.createCalls }) {
		row("ScriptLock `"+route+"`", func(r *result) float64 { return float64(r.createCalls.byRoute[route]) }, count)
	}
	row("ScriptLock calls, total", func(r *result) float64 { return float64(r.createCalls.total()) }, count)
	row("API-server writes per Customer (manager's client)", func(r *result) float64 { return r.createWrites.client / float64(p.n) }, perN)
	row("… Customer metadata patches per Customer", func(r *result) float64 { return r.createWrites.customers / float64(p.n) }, perN)
	row("… Customer status patches per Customer", func(r *result) float64 { return r.createWrites.status / float64(p.n) }, perN)
	row("… Event writes per Customer", func(r *result) float64 { return r.createWrites.events / float64(p.n) }, perN)
	row("manager CPU", func(r *result) float64 { return r.createCPU }, secs)
	row("work queue depth when the phase ended", func(r *result) float64 { return r.queueAfterCreate }, count)

	heading(fmt.Sprintf("Idle phase (%d × %s)", p.idlePeriods, p.resync))
	for _, route := range routes(results, func(r *result) callCounts { return r.idleCalls }) {
		row("ScriptLock `"+route+"`", func(r *result) float64 { return float64(r.idleCalls.byRoute[route]) }, count)
	}
	row("ScriptLock calls, total", func(r *result) float64 { return float64(r.idleCalls.total()) }, count)
	row("ScriptLock calls per resync period", func(r *result) float64 { return perPeriod(r, p, r.idleCalls.total()) }, func(v float64) string { return fmt.Sprintf("%.1f", v) })
	row("API-server writes (manager's client)", func(r *result) float64 { return r.idleWrites.client }, count)
	row("Customers that left Ready", func(r *result) float64 { return float64(r.readyDropsDuringIdle) }, count)
	row("manager CPU", func(r *result) float64 { return r.idleCPU }, secs)
	row("work queue depth when the phase ended", func(r *result) float64 { return r.queueAfterIdle }, count)

	heading("Manager, whole run")
	row("peak RSS (VmHWM)", func(r *result) float64 { return float64(r.peakRSSKiB) / 1024 }, func(v float64) string { return fmt.Sprintf("%.0f MiB", v) })
	row("CPU, create + idle", func(r *result) float64 { return r.createCPU + r.idleCPU }, secs)
	row("failed drift listings (manager log)", func(r *result) float64 { return float64(r.listFailures) }, count)
	row("error lines in the manager log", func(r *result) float64 { return float64(r.logErrors) }, count)
	row("size of one listing of the account", func(r *result) float64 { return float64(r.listingBytes) / 1024 }, func(v float64) string { return fmt.Sprintf("%.0f KiB", v) })

	fmt.Fprintf(&b, "\n![Ready Customers over time, N=%s:", thousands(p.n))
	for i, r := range results {
		fmt.Fprintf(&b, " %s %s", r.mode, colorName(i))
		if i < len(results)-1 {
			b.WriteString(",")
		}
	}
	fmt.Fprintf(&b, "](%s)\n\n", chart)
	fmt.Fprintf(&b, "*Ready Customers (y) against seconds since the first create (x), N=%s:", thousands(p.n))
	for i, r := range results {
		fmt.Fprintf(&b, " `%s` in %s", r.mode, colorName(i))
		if i < len(results)-1 {
			b.WriteString(",")
		}
	}
	b.WriteString("; the dashed line is N.*\n\n")

	b.WriteString("Checks against the issue's expectations (\"Scale: drift detection at one call per account\"):\n\n")
	for _, c := range checks(p, results) {
		fmt.Fprintf(&b, "- %s\n", c)
	}
	b.WriteString("\n")
	return b.String()
}

// checks compares the numbers with what the issue expects, in plain words.
func checks(p params, results []*result) []string {
	verdict := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**NOT met**"
	}
	var out []string
	for _, r := range results {
		out = append(out, fmt.Sprintf("%s: idle-phase API-server writes = 0: %.0f writes; %s.",
			r.mode, r.idleWrites.client, verdict(r.idleWrites.client == 0)))
		if r.mode != "list" {
			out = append(out, fmt.Sprintf("%s (observation, not an expectation): %.0f reconciles were still queued when the idle phase ended "+
				"(0 means the manager keeps up with its resyncs).", r.mode, r.queueAfterIdle))
			continue
		}
		lists := r.idleCalls.byRoute["GET /api/customers"]
		per := perPeriod(r, p, lists)
		others := r.idleCalls.total() - lists
		// Each sweep waits the period plus up to 10% jitter after the last.
		low := float64(p.idlePeriods) / 1.1
		out = append(out, fmt.Sprintf("list: idle phase = one `GET /api/customers` per account per resync period: "+
			"%d listings in %s (%.2f per period; %d other calls); %s.",
			lists, r.idle.Round(time.Second), per, others,
			verdict(others == 0 && float64(lists) >= low-1 && lists <= p.idlePeriods+1)))
		if r.listFailures > 0 {
			out = append(out, fmt.Sprintf("list: every drift listing succeeded: %d listings failed in the manager "+
				"(a listing of this account is %d KiB; the ScriptLock client refuses answers over 1 MiB); **NOT met**: "+
				"drift detection is blind at this N.", r.listFailures, r.listingBytes/1024))
		} else {
			out = append(out, "list: every drift listing succeeded: no failure in the manager log; **met**.")
		}
		posts := r.createCalls.byRoute["POST /api/customer"]
		perObject := 0
		for route, n := range r.createCalls.byRoute {
			if route != "POST /api/customer" && route != "GET /api/customers" {
				perObject += n
			}
		}
		out = append(out, fmt.Sprintf("list: create phase = exactly N POSTs and no other per-object call: %d POSTs for N=%d, "+
			"%d other per-object calls, %d listings; %s.", posts, p.n, perObject,
			r.createCalls.byRoute["GET /api/customers"], verdict(posts == p.n && perObject == 0)))
	}
	return out
}

func perPeriod(r *result, p params, calls int) float64 {
	if r.idle <= 0 {
		return 0
	}
	return float64(calls) * p.resync.Seconds() / r.idle.Seconds()
}

// routes returns every "METHOD ROUTE" seen in any result, POSTs first.
func routes(results []*result, of func(*result) callCounts) []string {
	seen := map[string]bool{}
	for _, r := range results {
		for k := range of(r).byRoute {
			seen[k] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		mi, mj := strings.HasPrefix(out[i], "POST"), strings.HasPrefix(out[j], "POST")
		if mi != mj {
			return mi
		}
		return out[i] < out[j]
	})
	return out
}

func ratio(a, b float64) string {
	switch {
	case b == 0 && a == 0:
		return "="
	case b == 0:
		return "∞"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func colorName(i int) string {
	return []string{"blue", "orange", "green", "red"}[i%4]
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// reproduce is the command line of this run, as a make invocation.
func reproduce() string {
	args := os.Args[1:]
	if len(args) == 0 {
		return "make bench"
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \"'$") {
			a = "'" + a + "'"
		}
		quoted[i] = a
	}
	return fmt.Sprintf(`make bench BENCH_ARGS="%s"`, strings.Join(quoted, " "))
}

// machine describes the computer: CPUs, memory, kernel and Go.
func machine() string {
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				var kib int64
				if _, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:")), "%d", &kib); err == nil {
					mem = fmt.Sprintf("%.1f GiB memory", float64(kib)/(1<<20))
				}
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	parts := []string{fmt.Sprintf("%d CPUs", runtime.NumCPU())}
	if cpu != "" {
		parts[0] += " (" + cpu + ")"
	}
	for _, s := range []string{mem, kernel, runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}
