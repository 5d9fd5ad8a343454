package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

func TestPermanentBackoffDoublesFromTheMinimumToTheCap(t *testing.T) {
	b := backoffPolicy{Min: time.Minute, Max: 5 * time.Minute}
	for failures, want := range map[int]time.Duration{
		1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 4: 5 * time.Minute, 30: 5 * time.Minute,
	} {
		if got := b.after(failures); got != want {
			t.Errorf("after %d failures: %s, want %s", failures, got, want)
		}
	}
}

func TestASpecChangeSkipsThePermanentBackoff(t *testing.T) {
	tr := newTracker(time.Hour, backoffPolicy{Min: time.Minute, Max: 5 * time.Minute}, true)
	key := types.NamespacedName{Namespace: "ns", Name: "c"}
	now := time.Unix(1000, 0)
	if d := tr.failed(key, 1, now); d != time.Minute {
		t.Fatalf("first failure waits %s, want 1m", d)
	}
	if d := tr.wait(key, 1, now.Add(10*time.Second)); d != 50*time.Second {
		t.Fatalf("same generation must wait the rest of the minute, got %s", d)
	}
	if d := tr.wait(key, 2, now.Add(10*time.Second)); d != 0 {
		t.Fatalf("a new generation must not wait, got %s", d)
	}
	if d := tr.failed(key, 1, now.Add(time.Minute)); d != 2*time.Minute {
		t.Fatalf("second failure of the same generation waits %s, want 2m", d)
	}
	if d := tr.failed(key, 2, now.Add(2*time.Minute)); d != time.Minute {
		t.Fatalf("a new generation starts the backoff again, got %s", d)
	}
}

func TestListingEnqueuesOnlyDriftedAndMissingRecords(t *testing.T) {
	tr := newTracker(time.Hour, backoffPolicy{Min: time.Minute, Max: time.Minute}, true)
	cl, err := scriptlock.New(scriptlock.Options{BaseURL: "http://127.0.0.1:1", APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	same := scriptlock.Customer{ID: "1", FirstName: "A", LastName: "B", Email: "a@example.com"}
	drifted := scriptlock.Customer{ID: "2", FirstName: "C", LastName: "D", Email: "c@example.com"}
	missing := scriptlock.Customer{ID: "3", FirstName: "E", LastName: "F", Email: "e@example.com"}
	keys := map[string]types.NamespacedName{}
	for _, rec := range []scriptlock.Customer{same, drifted, missing} {
		keys[rec.ID] = types.NamespacedName{Namespace: "ns", Name: "c" + rec.ID}
		tr.synced(keys[rec.ID], cl, rec, time.Unix(0, 0))
	}
	if got := tr.lookup(cl.Account(), same); got != listUnknown {
		t.Fatalf("before any listing: %v, want listUnknown", got)
	}
	listedDrift := drifted
	listedDrift.Company = "Changed"
	sameOtherCase := same
	sameOtherCase.Email = "A@Example.com"
	stale := tr.listed(cl.Account(), []scriptlock.Customer{sameOtherCase, listedDrift}, time.Unix(1, 0))
	got := map[types.NamespacedName]bool{}
	for _, k := range stale {
		got[k] = true
	}
	if len(stale) != 2 || !got[keys["2"]] || !got[keys["3"]] {
		t.Fatalf("enqueued %v, want the drifted and the missing record", stale)
	}
	for rec, want := range map[*scriptlock.Customer]listedRecord{&same: listSame, &drifted: listDiffers, &missing: listMissing} {
		if got := tr.lookup(cl.Account(), *rec); got != want {
			t.Errorf("lookup of %s: %v, want %v", rec.ID, got, want)
		}
	}
	// A write by the operator updates the listing, so it is not undone.
	tr.synced(keys["2"], cl, drifted, time.Unix(2, 0))
	if got := tr.lookup(cl.Account(), drifted); got != listSame {
		t.Fatalf("after the operator's own update: %v, want listSame", got)
	}
	// The account goes when its last Customer goes.
	for _, k := range keys {
		tr.forget(k)
	}
	if n := len(tr.accountClients()); n != 0 {
		t.Fatalf("%d accounts left after every Customer was forgotten", n)
	}
}

func TestAListingOlderThanTheOperatorsOwnWriteDoesNotUndoIt(t *testing.T) {
	tr := newTracker(time.Hour, backoffPolicy{Min: time.Minute, Max: time.Minute}, true)
	cl, err := scriptlock.New(scriptlock.Options{BaseURL: "http://127.0.0.1:1", APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	old := types.NamespacedName{Namespace: "ns", Name: "old"}
	fresh := types.NamespacedName{Namespace: "ns", Name: "fresh"}
	oldRec := scriptlock.Customer{ID: "1", FirstName: "A", LastName: "B", Email: "a@example.com"}
	freshRec := scriptlock.Customer{ID: "2", FirstName: "C", LastName: "D", Email: "c@example.com"}
	tr.synced(old, cl, oldRec, time.Unix(10, 0))
	// The listing is asked for at 20 s; the record of "fresh" is created at
	// 25 s, while the listing is on the wire, so the listing lacks it.
	tr.synced(fresh, cl, freshRec, time.Unix(25, 0))
	if stale := tr.listed(cl.Account(), []scriptlock.Customer{oldRec}, time.Unix(20, 0)); len(stale) != 0 {
		t.Fatalf("a record written after the listing was asked for was reported stale: %v", stale)
	}
	if got := tr.lookup(cl.Account(), freshRec); got != listSame {
		t.Fatalf("the fresh record must stay known as written: %v", got)
	}
	// The next listing, asked for after the write, does judge it.
	if stale := tr.listed(cl.Account(), []scriptlock.Customer{oldRec}, time.Unix(30, 0)); len(stale) != 1 || stale[0] != fresh {
		t.Fatalf("a record missing from a newer listing must be reported: %v", stale)
	}
}

func TestClaimsGoToTheHolderThenTheCreatorThenTheOlder(t *testing.T) {
	at := func(sec int64) metav1.Time { return metav1.NewTime(time.Unix(sec, 0)) }
	cust := func(name string, created int64, id string, pending bool) *v1alpha1.Customer {
		c := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, CreationTimestamp: at(created)}}
		c.Status.CustomerID = id
		if pending {
			c.Annotations = map[string]string{v1alpha1.CreatePendingAnnotation: "a@example.com"}
		}
		return c
	}
	cases := []struct {
		name        string
		winner, lsr *v1alpha1.Customer
	}{
		{"the holder of a record beats an older Customer", cust("young", 20, "42", false), cust("old", 10, "", false)},
		{"a create under way beats an older idle Customer", cust("young", 20, "", true), cust("old", 10, "", false)},
		{"the older Customer wins between equals", cust("old", 10, "", false), cust("young", 20, "", false)},
		{"the smaller name wins within one second", cust("a", 10, "", false), cust("b", 10, "", false)},
	}
	for _, tc := range cases {
		if !claimsBefore(tc.winner, tc.lsr) || claimsBefore(tc.lsr, tc.winner) {
			t.Errorf("%s: %s must beat %s, and not the other way round", tc.name, tc.winner.Name, tc.lsr.Name)
		}
	}
}
