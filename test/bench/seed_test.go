package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

func TestSeedIsAnArrayOfRecordsWithoutIDsThatNoBenchCustomerMatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.json")
	if err := writeSeed(path, 3); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Decoded as the simulator's --seed does.
	var recs []scriptlock.Customer
	if err := json.Unmarshal(b, &recs); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	emails := map[string]bool{}
	for _, r := range recs {
		if r.ID != "" {
			t.Errorf("record %+v has an id: the simulator would not number it", r)
		}
		emails[r.Email] = true
	}
	if len(emails) != 3 {
		t.Errorf("emails are not distinct: %v", emails)
	}
	if c := benchCustomer(1); emails[c.Spec.Email] {
		t.Errorf("a seeded record has the email of %s", c.Name)
	}
}

func TestAnEmptySeedIsAnEmptyArray(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.json")
	if err := writeSeed(path, 0); err != nil {
		t.Fatal(err)
	}
	var recs []scriptlock.Customer
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &recs); err != nil || len(recs) != 0 {
		t.Errorf("%q: %v, %d records", b, err, len(recs))
	}
}
