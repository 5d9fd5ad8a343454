package controllers

import (
	"context"
	"hash/maphash"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// listing is what the operator keeps of one listing of an account. An
// account can hold far more records than the cluster has Customers
// (hundreds of thousands), so it keeps whole only the records some Customer
// names (by id or by email: claimed, decided while the listing streams in);
// of every other record it keeps only its id under a 64-bit key of its
// email, about 50 bytes a record, so that a Customer created after the
// listing still finds an existing record with its email (read then with
// one GET, withEmail). A record not kept whole is "not listed" to read,
// which then reads it: the cost of a race is one call, never a wrong
// answer.
//
// A listing is never changed once built: it is shared, outside the lock, by
// every Customer of the account. Only its memo of the held records it
// lacks (lacking) grows, under a lock of its own.
type listing struct {
	records map[string]scriptlock.Customer // record id → the record, for claimed records
	emails  map[uint64]string              // emailKey of every record's email → its id (the first one listed)
	n       int                            // records listed

	lackMu sync.Mutex
	// lack holds the record ids some Customer named, as of position
	// lackPos of the claims' log, that this listing does not keep whole.
	lack    map[string]struct{}
	lackPos int
}

// lacking returns the record ids some Customer names (status.customerID,
// spec.customerID) that l does not keep whole. The first call looks at
// every id c holds; later ones only at the ids c was given since (its
// log), so that a create storm's check of each new Customer against the
// listing (listingLags) costs the records made since the listing, not
// every record of the cluster.
func (l *listing) lacking(c *claims) []string {
	l.lackMu.Lock()
	defer l.lackMu.Unlock()
	ids, next, whole := c.recordsSince(l.lackPos, l.lack == nil)
	if whole || l.lack == nil {
		l.lack = map[string]struct{}{}
	}
	for _, id := range ids {
		if _, kept := l.records[id]; !kept {
			l.lack[id] = struct{}{}
		}
	}
	l.lackPos = next
	for _, id := range c.unheld(l.lack) {
		delete(l.lack, id)
	}
	out := make([]string, 0, len(l.lack))
	for id := range l.lack {
		out = append(out, id)
	}
	return out
}

// claims indexes the Customers of the informer cache by what they name:
// their email (spec.email, lowercased) and the record ids they claim
// (status.customerID, spec.customerID). An event handler on the informer
// keeps it up to date. It answers "which Customers name this email or
// record?" for the ownership rule (claimants) and "does any Customer name
// this record?" for what a listing keeps whole.
//
// It replaces two controller-runtime field indexes, which hold every value
// twice (once per namespace, once for all) in a set of its own: about
// 1.1 KB a Customer, against about 0.2 KB here (docs/benchmarks.md). The
// handler runs just after the cache's store is updated, so a lookup can
// lag the cache by that much, as the cache lags the API server; a name
// found here is always checked against the cached object (claimants).
type claims struct {
	mu    sync.RWMutex
	names map[string][]types.NamespacedName // "e:" + lowercased email, "i:" + record id → the Customers naming it
	// added logs the record ids that got their first Customer, from
	// position logBase on (recordsSince); it is cut at maxClaimsLog.
	added   []string
	logBase int
	// synced says whether the handler has seen the informer's first
	// listing; nil: always (an index filled by hand).
	synced func() bool
}

// complete says whether the index holds every Customer of the cache's
// first listing.
func (c *claims) complete() bool { return c.synced == nil || c.synced() }

func newClaims() *claims { return &claims{names: map[string][]types.NamespacedName{}} }

func emailClaim(email string) string { return "e:" + strings.ToLower(email) }
func recordClaim(id string) string   { return "i:" + id }

// has says whether some Customer names rec by its id or its email.
func (c *claims) has(rec scriptlock.Customer) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.names[recordClaim(rec.ID)]) > 0 || len(c.names[emailClaim(rec.Email)]) > 0
}

// maxClaimsLog bounds the log of record ids newly named: past it, a
// listing's memo that has not caught up looks at every id again.
const maxClaimsLog = 1 << 16

// recordsSince returns the record ids named since position pos of the log
// and the position after them; whole is true when pos is older than the
// log (or all is true) and ids are every record id named now instead.
func (c *claims) recordsSince(pos int, all bool) (ids []string, next int, whole bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	next = c.logBase + len(c.added)
	if all || pos < c.logBase {
		for k := range c.names {
			if id, ok := strings.CutPrefix(k, "i:"); ok {
				ids = append(ids, id)
			}
		}
		return ids, next, true
	}
	return slices.Clone(c.added[pos-c.logBase:]), next, false
}

// unheld returns the ids of set no Customer names any more.
func (c *claims) unheld(set map[string]struct{}) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	for id := range set {
		if len(c.names[recordClaim(id)]) == 0 {
			out = append(out, id)
		}
	}
	return out
}

// of returns the Customers that name claim (emailClaim or recordClaim).
func (c *claims) of(claim string) []types.NamespacedName {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.names[claim])
}

// claimsOf returns what cu names: its spec's email, the record ids of
// status.customerID and spec.customerID, and the email of its own create
// whose outcome is unknown (pendingClaim) when the spec names another one.
func claimsOf(cu *v1alpha1.Customer) []string {
	out := []string{emailClaim(cu.Spec.Email)}
	if p := pendingClaim(cu); p != nil && !strings.EqualFold(p.Email, cu.Spec.Email) {
		out = append(out, emailClaim(p.Email))
	}
	for _, id := range []string{cu.Status.CustomerID, cu.Spec.CustomerID} {
		if id != "" && !slices.Contains(out, recordClaim(id)) {
			out = append(out, recordClaim(id))
		}
	}
	return out
}

// set replaces what key names: before (nil for an added object) by after
// (nil for a deleted one).
func (c *claims) set(key types.NamespacedName, before, after []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range before {
		if !slices.Contains(after, k) {
			names := slices.DeleteFunc(c.names[k], func(n types.NamespacedName) bool { return n == key })
			if len(names) == 0 {
				delete(c.names, k)
			} else {
				c.names[k] = names
			}
		}
	}
	for _, k := range after {
		if !slices.Contains(before, k) && !slices.Contains(c.names[k], key) {
			if id, ok := strings.CutPrefix(k, "i:"); ok && len(c.names[k]) == 0 {
				if len(c.added) == maxClaimsLog {
					c.logBase += len(c.added)
					c.added = nil
				}
				c.added = append(c.added, id)
			}
			c.names[k] = append(c.names[k], key)
		}
	}
}

// customerOf returns the Customer an informer notification carries.
func customerOf(o any) (*v1alpha1.Customer, bool) {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	cu, ok := o.(*v1alpha1.Customer)
	return cu, ok
}

// handler keeps c up to date with an informer of Customers.
func (c *claims) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if cu, ok := customerOf(o); ok {
				c.set(client.ObjectKeyFromObject(cu), nil, claimsOf(cu))
			}
		},
		UpdateFunc: func(old, o any) {
			before, ok1 := customerOf(old)
			after, ok2 := customerOf(o)
			if ok1 && ok2 {
				c.set(client.ObjectKeyFromObject(after), claimsOf(before), claimsOf(after))
			}
		},
		DeleteFunc: func(o any) {
			if cu, ok := customerOf(o); ok {
				c.set(client.ObjectKeyFromObject(cu), claimsOf(cu), nil)
			}
		},
	}
}

// listingSeed keys the email keys: they are compared only within this
// process, never stored.
var listingSeed = maphash.MakeSeed()

// newListing returns an empty listing that will keep whole the records
// claimed says a Customer names (all of them when claimed is nil).
func newListing(claimed func(scriptlock.Customer) bool) (*listing, func(scriptlock.Customer)) {
	l := &listing{records: map[string]scriptlock.Customer{}, emails: map[uint64]string{}}
	return l, func(rec scriptlock.Customer) {
		l.n++
		if claimed == nil || claimed(rec) {
			l.records[rec.ID] = rec
		}
		if k := emailKey(rec.Email); l.emails[k] == "" {
			l.emails[k] = rec.ID
		}
	}
}

// len is the number of records listed.
func (l *listing) len() int { return l.n }

// record returns record id if the listing keeps it whole.
func (l *listing) record(id string) (scriptlock.Customer, bool) {
	rec, ok := l.records[id]
	return rec, ok
}

// lists says whether record id was in the listing, kept whole or not. It
// looks through every record's id when id is not kept whole: for a rare
// question (a create answered 409), not for every pass.
func (l *listing) lists(id string) bool {
	if _, ok := l.records[id]; ok {
		return true
	}
	for _, listed := range l.emails {
		if listed == id {
			return true
		}
	}
	return false
}

// idOf returns the id of the record listed with email (compared
// case-insensitively, as ScriptLock does), if any. Two emails can share a
// key (one chance in 2^64 per pair): withEmail checks the record's email.
func (l *listing) idOf(email string) (string, bool) {
	id, ok := l.emails[emailKey(email)]
	return id, ok
}

// emailKey is the 64-bit key of an email, lowercased.
func emailKey(email string) uint64 {
	return maphash.String(listingSeed, strings.ToLower(email))
}

// withEmail returns the record of account cl that listing l shows with
// email (a record not kept whole is read with one GET); found is false
// when l shows none, or the record read no longer has that email (changed
// or deleted since the listing).
func withEmail(ctx context.Context, cl *scriptlock.Client, l *listing, email string) (rec scriptlock.Customer, found bool, err error) {
	id, ok := l.idOf(email)
	if !ok {
		return rec, false, nil
	}
	if rec, ok := l.record(id); ok && strings.EqualFold(rec.Email, email) {
		return rec, true, nil
	}
	rec, err = cl.Get(ctx, id)
	switch {
	case scriptlock.IsNotFound(err):
		return scriptlock.Customer{}, false, nil
	case err != nil:
		return scriptlock.Customer{}, false, err
	case !strings.EqualFold(rec.Email, email):
		return scriptlock.Customer{}, false, nil
	}
	return rec, true, nil
}
