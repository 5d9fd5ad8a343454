package sim_test

import (
	"strings"
	"testing"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

func TestLoseWithConflictStoresTheRecordAndNamesIt(t *testing.T) {
	s, u := start(t)
	s.LoseNextCreate(sim.LoseWithConflict)
	resp, body := post(t, u, form)
	if resp.StatusCode != 409 || !strings.Contains(body, "email already used by customer 1") {
		t.Fatalf("%s %q", resp.Status, body)
	}
	if recs := s.Records(key); len(recs) != 1 || recs[0].Email != "customer@example.com" {
		t.Fatalf("records %+v", recs)
	}
	if resp, _ := post(t, u, form); resp.StatusCode != 409 {
		t.Fatalf("a real retry: %s", resp.Status)
	}
}

func TestVanishNextHidesRecordsFromReadsOnly(t *testing.T) {
	s, u := start(t)
	s.Put(key, scriptlock.Customer{ID: "1", FirstName: "A", LastName: "B", Email: "customer@example.com"})
	s.VanishNext(2)
	if resp, _ := call(t, "GET", u+"/api/customers", key, ""); resp.StatusCode != 204 {
		t.Fatalf("listing during a vanish: %s", resp.Status)
	}
	if resp, _ := call(t, "GET", u+"/api/customer/1", key, ""); resp.StatusCode != 404 {
		t.Fatalf("GET during a vanish: %s", resp.Status)
	}
	if resp, _ := call(t, "GET", u+"/api/customer/1", key, ""); resp.StatusCode != 302 {
		t.Fatalf("GET after the vanish: %s", resp.Status)
	}
	s.SetVanished(true)
	if resp, _ := post(t, u, form); resp.StatusCode != 409 {
		t.Fatalf("create during a failover: %s, want 409 (the record is still there)", resp.Status)
	}
	for range 3 {
		if resp, _ := call(t, "GET", u+"/api/customers", key, ""); resp.StatusCode != 204 {
			t.Fatalf("listing during a failover: %s", resp.Status)
		}
	}
	s.ClearFaults()
	if resp, _ := call(t, "GET", u+"/api/customers", key, ""); resp.StatusCode != 200 {
		t.Fatalf("listing after ClearFaults: %s", resp.Status)
	}
}

func TestIDsPerAccount(t *testing.T) {
	s, u := start(t, sim.WithIDsPerAccount())
	s.AddAccount("second")
	for _, k := range []string{key, "second"} {
		if resp, _ := call(t, "POST", u+"/api/customer", k, form); resp.Header.Get("Location") != "/api/customer/1" {
			t.Fatalf("account %s: first id at %s", k, resp.Header.Get("Location"))
		}
	}
	if resp, _ := call(t, "POST", u+"/api/customer", "second", strings.Replace(form, "customer%40", "other%40", 1)); resp.Header.Get("Location") != "/api/customer/2" {
		t.Fatalf("second record of an account at %s", resp.Header.Get("Location"))
	}
}

func TestCloneHasTheSameRecordsAndGoesItsOwnWay(t *testing.T) {
	s, _ := start(t)
	rec := s.Put(key, scriptlock.Customer{FirstName: "A", LastName: "B", Email: "customer@example.com"})
	c := s.Clone()
	if got, ok := c.Record(key, rec.ID); !ok || got != rec {
		t.Fatalf("clone holds %+v %v, want %+v", got, ok, rec)
	}
	c.DeleteOutOfBand(key, rec.ID)
	if _, ok := s.Record(key, rec.ID); !ok {
		t.Fatal("deleting in the clone deleted in the original")
	}
	if got := c.Put(key, scriptlock.Customer{Email: "x@example.com"}); got.ID != "2" {
		t.Fatalf("the clone's next id is %s, want 2 (it continues the original's numbering)", got.ID)
	}
}
