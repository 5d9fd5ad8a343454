package controllers_test

import (
	"testing"

	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// waitsCounted returns scriptlock_waits_total by its label wait, as the
// manager's /metrics shows it (every manager of the test process shares
// the registry).
func waitsCounted(t *testing.T) map[string]float64 {
	t.Helper()
	fams, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "scriptlock_waits_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "wait" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// TestTheWaitsTheOperatorImposesOnItselfAreCountedByKind: Customers created
// together past their account's rate wait for their turns, and for the
// listing one of them asked for; scriptlock_waits_total counts those
// passes by what they waited for.
func TestTheWaitsTheOperatorImposesOnItselfAreCountedByKind(t *testing.T) {
	e := newEnv(t, managerOpts{qps: 2})
	before := waitsCounted(t)
	names := []string{"w1", "w2", "w3", "w4"}
	for _, n := range names {
		e.create(e.customer(n, n+"@example.com"))
	}
	for _, n := range names {
		e.waitReady(n)
	}
	after := waitsCounted(t)
	if after["rate"] <= before["rate"] {
		t.Errorf("scriptlock_waits_total{wait=\"rate\"} %v -> %v, want more: 4 creates at 2 calls a second wait for their turns (all: %v)", before["rate"], after["rate"], after)
	}
	for kind := range after {
		switch kind {
		case "rate", "in_flight", "listing", "relist", "newer_copy", "index", "brake_lease", "other":
		default:
			t.Errorf("scriptlock_waits_total has the unknown kind %q", kind)
		}
	}
}
