package scriptlock

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// redacted replaces a spelling of the key in text.
const redacted = "[redacted]"

// Redact returns s with every spelling of key replaced by "[redacted]": the
// key as it is, percent-encoded (only the bytes a URL needs escaped, in a
// query, a path or a userinfo, or every byte) and base64 in the standard
// and URL alphabets, with or without padding; in any letter case, because
// a URL's host is lower-cased and percent-escapes come in two cases. An
// empty key changes nothing.
//
// It is for text built from something that may hold the key (a URL, a CA
// bundle, a server's answer) before the text reaches a log, an Event, a
// status or an error.
func Redact(s, key string) string {
	if key == "" || s == "" {
		return s
	}
	for _, sp := range keySpellings(key) {
		s = replaceFold(s, sp, redacted)
	}
	return s
}

// holdsKey reports whether s holds any spelling of key, or holds it once
// s's percent-escapes are decoded (a key escaped only in part).
func holdsKey(s, key string) bool {
	if key == "" {
		return false
	}
	texts := []string{lowerASCII(s)}
	if u, err := url.PathUnescape(s); err == nil {
		texts = append(texts, lowerASCII(u))
	}
	for _, sp := range keySpellings(key) {
		sp = lowerASCII(sp)
		for _, t := range texts {
			if strings.Contains(t, sp) {
				return true
			}
		}
	}
	return false
}

// keySpellings are the forms of key that Redact replaces, longest first so
// that no shorter form leaves part of a longer one behind.
func keySpellings(key string) []string {
	var every strings.Builder
	for i := 0; i < len(key); i++ {
		fmt.Fprintf(&every, "%%%02X", key[i])
	}
	b := []byte(key)
	all := []string{
		every.String(),
		url.QueryEscape(key),
		url.PathEscape(key),
		strings.TrimPrefix(url.UserPassword("", key).String(), ":"),
		// The unpadded forms also match the padded ones.
		base64.RawStdEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b),
		key,
	}
	var out []string
	for _, s := range all {
		dup := false
		for _, o := range out {
			dup = dup || strings.EqualFold(o, s)
		}
		if !dup && s != "" {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// replaceFold replaces every occurrence of old in s, ignoring ASCII letter
// case, by repl.
func replaceFold(s, old, repl string) string {
	low, lowOld := lowerASCII(s), lowerASCII(old)
	var b strings.Builder
	for {
		i := strings.Index(low, lowOld)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, low = s[i+len(old):], low[i+len(old):]
	}
}

// lowerASCII lower-cases ASCII letters byte by byte, so that byte offsets
// in the result are those of s, whatever else s holds.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// ValidateBaseURL checks a base URL as New does, without an API key: for a
// URL given before any key is known (the manager's --scriptlock-url). An
// empty URL means DefaultBaseURL.
func ValidateBaseURL(raw string, allowInsecure bool) error {
	_, err := normalizeBaseURL(raw, allowInsecure)
	return err
}

// SafeURL is how a base URL is shown: its scheme and host, never its
// userinfo, path, query or fragment, where a secret could hide. A URL that
// does not parse is shown as "(a URL that does not parse)", an empty one as
// "".
func SafeURL(raw string) string {
	if strings.TrimSpace(raw) == "" {
		return ""
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "(a URL that does not parse)"
	}
	return schemeHost(u)
}

func schemeHost(u *url.URL) string {
	if u.Scheme == "" {
		return "//" + u.Host
	}
	return u.Scheme + "://" + u.Host
}

// quoted matches the quoted input in net/url's and net/netip's errors.
var quoted = regexp.MustCompile(`\s*"(?:[^"\\]|\\.)*"`)

// parseError describes why a base URL does not parse without quoting any
// of it: url.Parse's error holds the whole URL, and its reasons quote the
// offending part (a port, an escape), which may be the key.
func parseError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	reason := strings.TrimSpace(quoted.ReplaceAllString(err.Error(), ""))
	return fmt.Errorf("scriptlock: the base URL does not parse (%s); it is not shown, as it may hold a secret", reason)
}

// redactError returns err with every spelling of key taken out of its text.
// An error whose text changed wraps nothing, so that no caller can reach
// the text with the key through errors.Unwrap.
func redactError(err error, key string) error {
	if err == nil {
		return nil
	}
	if msg := Redact(err.Error(), key); msg != err.Error() {
		return errors.New(msg)
	}
	return err
}
