package scriptlock

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The decoders below read what comes off the wire; whatever a server sends
// must give a value or an error, never a panic, and what is accepted must
// be safe to use as an id or a message.

func FuzzDecodeRecord(f *testing.F) {
	for _, s := range []string{
		`{"id": 42, "company": "Example Company Inc.", "firstname": "Example", "lastname": "Customer", "email": "customer@example.com"}`,
		`{"id": "42"}`, `{"id": null}`, `{"id": 1e3}`, `{"id": ".."}`, `{}`, `[]`, `null`, `{"id": [1]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := decodeRecord(body)
		if err != nil {
			return
		}
		if c.ID != "" && validateID(c.ID) != nil {
			t.Fatalf("accepted unsafe id %q", c.ID)
		}
		// What was accepted survives a round trip through our own encoding.
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := decodeRecord(b)
		if err != nil || c2 != c {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", c, b, c2, err)
		}
	})
}

func FuzzDecodeList(f *testing.F) {
	for _, s := range []string{
		`[{"id": 1, "email": "a@b.c"}, {"id": "2", "email": "d@e.f"}]`,
		`[]`, `null`, `[{"email": "no-id@b.c"}]`, `[null]`, `{"id": 1}`, `[{"id": 1}`,
		`[{"id": ".."}, {"id": ""}, {"id": null}, {"id": 1.5}, {"id": 7}]`, `[{"id": 1, "email": 5}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		list, skipped, err := decodeList(body)
		if err != nil {
			if list != nil || skipped != 0 {
				t.Fatalf("error %v with %d records and %d skipped", err, len(list), skipped)
			}
			return
		}
		if list == nil {
			t.Fatal("accepted list is nil")
		}
		for _, c := range list {
			if validateID(c.ID) != nil {
				t.Fatalf("accepted record with unusable id %q", c.ID)
			}
		}
		// Every element of the array is either returned or counted.
		var raws []json.RawMessage
		if json.Unmarshal(body, &raws) == nil && len(list)+skipped != len(raws) {
			t.Fatalf("%d elements, %d returned + %d skipped", len(raws), len(list), skipped)
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"message": "email already used"}`, `{"error": {"message": "x"}}`, `{"error": 5}`,
		"plain text\nwith lines", "\xff\xfe", strings.Repeat("é", 300), "",
		strings.Repeat("a", maxMessageBytes-1) + " tail", "a" + strings.Repeat("é", 200),
		"fine\nscriptlock delete: 410 Gone", `{"message": "x\" forged \u2028 line"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m := decodeMessage(body)
		if len(m) > maxMessageBytes {
			t.Fatalf("message of %d bytes", len(m))
		}
		if !utf8.ValidString(m) {
			t.Fatalf("invalid UTF-8 %q", m)
		}
		if strings.ContainsAny(m, "\r\n\t\x00\u0085\u2028\u2029") || m != strings.TrimSpace(m) {
			t.Fatalf("message not single-line and trimmed: %q", m)
		}
		// In the error text the message is quoted: one line, and it reads
		// back as exactly what the server said.
		s := (&Error{Op: "delete", StatusCode: 409, Message: m}).Error()
		if strings.ContainsAny(s, "\r\n\u0085\u2028\u2029") {
			t.Fatalf("error text spans lines: %q", s)
		}
		if m != "" {
			q, ok := strings.CutPrefix(s, "scriptlock delete: 409 Conflict: server said ")
			if got, err := strconv.Unquote(q); !ok || err != nil || got != m {
				t.Fatalf("error text %q does not quote the message %q", s, m)
			}
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{
		"2", "0", "120", "Fri, 02 Jan 2026 03:04:35 GMT", "Friday, 02-Jan-26 03:04:15 GMT",
		"Fri Jan  2 03:04:10 2026", "-1", "1.5", "99999999999999999999", "",
	} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v out of range", v, d)
		}
		if !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v without ok", v, d)
		}
		if d%time.Second != 0 && d != maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v is not whole seconds", v, d)
		}
	})
}
