package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

func TestClaimsGoToTheHolderThenTheCreatorThenTheOlder(t *testing.T) {
	at := func(sec int64) metav1.Time { return metav1.NewTime(time.Unix(sec, 0)) }
	cust := func(name string, created int64, id string, pending bool) *v1alpha1.Customer {
		c := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, CreationTimestamp: at(created)}}
		c.Status.CustomerID = id
		if pending {
			c.Status.PendingCreate = &v1alpha1.PendingCreate{Email: "a@example.com"}
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
