package explorer

import (
	"testing"
	"time"
)

// TestTheConvergenceBoundCoversAConfirmedDisappearance: a record deleted in
// ScriptLock near the end of a history (seeds 900005 and 901851: a
// `remotedelete`, then a restart, a fault) is taken as deleted, as the
// README says, only after vanishReads reads by id in a row found it
// missing, each at least vanishInterval after the one before; the operator
// waits each interval out with its retry's jitter (up to half again), and a
// Customer the restarted manager never synced is woken by no sweep, only
// by its own wait. Its first read may itself wait out a transient backoff
// (the fault that was armed when the perturbations stopped). The liveness
// bound must leave that, the recreate and a quiet settle after it: the
// bound of 30 s did not (the Customer ended RecordMissing, read 2 of 3).
func TestTheConvergenceBoundCoversAConfirmedDisappearance(t *testing.T) {
	const (
		jitter      = 3 // the operator's retries wait up to 3/2 of what they are told
		settleLimit = 8 * time.Second
	)
	firstRead := transientBackoffMax * jitter / 2
	confirmed := firstRead + time.Duration(vanishReads-1)*vanishInterval*jitter/2
	need := confirmed + settleLimit // the recreate, then a quiet settle and a snapshot
	if convergeWithin < need {
		t.Fatalf("the liveness bound %s is shorter than a disappearance confirmed as the README says "+
			"(%d reads %s apart, each wait spread by half again, after a transient backoff of %s) plus a settle: %s",
			convergeWithin, vanishReads, vanishInterval, firstRead, need)
	}
}
