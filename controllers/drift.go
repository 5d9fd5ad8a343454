package controllers

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
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

// driftState is the operator's memory of ScriptLock: per account its
// client and last listing, per Customer the record it last saw equal to the
// spec. It is an optimisation and a courtesy to ScriptLock, never the
// source of truth: after a restart it is empty and every Customer is
// checked again.
type driftState struct {
	// claimed says whether some Customer names a record (listing); nil
	// keeps every record whole.
	claimed func(scriptlock.Customer) bool
	// wake enqueues Customers that waited for a listing; nil wakes none.
	wake func([]types.NamespacedName)

	mu       sync.Mutex
	objects  map[types.NamespacedName]*syncState
	accounts map[string]*accountState
}

// syncState is what the operator last saw of one Customer's record.
type syncState struct {
	account  string
	id       string
	desired  scriptlock.Customer // the fields last seen equal in ScriptLock
	lastSync time.Time
	last     *scriptlock.Client // the client used before detach

	// The last write for a generation, and the fields it had to change:
	// the same fields differing again means ScriptLock stores other values
	// than it accepted (see rewritten).
	wroteGen    int64
	wroteFields string

	// looked is when the listing was asked for that last showed no record
	// of this Customer's pending create: the next look needs a newer one.
	looked time.Time
	// taken is the id of the record last found holding this Customer's
	// email without being its own (a Conflict): a retry reads that record
	// instead of listing the account.
	taken string
}

// accountState is one ScriptLock account: its client, how many Customers
// use it, and its last listing.
type accountState struct {
	client   *scriptlock.Client
	users    int
	asked    time.Time // when the last successful listing was requested
	records  *listing  // nil until listed
	err      error     // the last listing's error, if it failed after asked
	failedAt time.Time // when the failed listing was requested
	call     *listCall // the listing under way
}

// listCall is one listing under way; done is closed once recs and err
// hold its outcome, and then the waiters are woken.
type listCall struct {
	asked   time.Time
	done    chan struct{}
	recs    *listing
	err     error
	waiters []types.NamespacedName // Customers to wake when it ends
}

// listRetry is how soon a Customer that found a listing of its account
// under way tries again if nothing wakes it first: the listing's end wakes
// it at once, so this only bounds a wake-up that was lost (a restart of the
// controller's queue). No worker ever waits for a listing it did not start.
const listRetry = 5 * time.Second

func newDriftState() *driftState {
	return &driftState{
		objects:  map[types.NamespacedName]*syncState{},
		accounts: map[string]*accountState{},
	}
}

func (d *driftState) account(cl *scriptlock.Client) *accountState {
	a, ok := d.accounts[cl.Account()]
	if !ok {
		a = &accountState{client: cl}
		d.accounts[cl.Account()] = a
	}
	return a
}

// list returns a listing of cl's account requested at or after since: the
// last one if it is recent enough, else a new one. A listing under way that
// can serve is shared: a Customer (waiter) is not made to wait for it but
// told to come back (a *pending error) and woken when it ends, so that
// concurrent needs share one call and a ScriptLock that takes a whole
// timeout to answer parks no worker but the one listing. The drift
// detector (a zero waiter) waits for it instead, on its own goroutine.
// asked is when the listing returned was requested. The listing is decoded
// as a stream and kept as listing says.
func (d *driftState) list(ctx context.Context, cl *scriptlock.Client, since time.Time, waiter types.NamespacedName) (*listing, time.Time, error) {
	now := time.Now()
	d.mu.Lock()
	a := d.account(cl)
	if a.records != nil && a.err == nil && !a.asked.Before(since) {
		recs, asked := a.records, a.asked
		d.mu.Unlock()
		return recs, asked, nil
	}
	if c := a.call; c != nil && !c.asked.Before(since) {
		if waiter != (types.NamespacedName{}) {
			if !slices.Contains(c.waiters, waiter) {
				c.waiters = append(c.waiters, waiter)
			}
			d.mu.Unlock()
			return nil, time.Time{}, &pending{retryAfter: listRetry,
				msg: "a listing of this ScriptLock account is under way; using it when it is done"}
		}
		d.mu.Unlock()
		select {
		case <-c.done:
			return c.recs, c.asked, c.err
		case <-ctx.Done():
			return nil, time.Time{}, &pending{retryAfter: listRetry, msg: "stopped waiting for a listing under way"}
		}
	}
	c := &listCall{asked: now, done: make(chan struct{})}
	a.call = c
	d.mu.Unlock()

	recs, add := newListing(d.claimed)
	err := cl.ListEach(ctx, add)
	if err != nil {
		recs = nil
	}

	d.mu.Lock()
	if a.call == c {
		a.call = nil
	}
	c.recs, c.err = recs, err
	close(c.done)
	switch {
	case c.asked.Before(a.asked):
		// A newer listing already answered: this one says nothing new.
	case errors.Is(err, scriptlock.ErrThrottled):
		// Held back by the client itself (its own in-flight cap, a hold):
		// that says nothing new about the account.
	case err != nil:
		a.err, a.failedAt = err, c.asked
	default:
		a.records, a.asked, a.err = recs, c.asked, nil
	}
	waiters := c.waiters
	d.mu.Unlock()
	if d.wake != nil && len(waiters) > 0 {
		d.wake(waiters)
	}
	return recs, c.asked, err
}

// lookedSince is when key's pending create was last looked for in vain
// (lookedAt), or since if later: a listing asked before it cannot show
// anything new.
func (d *driftState) lookedSince(key types.NamespacedName, since time.Time) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if o, ok := d.objects[key]; ok && !o.looked.Before(since) {
		return o.looked.Add(time.Nanosecond)
	}
	return since
}

// takenBy returns the id of the record last found holding key's email.
func (d *driftState) takenBy(key types.NamespacedName) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if o, ok := d.objects[key]; ok {
		return o.taken
	}
	return ""
}

// setTakenBy records (or, with "", forgets) the record holding key's email.
func (d *driftState) setTakenBy(key types.NamespacedName, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.object(key).taken = id
}

// lookedAt records that a listing asked at asked showed no record of key's
// pending create.
func (d *driftState) lookedAt(key types.NamespacedName, asked time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.object(key).looked = asked
}

// listed says what the account's last listing, if requested within maxAge
// of now, holds under id (or what key's own later write put there). found
// is false also when the listing did not keep the record whole (listing).
// known is false when there is no such listing; err is the last listing's
// error when the account's listing is failing.
func (d *driftState) listed(key types.NamespacedName, account, id string, maxAge time.Duration, now time.Time) (rec scriptlock.Customer, found, known, own bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.accounts[account]
	switch {
	case !ok:
		return rec, false, false, false, nil
	case a.err != nil:
		return rec, false, false, false, a.err
	case a.records == nil || now.Sub(a.asked) > maxAge:
		return rec, false, false, false, nil
	}
	if o, ok := d.objects[key]; ok && o.account == account && o.id == id && o.lastSync.After(a.asked) {
		// The operator wrote the record after the listing was asked for:
		// what it wrote is newer than the listing.
		return o.desired, true, true, true, nil
	}
	rec, found = a.records.record(id)
	return rec, found, true, false, nil
}

// object returns the memory of key, made on first use. The caller holds
// d.mu.
func (d *driftState) object(key types.NamespacedName) *syncState {
	o, ok := d.objects[key]
	if !ok {
		o = &syncState{}
		d.objects[key] = o
	}
	return o
}

// synced records that the record of key, in cl's account, was seen equal to
// rec at now.
func (d *driftState) synced(key types.NamespacedName, cl *scriptlock.Client, rec scriptlock.Customer, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.object(key)
	if o.account != cl.Account() {
		d.release(o.account)
		o.account = cl.Account()
		d.account(cl).users++
	}
	// The account's listing is not updated: it is shared with readers
	// outside the lock, and listed and compare prefer this newer write.
	o.id, o.desired, o.lastSync = rec.ID, rec, now
}

// syncedWithin says whether the record of key was seen equal to desired less
// than period ago, and how long until that period ends.
func (d *driftState) syncedWithin(key types.NamespacedName, desired scriptlock.Customer, period time.Duration, now time.Time) (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objects[key]
	if !ok || o.lastSync.IsZero() || o.id != desired.ID || !scriptlock.SameFields(o.desired, desired) {
		return 0, false
	}
	left := o.lastSync.Add(period).Sub(now)
	return left, left > 0
}

// wrote records that the record of key is about to be rewritten for
// generation because fields (names) differ from the spec.
func (d *driftState) wrote(key types.NamespacedName, generation int64, fields []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.object(key)
	o.wroteGen, o.wroteFields = generation, strings.Join(fields, ",")
}

// converged forgets the last write of key: ScriptLock was seen holding the
// spec, so the write took effect.
func (d *driftState) converged(key types.NamespacedName) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if o, ok := d.objects[key]; ok {
		o.wroteGen, o.wroteFields = 0, ""
	}
}

// rewritten says whether the record of key was already rewritten for
// generation and the same fields still differ from the spec: ScriptLock
// stores the values differently from what it accepted (or someone keeps
// changing them back), and writing again would only repeat that every
// period.
func (d *driftState) rewritten(key types.NamespacedName, generation int64, fields []string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objects[key]
	return ok && o.wroteGen == generation && o.wroteFields == strings.Join(fields, ",")
}

// forget drops key, and its account's listing when no Customer uses it.
func (d *driftState) forget(key types.NamespacedName) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objects[key]
	if !ok {
		return
	}
	delete(d.objects, key)
	d.release(o.account)
}

// release drops one user of account. The caller holds d.mu.
func (d *driftState) release(account string) {
	if a, ok := d.accounts[account]; ok {
		if a.users--; a.users <= 0 {
			delete(d.accounts, account)
		}
	}
}

// lastClient returns the client key last used, so that a Customer whose
// credentials Secret was deleted first (a namespace being torn down) can
// still be cleaned up while the operator runs.
func (d *driftState) lastClient(key types.NamespacedName) *scriptlock.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	if o, ok := d.objects[key]; ok {
		if a, ok := d.accounts[o.account]; ok {
			return a.client
		}
		return o.last
	}
	return nil
}

// inUse returns the client of every account some Customer's record is in.
func (d *driftState) inUse() map[string]*scriptlock.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]*scriptlock.Client, len(d.accounts))
	for id, a := range d.accounts {
		if a.users > 0 {
			out[id] = a.client
		}
	}
	return out
}

// compare returns the Customers of account that a listing requested at
// asked shows missing or different; with all, every Customer of the
// account. A record the operator wrote after asked is newer than the
// listing and is not reported.
func (d *driftState) compare(account string, recs *listing, asked time.Time, all bool) []types.NamespacedName {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []types.NamespacedName
	for key, o := range d.objects {
		if o.account != account || o.id == "" {
			continue
		}
		if all {
			out = append(out, key)
			continue
		}
		if o.lastSync.After(asked) {
			continue
		}
		if rec, ok := recs.record(o.id); !ok || !scriptlock.SameFields(rec, o.desired) {
			out = append(out, key)
		}
	}
	return out
}

// prune forgets the listings of accounts no Customer uses any more (only
// looked up, or named by a Customer that never got a record) that were
// last listed before cutoff, so that their records and clients do not stay
// in memory for good.
func (d *driftState) prune(cutoff time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, a := range d.accounts {
		if a.users <= 0 && a.call == nil && a.asked.Before(cutoff) && a.failedAt.Before(cutoff) {
			delete(d.accounts, id)
		}
	}
}

// detach stops counting key as a user of its account (its credentials no
// longer resolve to it), so that an account nobody can name any more is no
// longer listed; lastClient still remembers the client for a deletion.
func (d *driftState) detach(key types.NamespacedName) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if o, ok := d.objects[key]; ok && o.account != "" {
		if a, ok := d.accounts[o.account]; ok {
			o.last = a.client
		}
		d.release(o.account)
		o.account, o.lastSync = "", time.Time{}
	}
}

// failedBefore says whether account's last listing failed, and was asked
// for before t.
func (d *driftState) failedBefore(account string, t time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.accounts[account]
	return ok && a.err != nil && a.failedAt.Before(t)
}

// failing says whether account's last listing failed.
func (d *driftState) failing(account string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.accounts[account]
	return ok && a.err != nil
}

// driftDetector lists each ScriptLock account once per resync period and
// enqueues the Customers whose record is missing or differs, so that the
// steady-state cost at ScriptLock does not grow with the number of
// Customers. When a listing fails, it enqueues every Customer of the
// account, so that none keeps saying Ready while its account cannot be
// read; when listing works again, it enqueues them all once more.
type driftDetector struct {
	state    *driftState
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
			d.state.prune(time.Now().Add(-2 * d.period))
		}
	}
}

func (d *driftDetector) sweep(ctx context.Context) {
	log := ctrl.LoggerFrom(ctx).WithName("drift")
	d.sweeps++
	recheck := d.sweeps%credentialChecks == 0
	for account, cl := range d.state.inUse() {
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
			wasFailing := d.state.failing(account)
			recs, asked, err := d.state.list(ctx, cl, time.Now(), types.NamespacedName{})
			for try := 0; try < 20 && isThrottled(err); try++ {
				// Held back by the operator's own in-flight caps: the
				// listing is due this period, so try again shortly.
				select {
				case <-time.After(wait.Jitter(throttledRetry, 1)):
				case <-ctx.Done():
					return
				}
				recs, asked, err = d.state.list(ctx, cl, time.Now(), types.NamespacedName{})
			}
			switch {
			case errors.Is(err, scriptlock.ErrThrottled):
				log.V(1).Info("the client held the listing back; trying next period", "account", account, "reason", err.Error())
				if recheck {
					d.enqueue(ctx, d.state.compare(account, nil, asked, true))
				}
				return
			case err != nil:
				d.failures.Inc()
				log.Error(err, "listing ScriptLock customers failed: the account's Customers report it until a listing succeeds", "account", account)
				d.enqueue(ctx, d.state.compare(account, nil, asked, true))
				return
			}
			stale := d.state.compare(account, recs, asked, wasFailing || recheck)
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
