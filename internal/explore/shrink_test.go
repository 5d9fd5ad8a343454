package explore

import (
	"slices"
	"testing"
)

func TestShrinkFindsTheStepsThatMatter(t *testing.T) {
	h := Generate(7, 24)
	// Fails when an apply of c1 and a later delete of c1 are both there.
	needs := func(steps []Step) bool {
		applied := false
		for _, s := range steps {
			if s.Op == "apply" && s.Arg(0) == "c1" {
				applied = true
			}
			if s.Op == "delete" && s.Arg(0) == "c1" && applied {
				return true
			}
		}
		return false
	}
	steps := append(slices.Clone(h.Steps), Step{Op: "apply", Args: []string{"c1", "e0", "Delete"}}, Step{Op: "delete", Args: []string{"c1"}})
	got, runs := Shrink(steps, needs, 500)
	if len(got) != 2 || got[0].Op != "apply" || got[1].Op != "delete" {
		t.Fatalf("shrunk to %v in %d runs, want the apply and the delete of c1", got, runs)
	}
}

func TestShrinkKeepsToItsBudget(t *testing.T) {
	calls := 0
	got, runs := Shrink(Generate(3, 30).Steps, func([]Step) bool { calls++; return false }, 5)
	if calls != 5 || runs != 5 || len(got) != 30 {
		t.Fatalf("%d calls, %d runs, %d steps left; want 5, 5 and all 30", calls, runs, len(got))
	}
}
