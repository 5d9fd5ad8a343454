// Package canary finds an API key in text in every spelling a reader could
// turn back into the key, for the tests that check no text the operator
// writes (error, condition, Event, status, metric, log line, --help) holds
// one. It is kept apart from the code that scrubs the key
// (internal/scriptlock.Redact), so that a spelling that code forgets fails
// a test instead of being forgotten twice.
package canary

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
)

// Spellings are the forms of key looked for: as typed; percent-encoded as
// a query, a path segment or a password escapes it, and byte by byte; and
// base64 in the standard and URL alphabets, without padding (so that the
// padded forms match too).
func Spellings(key string) []string {
	var every strings.Builder
	for i := 0; i < len(key); i++ {
		fmt.Fprintf(&every, "%%%02X", key[i])
	}
	return []string{
		key,
		url.QueryEscape(key),
		url.PathEscape(key),
		strings.TrimPrefix(url.UserPassword("", key).String(), ":"),
		every.String(),
		base64.RawStdEncoding.EncodeToString([]byte(key)),
		base64.RawURLEncoding.EncodeToString([]byte(key)),
	}
}

// Find returns the spelling of key that text holds, in any letter case (a
// URL's host is lower-cased, percent-escapes come in two cases), if any.
func Find(text, key string) (string, bool) {
	low := strings.ToLower(text)
	for _, s := range Spellings(key) {
		if strings.Contains(low, strings.ToLower(s)) {
			return s, true
		}
	}
	return "", false
}
