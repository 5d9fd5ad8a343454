package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/google/pprof/profile"

	"github.com/scriptlock/customer-operator/hack/localenv"
)

// operatorModule prefixes the operator's own functions in a profile.
const operatorModule = "github.com/scriptlock/customer-operator"

// memory is the manager's memory at one moment.
type memory struct {
	rssKiB, hwmKiB int64 // /proc/PID/status VmRSS and VmHWM (peak resident set since the process started), KiB

	// heapInuse and heapAlloc are go_memstats_heap_inuse_bytes and
	// go_memstats_heap_alloc_bytes from the manager's /metrics, read right
	// after the profile's forced GC: live objects plus the free space of
	// the spans holding them (inuse), and live objects alone (alloc).
	heapInuse, heapAlloc float64

	// profileInuse is the sum of inuse_space of the heap profile taken
	// with ?gc=1: the live heap as pprof estimates it from its samples
	// (one every 512 KiB allocated), in bytes.
	profileInuse int64
	profilePath  string   // where the profile was saved
	flat, cum    []holder // top holders of the live heap
	components   []holder // the live heap by component (heapComponents)
}

// holder is a function and the live heap it accounts for, in bytes.
type holder struct {
	Function string `json:"function"`
	Bytes    int64  `json:"bytes"`
}

// heapTopN is how many holders the report lists.
const heapTopN = 12

// takeMemory fetches a heap profile (the endpoint runs a GC first), saves
// it to path, reads the memstats gauges and /proc.
func takeMemory(ctx context.Context, hc *http.Client, m *localenv.Manager, path string) (memory, error) {
	var mem memory
	raw, err := httpGet(ctx, hc, m.PprofURL+"/heap?gc=1", nil)
	if err != nil {
		return mem, fmt.Errorf("heap profile: %w", err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return mem, err
	}
	mem.profilePath = path
	p, err := profile.Parse(bytes.NewReader(raw))
	if err != nil {
		return mem, fmt.Errorf("parsing the heap profile: %w", err)
	}
	mem.profileInuse, mem.flat, mem.cum, err = heapHolders(p, heapTopN)
	if err != nil {
		return mem, err
	}
	if mem.components, err = heapByComponent(p); err != nil {
		return mem, err
	}
	met, err := getMetrics(ctx, hc, m.MetricsURL)
	if err != nil {
		return mem, err
	}
	mem.heapInuse = met.sum("go_memstats_heap_inuse_bytes", nil)
	mem.heapAlloc = met.sum("go_memstats_heap_alloc_bytes", nil)
	ps, err := readProc(m.PID())
	if err != nil {
		return mem, err
	}
	mem.rssKiB, mem.hwmKiB = ps.rssKiB, ps.hwmKiB
	return mem, nil
}

// heapHolders sums the profile's inuse_space and ranks functions by the
// live bytes allocated in them (flat: the allocating function itself) and
// under them (cum: anywhere on the allocating stack, counted once per
// stack). A heap profile names where live memory was allocated, not who
// holds it now: the informer cache's objects show up under the reflector
// and the decoders, the operator's own copies under its code.
//
// cum leaves out the frames every stack has (the runtime, goroutine
// starters), which would top the list with the whole heap.
func heapHolders(p *profile.Profile, top int) (total int64, flat, cum []holder, err error) {
	idx, err := inuseSpace(p)
	if err != nil {
		return 0, nil, nil, err
	}
	flatBy, cumBy := map[string]int64{}, map[string]int64{}
	for _, s := range p.Sample {
		v := s.Value[idx]
		if v == 0 {
			continue
		}
		total += v
		seen := map[string]bool{}
		for li, loc := range s.Location {
			// Inlined calls: Line[0] is the innermost function.
			for j, ln := range loc.Line {
				if ln.Function == nil {
					continue
				}
				name := ln.Function.Name
				if li == 0 && j == 0 {
					flatBy[name] += v
				}
				if !seen[name] && !everyStackHas(name) {
					seen[name] = true
					cumBy[name] += v
				}
			}
		}
	}
	return total, topHolders(flatBy, top), topHolders(cumBy, top), nil
}

// inuseSpace is the index of inuse_space among the profile's values.
func inuseSpace(p *profile.Profile) (int, error) {
	for i, st := range p.SampleType {
		if st.Type == "inuse_space" {
			return i, nil
		}
	}
	return 0, fmt.Errorf("the heap profile has no inuse_space")
}

// heapComponents name the parts of the manager that hold the live heap.
// A sample (a live allocation's stack) belongs to the first component,
// in this order, any of whose prefixes starts a function on its stack:
// the operator's own code first, so that what it allocates when called by
// an informer or the recorder counts as the operator's.
var heapComponents = []struct {
	name     string
	prefixes []string
}{
	{"operator: internal/scriptlock (ScriptLock client, listings)", []string{operatorModule + "/internal/scriptlock"}},
	{"operator: controllers (reconciler, drift detector, tracker)", []string{operatorModule + "/controllers"}},
	{"operator: other packages (api, internal/serving)", []string{operatorModule + "/"}},
	{"Events (recorder, broadcaster)", []string{"k8s.io/client-go/tools/record", "k8s.io/client-go/tools/events", "sigs.k8s.io/controller-runtime/pkg/internal/recorder"}},
	{"work queue", []string{"k8s.io/client-go/util/workqueue", "sigs.k8s.io/controller-runtime/pkg/internal/controller", "sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"}},
	{"informer cache (list and watch decoding, store, indexes)", []string{"k8s.io/client-go/tools/cache", "k8s.io/apimachinery/pkg/watch", "k8s.io/client-go/rest/watch", "sigs.k8s.io/controller-runtime/pkg/cache"}},
	{"metrics", []string{"github.com/prometheus/"}},
	{"logging", []string{"go.uber.org/zap", "sigs.k8s.io/controller-runtime/pkg/log"}},
	{"package initialisation", []string{"runtime.doInit"}},
	// Last: main.main is at the root of everything set up in the main
	// goroutine (scheme, REST mapper, clients).
	{"manager setup (main goroutine)", []string{"main."}},
}

// otherComponent is the live heap no component claims.
const otherComponent = "other"

// heapByComponent splits the profile's inuse_space among heapComponents,
// largest first, with what none claims last as "other".
func heapByComponent(p *profile.Profile) ([]holder, error) {
	idx, err := inuseSpace(p)
	if err != nil {
		return nil, err
	}
	by := map[string]int64{}
	for _, s := range p.Sample {
		if v := s.Value[idx]; v != 0 {
			by[componentOf(s)] += v
		}
	}
	other := by[otherComponent]
	delete(by, otherComponent)
	out := topHolders(by, len(by))
	if other != 0 {
		out = append(out, holder{Function: otherComponent, Bytes: other})
	}
	return out, nil
}

func componentOf(s *profile.Sample) string {
	for _, c := range heapComponents {
		for _, loc := range s.Location {
			for _, ln := range loc.Line {
				if ln.Function == nil {
					continue
				}
				for _, prefix := range c.prefixes {
					if strings.HasPrefix(ln.Function.Name, prefix) {
						return c.name
					}
				}
			}
		}
	}
	return otherComponent
}

// everyStackHas says whether a frame is one of those at the root of most
// stacks, which rank nothing.
func everyStackHas(fn string) bool {
	for _, prefix := range []string{
		"runtime.", "sync.", "main.main", "k8s.io/apimachinery/pkg/util/wait.",
		"sigs.k8s.io/controller-runtime/pkg/manager.(*runnableGroup)",
		"net/http.(*conn).serve", "net/http.serverHandler.ServeHTTP", "net/http.HandlerFunc.ServeHTTP", "net/http.(*ServeMux).ServeHTTP",
	} {
		if strings.HasPrefix(fn, prefix) {
			return true
		}
	}
	return false
}

func topHolders(by map[string]int64, top int) []holder {
	out := make([]holder, 0, len(by))
	for f, b := range by {
		out = append(out, holder{Function: f, Bytes: b})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].Function < out[j].Function
	})
	if len(out) > top {
		out = out[:top]
	}
	return out
}
