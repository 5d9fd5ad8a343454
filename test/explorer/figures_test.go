package explorer

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/scriptlock/customer-operator/internal/explore"
)

// figures are the numbers of one run, as docs/explorer.md reports them.
type figures struct {
	Histories  int
	Steps      int
	Duration   string
	Counts     map[string]int // steps by kind, perturbations that fired, calls
	Violations map[string][]uint64
	Shrunk     []shrunkHistory
}

type shrunkHistory struct {
	Kind  string
	Seed  uint64
	Steps []explore.Step
}

func newFigures(outs []outcome, d time.Duration) *figures {
	f := &figures{Histories: len(outs), Duration: d.Round(time.Second).String(), Counts: map[string]int{}, Violations: map[string][]uint64{}}
	for _, o := range outs {
		f.Steps += len(o.History.Steps)
		for k, v := range o.Stats {
			f.Counts[k] += v
		}
		for _, v := range o.Violations {
			if !slices.Contains(f.Violations[v.Kind], o.History.Seed) {
				f.Violations[v.Kind] = append(f.Violations[v.Kind], o.History.Seed)
			}
		}
	}
	return f
}

func (f *figures) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d histories, %d steps in %s\n", f.Histories, f.Steps, f.Duration)
	for _, k := range slices.Sorted(maps.Keys(f.Counts)) {
		fmt.Fprintf(&b, "  %-32s %d\n", k, f.Counts[k])
	}
	for _, k := range slices.Sorted(maps.Keys(f.Violations)) {
		seeds := f.Violations[k]
		fmt.Fprintf(&b, "  violation %-28s in %d histories (seeds %v)\n", k, len(seeds), seeds[:min(len(seeds), 8)])
	}
	return b.String()
}
