package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// tracker is the operator's in-memory view of what it last did for each
// Customer and what each ScriptLock account last listed. It is an
// optimisation and a courtesy to ScriptLock, never the source of truth:
// after a restart it is empty and every Customer is checked again.
type tracker struct {
	mu        sync.Mutex
	objects   map[types.NamespacedName]*objectState
	accounts  map[string]*accountState
	backoff   backoffPolicy
	resync    time.Duration
	listDrift bool
}

// objectState is what the operator remembers about one Customer.
type objectState struct {
	account  string
	id       string
	desired  scriptlock.Customer
	lastSync time.Time

	// failures counts permanent failures in a row; notBefore is the earliest
	// next attempt for the same generation.
	failures   int
	notBefore  time.Time
	generation int64
}

// accountState is one ScriptLock account: its client and its last listing.
type accountState struct {
	client   *scriptlock.Client
	users    int // Customers whose record lives in this account
	listedAt time.Time
	records  map[string]scriptlock.Customer // nil until the first listing
}

// backoffPolicy says how long a Customer waits after a permanent failure
// (Conflict, Unauthorized, NotFound, DeletionBlocked): no faster than Min,
// doubling up to Max.
type backoffPolicy struct {
	Min, Max time.Duration
}

func (b backoffPolicy) after(failures int) time.Duration {
	d := b.Min
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

func newTracker(resync time.Duration, b backoffPolicy, listDrift bool) *tracker {
	return &tracker{
		objects:   map[types.NamespacedName]*objectState{},
		accounts:  map[string]*accountState{},
		backoff:   b,
		resync:    resync,
		listDrift: listDrift,
	}
}

func (t *tracker) object(key types.NamespacedName) *objectState {
	o, ok := t.objects[key]
	if !ok {
		o = &objectState{}
		t.objects[key] = o
	}
	return o
}

// synced records that the record of key is known to equal desired at now.
func (t *tracker) synced(key types.NamespacedName, cl *scriptlock.Client, rec scriptlock.Customer, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.object(key)
	if o.account != cl.Account() {
		t.release(o.account)
		o.account = cl.Account()
		a, ok := t.accounts[o.account]
		if !ok {
			a = &accountState{client: cl}
			t.accounts[o.account] = a
		}
		a.users++
	}
	o.id, o.desired, o.lastSync = rec.ID, rec, now
	o.failures, o.notBefore = 0, time.Time{}
	if a := t.accounts[o.account]; a.records != nil {
		a.records[rec.ID] = rec
	}
}

// failed records a permanent failure of key at generation and returns how
// long to wait before the next attempt.
func (t *tracker) failed(key types.NamespacedName, generation int64, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.object(key)
	if o.generation != generation {
		o.failures = 0
	}
	o.generation = generation
	o.failures++
	d := t.backoff.after(o.failures)
	o.notBefore = now.Add(d)
	return d
}

// wait returns how long key must still wait after a permanent failure of
// the same generation; a new generation (a spec change) never waits.
func (t *tracker) wait(key types.NamespacedName, generation int64, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.objects[key]
	if !ok || o.generation != generation || !now.Before(o.notBefore) {
		return 0
	}
	return o.notBefore.Sub(now)
}

// forget drops key, and its account when no Customer uses it any more.
func (t *tracker) forget(key types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.objects[key]
	if !ok {
		return
	}
	delete(t.objects, key)
	t.release(o.account)
}

// release drops one user of account, and the account with its last user.
// The caller holds t.mu.
func (t *tracker) release(account string) {
	a, ok := t.accounts[account]
	if !ok {
		return
	}
	if a.users--; a.users <= 0 {
		delete(t.accounts, account)
	}
}

// lastClient returns the client key last used, so that a Customer whose
// credentials Secret was deleted first (a namespace being torn down) can
// still be cleaned up while the operator runs.
func (t *tracker) lastClient(key types.NamespacedName) *scriptlock.Client {
	t.mu.Lock()
	defer t.mu.Unlock()
	if o, ok := t.objects[key]; ok {
		if a, ok := t.accounts[o.account]; ok {
			return a.client
		}
	}
	return nil
}

// syncedWithin says whether the record of key was seen equal to desired less
// than the resync period ago, and how long until that period ends.
func (t *tracker) syncedWithin(key types.NamespacedName, desired scriptlock.Customer, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.objects[key]
	if !ok || o.lastSync.IsZero() || o.id != desired.ID || !scriptlock.SameFields(o.desired, desired) {
		return 0, false
	}
	left := o.lastSync.Add(t.resync).Sub(now)
	return left, left > 0
}

// listedRecord is what the last listing of an account says of one record.
type listedRecord int

const (
	// listUnknown: the account has not been listed yet.
	listUnknown listedRecord = iota
	// listSame: the record is listed with the desired fields.
	listSame
	// listDiffers: the record is listed with other fields (drift).
	listDiffers
	// listMissing: the record is not in the listing.
	listMissing
)

// lookup compares desired with the account's last listing.
func (t *tracker) lookup(account string, desired scriptlock.Customer) listedRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.accounts[account]
	if !ok || a.records == nil {
		return listUnknown
	}
	rec, ok := a.records[desired.ID]
	switch {
	case !ok:
		return listMissing
	case scriptlock.SameFields(rec, desired):
		return listSame
	default:
		return listDiffers
	}
}

// accountClients returns the client of every account in use.
func (t *tracker) accountClients() map[string]*scriptlock.Client {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]*scriptlock.Client, len(t.accounts))
	for id, a := range t.accounts {
		out[id] = a.client
	}
	return out
}

// listed stores a listing of account that was requested at asked, and
// returns the Customers whose record is missing from it or differs from what
// they want. A record the operator wrote after asked is newer than the
// listing: it is kept as written and not reported.
func (t *tracker) listed(account string, recs []scriptlock.Customer, asked time.Time) []types.NamespacedName {
	byID := make(map[string]scriptlock.Customer, len(recs))
	for _, r := range recs {
		byID[r.ID] = r
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.accounts[account]
	if !ok {
		return nil
	}
	var stale []types.NamespacedName
	for key, o := range t.objects {
		if o.account != account || o.id == "" {
			continue
		}
		if o.lastSync.After(asked) {
			byID[o.id] = o.desired
			continue
		}
		if rec, ok := byID[o.id]; !ok || !scriptlock.SameFields(rec, o.desired) {
			stale = append(stale, key)
		}
	}
	a.records, a.listedAt = byID, asked
	return stale
}
