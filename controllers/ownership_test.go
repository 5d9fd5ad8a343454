// The ownership rule's pure parts (who holds a claim, the pending-create
// proof) and its races against a stale cache or index, on a fake client.
package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

func TestClaimsGoToTheHolderThenTheCreatorThenTheOlder(t *testing.T) {
	at := func(sec int64) metav1.Time { return metav1.NewTime(time.Unix(sec, 0)) }
	cust := func(name string, created int64, id string, pending bool) *v1alpha1.Customer {
		c := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, CreationTimestamp: at(created)}}
		c.Status.CustomerID = id
		if pending {
			c.Status.PendingCreate = &v1alpha1.PendingCreate{Email: "a@example.com", Since: at(100)}
		}
		return c
	}
	sentAt := func(c *v1alpha1.Customer, sec int64) *v1alpha1.Customer {
		c.Status.PendingCreate.Since = at(sec)
		return c
	}
	cases := []struct {
		name        string
		winner, lsr *v1alpha1.Customer
	}{
		{"the holder of a record beats an older Customer", cust("young", 20, "42", false), cust("old", 10, "", false)},
		{"a create under way beats an older idle Customer", cust("young", 20, "", true), cust("old", 10, "", false)},
		{"of two creates under way the one sent first wins", sentAt(cust("young", 20, "", true), 100), sentAt(cust("old", 10, "", true), 101)},
		{"the older Customer wins between creates sent in the same second", cust("old", 10, "", true), cust("young", 20, "", true)},
		{"the older Customer wins between equals", cust("old", 10, "", false), cust("young", 20, "", false)},
		{"the smaller name wins within one second", cust("a", 10, "", false), cust("b", 10, "", false)},
	}
	for _, tc := range cases {
		if !claimsBefore(tc.winner, tc.lsr) || claimsBefore(tc.lsr, tc.winner) {
			t.Errorf("%s: %s must beat %s, and not the other way round", tc.name, tc.winner.Name, tc.lsr.Name)
		}
	}
}

func TestAPendingCreateProvesOnlyForTheObjectAndAccountThatSentIt(t *testing.T) {
	cl, other := testClient(t, "k"), testClient(t, "other-key")
	posted := scriptlock.Customer{FirstName: "A", LastName: "B", Email: "a@example.com"}
	sender := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{UID: types.UID("uid-1")}}
	p := newPending(sender, cl, posted, time.Unix(100, 0))
	with := func(uid string, p *v1alpha1.PendingCreate) *v1alpha1.Customer {
		c := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)}}
		c.Status.PendingCreate = p
		return c
	}
	// annotated: the proof in the annotation (as a create writes it), and
	// id bound in status.
	annotated := func(uid string, p *v1alpha1.PendingCreate, id string) *v1alpha1.Customer {
		c := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)}}
		annotatePending(c, p)
		c.Status.CustomerID = id
		return c
	}
	cases := []struct {
		name string
		c    *v1alpha1.Customer
		cl   *scriptlock.Client
		own  bool
	}{
		{"the object that sent it, same account", with("uid-1", p), cl, true},
		{"its status restored onto a new object (another UID)", with("uid-2", p), cl, false},
		{"the same object under other credentials", with("uid-1", p), other, false},
		{"no pending create", with("uid-1", nil), cl, false},
		{"its annotation, on the object that sent it", annotated("uid-1", p, ""), cl, true},
		{"its annotation on a copy (another UID)", annotated("uid-2", p, ""), cl, false},
		{"its annotation once a record is bound", annotated("uid-1", p, "42"), cl, false},
		{"its annotation under other credentials", annotated("uid-1", p, ""), other, false},
	}
	for _, tc := range cases {
		if _, own := ownPending(tc.c, tc.cl); own != tc.own {
			t.Errorf("%s: proves %v, want %v", tc.name, own, tc.own)
		}
	}
	rec := posted
	rec.ID, rec.Email = "7", "A@Example.com"
	if !madeBy(rec, p) {
		t.Fatal("the record with the email (any case) and the fields posted is the create's")
	}
	rec.FirstName = "Someone else"
	if madeBy(rec, p) {
		t.Fatal("a record with the email but other fields is not the create's")
	}
}

func TestTheDigestIsOfWhatWasPostedWithTheEmailInAnyCase(t *testing.T) {
	a := scriptlock.Customer{Company: "Co", FirstName: "A", LastName: "B", Email: "a@example.com"}
	b := a
	b.Email, b.ID = "A@Example.COM", "42"
	if digest(a) != digest(b) {
		t.Fatal("the id and the email's case must not change the digest")
	}
	tidied := scriptlock.Customer{Company: "co", FirstName: "A", LastName: "B", Email: "a@example.com"}
	spaced := scriptlock.Customer{Company: "Co", FirstName: "A", LastName: "B", Email: "a@example.com"}
	spaced.Company = "CO"
	if digest(tidied) != digest(spaced) || digest(scriptlock.Customer{Company: "Two  Spaces"}) != digest(scriptlock.Customer{Company: "Two Spaces"}) {
		t.Fatal("values a back end tidies (case, runs of spaces) must keep the digest")
	}
	for _, f := range []func(*scriptlock.Customer){
		func(c *scriptlock.Customer) { c.Company = "Other" },
		func(c *scriptlock.Customer) { c.FirstName = "Other" },
		func(c *scriptlock.Customer) { c.LastName = "Other" },
		func(c *scriptlock.Customer) { c.Email = "b@example.com" },
		func(c *scriptlock.Customer) { c.Company, c.FirstName = "CoA", "" }, // no shifting between fields
	} {
		c := a
		f(&c)
		if digest(c) == digest(a) {
			t.Errorf("%+v has the digest of %+v", c, a)
		}
	}
}

// These two tests drive the ownership logic through orders of events the
// integration suite cannot time on a real API server: a listing asked in
// the same second as the create it must not vouch for, and the claims
// index lagging the cache. The Kubernetes side is controller-runtime's
// fake client; ScriptLock is the simulator over HTTP.

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// The listing asked for just before a create (in the same second, which
// is all status.pendingCreate.since keeps) cannot show the create's
// record: after a lost answer, the next pass looks at a newer listing and
// finds the record instead of posting again.
func TestALostCreateIsLookedForInAListingAskedAfterIt(t *testing.T) {
	const key = "races-key"
	s, cl := simClient(t, key)
	c := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", UID: types.UID("u1")},
		Spec: v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: "a@example.com"}}
	cli := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(c).WithStatusSubresource(c).Build()
	accounts := newAccountRegistry(clock.RealClock{})
	r := &CustomerReconciler{Client: cli, claims: newClaims(), accounts: accounts, memory: newCustomerMemory(accounts),
		Clock: clock.RealClock{}, ResyncPeriod: 10 * time.Minute, PendingCreateWindow: 2 * time.Minute}
	ctx := context.Background()
	if err := cli.Get(ctx, client.ObjectKeyFromObject(c), c); err != nil {
		t.Fatal(err)
	}
	// Start early in a second, so that the listing and the create share it.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 20*time.Millisecond)))
	obs, err := r.observeUnbound(ctx, c, cl, observation{})
	if err != nil || !obs.create {
		t.Fatalf("first pass: %+v %v", obs, err)
	}
	s.LoseNextCreate(sim.LoseWith500)
	var unknown *pending
	if _, _, err := r.create(ctx, c, c.DeepCopy(), cl); !errors.As(err, &unknown) {
		t.Fatalf("want a create whose outcome is unknown, got %v", err)
	}
	stored := &v1alpha1.Customer{}
	if err := cli.Get(ctx, client.ObjectKeyFromObject(c), stored); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(stored) // as the API server keeps it: since in whole seconds
	if err != nil {
		t.Fatal(err)
	}
	stored = &v1alpha1.Customer{}
	if err := json.Unmarshal(raw, stored); err != nil {
		t.Fatal(err)
	}
	if pendingOf(stored) == nil {
		t.Fatal("no pending proof persisted")
	}
	obs, err = r.observeUnbound(ctx, stored, cl, observation{})
	if obs.create {
		t.Fatal("the next pass would create again: it looked for the record in the listing asked before the create")
	}
	if err != nil || obs.record.ID == "" {
		t.Fatalf("the next pass must find the record of the lost create: %+v %v", obs, err)
	}
}

// A Customer met first under a name it no longer has (the index lags its
// email change) is still found by the record it holds: holder must see it
// before any DELETE of that record.
func TestAHolderIsFoundDespiteAStaleIndexEntry(t *testing.T) {
	created := metav1.NewTime(time.Now().Add(-time.Hour))
	c := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c", UID: "uc", CreationTimestamp: created},
		Spec: v1alpha1.CustomerSpec{Email: "e@example.com"}, Status: v1alpha1.CustomerStatus{CustomerID: "42"}}
	before := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "o", UID: "uo", CreationTimestamp: created},
		Spec: v1alpha1.CustomerSpec{Email: "e@example.com"}, Status: v1alpha1.CustomerStatus{CustomerID: "42"}}
	now := before.DeepCopy()
	now.Spec.Email = "e2@example.com" // in the cache; the index has not seen it yet
	cli := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(c, now).Build()
	accounts := newAccountRegistry(clock.RealClock{})
	r := &CustomerReconciler{Client: cli, claims: newClaims(), accounts: accounts, memory: newCustomerMemory(accounts)}
	r.claims.set(client.ObjectKeyFromObject(c), nil, claimsOf(c))
	r.claims.set(client.ObjectKeyFromObject(before), nil, claimsOf(before))
	other, err := r.holder(context.Background(), c, testClient(t, "k"), "42")
	if err != nil {
		t.Fatal(err)
	}
	if other == nil || other.Name != "o" {
		t.Fatalf("ns/o holds record 42, holder found %v", other)
	}
}

// Several Customers beat a new one to its email, and nothing known says
// which of them holds the record with it (no listing of the account in
// this manager: it has just started, and the newcomer, stopped by its
// rivals before it lists, never asks for one). The Conflict names the one
// that manages the record, not an older Customer that only wants the
// email and comes first in the claims index (seed 900629: the holder's
// credentials moved to a clone, the newcomer a copy of it).
func TestAConflictNamesTheRivalThatManagesARecordWhenNothingWasListed(t *testing.T) {
	cl := testClient(t, "k")
	at := func(ago time.Duration) metav1.Time { return metav1.NewTime(time.Now().Add(-ago).Truncate(time.Second)) }
	const email = "e1@example.com"
	for _, tc := range []struct {
		name  string
		creds *v1alpha1.SecretReference
	}{
		{"the holder's credentials name another instance now", &v1alpha1.SecretReference{Name: "sl-clone"}},
		{"the holder's credentials are the newcomer's", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			holder := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c3", UID: "u3", CreationTimestamp: at(3 * time.Hour)},
				Spec:   v1alpha1.CustomerSpec{Email: email, CredentialsSecretRef: tc.creds},
				Status: v1alpha1.CustomerStatus{CustomerID: "1", Account: cl.Account()}}
			// Older than the newcomer, in Conflict with the holder: it
			// only wants the email.
			wants := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c1", UID: "u1", CreationTimestamp: at(2 * time.Hour)},
				Spec: v1alpha1.CustomerSpec{Email: email}}
			// A copy of the holder (kubectl get -o yaml, renamed): no status.
			copied := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c2", UID: "u2", CreationTimestamp: at(time.Hour)},
				Spec: v1alpha1.CustomerSpec{Email: email}}
			cli := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(holder, wants, copied).Build()
			accounts := newAccountRegistry(clock.RealClock{})
			r := &CustomerReconciler{Client: cli, claims: newClaims(), accounts: accounts, memory: newCustomerMemory(accounts), Clock: clock.RealClock{}}
			// The index in the order an informer lists them after a start.
			for _, c := range []*v1alpha1.Customer{wants, copied, holder} {
				r.claims.set(client.ObjectKeyFromObject(c), nil, claimsOf(c))
			}
			other, err := r.rival(context.Background(), copied, cl, "")
			if err != nil {
				t.Fatal(err)
			}
			if other == nil {
				t.Fatalf("ns/c3 manages the record with %s; no rival found", email)
			}
			if other.Name != holder.Name {
				t.Fatalf("ns/c3 manages the record with %s; the rival found is ns/%s", email, other.Name)
			}
			if msg := rivalMessage(copied, other); !names(msg, holder) {
				t.Fatalf("the Conflict does not name ns/c3: %s", msg)
			}
		})
	}
}
