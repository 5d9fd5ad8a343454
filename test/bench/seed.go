package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// writeSeed writes n ScriptLock records that no Customer of the benchmark
// manages, as the simulator's --seed file: a JSON array of records without
// ids (the simulator numbers them from 1, so the operator's records follow
// them). Their fields are as long as a bench Customer's, with another
// company, name and email domain, so that no email or field matches.
func writeSeed(path string, n int) (retErr error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if err := f.Close(); retErr == nil {
			retErr = err
		}
	}()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	if _, err := w.WriteString("["); err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		if i > 1 {
			if _, err := w.WriteString(","); err != nil {
				return err
			}
		}
		if err := enc.Encode(unmanagedRecord(i)); err != nil {
			return err
		}
	}
	if _, err := w.WriteString("]\n"); err != nil {
		return err
	}
	return w.Flush()
}

// unmanagedRecord is the i-th seeded record.
func unmanagedRecord(i int) scriptlock.Customer {
	return scriptlock.Customer{
		Company:   fmt.Sprintf("Other Company %06d Ltd.", i),
		FirstName: "Other",
		LastName:  fmt.Sprintf("Person %06d", i),
		Email:     fmt.Sprintf("other-%06d@example.org", i),
	}
}
