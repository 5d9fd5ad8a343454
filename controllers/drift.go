package controllers

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// DriftDetection is how the operator finds records changed in ScriptLock by
// someone else.
type DriftDetection string

const (
	// DriftByList lists each account once per resync period and enqueues
	// only the Customers whose record differs or is missing.
	DriftByList DriftDetection = "list"
	// DriftPerObject reads every record once per resync period.
	DriftPerObject DriftDetection = "per-object"
)

// driftDetector lists each ScriptLock account once per resync period and
// enqueues the Customers whose record is missing or differs, so that the
// steady-state cost at ScriptLock does not grow with the number of
// Customers. When a listing fails, it enqueues every Customer of the
// account, so that none keeps saying Ready while its account cannot be
// read; when listing works again, it enqueues them all once more.
type driftDetector struct {
	accounts *accountRegistry
	memory   *customerMemory
	period   time.Duration
	clock    clock.Clock
	events   chan event.TypedGenericEvent[*v1alpha1.Customer]
	failures prometheus.Counter
	sweeps   int
	// slots bounds the listings under way (parallelListings).
	slots chan struct{}
	// running counts the listings started by sweeps, so that Start
	// returns only once they are done.
	running sync.WaitGroup

	mu     sync.Mutex
	queued map[string]bool // accounts waiting for a slot or being listed
}

// queue marks account as queued for a listing; false if it already is.
func (d *driftDetector) queue(account string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.queued == nil {
		d.queued = map[string]bool{}
	}
	if d.queued[account] {
		return false
	}
	d.queued[account] = true
	return true
}

func (d *driftDetector) dequeue(account string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.queued, account)
}

// Every credentialChecks-th sweep enqueues every Customer, so that each
// reads its credentials again (a deleted or changed Secret is never watched):
// Ready=True then also means the credentials were read within two periods.
// Such a pass of a Customer that is in sync costs one Secret read and no
// ScriptLock call.
const credentialChecks = 2

// parallelListings bounds how many accounts are listed at once. A sweep
// never waits for a listing: an account whose listing is still under way
// (a host that does not answer) is skipped until it ends, so it delays no
// other account's drift detection and no period.
const parallelListings = 4

var _ manager.LeaderElectionRunnable = (*driftDetector)(nil)

// NeedLeaderElection is true: only the leader talks to ScriptLock.
func (d *driftDetector) NeedLeaderElection() bool { return true }

// Start sweeps once per period until ctx ends. The jitter only shortens the
// wait (by up to a tenth), so drift is always found within one period.
func (d *driftDetector) Start(ctx context.Context) error {
	defer d.running.Wait()
	for {
		t := d.clock.NewTimer(jitterDown(d.period))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
			d.sweep(ctx)
			d.accounts.prune(d.accounts.clock.Now().Add(-2 * d.period))
		}
	}
}

func (d *driftDetector) sweep(ctx context.Context) {
	log := ctrl.LoggerFrom(ctx).WithName("drift")
	d.sweeps++
	recheck := d.sweeps%credentialChecks == 0
	for account, cl := range d.accounts.inUse() {
		if !d.queue(account) {
			log.V(1).Info("the account's last listing is still under way; skipping it this period", "account", account)
			continue
		}
		d.running.Add(1)
		go func() {
			defer d.running.Done()
			defer d.dequeue(account)
			// Wait for a slot here, not in the sweep: every account is
			// listed this period, at most parallelListings at a time.
			select {
			case d.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-d.slots }()
			wasFailing := d.accounts.failing(account)
			recs, asked, err := d.accounts.list(ctx, cl, d.accounts.clock.Now(), types.NamespacedName{})
			for try := 0; try < 20 && isThrottled(err); try++ {
				// Held back by the operator's own in-flight caps: the
				// listing is due this period, so try again shortly.
				select {
				case <-d.accounts.clock.After(wait.Jitter(throttledRetry, 1)):
				case <-ctx.Done():
					return
				}
				recs, asked, err = d.accounts.list(ctx, cl, d.accounts.clock.Now(), types.NamespacedName{})
			}
			switch {
			case errors.Is(err, scriptlock.ErrThrottled):
				log.V(1).Info("the client held the listing back; trying next period", "account", account, "reason", err.Error())
				if recheck {
					d.enqueue(ctx, d.memory.compare(account, nil, asked, true))
				}
				return
			case err != nil:
				d.failures.Inc()
				log.Error(err, "listing ScriptLock customers failed: the account's Customers report it until a listing succeeds", "account", account)
				d.enqueue(ctx, d.memory.compare(account, nil, asked, true))
				return
			}
			stale := d.memory.compare(account, recs, asked, wasFailing || recheck)
			log.V(1).Info("listed ScriptLock customers", "account", account, "records", recs.len(), "enqueued", len(stale))
			d.enqueue(ctx, stale)
		}()
	}
}

func (d *driftDetector) enqueue(ctx context.Context, keys []types.NamespacedName) {
	for _, key := range keys {
		c := &v1alpha1.Customer{}
		c.Namespace, c.Name = key.Namespace, key.Name
		select {
		case d.events <- event.TypedGenericEvent[*v1alpha1.Customer]{Object: c}:
		case <-ctx.Done():
			return
		}
	}
}

// jitterDown spreads periodic work over the last tenth of period, so that
// many Customers do not act in lockstep and none waits longer than period.
func jitterDown(period time.Duration) time.Duration {
	return period - time.Duration(rand.Int64N(int64(period)/10+1))
}
