package main

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestMergeRunReplacesTheSameSectionAndOrdersByAccountThenN(t *testing.T) {
	runs := []runRecord{
		{Key: "n=1000", N: 1000, Date: "old"},
		{Key: "n=300,seed=200000", N: 300, SeedRecords: 200000},
		{Key: "n=50000", N: 50000},
	}
	got := mergeRun(runs, runRecord{Key: "n=1000", N: 1000, Date: "new"})
	got = mergeRun(got, runRecord{Key: "n=10000", N: 10000})
	var keys []string
	for _, r := range got {
		keys = append(keys, r.Key)
	}
	if want := []string{"n=1000", "n=10000", "n=50000", "n=300,seed=200000"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
	if got[0].Date != "new" {
		t.Errorf("the run of n=1000 was not replaced: %+v", got[0])
	}
	if len(runs) != 3 || runs[0].Date != "old" {
		t.Error("mergeRun changed its input")
	}
}

func TestRunsSurviveTheJSONFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.json")
	if runs, err := loadRuns(path); err != nil || runs != nil {
		t.Fatalf("a missing file: %v, %v; want no runs and no error", runs, err)
	}
	want := []runRecord{{Key: "n=1000", N: 1000, Modes: []modeRecord{{
		Mode: "list", AllReadySeconds: 12.5, PeakRSSBytes: 60 << 20,
		TopHolders: []holder{{Function: "f", Bytes: 1}},
		Restart:    &restartR{Listings: 1, Checked: true},
	}}}}
	if err := saveRuns(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadRuns(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded %+v, want %+v", got, want)
	}
}

func TestJSONPathAndSectionKey(t *testing.T) {
	if got := jsonPath("/r/docs/benchmarks.md"); got != "/r/docs/benchmarks.json" {
		t.Errorf("jsonPath = %s", got)
	}
	if got := sectionKey(300, 200000); got != "n=300,seed=200000" {
		t.Errorf("sectionKey = %s", got)
	}
	if got := sectionKey(1000, 0); got != "n=1000" {
		t.Errorf("sectionKey = %s", got)
	}
}

func TestThroughputGoalIsTheSlowerOfScriptLockAndTheAPIServer(t *testing.T) {
	for _, c := range []struct {
		name         string
		n            int
		qps, ceiling float64
		want         time.Duration
	}{
		{"ScriptLock's budget is the bound", 30000, 200, 400, 180 * time.Second}, // 1.2 × 150 s
		{"the API server is the bound", 30000, 200, 100, 360 * time.Second},      // 1.2 × 300 s
		{"no ceiling measured: ScriptLock alone", 1000, 100, 0, 12 * time.Second},
		{"no rate limit and no ceiling: no bound", 1000, 0, 0, 0},
	} {
		if got := throughputGoal(c.n, c.qps, c.ceiling); got != c.want {
			t.Errorf("%s: throughputGoal = %s, want %s", c.name, got, c.want)
		}
	}
}

func TestRatesAndFractionsOfNothingAreZero(t *testing.T) {
	if perSecond(10, 0) != 0 || fraction(3, 0) != 0 {
		t.Error("a rate over no time or a fraction of 0 is not 0")
	}
	if got := perSecond(300, 2*time.Second); got != 150 {
		t.Errorf("perSecond = %v", got)
	}
	if got := fraction(1, 4); got != 0.25 {
		t.Errorf("fraction = %v", got)
	}
}

func TestMemoryLimitIsReadFromLimitsNotRequests(t *testing.T) {
	deployment := func(resources string) string {
		return `apiVersion: v1
kind: Namespace
metadata:
  name: system
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: controller-manager
spec:
  template:
    spec:
      containers:
      - name: sidecar
        resources:
          limits:
            memory: 8Gi
      - name: manager
        resources:
` + resources
	}
	for _, c := range []struct {
		name     string
		manifest string
		want     int64
	}{
		{"requests and limits", deployment(`          requests:
            cpu: 50m
            memory: 64Mi
          limits:
            cpu: 500m
            memory: 256Mi
`), 256 << 20},
		{"quoted, limits first", deployment(`          limits:
            memory: "1Gi"
          requests:
            memory: 64Mi
`), 1 << 30},
		{"a memory request without a memory limit", deployment(`          limits:
            cpu: 500m
          requests:
            memory: 64Mi
`), 0},
		{"no Deployment", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n", 0},
	} {
		got, err := memoryLimitOf(c.manifest)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if _, err := memoryLimitOf(deployment("          limits:\n            memory: lots\n")); err == nil {
		t.Error("a limit that is no quantity was accepted")
	}
	if got, err := deploymentMemoryLimit("../.."); err != nil || got <= 0 {
		t.Errorf("config/manager's memory limit: %d, %v; want the shipped limit", got, err)
	}
}
