package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

func TestAPIKeysAreRepeatableAndCommaSeparated(t *testing.T) {
	var k keyList
	for _, v := range []string{"a", "b, c", ",,d,"} {
		if err := k.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(k, "|") != "a|b|c|d" {
		t.Fatalf("got %q", k)
	}
}

func TestSeedFileGoesToTheFirstAccount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.json")
	data := `[{"id": 7, "firstname": "A", "lastname": "B", "email": "a@example.com"}, {"id": "8", "email": "b@example.com"}]`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	s := sim.New(sim.WithAccount("k1"), sim.WithAccount("k2"))
	n, err := seedFrom(s, "k1", path)
	if err != nil || n != 2 {
		t.Fatalf("seeded %d: %v", n, err)
	}
	if recs := s.Records("k1"); len(recs) != 2 || recs[0].ID != "7" || recs[1].ID != "8" {
		t.Fatalf("records %+v", recs)
	}
	if len(s.Records("k2")) != 0 {
		t.Fatal("seeded the second account")
	}
}

func TestRequestLogHasNoKey(t *testing.T) {
	const secret = "CANARY-log-key"
	var buf bytes.Buffer
	h := logRequests(slog.New(slog.NewTextHandler(&buf, nil)), sim.New(sim.WithAccount(secret)))
	for _, target := range []string{"/api/customers", "/_sim/records?key=" + secret} {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "Basic "+secret)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	out := buf.String()
	if strings.Contains(out, secret) || !strings.Contains(out, "status=204") || !strings.Contains(out, "path=/_sim/records") {
		t.Fatalf("log:\n%s", out)
	}
}
