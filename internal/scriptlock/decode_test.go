package scriptlock

import (
	"encoding/json"
	"errors"
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
		{"C1 controls and line separators become spaces", "a\u0085b\u2028c\u2029d\x1be", "a b c d e"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decodeMessage([]byte(tt.body)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	cuts := []struct{ name, body, want string }{
		{"cut at 256 bytes", strings.Repeat("a", 300), strings.Repeat("a", 256)},
		{"cut inside a rune backs off to its start", "a" + strings.Repeat("é", 200), "a" + strings.Repeat("é", 127)},
		{"cut just after a space leaves no trailing space", strings.Repeat("a", 255) + " bbbb", strings.Repeat("a", 255)},
	}
	for _, tt := range cuts {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeMessage([]byte(tt.body))
			if got != tt.want || !utf8.ValidString(got) || maxMessageBytes != 256 {
				t.Fatalf("got %d bytes %q, want %d bytes", len(got), got, len(tt.want))
			}
		})
	}
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

func TestDecodeList(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantIDs []string
		skipped int
		ok      bool
	}{
		{"records with number and string ids", `[{"id":1},{"id":"2"}]`, []string{"1", "2"}, 0, true},
		{"null is an empty list", `null`, []string{}, 0, true},
		{"an empty array is an empty list", `[]`, []string{}, 0, true},
		{"a record without id is skipped", `[{"email":"a@b.c"},{"id":3}]`, []string{"3"}, 1, true},
		{"null, empty and blank ids are skipped", `[{"id":null},{"id":""},{"id":"  "},{"id":4}]`, []string{"4"}, 3, true},
		{"ids unsafe in a URL are skipped", `[{"id":".."},{"id":"a\u0000b"},{"id":"` + strings.Repeat("9", 200) + `"},{"id":5}]`, []string{"5"}, 3, true},
		{"ids of the wrong type are skipped", `[{"id":1.5},{"id":-1},{"id":true},{"id":{}},{"id":[1]},{"id":6}]`, []string{"6"}, 5, true},
		{"a null element is skipped", `[null,{"id":7}]`, []string{"7"}, 1, true},
		{"every record skipped is an empty list", `[{"id":""}]`, []string{}, 1, true},
		{"an object is not a list", `{"id":1}`, nil, 0, false},
		{"a truncated array is malformed", `[{"id":1}`, nil, 0, false},
		{"an element that is not an object is malformed", `[{"id":1},2]`, nil, 0, false},
		{"a field of the wrong type is malformed", `[{"id":1,"email":5}]`, nil, 0, false},
		{"an empty body is malformed", ``, nil, 0, false},
		{"data after the array is malformed", `[{"id":1}] [{"id":2}]`, nil, 0, false},
		{"a string is not a list", `"[]"`, nil, 0, false},
		{"whitespace around the array is fine", " \n[{\"id\":8}]\n ", []string{"8"}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, skipped, err := decodeList([]byte(tt.body))
			if (err == nil) != tt.ok || skipped != tt.skipped {
				t.Fatalf("got %+v, skipped %d, %v", list, skipped, err)
			}
			if !tt.ok {
				if !errors.Is(err, ErrMalformedBody) {
					t.Fatalf("error %v is not ErrMalformedBody", err)
				}
				return
			}
			ids := []string{}
			for _, c := range list {
				ids = append(ids, c.ID)
			}
			if list == nil || strings.Join(ids, ",") != strings.Join(tt.wantIDs, ",") {
				t.Fatalf("ids %q, want %q", ids, tt.wantIDs)
			}
		})
	}
}
