package main

import (
	"bytes"
	"strings"
	"testing"
)

// editedReport is a report as make bench writes it, with prose someone
// added between its blocks.
const editedReport = `# Benchmarks

Intro written by the tool.

> **Measured before the ownership rule**: prose someone wrote.

<!-- bench:method -->
old method text.
<!-- /bench:method -->

<!-- bench:across -->
old across text.
<!-- /bench:across -->

## What the numbers say (as of the runs below)

- prose about the numbers.

<!-- bench:n=1000 -->
## 1,000 Customers

old 1,000 section
<!-- /bench:n=1000 -->

<!-- bench:n=10000 -->
## 10,000 Customers

old 10,000 section
<!-- /bench:n=10000 -->
`

func TestAssembleStartsANewReportWithEveryBlock(t *testing.T) {
	doc := assemble("", "METHOD\n", "ACROSS\n", "n=300", "SECTION\n")
	for _, want := range []string{
		reportIntro,
		"<!-- bench:method -->\nMETHOD\n<!-- /bench:method -->\n",
		"<!-- bench:across -->\nACROSS\n<!-- /bench:across -->\n",
		"<!-- bench:n=300 -->\nSECTION\n<!-- /bench:n=300 -->\n",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the new report lacks %q:\n%s", want, doc)
		}
	}
}

func TestAssembleAddsANewSectionAndKeepsTheProse(t *testing.T) {
	doc := assemble(editedReport, "METHOD\n", "ACROSS\n", "n=50000", "NEW 50,000\n")
	for _, want := range []string{
		"> **Measured before the ownership rule**: prose someone wrote.",
		"## What the numbers say (as of the runs below)\n\n- prose about the numbers.",
		"old 1,000 section", "old 10,000 section",
		"<!-- bench:method -->\nMETHOD\n<!-- /bench:method -->\n\n<!-- bench:across -->\nACROSS\n<!-- /bench:across -->\n\n## What the numbers say",
		"<!-- /bench:n=10000 -->\n\n<!-- bench:n=50000 -->\nNEW 50,000\n<!-- /bench:n=50000 -->\n",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the report lacks %q:\n%s", want, doc)
		}
	}
	if strings.Contains(doc, "old method text") || strings.Contains(doc, "old across text") {
		t.Errorf("the old method or across text is still there:\n%s", doc)
	}
}

func TestAssembleReplacesOnlyItsOwnBlocksOnTheNextRun(t *testing.T) {
	first := assemble(editedReport, "METHOD 1\n", "ACROSS 1\n", "n=1000", "NEW 1,000\n")
	// Someone edits the prose between runs.
	edited := strings.Replace(first, "- prose about the numbers.", "- prose rewritten by hand.", 1)
	second := assemble(edited, "METHOD 2\n", "ACROSS 2\n", "n=1000", "NEWER 1,000\n")
	for _, want := range []string{"METHOD 2", "ACROSS 2", "NEWER 1,000", "- prose rewritten by hand.", "old 10,000 section"} {
		if !strings.Contains(second, want) {
			t.Errorf("the second run lost %q:\n%s", want, second)
		}
	}
	for _, gone := range []string{"METHOD 1", "ACROSS 1", "NEW 1,000\n", "old 1,000 section"} {
		if strings.Contains(second, gone) {
			t.Errorf("the second run kept %q:\n%s", gone, second)
		}
	}
	if strings.Count(second, "<!-- bench:n=1000 -->") != 1 || strings.Count(second, "<!-- bench:method -->") != 1 {
		t.Errorf("a block appears twice:\n%s", second)
	}
	// Running again with the same content changes nothing.
	if third := assemble(second, "METHOD 2\n", "ACROSS 2\n", "n=1000", "NEWER 1,000\n"); third != second {
		t.Errorf("assemble is not idempotent:\n%s\n---\n%s", second, third)
	}
}

func TestReproduceLeavesOutWhatMakeBenchAdds(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "make bench"},
		{[]string{"-root", "/work/main", "-skip-build"}, "make bench"},
		{[]string{"-root=/x", "-n", "1000", "-append"}, `make bench BENCH_ARGS="-n 1000 -append"`},
		{[]string{"-memlimit", "230MiB", "-out", "docs/a b.md"}, `make bench BENCH_ARGS="-memlimit 230MiB -out 'docs/a b.md'"`},
	} {
		if got := reproduce(c.args); got != c.want {
			t.Errorf("reproduce(%q) = %s, want %s", c.args, got, c.want)
		}
	}
}

func TestGrowthIsTheSlopeBetweenTheSmallestAndLargestN(t *testing.T) {
	runs := []runRecord{
		{N: 1000, Modes: []modeRecord{{Mode: "list", PeakRSSBytes: 60 << 20, LiveHeapBytes: 10 << 20}}},
		{N: 5000, Modes: []modeRecord{{Mode: "list", PeakRSSBytes: 99 << 20}}},
		{N: 11000, Modes: []modeRecord{{Mode: "list", PeakRSSBytes: 160 << 20, LiveHeapBytes: 60 << 20}}},
		{N: 300, SeedRecords: 200000, Modes: []modeRecord{{Mode: "list", PeakRSSBytes: 900 << 20}}},
		{N: 1000, Modes: []modeRecord{{Mode: "per-object", PeakRSSBytes: 60 << 20}}},
	}
	got := growth(runs)
	want := []string{"list, from N=1,000 to N=11,000: peak RSS grows by 10.5 KB and the live heap by 5.2 KB per added Customer."}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("growth = %q, want %q (one N of per-object is no slope; a big account is left out)", got, want)
	}
}

func TestSmallHelpers(t *testing.T) {
	if got := thousands(1234567); got != "1,234,567" {
		t.Errorf("thousands = %s", got)
	}
	if got := thousands(999); got != "999" {
		t.Errorf("thousands = %s", got)
	}
	for _, c := range []struct {
		a, b float64
		want string
	}{{0, 0, "="}, {1, 0, "∞"}, {3, 2, "1.50×"}} {
		if got := ratio(c.a, c.b); got != c.want {
			t.Errorf("ratio(%v, %v) = %s, want %s", c.a, c.b, got, c.want)
		}
	}
	if got := sectionTitle(300, 200000); got != "300 Customers, account of 200,000 other records" {
		t.Errorf("sectionTitle = %s", got)
	}
}

// A run told of a smaller memory limit than the Deployment's is judged by
// that limit too: 298 MiB fits 384 Mi but not the 256 Mi the run was given.
func TestAPeakOverTheRunsMemoryLimitIsNotMet(t *testing.T) {
	r := &result{mode: "list", hwmKiB: 298 << 10}
	find := func(lines []string, part string) string {
		for _, l := range lines {
			if strings.Contains(l, part) {
				return l
			}
		}
		return ""
	}
	got := checks(params{n: 50000, qps: 200, memoryLimit: "256Mi"}, []*result{r}, 384<<20)
	if l := find(got, "the Deployment's limit"); !strings.Contains(l, "**met**") {
		t.Errorf("against the Deployment's 384 MiB: %q, want met", l)
	}
	if l := find(got, "the run's `MEMORY_LIMIT`"); !strings.Contains(l, "298 MiB of 256 MiB") || !strings.Contains(l, "**NOT met**") {
		t.Errorf("against the run's 256 Mi: %q, want NOT met", l)
	}
	got = checks(params{n: 50000, qps: 200, memoryLimit: "deployment"}, []*result{r}, 384<<20)
	if l := find(got, "the run's `MEMORY_LIMIT`"); l != "" {
		t.Errorf("a run with the Deployment's limit is judged once: %q", l)
	}
}

// The create phase's reconciles by result and waits by kind come from the
// manager's /metrics page, a row per value any mode has ("–" never: a
// value one mode lacks counts 0 there), after a row of their total.
func TestWaitsAreReportedByKindFromTheManagersMetrics(t *testing.T) {
	page := `# TYPE scriptlock_waits_total counter
scriptlock_waits_total{wait="listing"} 81862
scriptlock_waits_total{wait="in_flight"} 16036
# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="customer",result="success"} 100
controller_runtime_reconcile_total{controller="customer",result="requeue_after"} 40
controller_runtime_reconcile_total{controller="other",result="success"} 7
`
	m, err := parseMetrics(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	list := &result{mode: "list", createWaits: m.byLabel("scriptlock_waits_total", "wait", nil),
		createReconciles: m.byLabel("controller_runtime_reconcile_total", "result", isCustomerController)}
	perObject := &result{mode: "per-object", createWaits: map[string]float64{"rate": 3}}
	var b bytes.Buffer
	tb := newTable(&b, []*result{list, perObject})
	labelRows(tb, tb.results, "reconciles", "result", func(r *result) map[string]float64 { return r.createReconciles })
	labelRows(tb, tb.results, "waits", "wait", func(r *result) map[string]float64 { return r.createWaits })
	for _, want := range []string{
		"| reconciles | 140 | 0 |", "| … result=requeue_after | 40 | 0 |", "| … result=success | 100 | 0 |",
		"| waits | 97898 | 3 |", "| … wait=in_flight | 16036 | 0 |", "| … wait=listing | 81862 | 0 |", "| … wait=rate | 0 | 3 |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no row %q in\n%s", want, b.String())
		}
	}
}
