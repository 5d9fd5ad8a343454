package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

func testClient(t *testing.T, key string) *scriptlock.Client {
	t.Helper()
	cl, err := scriptlock.New(scriptlock.Options{BaseURL: "http://127.0.0.1:1", APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func byID(recs ...scriptlock.Customer) *listing {
	out, add := newListing(nil)
	for _, r := range recs {
		add(r)
	}
	return out
}

func TestListingEnqueuesOnlyDriftedAndMissingRecords(t *testing.T) {
	d := newCustomerMemory(newAccountRegistry(clock.RealClock{}))
	cl := testClient(t, "k")
	same := scriptlock.Customer{ID: "1", FirstName: "A", LastName: "B", Email: "a@example.com"}
	drifted := scriptlock.Customer{ID: "2", FirstName: "C", LastName: "D", Email: "c@example.com"}
	missing := scriptlock.Customer{ID: "3", FirstName: "E", LastName: "F", Email: "e@example.com"}
	keys := map[string]types.NamespacedName{}
	for _, rec := range []scriptlock.Customer{same, drifted, missing} {
		keys[rec.ID] = types.NamespacedName{Namespace: "ns", Name: "c" + rec.ID}
		d.synced(keys[rec.ID], cl, "", rec, time.Unix(0, 0))
	}
	listedDrift := drifted
	listedDrift.Company = "Changed"
	sameOtherCase := same
	sameOtherCase.Email = "A@Example.com"
	stale := d.compare(cl.Account(), byID(sameOtherCase, listedDrift), time.Unix(1, 0), false)
	got := map[types.NamespacedName]bool{}
	for _, k := range stale {
		got[k] = true
	}
	if len(stale) != 2 || !got[keys["2"]] || !got[keys["3"]] {
		t.Fatalf("enqueued %v, want the drifted and the missing record", stale)
	}
	if all := d.compare(cl.Account(), nil, time.Unix(1, 0), true); len(all) != 3 {
		t.Fatalf("a failed listing must enqueue every Customer of the account, got %v", all)
	}
	// The account goes when its last Customer goes.
	for _, k := range keys {
		d.forget(k)
	}
	if n := len(d.accounts.inUse()); n != 0 {
		t.Fatalf("%d accounts left after every Customer was forgotten", n)
	}
}

func TestAListingOlderThanTheOperatorsOwnWriteDoesNotUndoIt(t *testing.T) {
	d := newCustomerMemory(newAccountRegistry(clock.RealClock{}))
	cl := testClient(t, "k")
	old := types.NamespacedName{Namespace: "ns", Name: "old"}
	fresh := types.NamespacedName{Namespace: "ns", Name: "fresh"}
	oldRec := scriptlock.Customer{ID: "1", FirstName: "A", LastName: "B", Email: "a@example.com"}
	freshRec := scriptlock.Customer{ID: "2", FirstName: "C", LastName: "D", Email: "c@example.com"}
	d.synced(old, cl, "", oldRec, time.Unix(10, 0))
	// The listing is asked for at 20 s; the record of "fresh" is created at
	// 25 s, while the listing is on the wire, so the listing lacks it.
	d.synced(fresh, cl, "", freshRec, time.Unix(25, 0))
	if stale := d.compare(cl.Account(), byID(oldRec), time.Unix(20, 0), false); len(stale) != 0 {
		t.Fatalf("a record written after the listing was asked for was reported stale: %v", stale)
	}
	// The next listing, asked for after the write, does judge it.
	if stale := d.compare(cl.Account(), byID(oldRec), time.Unix(30, 0), false); len(stale) != 1 || stale[0] != fresh {
		t.Fatalf("a record missing from a newer listing must be reported: %v", stale)
	}
}

func TestARewriteThatScriptLockStoresDifferentlyIsNotRepeated(t *testing.T) {
	d := newCustomerMemory(newAccountRegistry(clock.RealClock{}))
	key := types.NamespacedName{Namespace: "ns", Name: "c"}
	company := []string{"company"}
	if d.rewritten(key, 1, company) {
		t.Fatal("nothing was written yet")
	}
	d.wrote(key, 1, company)
	if !d.rewritten(key, 1, company) {
		t.Fatal("the same field differs again after the write: writing again would repeat forever")
	}
	if d.rewritten(key, 1, []string{"firstName"}) {
		t.Fatal("another field differing is new drift and must be written")
	}
	if d.rewritten(key, 2, company) {
		t.Fatal("a new generation must be written")
	}
	d.converged(key)
	if d.rewritten(key, 1, company) {
		t.Fatal("once ScriptLock was seen holding the spec, the same drift later is new drift")
	}
}

// Reads by id that find a held record missing count as a disappearance's
// do: one per interval at most, and a sighting (a read, a listing) calls
// the count off; a prune forgets counts not added to since the cutoff.
func TestMissingReadsOfAHeldRecordCountInARowPerInterval(t *testing.T) {
	a := newAccountRegistry(clock.RealClock{})
	t0 := time.Now()
	if n := a.notFound("acct", "7", t0, 10*time.Second); n != 1 {
		t.Fatalf("first read: %d", n)
	}
	if n := a.notFound("acct", "7", t0.Add(time.Second), 10*time.Second); n != 1 {
		t.Fatalf("a read within the interval counted: %d", n)
	}
	if n := a.notFound("acct", "7", t0.Add(10*time.Second), 10*time.Second); n != 2 {
		t.Fatalf("second read: %d", n)
	}
	if n, _ := a.unfoundSoFar("other", "7"); n != 0 {
		t.Fatalf("counted in another account: %d", n)
	}
	a.found("acct", t0.Add(11*time.Second), scriptlock.Customer{ID: "7"})
	if n, _ := a.unfoundSoFar("acct", "7"); n != 0 {
		t.Fatalf("a sighting did not call the count off: %d", n)
	}
	a.notFound("acct", "8", t0, time.Second)
	a.prune(t0.Add(time.Minute))
	if n, _ := a.unfoundSoFar("acct", "8"); n != 0 {
		t.Fatalf("a prune kept an old count: %d", n)
	}
}
