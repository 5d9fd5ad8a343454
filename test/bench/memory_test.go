package main

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/google/pprof/profile"
)

// heapProfile builds a heap profile whose samples are stacks (leaf
// first) with an inuse_space each.
func heapProfile(stacks [][]string, inuse []int64) *profile.Profile {
	p := &profile.Profile{SampleType: []*profile.ValueType{
		{Type: "alloc_objects", Unit: "count"}, {Type: "alloc_space", Unit: "bytes"},
		{Type: "inuse_objects", Unit: "count"}, {Type: "inuse_space", Unit: "bytes"},
	}}
	funcs := map[string]*profile.Function{}
	for i, stack := range stacks {
		s := &profile.Sample{Value: []int64{1, inuse[i] * 2, 1, inuse[i]}}
		for _, name := range stack {
			f := funcs[name]
			if f == nil {
				f = &profile.Function{ID: uint64(len(funcs) + 1), Name: name}
				funcs[name] = f
				p.Function = append(p.Function, f)
			}
			loc := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: f}}}
			p.Location = append(p.Location, loc)
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	return p
}

const (
	scriptlockList = operatorModule + "/internal/scriptlock.(*Client).ListEach"
	driftSweep     = operatorModule + "/controllers.(*driftDetector).sweep"
	reflectorList  = "k8s.io/client-go/tools/cache.(*Reflector).list"
	watchReceive   = "k8s.io/apimachinery/pkg/watch.(*StreamWatcher).receive"
	jsonDecode     = "encoding/json.(*decodeState).object"
	unsafeNew      = "reflect.unsafe_New"
)

var sampleStacks = [][]string{
	{unsafeNew, jsonDecode, reflectorList, "runtime.goexit"},                      // the informer's list
	{unsafeNew, jsonDecode, watchReceive, "runtime.goexit"},                       // the informer's watch
	{"bytes.growSlice", jsonDecode, scriptlockList, driftSweep, "runtime.goexit"}, // a listing, from the detector
	{"k8s.io/client-go/util/workqueue.(*Typed).Add", "runtime.goexit"},
	{"sync.(*Pool).Get", "main.main", "runtime.main"},
	{"strings.Repeat", "runtime.goexit"},
}

var sampleInuse = []int64{4000, 1000, 2000, 300, 200, 100}

func TestHeapHoldersRankFlatAndCumulativeWithoutTheRoots(t *testing.T) {
	total, flat, cum, err := heapHolders(heapProfile(sampleStacks, sampleInuse), 4)
	if err != nil {
		t.Fatal(err)
	}
	if total != 7600 {
		t.Errorf("total = %d, want 7600", total)
	}
	wantFlat := []holder{{unsafeNew, 5000}, {"bytes.growSlice", 2000}, {"k8s.io/client-go/util/workqueue.(*Typed).Add", 300}, {"sync.(*Pool).Get", 200}}
	if !reflect.DeepEqual(flat, wantFlat) {
		t.Errorf("flat = %v, want %v", flat, wantFlat)
	}
	wantCum := []holder{{jsonDecode, 7000}, {unsafeNew, 5000}, {reflectorList, 4000}, {"bytes.growSlice", 2000}}
	if !reflect.DeepEqual(cum, wantCum) {
		t.Errorf("cum = %v, want %v (runtime, sync and main are roots, not holders)", cum, wantCum)
	}
}

func TestHeapByComponentGivesTheOperatorWhatItAllocatesUnderOthers(t *testing.T) {
	got, err := heapByComponent(heapProfile(sampleStacks, sampleInuse))
	if err != nil {
		t.Fatal(err)
	}
	want := []holder{
		{"informer cache (list and watch decoding, store, indexes)", 5000},
		{"operator: internal/scriptlock (ScriptLock client, listings)", 2000},
		{"work queue", 300},
		{"manager setup (main goroutine)", 200},
		{otherComponent, 100},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("components = %v, want %v", got, want)
	}
}

func TestAHeapProfileSurvivesItsWireFormat(t *testing.T) {
	var buf bytes.Buffer
	if err := heapProfile(sampleStacks, sampleInuse).Write(&buf); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if total, _, _, err := heapHolders(p, 1); err != nil || total != 7600 {
		t.Errorf("parsed profile: total %d, %v", total, err)
	}
}

func TestAProfileWithoutInuseSpaceIsRefused(t *testing.T) {
	p := &profile.Profile{SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}}}
	if _, _, _, err := heapHolders(p, 3); err == nil {
		t.Error("a CPU-like profile was read as a heap profile")
	}
}
