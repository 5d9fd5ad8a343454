package controllers

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// accountRegistry is the operator's memory of ScriptLock accounts: per
// account its client, how many Customers' records are in it, and its last
// listing or the listing under way. It is an optimisation and a courtesy
// to ScriptLock, never the source of truth: after a restart it is empty
// and every account is listed again.
type accountRegistry struct {
	// clock times the listings (when each was asked for).
	clock clock.Clock
	// claimed says whether some Customer names a record (listing); nil
	// keeps every record whole.
	claimed func(scriptlock.Customer) bool
	// wake enqueues Customers that waited for a listing; nil wakes none.
	wake func([]types.NamespacedName)

	mu       sync.Mutex
	accounts map[string]*accountState
	// vanished holds, per account, the Customers whose bound record reads
	// find missing (the vanish breaker).
	vanished map[string]map[types.NamespacedName]bool
	// refusedAt is when ScriptLock last refused an account's key (a key
	// rotated away), by account.
	refusedAt map[string]time.Time
	// seen holds, per account, when this manager first and last found each
	// record some Customer names (kept whole by a listing, or read by id):
	// a record found before a create was sent is not that create's record
	// (seenBefore), whatever fields it shares with what was posted.
	seen map[string]map[string]seenRecord
	// urls holds the base URL of every account this manager used, kept
	// as long as what it found there (seen).
	urls map[string]string
	// sent holds when this manager sent the first create of an object's
	// create-time proof whose answer was lost, to the nanosecond: the proof
	// keeps it in whole seconds (sentAt).
	sent     map[types.UID]sentCreate
	sentAdds int
	// unfound holds, per account, the records another Customer holds that
	// reads by id found missing in a row (heldRecordGone); a record found
	// again (a read, a listing) is taken off.
	unfound map[string]map[string]missingReads
	// deleted holds, per account, when this manager's DELETE of a record
	// was confirmed (410, or 404 confirmed by a read and a second DELETE):
	// a record gone before a create was sent cannot be what ScriptLock
	// refused that create for (heldBefore), unless it was found again
	// since.
	deleted map[string]map[string]time.Time
}

// sentCreate is when a create of a proof whose Since is since, of email
// in account, was first sent.
type sentCreate struct {
	since, at      time.Time
	account, email string
}

// sentFor is how long a send time is remembered: far longer than a
// listing is used to judge a create.
const sentFor = 10 * time.Minute

// missingReads is how many reads by id in a row found a record missing,
// and when the last one counted was.
type missingReads struct {
	reads int
	at    time.Time
}

// seenRecord is when a record was first and last found in its account,
// and the email it had then (lowercased).
type seenRecord struct {
	first, last time.Time
	email       string
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
	// made holds the records this manager's creates stored in the account
	// lately, by id: which Customer (UID) made each, and when.
	made map[string]madeRecord
	// emailsWritten holds, by lowercased email, when this manager last
	// sent a create or an update giving a record that email (within
	// madeFor): a listing asked before then cannot show it free.
	emailsWritten map[string]time.Time
}

// madeRecord is a record a create of this manager stored.
type madeRecord struct {
	uid types.UID
	at  time.Time
}

// madeFor is how long the maker of a record this manager created is
// remembered: longer than a pre-create listing may be old
// (preCheckMaxAge) plus a pass.
const madeFor = 2 * time.Minute

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

func newAccountRegistry(c clock.Clock) *accountRegistry {
	return &accountRegistry{clock: c, accounts: map[string]*accountState{}, vanished: map[string]map[types.NamespacedName]bool{}, refusedAt: map[string]time.Time{}, seen: map[string]map[string]seenRecord{}, urls: map[string]string{}, unfound: map[string]map[string]missingReads{}, sent: map[types.UID]sentCreate{}}
}

// account returns the state of cl's account, made on first use. The caller
// holds r.mu.
func (r *accountRegistry) account(cl *scriptlock.Client) *accountState {
	a, ok := r.accounts[cl.Account()]
	if !ok {
		a = &accountState{client: cl}
		r.accounts[cl.Account()] = a
		r.urls[cl.Account()] = cl.BaseURL()
	}
	return a
}

// lastGoodListing returns the last listing of cl's account, if any and if
// the last listing did not fail, without asking ScriptLock: for naming,
// never for deciding who owns what.
func (r *accountRegistry) lastGoodListing(cl *scriptlock.Client) *listing {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.accounts[cl.Account()]; ok && a.err == nil {
		return a.records
	}
	return nil
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
func (r *accountRegistry) list(ctx context.Context, cl *scriptlock.Client, since time.Time, waiter types.NamespacedName) (*listing, time.Time, error) {
	now := r.clock.Now()
	r.mu.Lock()
	a := r.account(cl)
	if a.records != nil && a.err == nil && !a.asked.Before(since) {
		recs, asked := a.records, a.asked
		r.mu.Unlock()
		return recs, asked, nil
	}
	if c := a.call; c != nil && !c.asked.Before(since) {
		if waiter != (types.NamespacedName{}) {
			if !slices.Contains(c.waiters, waiter) {
				c.waiters = append(c.waiters, waiter)
			}
			r.mu.Unlock()
			return nil, time.Time{}, &pending{retryAfter: listRetry, wait: waitListing,
				msg: "a listing of this ScriptLock account is under way; using it when it is done"}
		}
		r.mu.Unlock()
		select {
		case <-c.done:
			return c.recs, c.asked, c.err
		case <-ctx.Done():
			return nil, time.Time{}, &pending{retryAfter: listRetry, wait: waitListing, msg: "stopped waiting for a listing under way"}
		}
	}
	c := &listCall{asked: now, done: make(chan struct{})}
	a.call = c
	r.mu.Unlock()

	recs, add := newListing(r.claimed)
	err := cl.ListEach(ctx, add)
	if err != nil {
		recs = nil
	}

	r.mu.Lock()
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
	if recs != nil {
		// Every record of the listing existed by the time it was read.
		found := make([]scriptlock.Customer, 0, len(recs.records))
		for _, rec := range recs.records {
			found = append(found, rec)
		}
		r.foundLocked(cl.Account(), r.clock.Now(), found...)
	}
	waiters := c.waiters
	r.mu.Unlock()
	if r.wake != nil && len(waiters) > 0 {
		r.wake(waiters)
	}
	return recs, c.asked, err
}

// last returns the account's last listing if it was requested within
// maxAge of now; known is false when there is none. err is the last
// listing's error when the account's listing is failing.
func (r *accountRegistry) last(account string, maxAge time.Duration, now time.Time) (recs *listing, asked time.Time, known bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.accounts[account]
	switch {
	case !ok:
		return nil, time.Time{}, false, nil
	case a.err != nil:
		return nil, time.Time{}, false, a.err
	case a.records == nil || now.Sub(a.asked) > maxAge:
		return nil, time.Time{}, false, nil
	}
	return a.records, a.asked, true, nil
}

// lastListing returns the account's last complete listing, however old,
// and when it was asked for; nil if it was never listed. A record in it
// existed when it was listed: a create sent after it returned cannot have
// made that record.
func (r *accountRegistry) lastListing(account string) (*listing, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.accounts[account]; ok {
		return a.records, a.asked
	}
	return nil, time.Time{}
}

// wroteEmail records that a create or an update giving a record email in
// account was just sent (its answer, whatever it was, is in).
func (r *accountRegistry) wroteEmail(account, email string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.accounts[account]
	if !ok {
		return
	}
	now := r.clock.Now()
	if a.emailsWritten == nil {
		a.emailsWritten = map[string]time.Time{}
	}
	for k, at := range a.emailsWritten {
		if now.Sub(at) > madeFor {
			delete(a.emailsWritten, k)
		}
	}
	a.emailsWritten[strings.ToLower(email)] = now
}

// emailWritten returns when this manager last sent a write giving a record
// email in account (within madeFor); ok is false if it sent none.
func (r *accountRegistry) emailWritten(account, email string) (at time.Time, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, found := r.accounts[account]
	if !found {
		return time.Time{}, false
	}
	at, ok = a.emailsWritten[strings.ToLower(email)]
	return at, ok && r.clock.Now().Sub(at) <= madeFor
}

// notMadeSince returns the ids of ids that no create of this manager
// stored in account at or after t (within madeFor), in one hold of the
// lock.
func (r *accountRegistry) notMadeSince(account string, ids []string, t time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.accounts[account]
	if !ok {
		return ids
	}
	now := r.clock.Now()
	return slices.DeleteFunc(ids, func(id string) bool {
		m, ok := a.made[id]
		return ok && !m.at.Before(t) && now.Sub(m.at) <= madeFor
	})
}

// use counts one more Customer whose record is in cl's account.
func (r *accountRegistry) use(cl *scriptlock.Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.account(cl).users++
}

// release counts one Customer fewer in account, and forgets the account
// when none is left.
func (r *accountRegistry) release(account string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.accounts[account]; ok {
		if a.users--; a.users <= 0 {
			delete(r.accounts, account)
		}
	}
}

// client returns the client of account, or nil when it is not known.
func (r *accountRegistry) client(account string) *scriptlock.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.accounts[account]; ok {
		return a.client
	}
	return nil
}

// inUse returns the client of every account some Customer's record is in.
func (r *accountRegistry) inUse() map[string]*scriptlock.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*scriptlock.Client, len(r.accounts))
	for id, a := range r.accounts {
		if a.users > 0 {
			out[id] = a.client
		}
	}
	return out
}

// prune forgets the listings of accounts no Customer uses any more (only
// looked up, or named by a Customer that never got a record) that were
// last listed before cutoff, so that their records and clients do not stay
// in memory for good.
func (r *accountRegistry) prune(cutoff time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, a := range r.accounts {
		if a.users <= 0 && a.call == nil && a.asked.Before(cutoff) && a.failedAt.Before(cutoff) {
			delete(r.accounts, id)
		}
	}
	for id, at := range r.refusedAt {
		if at.Before(cutoff) {
			delete(r.refusedAt, id)
		}
	}
	pruneByAccount(r.seen, func(s seenRecord) bool { return s.last.Before(cutoff) })
	for account := range r.urls {
		if _, used := r.accounts[account]; !used && len(r.seen[account]) == 0 {
			delete(r.urls, account)
		}
	}
	pruneByAccount(r.unfound, func(m missingReads) bool { return m.at.Before(cutoff) })
	pruneByAccount(r.deleted, func(at time.Time) bool { return at.Before(cutoff) })
}

// pruneByAccount drops the entries of m's accounts that old says are
// stale, and the accounts left with none.
func pruneByAccount[V any](m map[string]map[string]V, old func(V) bool) {
	for account, recs := range m {
		maps.DeleteFunc(recs, func(_ string, v V) bool { return old(v) })
		if len(recs) == 0 {
			delete(m, account)
		}
	}
}

// unfoundSoFar returns how many reads by id in a row found record id
// missing from account, and when the last one counted was.
func (r *accountRegistry) unfoundSoFar(account, id string) (int, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.unfound[account][id]
	return m.reads, m.at
}

// notFound counts a read by id at now that found record id missing from
// account, unless it comes less than interval after the last one counted,
// and returns how many reads in a row found it missing.
func (r *accountRegistry) notFound(account, id string, now time.Time, interval time.Duration) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	recs := r.unfound[account]
	if recs == nil {
		recs = map[string]missingReads{}
		r.unfound[account] = recs
	}
	m := recs[id]
	if m.reads == 0 || now.Sub(m.at) >= interval {
		m.reads++
		m.at = now
	}
	recs[id] = m
	return m.reads
}

// failedBefore says whether account's last listing failed, and was asked
// for before t.
func (r *accountRegistry) failedBefore(account string, t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.accounts[account]
	return ok && a.err != nil && a.failedAt.Before(t)
}

// failing says whether account's last listing failed.
func (r *accountRegistry) failing(account string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.accounts[account]
	return ok && a.err != nil
}

// markVanished records that key's bound record in account is missing.
func (r *accountRegistry) markVanished(account string, key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.vanished[account] == nil {
		r.vanished[account] = map[types.NamespacedName]bool{}
	}
	r.vanished[account][key] = true
}

// unmarkVanished records that key's record is no longer missing (found,
// or the Customer is gone).
func (r *accountRegistry) unmarkVanished(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for account, keys := range r.vanished {
		delete(keys, key)
		if len(keys) == 0 {
			delete(r.vanished, account)
		}
	}
}

// breaker returns how many of account's bound records are missing, of how
// many the operator knows (the account's Customers, or the missing ones if
// more: after a restart none may have been seen yet), and whether that is
// enough to hold every recreate (breakerMin, and at least half).
func (r *accountRegistry) breaker(account string) (missing, known int, open bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	missing = len(r.vanished[account])
	if a, ok := r.accounts[account]; ok {
		known = a.users
	}
	known = max(known, missing)
	return missing, known, missing >= breakerMin && 2*missing >= known
}

// refused records that ScriptLock refused account's key at t.
func (r *accountRegistry) refused(account string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refusedAt[account] = t
}

// refusedSince says whether ScriptLock refused account's key at or after
// t, and when it last did.
func (r *accountRegistry) refusedSince(account string, t time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.refusedAt[account]
	return at, ok && !at.Before(t)
}

// made records that a create of the Customer with uid stored record id in
// cl's account (its answer was read).
func (r *accountRegistry) made(cl *scriptlock.Client, id string, uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.account(cl)
	now := r.clock.Now()
	if a.made == nil {
		a.made = map[string]madeRecord{}
	}
	for k, m := range a.made {
		if now.Sub(m.at) > madeFor {
			delete(a.made, k)
		}
	}
	a.made[id] = madeRecord{uid: uid, at: now}
}

// madeBy returns the UID of the Customer whose create this manager saw
// store record id in account within madeFor, or "".
func (r *accountRegistry) madeBy(account, id string) types.UID {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.accounts[account]
	if !ok {
		return ""
	}
	if m, ok := a.made[id]; ok && r.clock.Now().Sub(m.at) <= madeFor {
		return m.uid
	}
	return ""
}

// found records that recs existed in account at time at (a listing that
// kept them whole, a read by id, a create's answer).
func (r *accountRegistry) found(account string, at time.Time, recs ...scriptlock.Customer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.foundLocked(account, at, recs...)
}

// foundLocked is found; the caller holds r.mu.
func (r *accountRegistry) foundLocked(account string, at time.Time, recs ...scriptlock.Customer) {
	if len(recs) == 0 {
		return
	}
	seen := r.seen[account]
	if seen == nil {
		seen = map[string]seenRecord{}
		r.seen[account] = seen
	}
	for _, rec := range recs {
		delete(r.unfound[account], rec.ID)
		s, ok := seen[rec.ID]
		if !ok || at.Before(s.first) {
			s.first = at
		}
		if !at.Before(s.last) {
			s.last, s.email = at, strings.ToLower(rec.Email)
		}
		seen[rec.ID] = s
	}
}

// seenBefore says whether this manager found record id in account before
// t: such a record existed before a create sent at t, so it cannot be that
// create's record (a copy of a Customer posts the very fields of the
// original's record, and one empty listing, a lagging replica, can make an
// email look free). The memory is kept while the record is found again
// within two resync periods (prune), and is empty after a restart.
func (r *accountRegistry) seenBefore(account, id string, t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.seen[account][id]
	return ok && s.first.Before(t)
}

// sending records that the create of uid's proof since, of email in
// account, is sent at (the first send of that proof counts).
func (r *accountRegistry) sending(uid types.UID, account, email string, since, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	email = strings.ToLower(email)
	if s, ok := r.sent[uid]; ok && s.since.Unix() == since.Unix() && s.account == account && s.email == email {
		return
	}
	r.sent[uid] = sentCreate{since: since, at: at, account: account, email: email}
	if r.sentAdds++; r.sentAdds%1024 == 0 {
		// Bounded here, whatever the drift detection mode.
		maps.DeleteFunc(r.sent, func(_ types.UID, s sentCreate) bool { return at.Sub(s.at) > sentFor })
	}
}

// sentAt returns when this manager first sent the create of uid's proof
// since, of email in account, to the nanosecond; ok is false if it sent
// none (another manager, before a restart, did): since is then all there
// is, in whole seconds.
func (r *accountRegistry) sentAt(uid types.UID, account, email string, since time.Time) (at time.Time, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sent[uid]
	if !ok || s.since.Unix() != since.Unix() || s.account != account || s.email != strings.ToLower(email) {
		return since, false
	}
	return s.at, true
}

// seenAtURLBefore says whether this manager found, before t, a record with
// id and email in another account at url, the base URL of account: under
// a key just rotated (the same account, not yet known as such) or in
// another account filled from the same source, such a record in account
// is most likely that very record, there before t, not one a create sent
// at t stored with the same id and email.
//
// t is when the create was sent (sentAt); when exact is false it is the
// proof's Since, in whole seconds, and a record found within t's second
// counts as found before it (found elsewhere, it is still not a record
// this create can have stored).
//
// A record this manager's DELETE confirmed gone before the create was sent
// (as given: when it was sent), and not found since, is no such record:
// under a rotated key it is gone from the very account, whose ids are never
// given again, so it cannot be what the create's listing shows (seed
// 1100103: a Customer deleted its record, the default key became the other
// account's, and a new Customer's create there got the same id and email,
// answered oddly; the deleted record made its own record a Conflict; seed
// 1101701, the same with the deleted Customer's own spec made again).
func (r *accountRegistry) seenAtURLBefore(url, account, id, email string, t time.Time, exact bool) bool {
	sent := t
	r.mu.Lock()
	defer r.mu.Unlock()
	email = strings.ToLower(email)
	if !exact {
		t = t.Truncate(time.Second).Add(time.Second)
	}
	// A record found at the very time of the send (a clock that does not
	// move) counts as found before it: the side that keeps.
	for other, recs := range r.seen {
		if other == account || r.urls[other] != url {
			continue
		}
		if s, ok := recs[id]; ok && s.email == email && (s.first.Before(t) || exact && s.first.Equal(t)) &&
			!r.deletedBeforeLocked(other, id, sent) {
			return true
		}
	}
	return false
}

// heldBefore returns the id of a record other than except that this
// manager found in account before t, holding email when it was last found,
// or "": a create of email sent at t and answered 409 was then most likely
// refused for that record, even if a listing (from a lagging replica)
// shows no record with the email.
//
// A record this manager deleted before sent (when the create was sent),
// and has not found since, explains nothing: it was gone when the create
// reached ScriptLock (seed 901984: the object this name had before a
// restore deleted its record, then the restored one's create was answered
// 409 by a gateway's retry).
func (r *accountRegistry) heldBefore(account, email, except string, t, sent time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	email = strings.ToLower(email)
	for id, s := range r.seen[account] {
		if id != except && s.email == email && s.first.Before(t) && !r.deletedBeforeLocked(account, id, sent) {
			return id
		}
	}
	return ""
}

// removed records that this manager's DELETE of record id in account was
// confirmed at time at.
func (r *accountRegistry) removed(account, id string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.deleted == nil {
		r.deleted = map[string]map[string]time.Time{}
	}
	if r.deleted[account] == nil {
		r.deleted[account] = map[string]time.Time{}
	}
	r.deleted[account][id] = at
}

// deletedBeforeLocked says whether this manager's DELETE of record id in
// account was confirmed before t and the record was not found since.
func (r *accountRegistry) deletedBeforeLocked(account, id string, t time.Time) bool {
	d, ok := r.deleted[account][id]
	if !ok || !d.Before(t) {
		return false
	}
	s, seen := r.seen[account][id]
	return !seen || !s.last.After(d)
}
