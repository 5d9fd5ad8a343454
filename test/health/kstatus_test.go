package health

import (
	"testing"

	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// TestKstatus runs kstatus' own Compute, as kpt and Flux (without
// healthCheckExprs) do, over every fixture.
func TestKstatus(t *testing.T) {
	for _, f := range loadFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			res, err := status.Compute(f.obj.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			if want := expected[f.name].kstatus; string(res.Status) != want {
				t.Errorf("kstatus: %s (%q), want %s", res.Status, res.Message, want)
			}
		})
	}
}

// TestKstatusCallsNoStatusCurrent documents kstatus' answer for a Customer
// the operator has not reached yet. The API server drops status on create,
// so nothing the operator does can change it for an object it has not seen:
// the Flux and Argo CD checks in config/ exist for this case, and a CRD
// default status {observedGeneration: 0} would make kstatus itself say
// InProgress (see the fixture just-applied-status-defaulted).
func TestKstatusCallsNoStatusCurrent(t *testing.T) {
	for _, f := range loadFixtures(t) {
		if f.name != "just-applied" {
			continue
		}
		res, err := status.Compute(f.obj.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != status.CurrentStatus || res.Message != "Resource is current" {
			t.Fatalf("kstatus changed its answer for an object without status: %s %q; revisit docs/operations.md", res.Status, res.Message)
		}
		return
	}
	t.Fatal("no fixture just-applied")
}
