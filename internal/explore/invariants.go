package explore

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// The kinds of violation, each a promise of the README broken.
const (
	// "A ScriptLock record is written or deleted only by the one Customer
	// that can prove it owns it, in the account the record lives in."
	WriteUnowned  = "write-unowned"
	DeleteUnowned = "delete-unowned"
	// "Before every create the operator persists ... the create-time proof."
	CreateWithoutProof = "create-without-proof"
	// "one record only": never two records for one Customer, never one
	// record for two.
	TwoRecords            = "two-records"
	TwoCustomersOneRecord = "two-customers-one-record"
	// A Customer lets go of the record it owns while that record still
	// exists in its account (the behaviour table: only "record deleted in
	// ScriptLock by someone else" clears the binding).
	ForgotOwnRecord = "forgot-own-record"
	// Conflict is for a record or email this Customer cannot prove is
	// its own; "naming the Customer that holds it".
	ConflictOnOwnRecord = "conflict-on-own-record"
	ConflictUnnamed     = "conflict-unnamed"
	// Once perturbations stop, every Customer is Ready on its own record
	// or reports a reason that needs a person (Stalled=True).
	NoConvergence = "no-convergence"
	StuckDeleting = "stuck-deleting"
	// "deleted, deletionPolicy: Delete: DELETE, but only of a record this
	// Customer can prove is its own"; an owned record must not be left.
	OwnRecordLeft = "own-record-left-behind"
	// LicensesRevoked only when ScriptLock confirmed the record is gone.
	RevocationUnconfirmed = "revocation-unconfirmed"
	// "Ready=True means the record was checked against ScriptLock within
	// the last two resync periods": it exists, is this Customer's and
	// matches.
	ReadyUnowned = "ready-on-unowned-record"
	ReadyDiffers = "ready-but-differs"
	// The API key never reaches a log, Event, status or metric.
	KeyLeak = "key-leak"
	// "backs off, no retry storm".
	RetryStorm = "retry-storm"
)

// Violation is one broken promise.
type Violation struct {
	Kind     string
	Customer string
	Detail   string
}

func (v Violation) String() string {
	if v.Customer == "" {
		return v.Kind + ": " + v.Detail
	}
	return v.Kind + " (" + v.Customer + "): " + v.Detail
}

// needsAPerson are the reasons that say a person must act (Stalled=True).
var needsAPerson = []string{"Conflict", "NotFound", "Unauthorized", "DeletionBlocked", "InvalidCredentials", "AccountChanged", "StoredDifferently", "InvalidID", "APIError"}

// CheckWrite checks one PUT or DELETE against the ledger at the moment it
// was sent: some live Customer whose credentials name the record's account
// must prove the record is its own, and for a DELETE be deleting with
// deletionPolicy Delete; or a Customer lost in the step under way must
// have had it in flight (inFlight). A call for a record that does not
// exist changes nothing and is not checked.
func (l *Ledger) CheckWrite(w Write, live map[string]CustomerView) *Violation {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !w.Exists {
		return nil
	}
	for _, c := range live {
		if !l.proves(c, w.Before, live) {
			continue
		}
		if w.Method == "PUT" && !c.Deleting {
			// A PUT to a rotation lookalike carries it over (the operator
			// writes the new account to status first, README): from now
			// on it is c's own, even once the PUT gave it another email.
			if old, ok := l.lookalikeOf(c, w.Before); ok && l.owner[w.Ref] != c.UID && l.free(w.Ref, live) {
				l.take(c, w.Ref, old)
			}
			// Likewise a PUT to the record of its create whose answer it
			// never learnt (lostAnswer) takes it: the operator writes to
			// a record only once bound to it, so from now on it is c's
			// own, even once the PUT gave it other fields, an email
			// included, before a snapshot showed the binding (seed
			// 1100468).
			if l.owner[w.Ref] != c.UID && l.lostAnswer(c, w.Before, live) {
				l.owner[w.Ref] = c.UID
			}
			return nil
		}
		if w.Method == "DELETE" && c.Deleting && c.Policy != "Orphan" {
			return nil
		}
	}
	if l.inFlight(w, live) || l.decidedBefore(w, live) {
		return nil
	}
	kind := WriteUnowned
	if w.Method == "DELETE" {
		kind = DeleteUnowned
	}
	owner := "nobody"
	if o := l.owner[w.Ref]; o != "" {
		owner = "the Customer with UID " + o
		if c, ok := live[o]; ok {
			owner = c.Name
		} else if c, ok := l.gone[o]; ok {
			owner = c.Name + " (deleted)"
		}
	}
	return &Violation{Kind: kind, Detail: fmt.Sprintf("%s of record %s (%s), owned by %s; no live Customer could prove it its own", w.Method, w.Ref, w.Before.Email, owner)}
}

// CheckStep checks the safety rules between two snapshots.
func (l *Ledger) CheckStep(prev, cur Snapshot) []Violation {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Violation
	live := cur.Live()
	owned := map[string][]string{}
	for ref := range cur.Records {
		o := l.owner[ref]
		if o == "" {
			continue
		}
		// The record a Customer had in a rotated-away account and the
		// lookalike it carried over are, through ScriptLock's API, one
		// record moved by a key rotation (README, the credentials-change
		// row): count them once, also after the lookalike is gone.
		if l.carriedBy(ref, o) {
			continue
		}
		owned[o] = append(owned[o], ref.String())
	}
	for uid, refs := range owned {
		if c, ok := live[uid]; ok && len(refs) > 1 {
			slices.Sort(refs)
			out = append(out, Violation{TwoRecords, c.Name, "owns " + strings.Join(refs, " and ")})
		}
	}
	holders := map[RecordRef]string{}
	for _, c := range cur.Customers {
		if c.Observe || c.Deleting || c.Ready != "True" || c.Bound == "" {
			continue
		}
		ref := RecordRef{c.BoundAccount, c.Bound}
		if other, ok := holders[ref]; ok {
			out = append(out, Violation{TwoCustomersOneRecord, c.Name, fmt.Sprintf("Ready on record %s, as %s is", ref, other)})
		}
		holders[ref] = c.Name
	}
	before := prev.Live()
	for _, c := range cur.Customers {
		p, ok := before[c.UID]
		if !ok || p.Bound == "" || c.Deleting || c.Observe || c.Paused || c.Account != p.Account ||
			c.CustomerID != "" && c.CustomerID != p.Bound {
			continue
		}
		ref := RecordRef{p.BoundAccount, p.Bound}
		if _, exists := cur.Records[ref]; exists && l.owner[ref] == c.UID && c.Bound != p.Bound {
			out = append(out, Violation{ForgotOwnRecord, c.Name, fmt.Sprintf("status.customerID went from %s to %q while its record is still there (Ready %s %s)", ref, c.Bound, c.Reason, c.Message)})
		}
	}
	return out
}

// carriedBy says whether ref, owned by uid, is the original of a rotation
// lookalike uid carried over (and still owns). Through ScriptLock's API
// the two are one record moved by a key rotation (README, the
// credentials-change row: the lookalike is "from then on that Customer's
// record like any carried over"), so the original is never a second
// record of uid's: not while the lookalike is there, and not once the
// lookalike was deleted in ScriptLock by someone else, when the README's
// remote-delete row has uid create its record again in the account its
// credentials name (seed 801338). The original stays behind a key rotated
// away; a rotated key that carried the record over would show it deleted
// too.
func (l *Ledger) carriedBy(ref RecordRef, uid string) bool {
	for to, from := range l.carried {
		if from == ref && l.owner[to] == uid {
			return true
		}
	}
	return false
}

// CheckEnd checks, once perturbations have stopped and the operator had
// time to settle, that every Customer converged and that what deletions
// did was right. tidy is the back end's normalisation of stored values.
func (l *Ledger) CheckEnd(s Snapshot, tidy func(string) string) []Violation {
	l.mu.Lock()
	defer l.mu.Unlock()
	if tidy == nil {
		tidy = func(v string) string { return v }
	}
	var out []Violation
	live := s.Live()
	for _, c := range s.Customers {
		if c.Paused {
			continue
		}
		if v := l.checkConverged(c, s, live, tidy); v != nil {
			out = append(out, *v)
		}
	}
	for uid, c := range l.gone {
		// Last seen without its finalizer (README: the operator puts it
		// back after a replace-style update drops it): deleted in that
		// window, the object went at once and the operator never saw the
		// deletion. A limit of finalizers, not a decision of the operator.
		if l.forced[uid] || c.Paused || c.Observe || c.Policy == "Orphan" || c.NoFinalizer && !c.Deleting {
			continue
		}
		for ref := range s.Records {
			// Deleted while its credentials named another account, it
			// could not prove the record its own: RecordKept is right.
			if l.owner[ref] != uid || c.Account != ref.Account || l.heldByLive(ref, s) {
				continue
			}
			// Another Customer named it in spec.customerID when this one
			// went: a person told that one to take it, and the README
			// deletes only a record no other Customer holds.
			if l.namedByOthers[uid][ref] {
				continue
			}
			// After a rotation the operator proves the new key only while
			// it remembers the old one (README: after a restart a rotation
			// needs the annotation too): a Customer still bound under the
			// old key when a manager restarted, and not carried over
			// since, keeps its record when deleted, whatever reason it
			// showed last (AccountChanged, or a transient one of the
			// deletion under way).
			if l.rotated[ref.Account] && l.boundUnderOldKey[uid] && c.BoundAccount != ref.Account {
				continue
			}
			// A rotated key carries a record over only when it is exactly
			// as last synced (README, the credentials-change row): a
			// record someone changed (drift not put back yet) when the key
			// was rotated, or before the Customer was carried over, proves
			// nothing, and its deletion keeps it (RecordKept).
			if l.unsynced[ref] && c.BoundAccount != ref.Account {
				continue
			}
			out = append(out, Violation{OwnRecordLeft, c.Name, fmt.Sprintf("deleted with deletionPolicy Delete, yet its record %s is still there", ref)})
		}
	}
	for _, e := range s.Events {
		if e.Reason != "LicensesRevoked" {
			continue
		}
		c, ok := live[e.UID]
		if !ok {
			c, ok = l.gone[e.UID]
		}
		id := idInNote(e.Note)
		if !ok || id == "" {
			continue
		}
		// The DELETE went to the account its credentials named.
		if ref := (RecordRef{c.Account, id}); c.Account.Instance != "" {
			if _, exists := s.Records[ref]; exists {
				out = append(out, Violation{RevocationUnconfirmed, e.Name, fmt.Sprintf("Event LicensesRevoked %q, yet record %s is still there", e.Note, ref)})
			}
		}
	}
	return out
}

func (l *Ledger) heldByLive(ref RecordRef, s Snapshot) bool {
	for _, c := range s.Customers {
		if c.Bound == ref.ID && c.BoundAccount == ref.Account || l.owner[ref] == c.UID {
			return true
		}
	}
	return false
}

// idInNote returns the record id an Event names ("customer 42").
func idInNote(note string) string {
	f := strings.Fields(note)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "customer" {
			return strings.Trim(f[i+1], ";:,.")
		}
	}
	return ""
}

func (l *Ledger) checkConverged(c CustomerView, s Snapshot, live map[string]CustomerView, tidy func(string) string) *Violation {
	v := func(kind, format string, args ...any) *Violation {
		return &Violation{kind, c.Name, fmt.Sprintf(format, args...)}
	}
	switch {
	case c.Deleting:
		if c.Stalled && slices.Contains(needsAPerson, c.Reason) {
			return nil
		}
		return v(StuckDeleting, "still there with its finalizer; Ready %s %s: %s", c.Ready, c.Reason, c.Message)
	case c.Observe:
		if c.Reason == "Observed" || c.Reason == "Differs" || c.Stalled {
			return nil
		}
		return v(NoConvergence, "an observer, Ready %s %s: %s", c.Ready, c.Reason, c.Message)
	case c.Ready == "True" && c.Observed == c.Generation:
		ref := RecordRef{c.Account, c.Bound}
		rec, ok := s.Records[ref]
		if !ok {
			return v(ReadyDiffers, "Ready on record %s, which does not exist", ref)
		}
		if !l.proves(c, rec, live) {
			return v(ReadyUnowned, "Ready on record %s (%s), which it cannot prove its own (owner UID %q)", ref, rec.Email, l.owner[ref])
		}
		if !matches(c.Company, rec.Company, tidy) || !matches(c.First, rec.First, tidy) || !matches(c.Last, rec.Last, tidy) ||
			!strings.EqualFold(c.Email, rec.Email) && !strings.EqualFold(tidy(c.Email), rec.Email) {
			return v(ReadyDiffers, "Ready, yet record %s holds %q %q %q %q for %q %q %q %q", ref, rec.Company, rec.First, rec.Last, rec.Email, c.Company, c.First, c.Last, c.Email)
		}
		return nil
	case c.Stalled && slices.Contains(needsAPerson, c.Reason):
		if c.Reason == "Conflict" {
			return l.checkConflict(c, s, live)
		}
		return nil
	}
	return v(NoConvergence, "Ready %q %s at generation %d/%d, not Stalled: %s", c.Ready, c.Reason, c.Observed, c.Generation, c.Message)
}

// matches says whether stored, a value of a record, holds want, the spec's
// value: as given, or as a tidying back end stores it. A back end that
// tidies from some step on keeps what was written before as it was, so a
// record written earlier holds the spec's own spelling, which matches it.
func matches(want, stored string, tidy func(string) string) bool {
	return stored == want || stored == tidy(want)
}

// checkConflict: a Conflict is about a record this Customer cannot prove
// its own, and names the Customer that holds it, if one does.
func (l *Ledger) checkConflict(c CustomerView, s Snapshot, live map[string]CustomerView) *Violation {
	for ref, rec := range s.Records {
		if !c.uses(ref.Account) {
			continue
		}
		owner := l.owner[ref]
		// Told to manage another record while it manages this one is a
		// Conflict by the README's rule.
		told := c.CustomerID != "" && c.CustomerID != ref.ID
		// README, the credentials-change row: a rotated key carries a
		// bound record over, not the record of a create whose answer was
		// lost before the rotation; that one shows as taken (Conflict).
		carried := !l.unboundAtRotation[ref]
		if owner == c.UID && !told && carried && strings.EqualFold(rec.Email, c.Email) && !l.heldByOther(ref, c, s) {
			return &Violation{ConflictOnOwnRecord, c.Name, fmt.Sprintf("Conflict although record %s (%s) is its own: %s", ref, rec.Email, c.Message)}
		}
		holder, ok := live[owner]
		holds := ok && holder.Bound == ref.ID && holder.BoundAccount == ref.Account
		if holds && owner != c.UID && strings.EqualFold(rec.Email, c.Email) && !strings.Contains(c.Message, holder.Name) {
			return &Violation{ConflictUnnamed, c.Name, fmt.Sprintf("Conflict over %s, held by Customer %s, which the message does not name: %s", ref, holder.Name, c.Message)}
		}
	}
	return nil
}

func (l *Ledger) heldByOther(ref RecordRef, c CustomerView, s Snapshot) bool {
	for _, o := range s.Customers {
		if o.UID != c.UID && o.Bound == ref.ID && o.BoundAccount == ref.Account {
			return true
		}
	}
	return false
}

// CheckTexts looks for any of keys, as given, percent-encoded or in
// base64, in texts (by where they were found: log, events, status,
// metrics).
func CheckTexts(keys []string, texts map[string]string) []Violation {
	var out []Violation
	for _, k := range keys {
		forms := []string{k, url.QueryEscape(k), base64.StdEncoding.EncodeToString([]byte(k))}
		for where, text := range texts {
			for _, f := range forms {
				if i := strings.Index(text, f); i >= 0 {
					lo, hi := max(0, i-80), min(len(text), i+len(f)+40)
					out = append(out, Violation{KeyLeak, "", fmt.Sprintf("an API key in the %s: …%s…", where, strings.ReplaceAll(text[lo:hi], f, "<KEY>"))})
					break
				}
			}
		}
	}
	return out
}

// CheckCalls checks the calls to ScriptLock in a quiet window against the
// bound the README's backoff allows.
func CheckCalls(calls, allowed int, window string) *Violation {
	if calls <= allowed {
		return nil
	}
	return &Violation{RetryStorm, "", fmt.Sprintf("%d ScriptLock calls in %s after the faults stopped, at most %d allowed", calls, window, allowed)}
}
