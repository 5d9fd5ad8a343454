package explorer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scriptlock/customer-operator/internal/explore"
)

// fixedSeeds are what `make test` explores on every change.
var fixedSeeds = []uint64{1, 2, 3}

// Settings, from the environment (see docs/explorer.md).
type settings struct {
	seeds    []uint64
	steps    int
	parallel int
	shrink   int    // runs the shrinker may spend per violation kind
	history  string // a history file to replay instead of seeds
	save     string // save the shrunk history of the first failure as this regression
	report   string // write the figures of the run as JSON here
	// replay: one or a few seeds, or a history file, were named; their
	// known violations are shrunk too (in a broad run only new kinds are,
	// so that it stays a few minutes long).
	replay bool
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func readSettings() settings {
	s := settings{
		seeds: fixedSeeds, steps: envInt("EXPLORE_STEPS", 12), parallel: envInt("EXPLORE_PARALLEL", 3),
		shrink: envInt("EXPLORE_SHRINK", 0), history: os.Getenv("EXPLORE_HISTORY"),
		save: os.Getenv("EXPLORE_SAVE"), report: os.Getenv("EXPLORE_REPORT"),
	}
	s.replay = s.history != "" || os.Getenv("EXPLORE_SEED") != ""
	if one := os.Getenv("EXPLORE_SEED"); one != "" {
		s.seeds = nil
		for _, f := range strings.Split(one, ",") {
			if v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64); err == nil {
				s.seeds = append(s.seeds, v)
			}
		}
	} else if n := envInt("EXPLORE_SEEDS", 0); n > 0 {
		from := uint64(envInt("EXPLORE_FROM", 1000))
		s.seeds = nil
		for i := range uint64(n) {
			s.seeds = append(s.seeds, from+i)
		}
	}
	return s
}

// TestExplore runs the histories of the seeds (or the history file) and
// fails on any violation that is not a known open defect.
func TestExplore(t *testing.T) {
	s := readSettings()
	var hs []explore.History
	if s.history != "" {
		b, err := os.ReadFile(s.history)
		if err != nil {
			t.Fatal(err)
		}
		h, err := explore.Parse(string(b))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	} else {
		for _, seed := range s.seeds {
			hs = append(hs, explore.Generate(seed, s.steps))
		}
	}
	explore_(t, s, hs)
}

// TestRegressions replays every saved history of testdata/regressions.
func TestRegressions(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "regressions", "*.txt"))
	var hs []explore.History
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h, err := explore.Parse(string(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		hs = append(hs, h)
	}
	if len(hs) == 0 {
		t.Skip("no saved histories")
	}
	s := readSettings()
	s.shrink, s.save, s.report = 0, "", ""
	explore_(t, s, hs)
}

func explore_(t *testing.T, s settings, hs []explore.History) {
	ctx := context.Background()
	outs := make([]outcome, len(hs))
	sem := make(chan struct{}, max(1, s.parallel))
	var wg sync.WaitGroup
	start := time.Now()
	for i, h := range hs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			o, err := runHistory(ctx, h)
			if err != nil {
				t.Errorf("history of seed %d: %v", h.Seed, err)
			}
			outs[i] = o
		})
	}
	wg.Wait()
	fig := newFigures(outs, time.Since(start))
	t.Log(fig.String())

	// The first history of each kind of violation is shrunk, the kinds in
	// parallel.
	firstOf := map[string]outcome{}
	var kinds []string
	for _, o := range outs {
		if len(o.Violations) > 0 {
			t.Logf("seed %d: %d violations; its history:\n%s", o.History.Seed, len(o.Violations), indent(o.History.Format()))
		}
		for _, v := range o.Violations {
			k, known := explore.IsKnown(v.Kind)
			if known {
				t.Logf("seed %d: known open defect (%s): %s", o.History.Seed, k.Issue, v)
			} else {
				t.Errorf("seed %d: %s", o.History.Seed, v)
			}
			if _, ok := firstOf[v.Kind]; !ok && (!known || s.replay) {
				firstOf[v.Kind] = o
				kinds = append(kinds, v.Kind)
			}
		}
	}
	if s.shrink > 0 {
		fig.Shrunk = make([]shrunkHistory, len(kinds))
		var sw sync.WaitGroup
		for i, kind := range kinds {
			sw.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				o := firstOf[kind]
				fig.Shrunk[i] = shrunkHistory{Kind: kind, Seed: o.History.Seed, Steps: shrinkFor(ctx, o.History, kind, s.shrink)}
			})
		}
		sw.Wait()
		for _, sh := range fig.Shrunk {
			h := explore.History{Steps: sh.Steps}
			replay := fmt.Sprintf("EXPLORE_SEED=%d", sh.Seed)
			if s.history != "" {
				replay = "EXPLORE_HISTORY=" + s.history
			}
			t.Logf("%s, seed %d: shrunk from %d to %d steps:\n%s\nreplay: make explore %s\nsave the shrunk history as a regression test: make explore %s EXPLORE_SAVE=%s",
				sh.Kind, sh.Seed, len(firstOf[sh.Kind].History.Steps), len(sh.Steps), indent(h.Format()), replay, replay, sh.Kind)
			if s.save != "" {
				v := firstOf[sh.Kind].Violations[slices.IndexFunc(firstOf[sh.Kind].Violations, func(v explore.Violation) bool { return v.Kind == sh.Kind })]
				save(t, s.save, v, sh.Seed, h)
				s.save = ""
			}
		}
	}
	if s.report != "" {
		b, _ := json.MarshalIndent(fig, "", "  ")
		if err := os.WriteFile(s.report, b, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// shrinkFor shrinks h to the shortest history found that still shows a
// violation of kind.
func shrinkFor(ctx context.Context, h explore.History, kind string, budget int) []explore.Step {
	steps, _ := explore.Shrink(h.Steps, func(cand []explore.Step) bool {
		o, err := runHistory(ctx, explore.History{Steps: cand})
		return err == nil && slices.ContainsFunc(o.Violations, func(v explore.Violation) bool { return v.Kind == kind })
	}, budget)
	return steps
}

// save writes h as a regression history that TestRegressions replays.
func save(t *testing.T, name string, v explore.Violation, seed uint64, h explore.History) {
	path := filepath.Join("testdata", "regressions", name+".txt")
	text := fmt.Sprintf("# %s, found by seed %d and shrunk.\n# %s\n%s", v.Kind, seed, strings.ReplaceAll(v.Detail, "\n", " "), h.Format())
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Error(err)
		return
	}
	t.Logf("saved as %s", path)
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
