package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// The JSON file beside the report (docs/benchmarks.json beside
// docs/benchmarks.md) keeps the numbers of every section, one run per N
// (and per seeded account size), so that the charts across N can be drawn
// from all runs, including those of earlier invocations with -append.

// benchFile is the JSON file.
type benchFile struct {
	Note string      `json:"note"`
	Runs []runRecord `json:"runs"`
}

const benchFileNote = "Written by test/bench (make bench): the numbers of each section of the report beside it, by section key. " +
	"Durations in seconds, memory in bytes, rates per second."

// runRecord is one section of the report: one invocation's N, all modes.
type runRecord struct {
	Key                   string       `json:"key"` // the section's key, e.g. "n=1000" or "n=300,seed=200000"
	N                     int          `json:"n"`
	SeedRecords           int          `json:"seedRecords"` // records of the account no Customer manages
	Date                  string       `json:"date"`        // UTC, YYYY-MM-DD
	Machine               string       `json:"machine"`
	SimLatencySeconds     float64      `json:"simLatencySeconds"`
	ResyncSeconds         float64      `json:"resyncSeconds"`
	Workers               int          `json:"maxConcurrentReconciles"`
	QPS                   float64      `json:"scriptlockQPS"`
	Burst                 int          `json:"scriptlockBurst"`
	GOMEMLIMIT            string       `json:"gomemlimit"`            // -memlimit
	MemoryLimitFlag       string       `json:"memoryLimitFlag"`       // -memory-limit
	GoMemLimitBytes       float64      `json:"goMemLimitBytes"`       // the manager's go_gc_gomemlimit_bytes
	DeploymentMemoryLimit int64        `json:"deploymentMemoryLimit"` // config/manager's limit at the time of the run
	Modes                 []modeRecord `json:"modes"`
}

// modeRecord is what one mode of a run measured.
type modeRecord struct {
	Mode string `json:"mode"`

	CeilingCustomersPerSecond     float64 `json:"ceilingCustomersPerSecond"` // create + status patch; 0: not measured
	CeilingStatusPatchesPerSecond float64 `json:"ceilingStatusPatchesPerSecond"`
	CreatesAnsweredSeconds        float64 `json:"createsAnsweredSeconds"`
	AllReadySeconds               float64 `json:"allReadySeconds"`
	ThroughputGoalSeconds         float64 `json:"throughputGoalSeconds"`                   // 1.2 × max(N/qps, N/ceiling)
	CeilingContractPerSecond      float64 `json:"ceilingContractPerSecond,omitempty"`      // create + metadata, status and Event writes; 0: not measured
	ThroughputGoalContractSeconds float64 `json:"throughputGoalContractSeconds,omitempty"` // 1.2 × max(N/qps, N/that ceiling)
	WritesPerCustomer             float64 `json:"writesPerCustomer"`                       // manager's client, Events included
	EventsPerCustomer             float64 `json:"eventsPerCustomer"`
	CreateScriptLockCalls         int     `json:"createScriptLockCalls"`
	CreateListings                int     `json:"createListings"`

	IdleCallsPerPeriod    float64 `json:"idleCallsPerPeriod"`
	IdleListingsPerPeriod float64 `json:"idleListingsPerPeriod"`
	IdleWrites            float64 `json:"idleWrites"`

	PeakRSSBytes   int64     `json:"peakRSSBytes"`   // highest VmHWM of the run's manager processes
	LiveHeapBytes  int64     `json:"liveHeapBytes"`  // heap profile inuse_space at the end of the create phase
	HeapInuseBytes float64   `json:"heapInuseBytes"` // go_memstats_heap_inuse_bytes then
	TopHolders     []holder  `json:"topHolders"`     // cumulative, at the end of the create phase
	ListingBytes   int       `json:"listingBytes"`
	Restart        *restartR `json:"restart,omitempty"`
}

// restartR is the restart phase of a modeRecord.
type restartR struct {
	CheckedSeconds float64 `json:"checkedSeconds"` // new process's start until every Customer was checked
	Checked        bool    `json:"checked"`
	Listings       int     `json:"listings"`
	OtherCalls     int     `json:"otherCalls"`
	Writes         float64 `json:"writes"` // the new manager's client
	PeakRSSBytes   int64   `json:"peakRSSBytes"`
	LiveHeapBytes  int64   `json:"liveHeapBytes"`
}

// sectionKey names a run's section in the report and its entry in the
// JSON file.
func sectionKey(n, seedRecords int) string {
	if seedRecords > 0 {
		return fmt.Sprintf("n=%d,seed=%d", n, seedRecords)
	}
	return fmt.Sprintf("n=%d", n)
}

// jsonPath is the JSON file beside the report.
func jsonPath(report string) string {
	return strings.TrimSuffix(report, filepath.Ext(report)) + ".json"
}

// loadRuns reads the JSON file; a missing file is no runs.
func loadRuns(path string) ([]runRecord, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f benchFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f.Runs, nil
}

func saveRuns(path string, runs []runRecord) error {
	b, err := json.MarshalIndent(benchFile{Note: benchFileNote, Runs: runs}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// mergeRun puts rec in place of the run with the same key, or adds it, and
// orders the runs by account size, then N.
func mergeRun(runs []runRecord, rec runRecord) []runRecord {
	out := make([]runRecord, 0, len(runs)+1)
	for _, r := range runs {
		if r.Key != rec.Key {
			out = append(out, r)
		}
	}
	out = append(out, rec)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].SeedRecords != out[j].SeedRecords {
			return out[i].SeedRecords < out[j].SeedRecords
		}
		return out[i].N < out[j].N
	})
	return out
}

// throughputGoal is the documented bound on the time until all n Customers are
// Ready: 1.2 × the larger of n/qps (ScriptLock's budget at --scriptlock-qps)
// and n/ceiling (what the API server absorbs, in Customers a second; 0
// when not measured, which leaves ScriptLock's budget alone).
func throughputGoal(n int, qps, ceilingPerSec float64) time.Duration {
	var bound float64
	if qps > 0 {
		bound = float64(n) / qps
	}
	if ceilingPerSec > 0 {
		bound = max(bound, float64(n)/ceilingPerSec)
	}
	return time.Duration(1.2 * bound * float64(time.Second))
}

// perSecond is n over d, 0 for no time.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// fraction is a / b, 0 when b is 0.
func fraction(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// deploymentMemoryLimit reads the manager container's memory limit from
// config/manager/manager.yaml. 0 when there is none.
func deploymentMemoryLimit(root string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(root, "config", "manager", "manager.yaml"))
	if err != nil {
		return 0, err
	}
	return memoryLimitOf(string(b))
}

// memoryLimitOf is the memory limit of the container named manager of the
// Deployment in manifest (YAML documents), in bytes.
func memoryLimitOf(manifest string) (int64, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var d appsv1.Deployment
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return 0, nil
		} else if err != nil {
			return 0, fmt.Errorf("the manager's memory limit: %w", err)
		}
		if d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "manager" {
				return c.Resources.Limits.Memory().Value(), nil
			}
		}
	}
}
