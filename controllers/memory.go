package controllers

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// customerMemory is what the operator remembers of each Customer's record:
// the fields it last saw equal to the spec and when, its last write, its
// last look for a lost create, and the record last found holding its
// email. Like the account registry, whose use counts it keeps, it is an
// optimisation, never the source of truth: after a restart it is empty and
// every Customer is checked again.
type customerMemory struct {
	accounts *accountRegistry

	mu      sync.Mutex
	objects map[types.NamespacedName]*syncState
}

// syncState is what the operator last saw of one Customer's record. It is
// kept for every Customer, so it holds inline only what every synced
// Customer has; the rest, which only a Customer being created, waited on,
// corrected, moved or found missing needs, is in rare, made on first use.
type syncState struct {
	account  string
	id       string
	desired  scriptlock.Customer // the fields last seen equal in ScriptLock
	lastSync time.Time

	// via is the credentials reference (a Secret's name; "" for the
	// default key) that resolved to account: a deletion whose Secret is
	// gone uses that account's client only while its credentials still
	// name via (lastClientVia).
	via string

	// written is the resourceVersion of the operator's own last write of
	// the object (metadata or status).
	written uint64

	// looked is when the listing was asked for that last showed no record
	// of this Customer's pending create: the next look needs a newer one.
	// Every create sets it.
	looked time.Time

	rare *rareState // nil until one of its fields is set; dropped when all are zero again
}

// rareState is the part of a Customer's memory few Customers need at once.
type rareState struct {
	last    *scriptlock.Client // the client used before detach, or of the bound account before a sync (usedKey)
	lastVia string             // the credentials reference that resolved to last (see syncState.via)

	// The last write for a generation, and the fields it had to change:
	// the same fields differing again means ScriptLock stores other values
	// than it accepted (see rewritten).
	wroteGen    int64
	wroteFields string

	// taken is the id of the record last found holding this Customer's
	// email without being its own (a Conflict): a retry reads that record
	// instead of listing the account.
	taken string

	// missing is the bound record reads found missing, how many reads in a
	// row, and when the last one counted (confirmVanished).
	missing      string
	missingReads int
	missingAt    time.Time

	// waitedAt is when a pass on the copy at waitedGen and waitedRV last
	// ended in a wait the operator imposed on itself.
	waitedAt  time.Time
	waitedGen int64
	waitedRV  string

	// requested is the last reconcile request a pass saw, and when it was
	// first seen: a listing asked since answers for it. requestedRec (in
	// requestedAccount) is the record its pass read, if one did but was
	// held back before it was done (its PUT past the account's rate limit,
	// say): its retry uses that read instead of reading again, which would
	// take the very turn its write waits for.
	requested        string
	requestedAt      time.Time
	requestedAccount string
	requestedRec     scriptlock.Customer

	// corrections are the times someone's edit of the record was put back
	// again within the same generation, in the last hour (correct).
	corrections []time.Time
}

// more returns o's rare part, made on first use. The caller holds m.mu.
func (o *syncState) more() *rareState {
	if o.rare == nil {
		o.rare = &rareState{}
	}
	return o.rare
}

// tidy drops o's rare part once nothing is left in it: a Customer that
// waited on its account's rate during a create storm, say, costs nothing
// more once it is done. The caller holds m.mu.
func (o *syncState) tidy() {
	if r := o.rare; r != nil && r.last == nil && r.lastVia == "" && r.wroteGen == 0 && r.wroteFields == "" && r.taken == "" &&
		r.missing == "" && r.missingReads == 0 && r.missingAt.IsZero() && r.waitedAt.IsZero() &&
		r.requested == "" && r.requestedAccount == "" && r.requestedRec == (scriptlock.Customer{}) && len(r.corrections) == 0 {
		o.rare = nil
	}
}

// less returns a copy of o's rare part for reading: its zero value when
// there is none. The caller holds m.mu.
func (o *syncState) less() rareState {
	if o.rare == nil {
		return rareState{}
	}
	return *o.rare
}

// maxCorrections bounds how often in an hour a Customer puts its record
// back after someone changed it again to other values: a second writer
// would otherwise fight it for ever.
const maxCorrections = 10

func newCustomerMemory(accounts *accountRegistry) *customerMemory {
	return &customerMemory{accounts: accounts, objects: map[types.NamespacedName]*syncState{}}
}

// object returns the memory of key, made on first use. The caller holds
// m.mu.
func (m *customerMemory) object(key types.NamespacedName) *syncState {
	o, ok := m.objects[key]
	if !ok {
		o = &syncState{}
		m.objects[key] = o
	}
	return o
}

// lookedSince is when key's pending create was last looked for in vain
// (lookedAt), or since if later: a listing asked before it cannot show
// anything new.
func (m *customerMemory) lookedSince(key types.NamespacedName, since time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.objects[key]; ok && !o.looked.Before(since) {
		return o.looked.Add(time.Nanosecond)
	}
	return since
}

// lookedAt records that a listing asked at asked showed no record of key's
// pending create.
func (m *customerMemory) lookedAt(key types.NamespacedName, asked time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.object(key).looked = asked
}

// takenBy returns the id of the record last found holding key's email.
func (m *customerMemory) takenBy(key types.NamespacedName) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.objects[key]; ok {
		return o.less().taken
	}
	return ""
}

// setTakenBy records (or, with "", forgets) the record holding key's email.
func (m *customerMemory) setTakenBy(key types.NamespacedName, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.object(key); id != "" || o.rare != nil {
		o.more().taken = id
		o.tidy()
	}
}

// missingRead counts a read at now that found key's bound record id
// missing, unless it comes less than interval after the last one counted,
// and returns how many reads in a row found it missing.
func (m *customerMemory) missingRead(key types.NamespacedName, id string, now time.Time, interval time.Duration) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.object(key).more()
	if o.missing != id {
		o.missing, o.missingReads = id, 0
	}
	if o.missingReads == 0 || now.Sub(o.missingAt) >= interval {
		o.missingReads++
		o.missingAt = now
	}
	return o.missingReads
}

// present records that key's bound record was found: a disappearance
// under way is called off.
func (m *customerMemory) present(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.objects[key]; ok && o.rare != nil {
		o.rare.missing, o.rare.missingReads, o.rare.missingAt = "", 0, time.Time{}
		o.tidy()
	}
	m.accounts.unmarkVanished(key)
}

// wroteObject records the resourceVersion the API server gave the
// operator's own write of key.
func (m *customerMemory) wroteObject(key types.NamespacedName, resourceVersion string) {
	rv, err := strconv.ParseUint(resourceVersion, 10, 64)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.object(key); rv > o.written {
		o.written = rv
	}
}

// wroteAny says whether this manager wrote key's object (metadata or
// status) since it started: without such a write, staleCopy cannot tell a
// lagging copy.
func (m *customerMemory) wroteAny(key types.NamespacedName) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	return ok && o.written > 0
}

// staleCopy says whether a copy of key at resourceVersion is older than the
// operator's own last write of it: acting on it could roll the status back
// or write an old spec to ScriptLock. A resourceVersion that is not a
// number (the API server's are etcd revisions) is taken as stale.
func (m *customerMemory) staleCopy(key types.NamespacedName, resourceVersion string) bool {
	rv, written, err := m.sinceLastWrite(key, resourceVersion)
	return written > 0 && (err != nil || rv < written)
}

// ownLastWrite says whether a copy of key at resourceVersion is the
// operator's own last write of it: it holds everything the operator
// wrote, so a pass may act on it without reading the object again.
func (m *customerMemory) ownLastWrite(key types.NamespacedName, resourceVersion string) bool {
	rv, written, err := m.sinceLastWrite(key, resourceVersion)
	return written > 0 && err == nil && rv == written
}

// sinceLastWrite parses resourceVersion and returns it with the
// resourceVersion of the operator's own last write of key (0: none).
func (m *customerMemory) sinceLastWrite(key types.NamespacedName, resourceVersion string) (rv, written uint64, err error) {
	m.mu.Lock()
	if o := m.objects[key]; o != nil {
		written = o.written
	}
	m.mu.Unlock()
	rv, err = strconv.ParseUint(resourceVersion, 10, 64)
	return rv, written, err
}

// synced records that the record of key, in cl's account, was seen equal to
// rec at now, with credentials that came from via (a Secret's name; "" for
// the default key).
func (m *customerMemory) synced(key types.NamespacedName, cl *scriptlock.Client, via string, rec scriptlock.Customer, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.object(key)
	if o.account != cl.Account() {
		m.accounts.release(o.account)
		o.account = cl.Account()
		m.accounts.use(cl)
		// The account's client answers lastClient from now on.
		o.via = ""
		if o.rare != nil {
			o.rare.last, o.rare.lastVia = nil, ""
			o.tidy()
		}
	}
	// The account's listing is not updated: it is shared with readers
	// outside the lock, and writtenAfter and compare prefer this newer
	// write.
	o.id, o.desired, o.lastSync = rec.ID, rec, now
	o.resolvedVia(cl, via)
}

// writtenAfter returns what the operator itself last saw in record id of
// account for key, if that was after asked (a listing asked before it is
// older than the operator's own write).
func (m *customerMemory) writtenAfter(key types.NamespacedName, account, id string, asked time.Time) (scriptlock.Customer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.objects[key]; ok && o.account == account && o.id == id && o.lastSync.After(asked) {
		return o.desired, true
	}
	return scriptlock.Customer{}, false
}

// syncedWithin says whether the record of key was seen equal to desired less
// than period ago, and how long until that period ends.
func (m *customerMemory) syncedWithin(key types.NamespacedName, desired scriptlock.Customer, period time.Duration, now time.Time) (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok || o.lastSync.IsZero() || o.id != desired.ID || !scriptlock.SameFields(o.desired, desired) {
		return 0, false
	}
	left := o.lastSync.Add(period).Sub(now)
	return left, left > 0
}

// wrote records that the record of key is about to be rewritten for
// generation because fields (names) differ from the spec.
func (m *customerMemory) wrote(key types.NamespacedName, generation int64, fields []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.object(key).more()
	o.wroteGen, o.wroteFields = generation, strings.Join(fields, ",")
}

// correct counts a correction of key's record at now and says whether it
// is within maxCorrections in the last hour; n is how many there were.
func (m *customerMemory) correct(key types.NamespacedName, now time.Time) (n int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.object(key).more()
	recent := o.corrections[:0]
	for _, t := range o.corrections {
		if now.Sub(t) < time.Hour {
			recent = append(recent, t)
		}
	}
	o.corrections = recent
	if len(recent) >= maxCorrections {
		return len(recent), false
	}
	o.corrections = append(o.corrections, now)
	return len(o.corrections), true
}

// waited records that a pass of key ended at now in a wait the operator
// imposed on itself, on the copy of the object at generation and
// resourceVersion.
func (m *customerMemory) waited(key types.NamespacedName, generation int64, resourceVersion string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.object(key).more()
	o.waitedAt, o.waitedGen, o.waitedRV = now, generation, resourceVersion
}

// freshWait says whether key's last pass ended, at or after t, in a wait
// the operator imposed on itself, on the same copy of the object
// (generation and resourceVersion): the decisions of that pass, taken on
// what it read then, are still fresh.
func (m *customerMemory) freshWait(key types.NamespacedName, generation int64, resourceVersion string, t time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return false
	}
	r := o.less()
	return !r.waitedAt.IsZero() && !r.waitedAt.Before(t) && r.waitedGen == generation && r.waitedRV == resourceVersion
}

// endWait forgets key's last wait: its pass ended otherwise.
func (m *customerMemory) endWait(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.objects[key]; ok && o.rare != nil {
		o.rare.waitedAt, o.rare.waitedGen, o.rare.waitedRV = time.Time{}, 0, ""
		o.tidy()
	}
}

// converged forgets the last write of key: ScriptLock was seen holding the
// spec, so the write took effect.
func (m *customerMemory) converged(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.objects[key]; ok && o.rare != nil {
		o.rare.wroteGen, o.rare.wroteFields = 0, ""
		o.tidy()
	}
}

// rewritten says whether the record of key was already rewritten for
// generation and the same fields still differ from the spec: ScriptLock
// stores the values differently from what it accepted (or someone keeps
// changing them back), and writing again would only repeat that every
// period.
func (m *customerMemory) rewritten(key types.NamespacedName, generation int64, fields []string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	return ok && o.rare != nil && o.rare.wroteGen == generation && o.rare.wroteFields == strings.Join(fields, ",")
}

// forget drops key, and its account when no Customer uses it.
func (m *customerMemory) forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return
	}
	delete(m.objects, key)
	m.accounts.release(o.account)
	m.accounts.unmarkVanished(key)
}

// detach stops counting key as a user of its account (its credentials no
// longer resolve to it), so that an account nobody can name any more is no
// longer listed; lastClient still remembers the client for a deletion.
func (m *customerMemory) detach(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.objects[key]; ok && o.account != "" {
		if cl := m.accounts.client(o.account); cl != nil {
			o.more().last, o.rare.lastVia = cl, o.via
		}
		m.accounts.release(o.account)
		o.account, o.lastSync, o.via = "", time.Time{}, ""
	}
}

// usedKey records that a pass of key resolved its credentials to cl, the
// account its status binds its record in: this manager knows that key
// from then on, even before (or without) seeing the record in sync, so a
// rotation that comes later is proven as for a synced Customer (the old
// key refused). Kept only while no sync put the account in the memory;
// lastClient answers with that account's client then.
func (m *customerMemory) usedKey(key types.NamespacedName, cl *scriptlock.Client, via string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.object(key)
	if o.account != cl.Account() {
		if o.more().last != cl {
			o.rare.lastVia = ""
		}
		o.rare.last = cl
	}
	o.resolvedVia(cl, via)
}

// resolvedVia records that the credentials reference via (a Secret's
// name; "" for the default key) resolved to cl, the client the memory
// keeps for o (its synced account, or the key of usedKey). m.mu is held.
func (o *syncState) resolvedVia(cl *scriptlock.Client, via string) {
	if o.account == cl.Account() {
		o.via = via
	}
	if o.rare != nil && o.rare.last != nil && o.rare.last.Account() == cl.Account() {
		o.rare.lastVia = via
		o.tidy()
	}
}

// lastClient returns the client key last used, so that a Customer whose
// credentials Secret was deleted first (a namespace being torn down) can
// still be cleaned up while the operator runs.
func (m *customerMemory) lastClient(key types.NamespacedName) *scriptlock.Client {
	cl, _ := m.lastUsed(key)
	return cl
}

// lastClientVia is lastClient for a deletion whose credentials Secret is
// gone: the client key last used, only if it came from via, the Secret
// its credentials name now. Credentials that name another Secret (or the
// default) are a change of credentials, and the key last used proves
// nothing in its account (README, the credentials-change row): nil then.
func (m *customerMemory) lastClientVia(key types.NamespacedName, via string) *scriptlock.Client {
	if cl, from := m.lastUsed(key); from == via {
		return cl
	}
	return nil
}

// lastUsed is the client key last used and the Secret it came from ("" for
// the default key): the client of the account the Customer is bound in
// while the registry has it, else the one remembered past it.
func (m *customerMemory) lastUsed(key types.NamespacedName) (*scriptlock.Client, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return nil, ""
	}
	if cl := m.accounts.client(o.account); cl != nil {
		return cl, o.via
	}
	r := o.less()
	return r.last, r.lastVia
}

// recordWithEmail returns the id of a record of account that the operator
// last saw in sync with email (case-insensitive), if any.
func (m *customerMemory) recordWithEmail(account, email string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.objects {
		if o.account == account && o.id != "" && strings.EqualFold(o.desired.Email, email) {
			return o.id, true
		}
	}
	return "", false
}

// compare returns the Customers of account that a listing requested at
// asked shows missing or different; with all, every Customer of the
// account. A record the operator wrote after asked is newer than the
// listing and is not reported.
func (m *customerMemory) compare(account string, recs *listing, asked time.Time, all bool) []types.NamespacedName {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []types.NamespacedName
	for key, o := range m.objects {
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

// requestedSince returns when reconcile request v of key was first seen,
// now if it is new: a listing asked for since then is fresh enough for it,
// so that the retry of a pass held back after its listing (its POST past
// the account's rate limit, say) does not list again.
func (m *customerMemory) requestedSince(key types.NamespacedName, v string, now time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.object(key)
	if v == "" && o.rare == nil {
		return time.Time{} // no request seen, as a zero rare part says
	}
	r := o.more()
	if r.requested != v {
		r.requested, r.requestedAt, r.requestedAccount, r.requestedRec = v, now, "", scriptlock.Customer{}
	}
	return r.requestedAt
}

// readForRequest records that the pass of reconcile request v read rec, in
// account, for key.
func (m *customerMemory) readForRequest(key types.NamespacedName, v, account string, rec scriptlock.Customer, now time.Time) {
	m.requestedSince(key, v, now)
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.object(key).more()
	o.requestedAccount, o.requestedRec = account, rec
}

// readFor returns the record id of account that the pass of reconcile
// request v read for key, if one did.
func (m *customerMemory) readFor(key types.NamespacedName, v, account, id string) (scriptlock.Customer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.objects[key]; ok && v != "" && o.less().requested == v && o.rare.requestedAccount == account && o.rare.requestedRec.ID == id {
		return o.rare.requestedRec, true
	}
	return scriptlock.Customer{}, false
}
