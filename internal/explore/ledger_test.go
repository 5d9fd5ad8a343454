package explore

import (
	"strings"
	"testing"
)

var (
	acctA = Account{"A", "default"}
	acctB = Account{"A", "other"}
	acctC = Account{"C", "default"}
)

func rec(a Account, id, email string) Record {
	return Record{Ref: RecordRef{a, id}, Email: email}
}

func TestCheckWriteFollowsWhichRecordIsWhose(t *testing.T) {
	maker := CustomerView{Name: "c0", UID: "u0", Email: "e0@example.com", Account: acctA, Policy: "Delete"}
	deleting := maker
	deleting.Deleting = true
	orphaning := deleting
	orphaning.Policy = "Orphan"
	copyOf := CustomerView{Name: "c1", UID: "u1", Email: "e0@example.com", Account: acctA, Policy: "Delete"}
	pinned := CustomerView{Name: "c2", UID: "u2", Email: "x@example.com", Account: acctA, CustomerID: "7"}
	adopter := CustomerView{Name: "c3", UID: "u3", Email: "e3@example.com", Account: acctA, Adoption: "IfExists"}
	movedToB := maker
	movedToB.Account = acctB
	movedToC := deleting
	movedToC.Account = acctC
	rotating := movedToB
	rotating.PrevAccount = acctA

	tests := []struct {
		name   string
		w      Write
		live   []CustomerView
		broken string
	}{
		{"its maker may update its record", Write{"PUT", RecordRef{acctA, "1"}, rec(acctA, "1", "e0@example.com"), true, Record{}}, []CustomerView{maker}, ""},
		{"its maker may delete it while being deleted", Write{"DELETE", RecordRef{acctA, "1"}, rec(acctA, "1", "e0@example.com"), true, Record{}}, []CustomerView{deleting}, ""},
		{"deleting with Orphan never deletes", Write{"DELETE", RecordRef{acctA, "1"}, rec(acctA, "1", "e0@example.com"), true, Record{}}, []CustomerView{orphaning}, DeleteUnowned},
		{"a copy with the same email proves nothing", Write{"PUT", RecordRef{acctA, "1"}, rec(acctA, "1", "e0@example.com"), true, Record{}}, []CustomerView{copyOf}, WriteUnowned},
		{"spec.customerID is being told, when nobody live owns it", Write{"PUT", RecordRef{acctA, "7"}, rec(acctA, "7", "old@example.com"), true, Record{}}, []CustomerView{pinned}, ""},
		{"adoption IfExists takes the record with its email", Write{"PUT", RecordRef{acctA, "3"}, rec(acctA, "3", "E3@example.com"), true, Record{}}, []CustomerView{adopter}, ""},
		{"the same id in another account at the same URL is not its own", Write{"PUT", RecordRef{acctB, "1"}, rec(acctB, "1", "e0@example.com"), true, Record{}}, []CustomerView{movedToB}, WriteUnowned},
		{"the same id in a cloned instance is not its own", Write{"DELETE", RecordRef{acctC, "1"}, rec(acctC, "1", "e0@example.com"), true, Record{}}, []CustomerView{movedToC}, DeleteUnowned},
		{"a call in flight from before a credentials change may still reach the old account", Write{"PUT", RecordRef{acctA, "1"}, rec(acctA, "1", "e0@example.com"), true, Record{}}, []CustomerView{rotating}, ""},
		{"a record that does not exist is not checked", Write{"DELETE", RecordRef{acctB, "9"}, Record{}, false, Record{}}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(RecordRef{acctA, "1"}, "u0")
			live := map[string]CustomerView{}
			for _, c := range tt.live {
				live[c.UID] = c
			}
			wantWrite(t, l, tt.w, live, tt.broken)
		})
	}
}

// count returns how many of vs are of kind, for customer if it is not "".
func count(vs []Violation, kind, customer string) int {
	n := 0
	for _, v := range vs {
		if v.Kind == kind && (customer == "" || v.Customer == customer) {
			n++
		}
	}
	return n
}

// wantWrite checks l's judgement of w: allowed when broken is "", else a
// violation of that kind.
func wantWrite(t *testing.T, l *Ledger, w Write, live map[string]CustomerView, broken string) {
	t.Helper()
	v := l.CheckWrite(w, live)
	switch {
	case broken == "" && v != nil:
		t.Fatalf("allowed write reported: %s", v)
	case broken != "" && (v == nil || v.Kind != broken):
		t.Fatalf("got %v, want a %s", v, broken)
	}
}

func TestTheOwnerKeepsItsRecordAgainstOneToldToTakeIt(t *testing.T) {
	l := NewLedger()
	l.Created(RecordRef{acctA, "7"}, "u0")
	owner := CustomerView{Name: "c0", UID: "u0", Email: "e0@example.com", Account: acctA}
	pinned := CustomerView{Name: "c2", UID: "u2", Email: "e0@example.com", Account: acctA, CustomerID: "7"}
	live := map[string]CustomerView{"u0": owner, "u2": pinned}
	if l.Proves(pinned, rec(acctA, "7", "e0@example.com"), live) {
		t.Fatal("a newcomer with spec.customerID took a record its live maker holds")
	}
	delete(live, "u0")
	if !l.Proves(pinned, rec(acctA, "7", "e0@example.com"), live) {
		t.Fatal("once the maker is gone, spec.customerID does not prove the record")
	}
}

// README, managementPolicy: Observe: an observer "claims nothing (never a
// Conflict with, nor a block on, the Customer that manages the record)";
// so the maker of a record, switched to Observe, does not keep a Customer
// a person told to take it (spec.customerID) from writing it (seed 101047).
func TestAnOwnerSwitchedToObserveKeepsNobodyFromARecordItWasToldToTake(t *testing.T) {
	l := NewLedger()
	l.Created(RecordRef{acctA, "7"}, "u0")
	observer := CustomerView{Name: "c0", UID: "u0", Email: "e0@example.com", Account: acctA, Observe: true, Bound: "7", BoundAccount: acctA}
	pinned := CustomerView{Name: "c2", UID: "u2", Email: "x@example.com", Account: acctA, CustomerID: "7"}
	copyOf := CustomerView{Name: "c3", UID: "u3", Email: "e0@example.com", Account: acctA}
	live := map[string]CustomerView{"u0": observer, "u2": pinned, "u3": copyOf}
	put := Write{"PUT", RecordRef{acctA, "7"}, rec(acctA, "7", "e0@example.com"), true, Record{}}
	if l.Proves(observer, put.Before, live) {
		t.Fatal("an observer may write its record")
	}
	if l.Proves(copyOf, put.Before, live) {
		t.Fatal("an email match alone proves a record whose owner observes it")
	}
	if !l.Proves(pinned, put.Before, live) {
		t.Fatal("spec.customerID does not prove a record whose owner only observes it")
	}
	if v := l.CheckWrite(put, live); v != nil {
		t.Fatalf("a write by the Customer told to take it: %s", v)
	}
	pinned.Bound, pinned.BoundAccount = "7", acctA
	l.Observe(Snapshot{Customers: []CustomerView{observer, pinned, copyOf}, Records: map[RecordRef]Record{put.Ref: put.Before}})
	if got := l.Owner(put.Ref); got != "u2" {
		t.Fatalf("owner after the told Customer bound it: %q, want u2", got)
	}
	managing := observer
	managing.Observe = false
	live["u0"] = managing
	if l.Proves(managing, put.Before, live) {
		t.Fatal("switched back to Manage, the former owner took the record the other one now manages")
	}
}

func TestCheckStepFindsAForgottenRecordAndTwoRecords(t *testing.T) {
	l := NewLedger()
	l.Created(RecordRef{acctA, "1"}, "u0")
	c := CustomerView{Name: "c0", UID: "u0", Account: acctA, Bound: "1", BoundAccount: acctA}
	prev := Snapshot{Customers: []CustomerView{c}, Records: map[RecordRef]Record{{acctA, "1"}: rec(acctA, "1", "e0@example.com")}}
	forgot := c
	forgot.Bound = ""
	cur := Snapshot{Customers: []CustomerView{forgot}, Records: prev.Records}
	if vs := l.CheckStep(prev, cur); len(vs) != 1 || vs[0].Kind != ForgotOwnRecord {
		t.Fatalf("got %v, want one %s", vs, ForgotOwnRecord)
	}
	gone := Snapshot{Customers: []CustomerView{forgot}, Records: map[RecordRef]Record{}}
	if vs := l.CheckStep(prev, gone); len(vs) != 0 {
		t.Fatalf("a record deleted outside the cluster may be let go: %v", vs)
	}
	l.Created(RecordRef{acctA, "2"}, "u0")
	two := Snapshot{Customers: []CustomerView{c}, Records: map[RecordRef]Record{{acctA, "1"}: rec(acctA, "1", "e0@example.com"), {acctA, "2"}: rec(acctA, "2", "e0@example.com")}}
	if vs := l.CheckStep(prev, two); len(vs) != 1 || vs[0].Kind != TwoRecords {
		t.Fatalf("got %v, want one %s", vs, TwoRecords)
	}
}

func TestCheckEndConvergence(t *testing.T) {
	l := NewLedger()
	l.Created(RecordRef{acctA, "1"}, "u0")
	records := map[RecordRef]Record{
		{acctA, "1"}: {Ref: RecordRef{acctA, "1"}, Company: "Two Spaces Co.", Email: "e0@example.com"},
		// Written before the back end began to tidy: the spec's own spelling.
		{acctA, "3"}: {Ref: RecordRef{acctA, "3"}, Company: "Three  Spaces Co.", Email: "e0@example.com"},
	}
	l.Created(RecordRef{acctA, "3"}, "u0")
	base := CustomerView{Name: "c0", UID: "u0", Company: "Two  Spaces Co.", Email: "e0@example.com", Account: acctA, Bound: "1", BoundAccount: acctA, Generation: 2, Observed: 2}
	tidy := func(v string) string { return strings.ReplaceAll(v, "  ", " ") }
	tests := []struct {
		name string
		edit func(*CustomerView)
		want string
	}{
		{"Ready on its own matching record", func(c *CustomerView) { c.Ready, c.Reason = "True", "Available" }, ""},
		{"Ready on its record written before the back end tidied", func(c *CustomerView) {
			c.Ready, c.Reason, c.Bound, c.Company = "True", "Available", "3", "Three  Spaces Co."
		}, ""},
		{"Ready on a record that holds another spelling", func(c *CustomerView) {
			c.Ready, c.Reason, c.Bound, c.Company = "True", "Available", "3", "Three Spaces Co"
		}, ReadyDiffers},
		{"Conflict with its own record", func(c *CustomerView) { c.Ready, c.Reason, c.Stalled, c.Bound = "False", "Conflict", true, "" }, ConflictOnOwnRecord},
		{"still trying after the faults stopped", func(c *CustomerView) { c.Ready, c.Reason = "False", "APIError" }, NoConvergence},
		{"needs a person for its credentials", func(c *CustomerView) { c.Ready, c.Reason, c.Stalled = "False", "InvalidCredentials", true }, ""},
		{"deleting for ever", func(c *CustomerView) { c.Deleting, c.Ready, c.Reason = true, "False", "Deleting" }, StuckDeleting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			vs := l.CheckEnd(Snapshot{Customers: []CustomerView{c}, Records: records}, tidy)
			switch {
			case tt.want == "" && len(vs) > 0:
				t.Fatalf("reported %v", vs)
			case tt.want != "" && (len(vs) != 1 || vs[0].Kind != tt.want):
				t.Fatalf("got %v, want one %s", vs, tt.want)
			}
		})
	}
}

func TestCheckTextsFindsAKeyInAnyForm(t *testing.T) {
	vs := CheckTexts([]string{"k3y/+x"}, map[string]string{"log": "url=https://k3y%2F%2Bx@host", "Events": "nothing here"})
	if len(vs) != 1 || vs[0].Kind != KeyLeak {
		t.Fatalf("got %v", vs)
	}
}

func TestDeletionOutcomes(t *testing.T) {
	l := NewLedger()
	l.Created(RecordRef{acctA, "1"}, "u0")
	c := CustomerView{Name: "c0", UID: "u0", Email: "e0@example.com", Account: acctA, Policy: "Delete", Bound: "1", BoundAccount: acctA}
	l.Observe(Snapshot{Customers: []CustomerView{c}})
	left := map[RecordRef]Record{{acctA, "1"}: rec(acctA, "1", "e0@example.com")}
	revoked := []Event{{UID: "u0", Name: "c0", Reason: "LicensesRevoked", Note: "ScriptLock customer 1 was already deleted; its licenses are revoked"}}

	l.Observe(Snapshot{Records: left}) // c0 is gone
	vs := l.CheckEnd(Snapshot{Records: left, Events: revoked}, nil)
	kinds := map[string]bool{}
	for _, v := range vs {
		kinds[v.Kind] = true
	}
	if len(vs) != 2 || !kinds[OwnRecordLeft] || !kinds[RevocationUnconfirmed] {
		t.Fatalf("got %v, want %s and %s", vs, OwnRecordLeft, RevocationUnconfirmed)
	}
	if vs := l.CheckEnd(Snapshot{Records: map[RecordRef]Record{}, Events: revoked}, nil); len(vs) != 0 {
		t.Fatalf("a record that is gone: %v", vs)
	}

	moved := NewLedger()
	moved.Created(RecordRef{acctA, "1"}, "u0")
	c.Account = acctB
	moved.Observe(Snapshot{Customers: []CustomerView{c}})
	moved.Observe(Snapshot{Records: left})
	if vs := moved.CheckEnd(Snapshot{Records: left}, nil); len(vs) != 0 {
		t.Fatalf("deleted while its credentials named another account, keeping the record is right: %v", vs)
	}
}

// After the key of its account was rotated, a Customer whose credentials
// name another account holding the same id with its email may take it: the
// README's rotation rule cannot tell the two apart. Without a rotation it
// may not.
func TestARotationLookalikeIsAllowedOnlyAfterARotation(t *testing.T) {
	moved := CustomerView{Name: "c0", UID: "u0", Email: "e0@example.com", Account: acctB, Policy: "Delete"}
	put := Write{"PUT", RecordRef{acctB, "1"}, rec(acctB, "1", "e0@example.com"), true, Record{}}
	live := map[string]CustomerView{"u0": moved}

	l := NewLedger()
	l.Created(RecordRef{acctA, "1"}, "u0")
	l.Observe(Snapshot{Records: map[RecordRef]Record{{acctA, "1"}: rec(acctA, "1", "e0@example.com")}})
	moved.Email = "changed-since@example.com" // the spec may have moved on; the copy is of the record
	live["u0"] = moved
	if v := l.CheckWrite(put, live); v == nil || v.Kind != WriteUnowned {
		t.Fatalf("without a rotation: got %v, want %s", v, WriteUnowned)
	}
	l.Rotated(acctA)
	other := put
	other.Before = rec(acctB, "1", "someone@example.com")
	if v := l.CheckWrite(other, live); v == nil {
		t.Fatal("a record with another email than its own had is not a copy of it")
	}
	if v := l.CheckWrite(put, live); v != nil {
		t.Fatalf("after a rotation of its account: %v", v)
	}
	clone := Write{"PUT", RecordRef{acctC, "1"}, rec(acctC, "1", "e0@example.com"), true, Record{}}
	moved.Account = acctC
	if v := l.CheckWrite(clone, map[string]CustomerView{"u0": moved}); v == nil {
		t.Fatal("another instance is never a rotation")
	}
}

// A Customer still bound under its account's old key when a manager
// restarted after the key was rotated keeps its record when deleted
// (README: after a restart a rotation needs the annotation), whatever
// reason it showed last (seed 101193: RateLimited, in the deletion under
// way). Without the restart the manager knows the old key and must prove
// the rotation; without the rotation, or once the record was carried over
// (status.account names the new key), it is a record left behind.
func TestARotationBeforeARestartKeepsTheRecord(t *testing.T) {
	left := map[RecordRef]Record{{acctA, "1"}: rec(acctA, "1", "e0@example.com")}
	oldKey := CustomerView{Name: "c0", UID: "u0", Email: "e0@example.com", Account: acctA, Policy: "Delete", Bound: "1",
		Ready: "False", Reason: "RateLimited", Deleting: true}
	carried := oldKey
	carried.BoundAccount = acctA
	for _, tt := range []struct {
		name             string
		rotated, restart bool
		c                CustomerView
		want             int
	}{
		{"rotated, then a restart", true, true, oldKey, 0},
		{"rotated, no restart", true, false, oldKey, 1},
		{"a restart, no rotation", false, true, carried, 1},
		{"rotated, a restart, carried over before it", true, true, carried, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(RecordRef{acctA, "1"}, "u0")
			if tt.rotated {
				l.Rotated(acctA)
			}
			l.Observe(Snapshot{Customers: []CustomerView{tt.c}, Records: left})
			if tt.restart {
				l.Restarted()
			}
			l.Observe(Snapshot{Records: left})
			vs := l.CheckEnd(Snapshot{Records: left}, nil)
			if len(vs) != tt.want || tt.want == 1 && vs[0].Kind != OwnRecordLeft {
				t.Errorf("got %v, want %d %s", vs, tt.want, OwnRecordLeft)
			}
		})
	}
}

// A create whose answer was lost, then a rotation of the account's key
// before the Customer bound the record: the README carries only a bound
// record over to a rotated key, so Conflict over it is allowed; the same
// Conflict without the rotation, or over a record bound before it, is not.
func TestConflictOverALostCreateAfterARotation(t *testing.T) {
	records := map[RecordRef]Record{{acctA, "3"}: rec(acctA, "3", "e0@example.com")}
	unbound := CustomerView{Name: "c0", UID: "u0", Email: "e0@example.com", Account: acctA, Policy: "Delete", Generation: 1, Observed: 1}
	conflict := unbound
	conflict.Ready, conflict.Reason, conflict.Stalled, conflict.Message = "False", "Conflict", true, "ScriptLock customer 3 already has email"
	bound := unbound
	bound.Bound, bound.BoundAccount = "3", acctA
	for _, tt := range []struct {
		name     string
		before   *CustomerView // as last seen before the rotation; nil: no rotation
		violates bool
	}{
		{"no rotation", nil, true},
		{"rotated before it was bound", &unbound, false},
		{"rotated after it was bound", &bound, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(RecordRef{acctA, "3"}, "u0")
			if tt.before != nil {
				l.Observe(Snapshot{Customers: []CustomerView{*tt.before}, Records: records})
				l.Rotated(acctA)
			}
			vs := l.CheckEnd(Snapshot{Customers: []CustomerView{conflict}, Records: records}, func(v string) string { return v })
			if got := len(vs) == 1 && vs[0].Kind == ConflictOnOwnRecord; got != tt.violates || len(vs) > 1 {
				t.Fatalf("got %v, want a %s: %v", vs, ConflictOnOwnRecord, tt.violates)
			}
		})
	}
}

// A Customer that carried its record over to a rotation lookalike and was
// then told to take it (adoption IfExists) owns the original in the
// rotated-away account and the lookalike: through the API they are one
// record moved by a key rotation (README, the credentials-change row), not
// two. Without the rotation, or bound to a record with another id, the two
// are two records.
func TestARotationLookalikeTakenIsOneRecord(t *testing.T) {
	orig, copyRef, fresh := RecordRef{acctA, "1"}, RecordRef{acctB, "1"}, RecordRef{acctB, "2"}
	c := CustomerView{Name: "c0", UID: "u0", Email: "e0@example.com", Adoption: "IfExists", Account: acctA, Policy: "Delete", Bound: "1", BoundAccount: acctA}
	moved := c
	moved.Account, moved.BoundAccount = acctB, acctB
	both := map[RecordRef]Record{orig: rec(acctA, "1", "e0@example.com"), copyRef: rec(acctB, "1", "e0@example.com")}
	for _, tt := range []struct {
		name    string
		rotated bool
		bound   RecordRef
		want    int
	}{
		{"carried over after a rotation", true, copyRef, 0},
		{"no rotation", false, copyRef, 1},
		{"a record with another id", true, fresh, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(orig, "u0")
			first := Snapshot{Customers: []CustomerView{c}, Records: map[RecordRef]Record{orig: both[orig]}}
			l.Observe(first)
			if tt.rotated {
				l.Rotated(acctA)
			}
			m := moved
			m.Bound = tt.bound.ID
			recs := map[RecordRef]Record{orig: both[orig], tt.bound: rec(acctB, tt.bound.ID, "e0@example.com")}
			cur := Snapshot{Customers: []CustomerView{m}, Records: recs}
			l.Observe(cur)
			if l.Owner(tt.bound) != "u0" {
				t.Fatalf("told to take %s, it owns it", tt.bound)
			}
			vs := l.CheckStep(first, cur)
			if n := count(vs, TwoRecords, ""); n != tt.want {
				t.Fatalf("got %v, want %d %s", vs, tt.want, TwoRecords)
			}
		})
	}
}

// A Customer last seen without its finalizer (a replace-style update
// dropped it, the operator had not put it back) and then deleted went at
// once, without the operator: its record left behind is a limit of
// finalizers (README: the finalizer is put back), not a violation. With
// its finalizer, the same is own-record-left-behind.
func TestDeletedWithoutItsFinalizerIsNotTheOperators(t *testing.T) {
	left := map[RecordRef]Record{{acctA, "1"}: rec(acctA, "1", "e0@example.com")}
	for _, noFinalizer := range []bool{false, true} {
		l := NewLedger()
		l.Created(RecordRef{acctA, "1"}, "u0")
		c := CustomerView{Name: "c0", UID: "u0", Email: "e0@example.com", Account: acctA, Policy: "Delete", Bound: "1", BoundAccount: acctA, NoFinalizer: noFinalizer}
		l.Observe(Snapshot{Customers: []CustomerView{c}, Records: left})
		l.Observe(Snapshot{Records: left})
		vs := l.CheckEnd(Snapshot{Records: left}, nil)
		if noFinalizer && len(vs) != 0 || !noFinalizer && (len(vs) != 1 || vs[0].Kind != OwnRecordLeft) {
			t.Errorf("without its finalizer %v: got %v", noFinalizer, vs)
		}
	}
}

// A Customer deleted with Delete while another Customer names its record
// in spec.customerID keeps the record (README, the deletion row: DELETE
// only a record "that no other Customer holds"; a person told the other to
// take it): not own-record-left-behind, even when that Customer can never
// take it (it manages another record: Conflict) or goes later, or in the
// same step (massdelete: the ledger judged that by the order of a Go map,
// seed 801752; the case runs 50 times against map order). An
// observer naming it claims nothing (README, managementPolicy: Observe).
func TestARecordAnotherCustomerNamesIsKeptOnDeletion(t *testing.T) {
	mine, theirs := RecordRef{acctA, "2"}, RecordRef{acctA, "1"}
	left := map[RecordRef]Record{mine: rec(acctA, "2", "e0@example.com"), theirs: rec(acctA, "1", "e2@example.com")}
	owner := CustomerView{Name: "c1", UID: "u1", Email: "e0@example.com", Account: acctA, Policy: "Delete", Bound: "2", BoundAccount: acctA}
	for _, tt := range []struct {
		name       string
		customerID string
		observe    bool
		namerGoes  bool
		together   bool // the namer goes in the step in which c1 goes
		want       int
	}{
		{"named by a Customer managing another record", "2", false, false, false, 0},
		{"named by one that is deleted later", "2", false, true, false, 0},
		{"named by one deleted in the same step", "2", false, true, true, 0},
		{"named by an observer", "2", true, false, false, 1},
		{"named by nobody", "", false, false, false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for range 50 {
				l := NewLedger()
				l.Created(mine, "u1")
				l.Created(theirs, "u2")
				namer := CustomerView{Name: "c2", UID: "u2", Email: "e2@example.com", Account: acctA, Policy: "Orphan", Bound: "1", BoundAccount: acctA, CustomerID: tt.customerID, Observe: tt.observe}
				l.Observe(Snapshot{Customers: []CustomerView{owner, namer}, Records: left})
				end := Snapshot{Customers: []CustomerView{namer}, Records: left}
				if !tt.together {
					l.Observe(end)
				}
				if tt.namerGoes {
					l.Observe(Snapshot{Records: left})
					end = Snapshot{Records: left}
				}
				n := count(l.CheckEnd(end, nil), OwnRecordLeft, "c1")
				if n != tt.want {
					t.Fatalf("got %d %s for c1, want %d", n, OwnRecordLeft, tt.want)
				}
			}
		})
	}
}

// A Customer whose create, sent under its create-time proof, was answered
// in a way the operator never learnt (the manager stopped right after the
// POST, a dropped connection, a 5xx, an odd answer, or a 409) may take a
// record in that account with exactly the fields that POST carried, which
// no live Customer owns: through the API it is the record a create whose
// answer was lost (or a gateway's retried POST) made (README, the row
// "operator killed between the create and the status write", and the
// limit note citing seed 101774). Once taken it is that Customer's. Not a
// record a live Customer owns, not with other fields, not in another
// account, not after a 201 it read, not without a POST.
func TestACreateWhoseAnswerWasNeverLearntMayTakeARecordWithItsFields(t *testing.T) {
	ref := RecordRef{acctA, "1"}
	old := Record{Ref: ref, Company: "Co", First: "F", Last: "L", Email: "e4@example.com"}
	records := map[RecordRef]Record{ref: old}
	sent := Post{Account: acctA, Company: "Co", First: "F", Last: "L", Email: "E4@example.com", Status: 409}
	pending := CustomerView{Name: "c0", UID: "u0", Company: "Co", First: "F", Last: "L", Email: "e4@example.com", Account: acctA, Policy: "Delete",
		PendingUID: "u0", PendingEmail: "e4@example.com", Generation: 1, Observed: 1}
	ready := pending
	ready.Bound, ready.BoundAccount, ready.Ready, ready.Reason = "1", acctA, "True", "Available"
	// c1 made the record; it is gone (deleted with Orphan) unless a case
	// keeps it live, holding the record.
	c1 := CustomerView{Name: "c1", UID: "u1", Company: "Co", First: "F", Last: "L", Email: "e4@example.com", Account: acctA, Policy: "Orphan",
		Bound: "1", BoundAccount: acctA, Ready: "True", Reason: "Available", Generation: 1, Observed: 1}
	with := func(edit func(*Post)) *Post { p := sent; edit(&p); return &p }
	for _, tt := range []struct {
		name    string
		post    *Post // nil: no POST sent
		c1Live  bool
		observe bool // c1, live, observes the record
		allowed bool
	}{
		{"answered 409", &sent, false, false, true},
		{"the manager stopped right after the POST", with(func(p *Post) { p.Crashed = true }), false, false, true},
		{"its connection dropped", with(func(p *Post) { p.Status = 0 }), false, false, true},
		{"answered 504", with(func(p *Post) { p.Status = 504 }), false, false, true},
		{"an odd answer", with(func(p *Post) { p.Status = 204 }), false, false, true},
		{"owned by a live Customer", &sent, true, false, false},
		{"owned by a live observer", &sent, true, true, false},
		{"other fields", with(func(p *Post) { p.Company = "Other Co" }), false, false, false},
		{"in another account", with(func(p *Post) { p.Account = acctB }), false, false, false},
		{"answered 201, read", with(func(p *Post) { p.Status = 201 }), false, false, false},
		{"refused 429", with(func(p *Post) { p.Status = 429 }), false, false, false},
		{"no POST sent", nil, false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(ref, "u1")
			holder := c1
			if tt.observe {
				holder.Observe, holder.Ready, holder.Reason = true, "True", "Observed"
			}
			before := []CustomerView{holder}
			l.Observe(Snapshot{Customers: before, Records: records})
			if !tt.c1Live {
				before = nil
			}
			send := pending
			if tt.post != nil {
				send.Account = tt.post.Account
				live := map[string]CustomerView{"u0": send}
				if tt.c1Live {
					live["u1"] = holder
				}
				l.Posted(*tt.post, live)
			}
			end := Snapshot{Customers: append(before, ready), Records: records}
			n := count(l.CheckEnd(end, nil), ReadyUnowned, "c0")
			if got := n == 0; got != tt.allowed {
				t.Fatalf("Ready on the record allowed: %v, want %v", got, tt.allowed)
			}
			live := end.Live()
			if got := l.Proves(ready, old, live); got != tt.allowed {
				t.Fatalf("c0 may write the record: %v, want %v", got, tt.allowed)
			}
			l.Observe(end)
			if got := l.Owner(ref) == "u0"; got != tt.allowed {
				t.Fatalf("c0 owns the record after binding it: %v, want %v", got, tt.allowed)
			}
			if !tt.allowed {
				return
			}
			// Taken, it is c0's for the rest of the history: deleted with
			// Delete, c0 must not leave it behind.
			l.Observe(Snapshot{Records: records})
			if vs := l.CheckEnd(Snapshot{Records: records}, nil); len(vs) != 1 || vs[0].Kind != OwnRecordLeft || vs[0].Customer != "c0" {
				t.Fatalf("c0 deleted with Delete, its taken record left: got %v, want one %s", vs, OwnRecordLeft)
			}
		})
	}
}

// A record taken as the record of a create whose answer was never learnt
// stays the Customer's once its PUT gave it other fields, its email
// included, even when no snapshot showed the binding before that PUT (seed
// 1100468: a restore, whose create-time proof a lagging listing let it
// write, and a new manager's POST answered 409, took the old object's
// record with exactly its fields; the PUT of the spec's new email went out
// before a snapshot, and the Customer's deletion with Delete then DELETEd
// it). Without that POST, or with other fields, the PUT and the DELETE are
// another's record's.
func TestARecordTakenAsALostCreatesStaysItsOwnAfterItsPUT(t *testing.T) {
	ref := RecordRef{acctA, "1"}
	orig := Record{Ref: ref, Company: "Co", First: "F", Last: "L", Email: "e1@example.com"}
	written := orig
	written.Email = "e2@example.com"
	old := CustomerView{Name: "c2", UID: "old", Company: "Co", First: "F", Last: "L", Email: "e1@example.com", Account: acctA, Policy: "Orphan",
		Bound: "1", BoundAccount: acctA, Ready: "True", Reason: "Available", Generation: 2, Observed: 2}
	restored := CustomerView{Name: "c2", UID: "new", Company: "Co", First: "F", Last: "L", Email: "e1@example.com", Account: acctA, Policy: "Orphan",
		PendingUID: "new", PendingEmail: "e1@example.com", Generation: 1}
	sent := Post{Account: acctA, Company: "Co", First: "F", Last: "L", Email: "e1@example.com", Status: 409}
	bound := restored
	bound.Email, bound.Policy, bound.Generation = "e2@example.com", "Delete", 2
	bound.Bound, bound.BoundAccount, bound.PendingUID, bound.PendingEmail = "1", acctA, "", ""
	for _, tt := range []struct {
		name string
		post *Post // nil: no POST sent
		want []string
	}{
		{"its POST answered 409", &sent, nil},
		{"no POST sent", nil, []string{WriteUnowned, DeleteUnowned}},
		{"its POST carried other fields", &Post{Account: acctA, Company: "Other", First: "F", Last: "L", Email: "e1@example.com", Status: 409}, []string{WriteUnowned, DeleteUnowned}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(ref, "old")
			l.Observe(Snapshot{Customers: []CustomerView{old}, Records: map[RecordRef]Record{ref: orig}})
			l.Forced("old")
			l.Observe(Snapshot{Customers: []CustomerView{restored}, Records: map[RecordRef]Record{ref: orig}})
			if tt.post != nil {
				l.Posted(*tt.post, map[string]CustomerView{"new": restored})
			}
			var got []string
			// Bound (no snapshot saw it) and its new email PUT at once.
			if v := l.CheckWrite(Write{"PUT", ref, orig, true, written}, map[string]CustomerView{"new": bound}); v != nil {
				got = append(got, v.Kind)
			}
			l.Observe(Snapshot{Customers: []CustomerView{bound}, Records: map[RecordRef]Record{ref: written}})
			deleting := bound
			deleting.Deleting = true
			if v := l.CheckWrite(Write{"DELETE", ref, written, true, Record{}}, map[string]CustomerView{"new": deleting}); v != nil {
				got = append(got, v.Kind)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// A 201 the operator read settles the Customer's creates in that account:
// the record it made is its own, and a record with the fields an earlier
// unheard POST carried is not.
func TestA201ReadSettlesEarlierUnheardCreates(t *testing.T) {
	ref := RecordRef{acctA, "1"}
	old := Record{Ref: ref, Company: "Co", First: "F", Last: "L", Email: "e4@example.com"}
	c0 := CustomerView{Name: "c0", UID: "u0", Company: "Co", First: "F", Last: "L", Email: "e4@example.com", Account: acctA, PendingUID: "u0", PendingEmail: "e4@example.com"}
	live := map[string]CustomerView{"u0": c0}
	l := NewLedger()
	l.Created(ref, "u1")
	p := Post{Account: acctA, Company: "Co", First: "F", Last: "L", Email: "e4@example.com", Status: 409}
	l.Posted(p, live)
	if !l.Proves(c0, old, live) {
		t.Fatal("after a 409 it never learnt from, the record with its fields is not allowed")
	}
	p.Status = 201
	l.Posted(p, live)
	if l.Proves(c0, old, live) {
		t.Fatal("after a 201 it read, another record with its fields is still allowed")
	}
}

// A record someone changed in ScriptLock (drift the operator has not put
// back) when its account's key is rotated, or before the Customer was
// carried over to the new key, is not as last synced: the README's
// credentials-change row carries a record over only exactly as last synced
// (status.syncedDigest), so the Customer stays AccountChanged and its
// deletion keeps the record (RecordKept; seeds 300137, 300283). Drift put
// back before the rotation, or a Customer carried over before the drift,
// must still delete it.
func TestADriftedRecordAtARotationIsKeptOnDeletion(t *testing.T) {
	ref := RecordRef{acctA, "1"}
	left := map[RecordRef]Record{ref: rec(acctA, "1", "e0@example.com")}
	notCarried := CustomerView{Name: "c0", UID: "u0", Email: "e0@example.com", Account: acctA, Policy: "Delete", Bound: "1",
		Ready: "False", Reason: "AccountChanged", Stalled: true, Deleting: true}
	carried := notCarried
	carried.BoundAccount, carried.Ready, carried.Reason, carried.Stalled = acctA, "True", "Available", false
	for _, tt := range []struct {
		name  string
		steps func(l *Ledger)
		c     CustomerView
		want  int
	}{
		{"drifted, then rotated", func(l *Ledger) { l.Drifted(ref); l.Rotated(acctA) }, notCarried, 0},
		{"rotated, then drifted before it was carried over", func(l *Ledger) { l.Rotated(acctA); l.Drifted(ref) }, notCarried, 0},
		{"drifted, put back, then rotated", func(l *Ledger) { l.Drifted(ref); l.Wrote(ref); l.Rotated(acctA) }, notCarried, 1},
		{"drifted, no rotation", func(l *Ledger) { l.Drifted(ref) }, carried, 1},
		{"rotated, carried over, then drifted", func(l *Ledger) { l.Rotated(acctA); l.Drifted(ref) }, carried, 1},
		{"another record drifted", func(l *Ledger) { l.Drifted(RecordRef{acctA, "2"}); l.Rotated(acctA) }, notCarried, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(ref, "u0")
			tt.steps(l)
			l.Observe(Snapshot{Customers: []CustomerView{tt.c}, Records: left})
			l.Observe(Snapshot{Records: left})
			vs := l.CheckEnd(Snapshot{Records: left}, nil)
			if len(vs) != tt.want || tt.want == 1 && vs[0].Kind != OwnRecordLeft {
				t.Errorf("got %v, want %d %s", vs, tt.want, OwnRecordLeft)
			}
		})
	}
}

// A Customer deleted just before its account's key is rotated, whose
// deletion the operator reaches only after the rotation (the watch event
// of the deletion came late: a relist), went under the new key without
// being carried over, though its last view, taken before the rotation,
// shows it bound under the old one. Its record drifted at the rotation is
// not as last synced, so its deletion keeps it (RecordKept), as for a
// Customer seen after the rotation (seed 900094: drift c1 · delete c1 ·
// rotate). A record in sync must still be deleted, and so must a drifted
// one whose Customer went before the rotation (under the old key).
func TestADeletionReachedOnlyAfterARotationKeepsADriftedRecord(t *testing.T) {
	ref := RecordRef{acctA, "1"}
	left := map[RecordRef]Record{ref: rec(acctA, "1", "e0@example.com")}
	deleting := CustomerView{Name: "c1", UID: "u1", Email: "e0@example.com", Account: acctA, Policy: "Delete", Bound: "1",
		BoundAccount: acctA, Ready: "True", Reason: "Available", Deleting: true}
	for _, tt := range []struct {
		name  string
		steps func(l *Ledger)
		want  int
	}{
		{"drifted, gone in the rotation's step", func(l *Ledger) {
			l.Drifted(ref)
			l.Rotated(acctA)
			l.Observe(Snapshot{Records: left})
		}, 0},
		{"in sync, gone in the rotation's step", func(l *Ledger) {
			l.Rotated(acctA)
			l.Observe(Snapshot{Records: left})
		}, 1},
		{"drifted, gone before the rotation", func(l *Ledger) {
			l.Drifted(ref)
			l.Observe(Snapshot{Records: left})
			l.Rotated(acctA)
		}, 1},
		{"drifted, gone without a rotation", func(l *Ledger) {
			l.Drifted(ref)
			l.Observe(Snapshot{Records: left})
		}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(ref, "u1")
			l.Observe(Snapshot{Customers: []CustomerView{deleting}, Records: left})
			tt.steps(l)
			vs := l.CheckEnd(Snapshot{Records: left}, nil)
			if len(vs) != tt.want || tt.want == 1 && vs[0].Kind != OwnRecordLeft {
				t.Errorf("got %v, want %d %s", vs, tt.want, OwnRecordLeft)
			}
		})
	}
}

// A Customer whose deletion was under way (held back, blocked) when its
// credentials were changed to name another account, and that went before
// the next snapshot, went under the new credentials: the README's
// credentials-change row keeps its record (RecordKept), though its last
// view named the record's account (seed 300765: the default key replaced
// by the other account's while the deletion waited out a held host). A
// change that leaves it in the record's account (a rotated key) excuses
// nothing.
func TestADeletionUnderWayWhenTheCredentialsChangeKeepsTheRecord(t *testing.T) {
	ref := RecordRef{acctA, "1"}
	left := map[RecordRef]Record{ref: rec(acctA, "1", "e0@example.com")}
	deleting := CustomerView{Name: "c0", UID: "u0", Email: "e0@example.com", Account: acctA, Policy: "Delete", Bound: "1",
		BoundAccount: acctA, Ready: "False", Reason: "DeletionBlocked", Stalled: true, Deleting: true}
	for _, tt := range []struct {
		name string
		to   *Account
		want int
	}{
		{"repointed to another account, then gone", &acctB, 0},
		{"repointed to the same account (a rotated key), then gone", &acctA, 1},
		{"no change of credentials, then gone", nil, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(ref, "u0")
			l.Observe(Snapshot{Customers: []CustomerView{deleting}, Records: left})
			if tt.to != nil {
				l.Repointed("u0", *tt.to)
			}
			l.Observe(Snapshot{Records: left})
			vs := l.CheckEnd(Snapshot{Records: left}, nil)
			if len(vs) != tt.want || tt.want == 1 && vs[0].Kind != OwnRecordLeft {
				t.Errorf("got %v, want %d %s", vs, tt.want, OwnRecordLeft)
			}
		})
	}
}

// A rotation lookalike a Customer took (bound it, or wrote it as the
// carried-over record) is its own from then on: the README writes a spec
// changed meanwhile, its email included, to a carried-over record, and a
// record bound under status.account naming the account of the current
// credentials is proven (seeds 301279 and 301731: Ready on the copy after
// the email was written; 300736: a later PUT of the copy with its new
// email; and 40011's path, a Secret pointed at the other account, with a
// new email: the PUT and the DELETE of the copy). A copy it never took
// stays another's once its email differs.
func TestARotationLookalikeTakenStaysItsOwnAfterAnEmailChange(t *testing.T) {
	orig, copyRef := RecordRef{acctA, "1"}, RecordRef{acctB, "1"}
	before := CustomerView{Name: "c1", UID: "u1", Email: "e3@example.com", Account: acctA, Policy: "Delete", Bound: "1", BoundAccount: acctA}
	moved := before
	moved.Account, moved.PrevAccount = acctB, acctA
	moved.Email = "e2@example.com" // the spec's new email, written to the copy
	carried := moved
	carried.BoundAccount, carried.Ready, carried.Generation, carried.Observed = acctB, "True", 2, 2
	carried.Company, carried.First, carried.Last = "", "", ""
	written := rec(acctB, "1", "e2@example.com")
	for _, tt := range []struct {
		name string
		// take: how the Customer took the copy before its email changed:
		// "put" (the carrying PUT wrote the new email in the same step),
		// "bound" (a snapshot showed it bound to the unchanged copy), or
		// "" (never).
		take    string
		rotated bool
		want    []string
	}{
		{"carried over by the PUT of its new email", "put", true, nil},
		{"carried over, then its email changed", "bound", true, nil},
		{"never taken, the copy's email changed by someone else", "", true, []string{WriteUnowned, DeleteUnowned, ReadyUnowned}},
		{"no rotation", "put", false, []string{WriteUnowned, WriteUnowned, DeleteUnowned, ReadyUnowned}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(orig, "u1")
			l.Observe(Snapshot{Customers: []CustomerView{before}, Records: map[RecordRef]Record{orig: rec(acctA, "1", "e3@example.com")}})
			if tt.rotated {
				l.Rotated(acctA)
			}
			var got []string
			live := map[string]CustomerView{"u1": moved}
			switch tt.take {
			case "put":
				if v := l.CheckWrite(Write{"PUT", copyRef, rec(acctB, "1", "e3@example.com"), true, written}, live); v != nil {
					got = append(got, v.Kind)
				}
			case "bound":
				b := carried
				b.Email = "e3@example.com"
				l.Observe(Snapshot{Customers: []CustomerView{b}, Records: map[RecordRef]Record{orig: rec(acctA, "1", "e3@example.com"), copyRef: rec(acctB, "1", "e3@example.com")}})
			}
			// A later PUT (another field), with the copy holding the new
			// email; then, deleted with deletionPolicy Delete, its DELETE.
			if v := l.CheckWrite(Write{"PUT", copyRef, written, true, written}, map[string]CustomerView{"u1": carried}); v != nil {
				got = append(got, v.Kind)
			}
			deleting := carried
			deleting.Deleting = true
			if v := l.CheckWrite(Write{"DELETE", copyRef, written, true, Record{}}, map[string]CustomerView{"u1": deleting}); v != nil {
				got = append(got, v.Kind)
			}
			end := Snapshot{Customers: []CustomerView{carried}, Records: map[RecordRef]Record{orig: rec(acctA, "1", "e3@example.com"), copyRef: written}}
			l.Observe(end)
			for _, v := range l.CheckStep(end, end) {
				got = append(got, v.Kind)
			}
			for _, v := range l.CheckEnd(end, nil) {
				got = append(got, v.Kind)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// A Customer lost without its finalizer (restore: the object is force-
// deleted and restored from a backup, a new UID) may have had a pass under
// way: its PUT of the record it was bound to, sent during that step, is its
// own write in flight, not the restored object's (seed 300816: the pass put
// the finalizer back, the DELETE crossed it, and its PUT went out after the
// object was gone). After the step, or of a record it was not bound to, or
// a DELETE while it was not being deleted, it is not.
func TestAWriteInFlightWhenItsCustomerIsLostIsItsOwn(t *testing.T) {
	own, other := RecordRef{acctA, "1"}, RecordRef{acctA, "2"}
	old := CustomerView{Name: "c1", UID: "u-old", Email: "e0@example.com", Account: acctA, Policy: "Orphan", Bound: "1", BoundAccount: acctA}
	restored := CustomerView{Name: "c1", UID: "u-new", Email: "e0@example.com", Account: acctA, Policy: "Orphan"}
	records := map[RecordRef]Record{own: rec(acctA, "1", "e4@example.com"), other: rec(acctA, "2", "e2@example.com")}
	for _, tt := range []struct {
		name      string
		w         Write
		afterStep bool
		broken    string
	}{
		{"its PUT during the step it was lost in", Write{"PUT", own, records[own], true, Record{}}, false, ""},
		{"a PUT after that step", Write{"PUT", own, records[own], true, Record{}}, true, WriteUnowned},
		{"a PUT of a record it was not bound to", Write{"PUT", other, records[other], true, Record{}}, false, WriteUnowned},
		{"a DELETE while it was not being deleted", Write{"DELETE", own, records[own], true, Record{}}, false, DeleteUnowned},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(own, "u-old")
			l.Observe(Snapshot{Customers: []CustomerView{old}, Records: records})
			l.Forced("u-old")
			live := map[string]CustomerView{"u-new": restored}
			if tt.afterStep {
				l.Observe(Snapshot{Customers: []CustomerView{restored}, Records: records})
			}
			wantWrite(t, l, tt.w, live, tt.broken)
		})
	}
}

// Seed 500563: c0's create of e1 was answered 503 and its spec moved to
// e2 (it waits for that create's record, README: the lost-answer row,
// still holding its e1 proof); c1, with e1 in its spec, holds an e1 proof
// too and its POST stores a record. The POST carries c1's spec, so the
// record is c1's, whatever the order live is walked in.
func TestAttributePrefersTheHolderWhoseSpecHasTheEmail(t *testing.T) {
	for i := 0; i < 50; i++ {
		l := NewLedger()
		waiting := CustomerView{Name: "c0", UID: "u0", Email: "e2@example.com", Account: acctA, PendingUID: "u0", PendingEmail: "e1@example.com"}
		creating := CustomerView{Name: "c1", UID: "u1", Email: "e1@example.com", Account: acctA, PendingUID: "u1", PendingEmail: "e1@example.com"}
		live := map[string]CustomerView{"u0": waiting, "u1": creating}
		ref := RecordRef{acctA, "2"}
		if got := l.Attribute(ref, "E1@example.com", live); got != "u1" {
			t.Fatalf("attributed to %q, want u1 (c1, whose spec has the email)", got)
		}
		bound := creating
		bound.Bound, bound.BoundAccount, bound.Ready = "2", acctA, "True"
		if !l.Proves(bound, rec(acctA, "2", "e1@example.com"), map[string]CustomerView{"u0": waiting, "u1": bound}) {
			t.Fatal("c1 cannot prove the record its own POST stored")
		}
	}
	// A single holder keeps the record whatever its spec says now (a
	// create sent before the spec changed).
	l := NewLedger()
	waiting := CustomerView{Name: "c0", UID: "u0", Email: "e2@example.com", Account: acctA, PendingUID: "u0", PendingEmail: "e1@example.com"}
	if got := l.Attribute(RecordRef{acctA, "3"}, "e1@example.com", map[string]CustomerView{"u0": waiting}); got != "u0" {
		t.Fatalf("attributed to %q, want u0", got)
	}
}

// The same kind for Posted: c1's create answered 201 settles c1's creates,
// not c0's, whose e1 create was answered 503 before its spec moved on:
// a record with exactly what c0 posted may still be taken as its own.
func TestPostedSettlesOnlyTheSendersCreates(t *testing.T) {
	l := NewLedger()
	c0 := CustomerView{Name: "c0", UID: "u0", Email: "e1@example.com", Account: acctA, PendingUID: "u0", PendingEmail: "e1@example.com"}
	l.Posted(Post{Account: acctA, Email: "e1@example.com", Status: 503}, map[string]CustomerView{"u0": c0})
	c0.Email = "e2@example.com"
	c1 := CustomerView{Name: "c1", UID: "u1", Email: "e1@example.com", Account: acctA, PendingUID: "u1", PendingEmail: "e1@example.com"}
	live := map[string]CustomerView{"u0": c0, "u1": c1}
	l.Posted(Post{Account: acctA, Email: "e1@example.com", Status: 201}, live)
	if !l.Proves(c0, rec(acctA, "9", "e1@example.com"), live) {
		t.Fatal("c1's 201 settled c0's create whose answer was lost")
	}
}

// A rotation lookalike carried over and then deleted in ScriptLock by
// someone else is, through the API, the Customer's record deleted: the
// README's remote-delete row has it created again in the account its
// credentials name. The original, left behind the key rotated away, is the
// record that moved, not a second one of its own (seed 801338: apply,
// defaultkey, rotate, remotedelete). Without a carry-over, or with the
// lookalike still there, a new record is a second one.
func TestARotationLookalikeDeletedThenCreatedAgainIsOneRecord(t *testing.T) {
	orig, copyRef, fresh := RecordRef{acctA, "1"}, RecordRef{acctB, "1"}, RecordRef{acctB, "2"}
	c := CustomerView{Name: "c2", UID: "u2", Email: "e4@example.com", Account: acctA, Policy: "Orphan", Bound: "1", BoundAccount: acctA}
	carried := c
	carried.Account, carried.BoundAccount = acctB, acctB
	recreated := carried
	recreated.Bound = "2"
	for _, tt := range []struct {
		name          string
		rotated       bool
		lookalikeGone bool
		want          int
	}{
		{"carried over, deleted in ScriptLock, created again", true, true, 0},
		{"carried over, a second record while the lookalike is there", true, false, 1},
		{"never carried over (no rotation), a record in another account", false, true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(orig, "u2")
			first := Snapshot{Customers: []CustomerView{c}, Records: map[RecordRef]Record{orig: rec(acctA, "1", "e4@example.com")}}
			l.Observe(first)
			if tt.rotated {
				l.Rotated(acctA)
			}
			moved := Snapshot{Customers: []CustomerView{carried}, Records: map[RecordRef]Record{
				orig: rec(acctA, "1", "e4@example.com"), copyRef: rec(acctB, "1", "e4@example.com"),
			}}
			l.Observe(moved)
			if got := l.Owner(copyRef) == "u2"; got != tt.rotated {
				t.Fatalf("took the lookalike: %v, want %v", got, tt.rotated)
			}
			recs := map[RecordRef]Record{orig: rec(acctA, "1", "e4@example.com"), fresh: rec(acctB, "2", "e4@example.com")}
			if !tt.lookalikeGone {
				recs[copyRef] = rec(acctB, "1", "e4@example.com")
			}
			l.Created(fresh, "u2")
			cur := Snapshot{Customers: []CustomerView{recreated}, Records: recs}
			vs := l.CheckStep(moved, cur)
			l.Observe(cur)
			if n := count(vs, TwoRecords, ""); n != tt.want {
				t.Fatalf("got %v, want %d %s", vs, tt.want, TwoRecords)
			}
		})
	}
}

// Seed 1001087: `defaultkey` · `rotate` · `remotedelete c3` · `apply c3 e4
// Delete`. The other account's copy of c3's record was in place once the old
// key was refused; it was deleted in ScriptLock before c3's next pass, which
// carried it over on a listing that still showed it (status.account naming the
// other account), found it gone, and after 3 reads created its record again.
// The ledger never saw the binding while the copy was there; through the API
// that is a rotated key's record deleted and created again: one record. A copy
// gone before the rotation, or never seen in place, proves nothing.
func TestARotationLookalikeDeletedBeforeItWasSeenTakenIsOneRecord(t *testing.T) {
	orig, copyRef, fresh := RecordRef{acctA, "1"}, RecordRef{acctB, "1"}, RecordRef{acctB, "3"}
	c := CustomerView{Name: "c3", UID: "u3", Email: "e2@example.com", Account: acctA, Policy: "Orphan", Bound: "1", BoundAccount: acctA, Ready: "True"}
	moved := c
	moved.Account = acctB
	carried := moved
	carried.Email, carried.Policy, carried.BoundAccount, carried.Ready, carried.Reason = "e4@example.com", "Delete", acctB, "False", "RecordMissing"
	recreated := carried
	recreated.Bound, recreated.Ready, recreated.Reason = "3", "True", "Available"
	for _, tt := range []struct {
		name string
		// copySeenAfterRotation: a snapshot showed the copy in place once
		// the old key was refused.
		rotated, copySeenAfterRotation bool
		want                           int
	}{
		{"copy in place after the rotation, deleted, carried over, created again", true, true, 0},
		{"copy deleted before the rotation", true, false, 1},
		{"no rotation", false, true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(orig, "u3")
			both := map[RecordRef]Record{orig: rec(acctA, "1", "e2@example.com"), copyRef: rec(acctB, "1", "e2@example.com")}
			origOnly := map[RecordRef]Record{orig: rec(acctA, "1", "e2@example.com")}
			l.Observe(Snapshot{Customers: []CustomerView{c}, Records: origOnly})
			// defaultkey: the credentials name the other account, filled
			// with a copy.
			l.Observe(Snapshot{Customers: []CustomerView{moved}, Records: both})
			if !tt.copySeenAfterRotation {
				l.Observe(Snapshot{Customers: []CustomerView{moved}, Records: origOnly})
			}
			if tt.rotated {
				l.Rotated(acctA)
			}
			after := moved
			after.BoundAccount = Account{}
			if tt.copySeenAfterRotation {
				l.Observe(Snapshot{Customers: []CustomerView{after}, Records: both})
			}
			// remotedelete c3, then c3's pass carries the copy over (from a
			// listing) and finds it gone: RecordMissing.
			prev := Snapshot{Customers: []CustomerView{carried}, Records: origOnly}
			l.Observe(prev)
			// 3 reads later: created again in the other account.
			l.Created(fresh, "u3")
			cur := Snapshot{Customers: []CustomerView{recreated}, Records: map[RecordRef]Record{orig: rec(acctA, "1", "e2@example.com"), fresh: rec(acctB, "3", "e4@example.com")}}
			vs := l.CheckStep(prev, cur)
			l.Observe(cur)
			if n := count(vs, TwoRecords, ""); n != tt.want {
				t.Fatalf("got %v, want %d %s", vs, tt.want, TwoRecords)
			}
		})
	}
}

// Seed 1100397: c0, in Conflict over an email another record has, retries
// its PUT once a second; the step switches it to Observe while a retry,
// decided under Manage on the copy it had read, is on its way. No
// controller can make its read of an object and its call one step: the
// PUT is judged by the Customer as last seen before the step. Only during
// that step, only a PUT, only of the record it was bound to and could
// prove its own then.
func TestAWriteInFlightWhenItsCustomerIsSwitchedToObserveIsItsOwn(t *testing.T) {
	own, other, stray := RecordRef{acctA, "1"}, RecordRef{acctA, "2"}, RecordRef{acctA, "3"}
	managing := CustomerView{Name: "c0", UID: "u0", Email: "e3@example.com", Account: acctA, Policy: "Orphan", Bound: "1", BoundAccount: acctA}
	observing := managing
	observing.Observe = true
	deleting := managing
	deleting.Deleting = true
	holder := CustomerView{Name: "c1", UID: "u1", Email: "e3@example.com", Account: acctA, Policy: "Orphan", Bound: "2", BoundAccount: acctA}
	records := map[RecordRef]Record{own: rec(acctA, "1", "e0@example.com"), other: rec(acctA, "2", "e3@example.com"), stray: rec(acctA, "3", "e1@example.com")}
	for _, tt := range []struct {
		name      string
		before    CustomerView // c0 as the last snapshot saw it
		now       CustomerView // c0 at the moment of the call
		w         Write
		afterStep bool
		broken    string
	}{
		{"its PUT during the step that switched it to Observe", managing, observing, Write{"PUT", own, records[own], true, Record{}}, false, ""},
		{"its PUT during the step that began its deletion", managing, deleting, Write{"PUT", own, records[own], true, Record{}}, false, ""},
		{"a PUT after that step", managing, observing, Write{"PUT", own, records[own], true, Record{}}, true, WriteUnowned},
		{"a PUT while it was already observing before the step", observing, observing, Write{"PUT", own, records[own], true, Record{}}, false, WriteUnowned},
		{"a PUT of a record it was not bound to", managing, observing, Write{"PUT", stray, records[stray], true, Record{}}, false, WriteUnowned},
		{"a DELETE during that step", managing, observing, Write{"DELETE", own, records[own], true, Record{}}, false, DeleteUnowned},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			l.Created(own, "u0")
			l.Created(other, "u1")
			l.Observe(Snapshot{Customers: []CustomerView{tt.before, holder}, Records: records})
			if tt.afterStep {
				l.Observe(Snapshot{Customers: []CustomerView{tt.now, holder}, Records: records})
			}
			wantWrite(t, l, tt.w, map[string]CustomerView{"u0": tt.now, "u1": holder}, tt.broken)
		})
	}
}
