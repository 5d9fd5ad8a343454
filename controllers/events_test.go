package controllers

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestEventNoteFitsTheAPIServersLimit: a note is cut to what the API server
// accepts (1024 bytes, events.k8s.io/v1), on a UTF-8 boundary and with a
// marker, never refused; a note that fits is left as it is.
func TestEventNoteFitsTheAPIServersLimit(t *testing.T) {
	tests := []struct {
		name string
		note string
		cut  bool
	}{
		{"a short note is kept", "created ScriptLock customer 42", false},
		{"a note of exactly 1024 bytes is kept", strings.Repeat("a", 1024), false},
		{"one byte too many is cut", strings.Repeat("a", 1025), true},
		{"two-byte runes are never split", strings.Repeat("é", 1000), true},
		{"three-byte runes are never split", "x" + strings.Repeat("€", 600), true},
		{"four-byte runes are never split", "xy" + strings.Repeat("🔑", 400), true},
		{"a long name in a realistic message", "Customer team-a/" + strings.Repeat("customer-with-a-very-long-name-", 8) +
			" already manages ScriptLock customer 42; only one Customer may manage a record. " +
			"To move the record: set spec.deletionPolicy: Orphan on team-a/" + strings.Repeat("customer-with-a-very-long-name-", 8) +
			", delete it, then set spec.customerID: \"42\" here. " + strings.Repeat("ä", 200), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := eventNote("%s", tt.note)
			if !utf8.ValidString(got) {
				t.Fatalf("not valid UTF-8: %q", got)
			}
			if len(got) > maxEventNote {
				t.Fatalf("%d bytes, over the limit of %d", len(got), maxEventNote)
			}
			if !tt.cut {
				if got != tt.note {
					t.Fatalf("a note that fits was changed: %q", got)
				}
				return
			}
			body, ok := strings.CutSuffix(got, truncatedMarker)
			if !ok {
				t.Fatalf("a cut note must end with %q: %q", truncatedMarker, got)
			}
			if !strings.HasPrefix(tt.note, body) {
				t.Fatalf("the kept part is not the start of the note")
			}
			if len(got) < maxEventNote-utf8.UTFMax {
				t.Fatalf("cut to %d bytes: more was dropped than the limit needs", len(got))
			}
		})
	}
	t.Run("format arguments are applied before the cut", func(t *testing.T) {
		if got := eventNote("customer %s of %d", "x", 3); got != "customer x of 3" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("bytes that are not UTF-8 cannot grow past the limit on the wire", func(t *testing.T) {
		got := eventNote("%s", strings.Repeat("\xff", 1000))
		// JSON turns each invalid byte into U+FFFD, three bytes.
		var back string
		b, _ := json.Marshal(got)
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if len(back) > maxEventNote || !utf8.ValidString(got) {
			t.Fatalf("%d bytes after a JSON round trip", len(back))
		}
	})
}
