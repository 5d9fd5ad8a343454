package scriptlock

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestDecodeRecordID(t *testing.T) {
	tests := []struct {
		name, body, want string
		ok               bool
	}{
		{"number id", `{"id": 42, "email": "a@b.c"}`, "42", true},
		{"string id", `{"id": "42"}`, "42", true},
		{"string id with spaces is trimmed", `{"id": " 42 "}`, "42", true},
		{"large number keeps every digit", `{"id": 123456789012345678901234567890}`, "123456789012345678901234567890", true},
		{"null id is empty", `{"id": null}`, "", true},
		{"absent id is empty", `{"email": "a@b.c"}`, "", true},
		{"fraction is refused", `{"id": 4.2}`, "", false},
		{"exponent is refused", `{"id": 1e3}`, "", false},
		{"negative is refused", `{"id": -1}`, "", false},
		{"boolean is refused", `{"id": true}`, "", false},
		{"object is refused", `{"id": {}}`, "", false},
		{"dot-dot string is refused", `{"id": ".."}`, "", false},
		{"array body is refused", `[{"id": 1}]`, "", false},
		{"empty body is refused", ``, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := decodeRecord([]byte(tt.body))
			if (err == nil) != tt.ok || c.ID != tt.want {
				t.Fatalf("got %+v, %v", c, err)
			}
		})
	}
}

func TestCustomerEncodesIDAsString(t *testing.T) {
	b, err := json.Marshal(Customer{ID: "42", Email: "a@b.c"})
	if err != nil || !strings.Contains(string(b), `"id":"42"`) {
		t.Fatalf("got %s, %v", b, err)
	}
}

func TestDecodeMessage(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"JSON message field", `{"message": " email already used "}`, "email already used"},
		{"JSON error field", `{"error": "nope"}`, "nope"},
		{"nested JSON error message", `{"error": {"message": "inner"}}`, "inner"},
		{"plain text", "  has active\nlicenses \r\n", "has active licenses"},
		{"JSON without a message field is kept as text", `{"code": 7}`, `{"code": 7}`},
		{"invalid UTF-8 is replaced", "bad \xff byte", "bad \uFFFD byte"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decodeMessage([]byte(tt.body)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("long messages are cut to 512 bytes on a rune boundary", func(t *testing.T) {
		got := decodeMessage([]byte(strings.Repeat("é", 600)))
		if len(got) > maxMessageBytes || !utf8.ValidString(got) || len(got) < maxMessageBytes-1 {
			t.Fatalf("len %d valid %v", len(got), utf8.ValidString(got))
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name, v string
		want    time.Duration
		ok      bool
	}{
		{"seconds", "2", 2 * time.Second, true},
		{"zero seconds", "0", 0, true},
		{"spaces around seconds", " 7 ", 7 * time.Second, true},
		{"HTTP date in the future", "Fri, 02 Jan 2026 03:04:35 GMT", 30 * time.Second, true},
		{"HTTP date in the past means now", "Thu, 01 Jan 2026 00:00:00 GMT", 0, true},
		{"RFC 850 date", "Friday, 02-Jan-26 03:04:15 GMT", 10 * time.Second, true},
		{"asctime date", "Fri Jan  2 03:04:10 2026", 5 * time.Second, true},
		{"huge seconds are capped", "999999999999999999999999", maxRetryAfter, true},
		{"a day is capped", "86400", maxRetryAfter, true},
		{"negative is ignored", "-5", 0, false},
		{"fraction is ignored", "1.5", 0, false},
		{"garbage is ignored", "soon", 0, false},
		{"empty is absent", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.v, now)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("got %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestIDFromLocation(t *testing.T) {
	tests := []struct{ loc, want string }{
		{"/api/customer/42", "42"},
		{"/api/customer/42/", "42"},
		{"https://scriptlock.com/api/customer/42", "42"},
		{"/prefix/api/customer/a%20b", "a b"},
		{"/api/customer/", ""},
		{"/api/customer/..", ""},
		{"/api/customer/1/licenses", ""},
		{"/api/customers", ""},
		{"", ""},
		{"://bad", ""},
	}
	for _, tt := range tests {
		if got := idFromLocation(tt.loc); got != tt.want {
			t.Errorf("idFromLocation(%q) = %q, want %q", tt.loc, got, tt.want)
		}
	}
}

func TestSameFields(t *testing.T) {
	a := Customer{ID: "1", Company: "C", FirstName: "F", LastName: "L", Email: "Customer@Example.com"}
	tests := []struct {
		name string
		edit func(*Customer)
		same bool
	}{
		{"identical", func(*Customer) {}, true},
		{"id is ignored", func(c *Customer) { c.ID = "2" }, true},
		{"email case is ignored", func(c *Customer) { c.Email = "customer@example.COM" }, true},
		{"company differs", func(c *Customer) { c.Company = "c" }, false},
		{"first name differs", func(c *Customer) { c.FirstName = "G" }, false},
		{"last name differs", func(c *Customer) { c.LastName = "M" }, false},
		{"email differs", func(c *Customer) { c.Email = "other@example.com" }, false},
	}
	for _, tt := range tests {
		b := a
		tt.edit(&b)
		if SameFields(a, b) != tt.same {
			t.Errorf("%s: SameFields = %v", tt.name, !tt.same)
		}
	}
}
