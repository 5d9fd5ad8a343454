package controllers

import (
	"context"
	"hash/maphash"
	"strings"

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
