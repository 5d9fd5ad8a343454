package explore

import (
	"slices"
	"strings"
	"sync"
)

// Account names one ScriptLock account as the explorer knows it: the
// instance it lives on and its name there. An account keeps its name when
// its key is rotated, so a rotated key is the same account and another key
// at the same URL is another one.
type Account struct{ Instance, Name string }

func (a Account) String() string {
	if a.Instance == "" {
		return "(no account)"
	}
	return a.Instance + "/" + a.Name
}

// RecordRef names one ScriptLock record: ids are only unique within an
// account.
type RecordRef struct {
	Account Account
	ID      string
}

func (r RecordRef) String() string { return r.Account.String() + "#" + r.ID }

// Record is a ScriptLock record as it is stored.
type Record struct {
	Ref                         RecordRef
	Company, First, Last, Email string
}

// CustomerView is what the explorer sees of one Customer at one moment,
// with its credentials resolved to the account they name now.
type CustomerView struct {
	Name, UID string
	// The spec.
	Company, First, Last, Email string
	Policy                      string // Delete | Orphan
	Adoption                    string // Never | IfExists
	CustomerID                  string // spec.customerID
	Observe, Paused, Deleting   bool
	// NoFinalizer: the operator's finalizer is missing (a replace-style
	// update dropped it and the operator has not put it back yet): a
	// deletion now goes at once, without the operator.
	NoFinalizer bool
	// Account is where the Customer's credentials point now; the zero
	// Account when they name none that exists. PrevAccount is where they
	// pointed before a change in the step under way: a call already in
	// flight may still go there.
	Account, PrevAccount Account
	// Bound is status.customerID, in BoundAccount (status.account).
	Bound        string
	BoundAccount Account
	// Ready is the Ready condition's status ("True", "False" or ""), with
	// its reason and message; Stalled is Stalled=True.
	Ready, Reason, Message string
	Stalled                bool
	Generation, Observed   int64
	// PendingUID and PendingEmail are the uid and email of the create-time
	// proof: the annotation licensing.scriptlock.com/pending-create while
	// status.customerID is empty, else status.pendingCreate.
	PendingUID, PendingEmail string
}

// Ledger is the explorer's own account of which Customer (by UID) owns
// which record, kept from what it saw, never from what the operator says:
// a record is owned by the Customer that created it (the POST that stored
// it, sent while that very object held the create-time proof), or by the
// Customer a person told to take it (spec.customerID, adoption IfExists,
// an observer switched to Manage) while no live Customer managed it: an
// owner switched to Observe claims nothing (README, managementPolicy:
// Observe), so a person may tell another Customer to take its record.
type Ledger struct {
	// mu guards every field: the tap checks writes while a step runs.
	mu    sync.Mutex
	owner map[RecordRef]string
	// consented holds the UIDs of observers switched to Manage: the README
	// counts the switch as consent to manage the observed record.
	consented map[string]bool
	// gone keeps the last view of every Customer that went away, for the
	// checks of what its deletion did.
	gone map[string]CustomerView
	// forced holds the UIDs whose finalizer the explorer itself removed
	// (a lost object): their records are let go by a person.
	forced map[string]bool
	// lostNow holds, by UID, the last view of every Customer lost (see
	// Forced) in the step under way: a pass of it that was under way when
	// it went may still finish a write it had decided on.
	lostNow map[string]CustomerView
	// seen is the last view of every live Customer.
	seen map[string]CustomerView
	// rotated holds the accounts whose key was rotated: the old key is
	// refused from then on.
	rotated map[Account]bool
	// emails holds the email each owned record had in the last snapshot.
	emails map[RecordRef]string
	// unboundAtRotation holds the records whose key was rotated while the
	// Customer that created them had not bound them yet (a create whose
	// answer was lost): the README carries only a bound record over to a
	// rotated key, so such a Customer may report Conflict over it.
	unboundAtRotation map[RecordRef]bool
	// boundUnderOldKey holds the Customers that were bound under a key
	// rotated away (status.account naming no key that works) when a
	// manager restarted: the new manager never knew that key, so it cannot
	// prove the rotation (README, the credentials-change row: after a
	// restart a rotation needs the annotation), and deleting such a
	// Customer keeps its record (RecordKept).
	boundUnderOldKey map[string]bool
	// namedByOthers holds, for each Customer that went away, the records
	// another Customer named in spec.customerID when it went: the README's
	// deletion row deletes only a record "that no other Customer holds",
	// and a person told that one to take it, so it is kept.
	namedByOthers map[string]map[RecordRef]bool
	// carried maps a record a Customer took as a rotation lookalike to the
	// record it owned under the same id in the rotated-away account: through
	// the API the two are one record (README, the credentials-change row).
	carried map[RecordRef]RecordRef
	// inPlace holds, by record and then by UID, the rotation lookalikes
	// seen in a snapshot (after the rotation) that the Customer could take
	// (lookalikeOf), with the record it owns in the rotated-away account:
	// the operator may take one on a listing that showed it and only then
	// find it gone (deleted in ScriptLock by someone else in between),
	// when the ledger never saw the binding while the record was there
	// (seed 1001087).
	inPlace map[RecordRef]map[string]RecordRef
	// unheard holds, by UID, the creates sent while that Customer held a
	// create-time proof whose answer the operator never learnt (see
	// Posted): through the API a record with exactly the fields one of
	// them carried looks like the record that create made.
	unheard map[string][]Post
	// drifted holds the records changed in ScriptLock by someone else
	// (the explorer's drift) and not written by the operator since: they
	// are not as the operator last synced them.
	drifted map[RecordRef]bool
	// unsynced holds the records of a rotated-away account that were not
	// as last synced (drifted) at the rotation or after it: the README
	// carries a bound record over to a rotated key only when it is
	// exactly as last synced (status.syncedDigest), so a Customer not
	// carried over keeps such a record when deleted (RecordKept).
	unsynced map[RecordRef]bool
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{owner: map[RecordRef]string{}, consented: map[string]bool{}, gone: map[string]CustomerView{}, forced: map[string]bool{}, lostNow: map[string]CustomerView{}, seen: map[string]CustomerView{}, rotated: map[Account]bool{}, emails: map[RecordRef]string{}, unboundAtRotation: map[RecordRef]bool{}, carried: map[RecordRef]RecordRef{}, inPlace: map[RecordRef]map[string]RecordRef{}, namedByOthers: map[string]map[RecordRef]bool{}, boundUnderOldKey: map[string]bool{}, unheard: map[string][]Post{}, drifted: map[RecordRef]bool{}, unsynced: map[RecordRef]bool{}}
}

// Created records that uid's create stored ref.
func (l *Ledger) Created(ref RecordRef, uid string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.owner[ref] = uid
}

// Owner returns the UID that owns ref, or "".
func (l *Ledger) Owner(ref RecordRef) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owner[ref]
}

// Consented records that uid, an observer, was switched to Manage.
func (l *Ledger) Consented(uid string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.consented[uid] = true
}

// Rotated records that a's key was rotated: its old key is refused from
// now on. The records of a that their creators (as last seen) had not
// bound yet are remembered: a rotated key carries only a bound record
// over; and so are the records of a changed by someone else since the
// operator last wrote them: a rotated key carries a record over only as
// last synced.
func (l *Ledger) Rotated(a Account) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rotated[a] = true
	for ref := range l.drifted {
		if ref.Account == a {
			l.unsynced[ref] = true
		}
	}
	for ref, uid := range l.owner {
		if c, live := l.seen[uid]; ref.Account == a && live && (c.Bound != ref.ID || c.BoundAccount != a) {
			l.unboundAtRotation[ref] = true
		}
	}
	// From now on status.account of a Customer bound under the old key
	// names a key that no longer works, as the next snapshot will show. A
	// Customer that goes in this very step (a deletion under way, or one
	// whose watch event came late) went under the new key, not carried
	// over: its last view says so, as Repointed does for other changes of
	// credentials (seed 900094).
	for uid, c := range l.seen {
		if c.Bound != "" && c.BoundAccount == a {
			c.BoundAccount = Account{}
			l.seen[uid] = c
		}
	}
}

// Restarted records that a new manager started: the Customers last seen
// bound under a key that no longer works (rotated away) cannot have their
// rotation proven by it.
func (l *Ledger) Restarted() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for uid, c := range l.seen {
		if c.Bound != "" && c.BoundAccount.Instance == "" && len(l.rotated) > 0 {
			l.boundUnderOldKey[uid] = true
		}
	}
}

// Drifted records that someone other than the operator changed ref in
// ScriptLock. In an account whose key was rotated, a Customer not carried
// over yet can no longer prove the rotation with it (README, the
// credentials-change row: the record exactly as last synced).
func (l *Ledger) Drifted(ref RecordRef) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drifted[ref] = true
	if l.rotated[ref.Account] {
		l.unsynced[ref] = true
	}
}

// Wrote records that the operator's PUT of ref was stored: the record is
// what the operator sent, drift put back.
func (l *Ledger) Wrote(ref RecordRef) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.drifted, ref)
}

// Repointed records that the credentials of uid, a Customer live just
// before a change of credentials, name a now. Its last view is from the
// snapshot before the change; if it goes before the next one (a deletion
// under way), it went under these credentials.
func (l *Ledger) Repointed(uid string, a Account) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.seen[uid]; ok && c.Account != a {
		c.PrevAccount, c.Account = c.Account, a
		l.seen[uid] = c
	}
}

// Forced records that the explorer removed uid's finalizer itself: the
// object is lost without the operator (a restore), in the step under way.
func (l *Ledger) Forced(uid string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forced[uid] = true
	if c, ok := l.seen[uid]; ok {
		l.lostNow[uid] = c
	}
}

// inFlight says whether w may be a write a pass of a Customer lost in the
// step under way had decided on before the object went: a PUT (or, while
// it was being deleted with deletionPolicy Delete, a DELETE) of the record
// it was last seen bound to, which it could prove its own. No controller
// can make its read of an object and its call to ScriptLock one atomic
// step; an object removed without its finalizer in between (Kubernetes
// does so even for a finalizer put back a moment before the DELETE, when
// the two cross) leaves that call in flight. As with PrevAccount, a call
// in flight during the step, not after.
func (l *Ledger) inFlight(w Write, live map[string]CustomerView) bool {
	for _, c := range l.lostNow {
		if c.Bound != w.Ref.ID || c.BoundAccount != w.Ref.Account || !l.proves(c, w.Before, live) {
			continue
		}
		if w.Method == "PUT" && !c.Deleting || w.Method == "DELETE" && c.Deleting && c.Policy != "Orphan" {
			return true
		}
	}
	return false
}

// decidedBefore says whether w may be a PUT a pass of a live Customer had
// decided on before the step under way took its right to write away: the
// step switched it to managementPolicy: Observe, or began its deletion,
// and as last seen before the step (l.seen) it managed the record and
// could prove it its own. A pass reads its object and then calls
// ScriptLock, and no controller can make the two one step (as for a
// Customer lost in the step, inFlight, or a change of credentials,
// PrevAccount): a person's change that lands in between leaves the call
// in flight (seed 1100397: a Conflict's retry PUT, decided under Manage,
// sent just after observe). A call in flight during the step, not after:
// the next snapshot replaces l.seen.
func (l *Ledger) decidedBefore(w Write, live map[string]CustomerView) bool {
	if w.Method != "PUT" {
		return false
	}
	for uid, now := range live {
		before, ok := l.seen[uid]
		if !ok || before.UID != now.UID || before.Observe || before.Deleting {
			continue
		}
		if !now.Observe && !now.Deleting {
			continue
		}
		if before.Bound != w.Ref.ID || before.BoundAccount != w.Ref.Account {
			continue
		}
		if l.proves(before, w.Before, live) {
			return true
		}
	}
	return false
}

// told says whether a person told c to take rec: spec.customerID names it,
// or adoption IfExists (or an observer's switch to Manage) and the emails
// match; always in the account c's credentials name.
func (l *Ledger) told(c CustomerView, rec Record) bool {
	if !c.uses(rec.Ref.Account) {
		return false
	}
	if c.CustomerID != "" {
		return c.CustomerID == rec.Ref.ID
	}
	return (c.Adoption == "IfExists" || l.consented[c.UID]) && strings.EqualFold(c.Email, rec.Email)
}

// Proves says whether c may act on rec as its own now, given the live
// Customers: rec is in the account c's credentials name, and c owns it or
// was told to take it while no other live Customer owns it and manages it
// (an owner switched to Observe claims nothing: README, the
// managementPolicy: Observe row).
func (l *Ledger) Proves(c CustomerView, rec Record, live map[string]CustomerView) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.proves(c, rec, live)
}

func (l *Ledger) proves(c CustomerView, rec Record, live map[string]CustomerView) bool {
	if !c.uses(rec.Ref.Account) || c.Observe {
		return false
	}
	owner := l.owner[rec.Ref]
	if owner == c.UID {
		return true
	}
	if o, alive := live[owner]; alive && owner != "" && !o.Observe {
		return false
	}
	return l.told(c, rec) || l.lookalike(c, rec) || l.lostAnswer(c, rec, live)
}

// lookalike says whether rec, in another account of the same instance, is
// what the README's rotation rule lets c carry over: c owns a record with
// the same id in an account whose key was rotated (the old key refused),
// and rec holds the email that record had when last seen (a copy of it). Through the API, a key of another account
// holding an exact copy and a rotated key of c's own account look the same
// (README, the credentials-change row: a limit of the evidence), so the
// ledger allows c to take it; it does not require it.
func (l *Ledger) lookalike(c CustomerView, rec Record) bool {
	_, ok := l.lookalikeOf(c, rec)
	return ok
}

// lookalikeOf returns the record c owns in a rotated-away account that rec
// is a lookalike of (see lookalike).
func (l *Ledger) lookalikeOf(c CustomerView, rec Record) (RecordRef, bool) {
	for ref, uid := range l.owner {
		if uid == c.UID && ref.ID == rec.Ref.ID && ref.Account != rec.Ref.Account &&
			ref.Account.Instance == rec.Ref.Account.Instance && l.rotated[ref.Account] &&
			strings.EqualFold(l.emails[ref], rec.Email) {
			return ref, true
		}
	}
	return RecordRef{}, false
}

// take records that c took ref, a rotation lookalike of old, the record
// it owns in the rotated-away account: through the API the two are one
// record moved by a key rotation, so ref is c's own from now on, and the
// pair counts as one record (carriedBy).
func (l *Ledger) take(c CustomerView, ref, old RecordRef) {
	if _, seen := l.carried[ref]; !seen {
		l.carried[ref] = old
	}
	l.owner[ref] = c.UID
}

// free says whether no live Customer that manages (not observes) owns ref.
func (l *Ledger) free(ref RecordRef, live map[string]CustomerView) bool {
	o, alive := live[l.owner[ref]]
	return l.owner[ref] == "" || !alive || o.Observe
}

// Post is one create (a POST) as the tap saw it: the account it went to,
// the fields it carried and its answer.
type Post struct {
	Account                     Account
	Company, First, Last, Email string
	// Status is the answer's status code; 0 when the connection was
	// dropped without one.
	Status int
	// Crashed: the manager was stopped right after the POST was sent, so
	// it never read the answer.
	Crashed bool
}

// unheard says whether the operator never learnt from p's answer what p
// did: the manager stopped right after sending it, the connection was
// dropped, the answer was a 409 (the email taken: by the record this very
// create made, if a gateway retried it), a 5xx (lost: stored or not), or
// an odd success other than 201. A 201 it read, or a refusal that stores
// nothing (400, 401, 403, 404, 429), is heard.
func (p Post) unheard() bool {
	switch {
	case p.Crashed || p.Status == 0:
		return true
	case p.Status == 201:
		return false
	}
	return p.Status == 409 || p.Status >= 500 || p.Status < 400
}

// Posted records a create the tap saw, sent for the live Customer that
// held a create-time proof for its email in its account (as Attribute).
// A create whose answer the operator never learnt (see unheard) is
// remembered for that Customer; a 201 it read settles its creates in that
// account: the record that one made is its own, and no other.
func (l *Ledger) Posted(p Post, live map[string]CustomerView) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, uid := range senders(p.Account, p.Email, live) {
		if p.unheard() {
			l.unheard[uid] = append(l.unheard[uid], p)
			continue
		}
		l.unheard[uid] = slices.DeleteFunc(l.unheard[uid], func(q Post) bool { return q.Account == p.Account })
	}
}

// senders returns, sorted, the live Customers that may have sent a POST
// of email to account: those holding a create-time proof (their own UID)
// for that email in that account. Two may hold one at once: one whose
// create's answer was lost and whose spec moved to another email since
// (it waits for that create's record: README, the lost-answer row) and
// one whose spec has the email now. The operator posts the spec it read,
// so when some holders' specs have the email, the POST is one of theirs
// (seed 500563); else (a create sent before the spec changed) any
// holder's.
func senders(account Account, email string, live map[string]CustomerView) []string {
	var holders, withEmail []string
	for uid, c := range live {
		if c.PendingUID != uid || !strings.EqualFold(c.PendingEmail, email) || c.Account != account {
			continue
		}
		holders = append(holders, uid)
		if strings.EqualFold(c.Email, email) {
			withEmail = append(withEmail, uid)
		}
	}
	if len(withEmail) > 0 {
		holders = withEmail
	}
	slices.Sort(holders)
	return holders
}

// lostAnswer says whether c may take rec as the record its own create
// made, a create whose answer it never learnt (README, the behaviour row
// "operator killed between the create and the status write, the create's
// answer lost", and the limit note citing seed 101774): rec is in the
// account that create went to and holds exactly the fields it carried,
// and no live Customer owns rec (managing or observing). Through the API
// such a record and the record a create whose answer was lost (or a
// gateway's retried POST answered 409) made look the same; records carry
// no creation time. The ledger allows c to take it; it does not require
// it.
func (l *Ledger) lostAnswer(c CustomerView, rec Record, live map[string]CustomerView) bool {
	if owner := l.owner[rec.Ref]; owner != "" {
		if _, alive := live[owner]; alive {
			return false
		}
	}
	for _, p := range l.unheard[c.UID] {
		if p.Account == rec.Ref.Account && p.Company == rec.Company && p.First == rec.First && p.Last == rec.Last &&
			strings.EqualFold(p.Email, rec.Email) {
			return true
		}
	}
	return false
}

// Observe updates the ledger from one snapshot: Customers that bound a
// record they were told to take become its owner if nobody live owns it,
// and Customers that went away are remembered.
func (l *Ledger) Observe(s Snapshot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	live := s.Live()
	for _, c := range s.Customers {
		if c.Bound == "" || c.Observe {
			continue
		}
		ref := RecordRef{Account: c.BoundAccount, ID: c.Bound}
		if l.owner[ref] == c.UID {
			continue
		}
		rec, ok := s.Records[ref]
		if !ok {
			if old, seen := l.inPlace[ref][c.UID]; seen && l.free(ref, live) {
				// Bound to a rotation lookalike that is gone: it was in
				// place once the old key was refused (a snapshot showed
				// it), the operator took it on a listing that showed it,
				// and it was deleted in ScriptLock by someone else
				// before a snapshot showed the binding. Through the API
				// that is a record carried over by a rotated key and
				// then deleted (README, the credentials-change and
				// remote-delete rows): one record, created again.
				l.take(c, ref, old)
			}
			continue
		}
		if old, ok := l.lookalikeOf(c, rec); ok && l.free(ref, live) {
			// Bound to a rotation lookalike: the operator took it as the
			// record it had (README: a limit of the evidence), and from
			// then on it is its own (status.account names the account of
			// its credentials: the first proof of "Which record is
			// whose"), whatever the spec writes to it since.
			l.take(c, ref, old)
			continue
		}
		if l.free(ref, live) && l.told(c, rec) {
			l.owner[ref] = c.UID
		} else if l.lostAnswer(c, rec, live) {
			// Taken as the record of its create whose answer it never
			// learnt: its own from now on, as a record it created.
			l.owner[ref] = c.UID
		}
	}
	for ref, rec := range s.Records {
		for _, c := range live {
			if c.Observe {
				continue
			}
			if old, ok := l.lookalikeOf(c, rec); ok && l.free(ref, live) {
				if l.inPlace[ref] == nil {
					l.inPlace[ref] = map[string]RecordRef{}
				}
				l.inPlace[ref][c.UID] = old
			}
		}
	}
	for ref, rec := range s.Records {
		if l.owner[ref] != "" {
			l.emails[ref] = rec.Email
		}
	}
	// Every Customer that went in this step is judged against the views
	// from before it: two that go together (massdelete) each still see
	// the other as last seen, whatever the order of the map.
	var went []string
	for uid, c := range l.seen {
		if _, alive := live[uid]; !alive {
			l.gone[uid] = c
			l.namedByOthers[uid] = l.namedBy(uid, live)
			went = append(went, uid)
		}
	}
	for _, uid := range went {
		delete(l.seen, uid)
	}
	for uid, c := range live {
		l.seen[uid] = c
	}
	clear(l.lostNow)
}

// namedBy returns the records uid owns that another managing Customer,
// as last seen or live now, names in spec.customerID in the account its
// credentials name.
func (l *Ledger) namedBy(uid string, live map[string]CustomerView) map[RecordRef]bool {
	out := map[RecordRef]bool{}
	for ref, owner := range l.owner {
		if owner != uid {
			continue
		}
		for _, views := range []map[string]CustomerView{l.seen, live} {
			for _, o := range views {
				if o.UID != uid && !o.Observe && o.CustomerID == ref.ID && o.uses(ref.Account) {
					out[ref] = true
				}
			}
		}
	}
	return out
}

// Attribute records who made ref, a record a POST just stored with email:
// the live Customer whose create-time proof (PendingUID, its own UID)
// names that email, in the account the record is in, preferring one whose
// spec has the email (see senders). It returns "" if there is none: a
// create sent without its proof persisted first.
func (l *Ledger) Attribute(ref RecordRef, email string, live map[string]CustomerView) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	uids := senders(ref.Account, email, live)
	if len(uids) == 0 {
		return ""
	}
	l.owner[ref] = uids[0]
	return uids[0]
}

// uses says whether c's credentials name a, now or before the step under
// way changed them.
func (c CustomerView) uses(a Account) bool {
	return a.Instance != "" && (c.Account == a || c.PrevAccount == a)
}
