package controllers

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"

	toolscache "k8s.io/client-go/tools/cache"

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
// every Customer of the account.
type listing struct {
	records map[string]scriptlock.Customer // record id → the record, for claimed records
	emails  map[uint64]string              // emailKey of every record's email → its id (the first one listed)
	n       int                            // records listed
}

// claims counts the record ids and emails the Customers in the informer
// cache name (status.customerID, spec.customerID, spec.email), kept up to
// date by an event handler on the informer: which records a listing keeps
// whole. It is a hint for memory only, never for who owns what (rival and
// holder read the cache's field indexes): when it lags, a record is not
// kept whole, and read with a GET when needed.
type claims struct {
	mu sync.RWMutex
	n  map[string]int // "e:" + lowercased email, "i:" + record id → Customers naming it
}

func newClaims() *claims { return &claims{n: map[string]int{}} }

// has says whether some Customer names rec by its id or its email.
func (c *claims) has(rec scriptlock.Customer) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.n["i:"+rec.ID] > 0 || c.n["e:"+strings.ToLower(rec.Email)] > 0
}

// count adds delta to what o names.
func (c *claims) count(o any, delta int) {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	cu, ok := o.(*v1alpha1.Customer)
	if !ok {
		return
	}
	keys := []string{"e:" + strings.ToLower(cu.Spec.Email)}
	for _, id := range recordIndex(cu) {
		keys = append(keys, "i:"+id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if c.n[k] += delta; c.n[k] <= 0 {
			delete(c.n, k)
		}
	}
}

// handler keeps c up to date with an informer of Customers.
func (c *claims) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.count(o, 1) },
		UpdateFunc: func(old, o any) { c.count(old, -1); c.count(o, 1) },
		DeleteFunc: func(o any) { c.count(o, -1) },
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
