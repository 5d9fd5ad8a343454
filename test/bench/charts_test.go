package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func isPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("%s is not a PNG", path)
	}
}

func TestChartsAreDrawnFromTheRuns(t *testing.T) {
	dir := t.TempDir()
	curves := []readyCurve{
		{mode: "list", goal: 180, samples: []sample{{0, 0}, {time.Minute, 5000}, {219 * time.Second, 10000}}},
		{mode: "per-object", samples: []sample{{0, 0}, {190 * time.Second, 10000}}},
	}
	if err := drawReadyChart(filepath.Join(dir, "ready.png"), "Ready", 10000, curves); err != nil {
		t.Fatal(err)
	}
	isPNG(t, filepath.Join(dir, "ready.png"))

	runs := []runRecord{
		{N: 1000, DeploymentMemoryLimit: 256 << 20, Modes: []modeRecord{
			{Mode: "list", PeakRSSBytes: 55 << 20, LiveHeapBytes: 20 << 20, IdleCallsPerPeriod: 1},
			{Mode: "per-object", PeakRSSBytes: 56 << 20, IdleCallsPerPeriod: 998},
		}},
		{N: 10000, DeploymentMemoryLimit: 256 << 20, Modes: []modeRecord{
			{Mode: "list", PeakRSSBytes: 189 << 20, LiveHeapBytes: 90 << 20, IdleCallsPerPeriod: 1.3},
		}},
	}
	for name, draw := range map[string]func(string, []runRecord) (bool, error){
		"memory.png": drawMemoryChart, "calls.png": drawCallsChart,
	} {
		drawn, err := draw(filepath.Join(dir, name), runs)
		if err != nil || !drawn {
			t.Fatalf("%s: drawn %v, %v", name, drawn, err)
		}
		isPNG(t, filepath.Join(dir, name))
	}
}

func TestChartsAcrossNNeedRunsWithoutABigAccount(t *testing.T) {
	runs := []runRecord{{N: 300, SeedRecords: 200000, Modes: []modeRecord{{Mode: "list", PeakRSSBytes: 1, IdleCallsPerPeriod: 1}}}}
	path := filepath.Join(t.TempDir(), "memory.png")
	if drawn, err := drawMemoryChart(path, runs); err != nil || drawn {
		t.Errorf("drawn %v, %v; want nothing drawn", drawn, err)
	}
	if drawn, err := drawCallsChart(path, runs); err != nil || drawn {
		t.Errorf("drawn %v, %v; want nothing drawn", drawn, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a chart of nothing was written: %v", err)
	}
}
