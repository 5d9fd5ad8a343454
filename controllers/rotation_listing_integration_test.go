package controllers_test

// A rotated key carries a record over only when it is in place once the
// old key is refused (README, the credentials-change row). A listing of
// the new account asked for before the refusal was seen shows what was
// there then, not that the record is there now: the account is listed
// again, and a record gone meanwhile is AccountChanged, not a carry-over
// whose PUT finds nothing and a create of a second record (explorer seed
// 1001087, history rotation-lookalike-deleted-before-the-refusal.txt).

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

func TestARotationIsNotProvenByAListingAskedForBeforeTheRefusal(t *testing.T) {
	const keyA, keyB, rotated = "refusal-listing-key-a", "refusal-listing-key-b", "refusal-listing-key-a-rotated"
	e := newEnv(t, managerOpts{})
	e.sim.AddAccount(keyA)
	e.sim.AddAccount(keyB)
	e.secret(e.ns, "creds", map[string]string{"apiKey": keyA, "url": e.srv.URL})
	e.secret(e.ns, "creds-b", map[string]string{"apiKey": keyB, "url": e.srv.URL})
	e.create(e.customerWith("acme", "lookalike@example.com", "creds"))
	c := e.waitReady("acme")
	accountA := c.Status.Account
	// Account B, at the same URL, holds a copy of acme's record (the same
	// id, every field equal): a rotation lookalike. Another Customer's
	// create lists account B, the copy in place.
	own, _ := e.sim.Record(keyA, c.Status.CustomerID)
	e.sim.Put(keyB, own)
	e.create(e.customerWith("other", "other@example.com", "creds-b"))
	e.waitReady("other")
	// The copy is deleted in ScriptLock, then acme's key is rotated away
	// (refused from now on), and acme's Secret names account B.
	if !e.sim.DeleteOutOfBand(keyB, own.ID) {
		t.Fatal("no copy to delete")
	}
	e.sim.RotateKey(keyA, rotated)
	e.setSecret("creds", map[string]string{"apiKey": keyB, "url": e.srv.URL})
	e.update("acme", func(c *v1alpha1.Customer) { c.Labels = map[string]string{"poke": "1"} })
	got := e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonAccountChanged, patience)
	if msg := e.ready("acme").Message; !strings.Contains(msg, "has no such record") {
		t.Fatalf("want AccountChanged for a record account B does not have: %q", msg)
	}
	if got.Status.Account != accountA || got.Status.CustomerID != own.ID {
		t.Fatalf("the binding was carried over to account %s on a listing older than the refusal: %+v", scriptlock.AccountID(e.srv.URL, keyB), got.Status)
	}
	for _, rec := range e.sim.Records(keyB) {
		if strings.EqualFold(rec.Email, own.Email) {
			t.Fatalf("a second record of acme's was created in account B: %+v", rec)
		}
	}
	if rec, ok := e.sim.Record(rotated, own.ID); !ok || rec != own {
		t.Fatalf("acme's own record, behind the rotated key, was written or deleted: %+v", rec)
	}
}
