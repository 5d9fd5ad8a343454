package scriptlock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"unicode"
)

// Customer is one ScriptLock customer record.
//
// ScriptLock may send the id as a JSON number or a JSON string; it is always
// held, and encoded, as a string so that large ids never lose precision.
type Customer struct {
	ID        string `json:"id"`
	Company   string `json:"company"`
	FirstName string `json:"firstname"`
	LastName  string `json:"lastname"`
	Email     string `json:"email"`
}

// UnmarshalJSON accepts the id as a number or a string (or null/absent,
// which leaves it empty).
func (c *Customer) UnmarshalJSON(b []byte) error {
	fields, rawID, err := decodeFields(b)
	if err != nil {
		return err
	}
	id, err := decodeID(rawID)
	if err != nil {
		return err
	}
	*c = fields
	c.ID = id
	return nil
}

// decodeFields decodes a record's fields other than the id, and returns the
// id undecoded.
func decodeFields(b []byte) (Customer, json.RawMessage, error) {
	// The alias has no methods, which avoids recursing into UnmarshalJSON.
	type plain Customer
	var aux struct {
		plain
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return Customer{}, nil, err
	}
	c := Customer(aux.plain)
	c.ID = ""
	return c, aux.ID, nil
}

// decodeID turns a raw JSON id into its string form. Numbers must be plain
// non-negative integers: a fraction or exponent would mean the server is not
// speaking the protocol we assume, and guessing could address the wrong
// record.
func decodeID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		s = strings.TrimSpace(s)
		if err := validateID(s); s != "" && err != nil {
			return "", err
		}
		return s, nil
	default:
		for _, r := range raw {
			if r < '0' || r > '9' {
				return "", fmt.Errorf("customer id %.40q is not a non-negative integer or a string", raw)
			}
		}
		if err := validateID(string(raw)); err != nil {
			return "", err
		}
		return string(raw), nil
	}
}

// maxIDLen bounds ids so that a hostile answer cannot make the client build
// absurd URLs.
const maxIDLen = 128

// validateID refuses ids that are empty, too long, contain control
// characters, or are dot segments: the id is placed into the URL path, and a
// "." or ".." could make a server or proxy address another resource.
func validateID(id string) error {
	if id == "" {
		return fmt.Errorf("empty customer id")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("customer id longer than %d bytes", maxIDLen)
	}
	if id == "." || id == ".." {
		return fmt.Errorf("customer id %q is a path segment", id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("customer id contains a control character")
		}
	}
	return nil
}

// SameFields reports whether two records carry the same customer data:
// company, first and last name compared exactly, email compared
// case-insensitively (ScriptLock treats emails that way). The id is ignored,
// so the controller can use it to detect drift.
func SameFields(a, b Customer) bool {
	return a.Company == b.Company &&
		a.FirstName == b.FirstName &&
		a.LastName == b.LastName &&
		strings.EqualFold(a.Email, b.Email)
}

// formBody encodes a record the way the vendor page shows it: the fields in
// the order company, firstname, lastname, email, form-encoded. url.Values
// would sort the keys, so the body is built by hand to match byte for byte.
func formBody(c Customer) string {
	var b strings.Builder
	b.WriteString("company=")
	b.WriteString(url.QueryEscape(c.Company))
	b.WriteString("&firstname=")
	b.WriteString(url.QueryEscape(c.FirstName))
	b.WriteString("&lastname=")
	b.WriteString(url.QueryEscape(c.LastName))
	b.WriteString("&email=")
	b.WriteString(url.QueryEscape(c.Email))
	return b.String()
}

// decodeRecord parses one JSON record.
func decodeRecord(body []byte) (Customer, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return Customer{}, fmt.Errorf("%w: expected a JSON object", ErrMalformedBody)
	}
	var c Customer
	if err := json.Unmarshal(body, &c); err != nil {
		return Customer{}, fmt.Errorf("%w: %w", ErrMalformedBody, err)
	}
	return c, nil
}

// decodeList parses a JSON array of records held whole in body (see
// decodeListStream).
func decodeList(body []byte) (list []Customer, skipped int, err error) {
	list = []Customer{}
	skipped, err = decodeListStream(bytes.NewReader(body), func(c Customer) { list = append(list, c) })
	if err != nil {
		return nil, 0, err
	}
	return list, skipped, nil
}

// decodeListStream parses a JSON array of records from r one record at a
// time, calling fn for each. JSON null is taken as an empty list. A record
// without a usable id (absent, null, empty, or refused by decodeID) cannot
// be addressed: it is left out and counted in skipped, so that one such
// record does not stop drift detection for the whole account. An element
// that is not an object (or null), a record whose other fields have the
// wrong JSON type, or anything after the array still fails the whole
// listing (ErrMalformedBody): the server is then not speaking the protocol
// we assume. fn may have seen records before such an error.
func decodeListStream(r io.Reader, fn func(Customer)) (skipped int, err error) {
	dec := json.NewDecoder(r)
	malformed := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrMalformedBody}, args...)...)
	}
	tok, err := dec.Token()
	switch {
	case err == io.EOF:
		return 0, malformed("expected a JSON array")
	case err != nil:
		return 0, malformed("%w", err)
	case tok == nil:
		// null
	case tok != json.Delim('['):
		return 0, malformed("expected a JSON array")
	default:
		for i := 0; dec.More(); i++ {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return 0, malformed("record %d: %w", i, err)
			}
			if string(raw) == "null" {
				skipped++
				continue
			}
			if raw[0] != '{' {
				return 0, malformed("record %d is not a JSON object", i)
			}
			c, rawID, err := decodeFields(raw)
			if err != nil {
				return 0, malformed("record %d: %w", i, err)
			}
			id, err := decodeID(rawID)
			if err != nil || id == "" {
				skipped++
				continue
			}
			c.ID = id
			fn(c)
		}
		if _, err := dec.Token(); err != nil {
			return 0, malformed("%w", err)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, malformed("data after the JSON array")
	}
	return skipped, nil
}

// decodeMessage extracts ScriptLock's explanation from an error answer: the
// "message" or "error" field of a JSON object (also {"error":{"message":..}}),
// else the body text. The result is made single-line valid UTF-8, trimmed and
// cut to maxMessageBytes, because it ends up in conditions, events and logs.
func decodeMessage(body []byte) string {
	return cleanMessage(extractMessage(body))
}

// extractMessage returns the text of an error body: the JSON message field
// if there is one, else the body itself; neither cleaned nor cut.
func extractMessage(body []byte) string {
	body = bytes.TrimSpace(body)
	text := string(body)
	if len(body) > 0 && body[0] == '{' {
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) == nil {
			if s, ok := messageField(obj); ok {
				text = s
			}
		}
	}
	return text
}

func messageField(obj map[string]json.RawMessage) (string, bool) {
	for _, k := range []string{"message", "error", "detail", "title"} {
		raw, ok := obj[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil && strings.TrimSpace(s) != "" {
			return s, true
		}
		var inner map[string]json.RawMessage
		if json.Unmarshal(raw, &inner) == nil {
			if s, ok := messageField(inner); ok {
				return s, true
			}
		}
	}
	return "", false
}

func cleanMessage(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		// C0, DEL, C1 (NEL among them) and the Unicode line separators:
		// anything a log reader or terminal could take as a line break.
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxMessageBytes {
		cut := maxMessageBytes
		// Back off to a rune boundary so the result stays valid UTF-8.
		for cut > 0 && !utf8RuneStart(s[cut]) {
			cut--
		}
		// The cut may land just after a space; keep the result trimmed.
		s = strings.TrimRight(s[:cut], " ")
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
