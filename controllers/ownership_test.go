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
			c.Annotations = map[string]string{v1alpha1.CreatePendingAnnotation: "{}"}
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

func TestACreateMarkerProvesOnlyForTheObjectAndAccountThatWroteIt(t *testing.T) {
	cl, other := testClient(t, "k"), testClient(t, "other-key")
	posted := scriptlock.Customer{FirstName: "A", LastName: "B", Email: "a@example.com"}
	writer := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{UID: types.UID("uid-1")}}
	m := newMarker(writer, cl, posted)
	with := func(uid, value string) *v1alpha1.Customer {
		return &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid),
			Annotations: map[string]string{v1alpha1.CreatePendingAnnotation: value}}}
	}
	cases := []struct {
		name string
		c    *v1alpha1.Customer
		cl   *scriptlock.Client
		own  bool
	}{
		{"the object that wrote it, same account", with("uid-1", m.String()), cl, true},
		{"a copy of the object (another UID)", with("uid-2", m.String()), cl, false},
		{"the same object under other credentials", with("uid-1", m.String()), other, false},
		{"a marker of an earlier version (a bare email)", with("uid-1", "a@example.com"), cl, false},
		{"no marker", &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{UID: "uid-1"}}, cl, false},
	}
	for _, tc := range cases {
		if _, own := ownMarker(tc.c, tc.cl); own != tc.own {
			t.Errorf("%s: proves %v, want %v", tc.name, own, tc.own)
		}
	}
	if got, _ := ownMarker(with("uid-1", m.String()), cl); got != m {
		t.Fatalf("marker round trip: %+v, want %+v", got, m)
	}
}

func TestTheDigestIsOfWhatWasPostedWithTheEmailInAnyCase(t *testing.T) {
	a := scriptlock.Customer{Company: "Co", FirstName: "A", LastName: "B", Email: "a@example.com"}
	b := a
	b.Email, b.ID = "A@Example.COM", "42"
	if digest(a) != digest(b) {
		t.Fatal("the id and the email's case must not change the digest")
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
