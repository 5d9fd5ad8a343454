package scriptlock_test

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/test/canary"
)

// leakCanaries are API keys whose every spelling must stay out of an error:
// one of URL-safe characters, one that percent-encoding and base64 change.
var leakCanaries = []string{
	"CANARY-4e1b9d7a-do-not-leak",
	"canary/4e1b+9d7a=do not@leak:x",
}

// assertNoSpelling fails when text holds any spelling of key.
func assertNoSpelling(t *testing.T, text, key string) {
	t.Helper()
	if s, ok := canary.Find(text, key); ok {
		t.Errorf("%q holds the key (as %q)", text, s)
	}
}

func pctAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02x", s[i])
	}
	return b.String()
}

// TestBaseURLErrorsNeverHoldTheKey feeds New and Pool.For base URLs and CA
// bundles that carry the key every way a person could put it there, and
// checks that each is refused by an error that holds no spelling of the key
// and quotes no more of the URL than its scheme and host.
func TestBaseURLErrorsNeverHoldTheKey(t *testing.T) {
	const host = "https://scriptlock.example"
	for _, key := range leakCanaries {
		tests := []struct {
			name    string
			url     string
			ca      string
			allowed []string
			// want is what the refusal must say, beside holding no key.
			want []string
		}{
			{name: "the key as the URL's user", url: "https://" + url.PathEscape(key) + "@scriptlock.example",
				want: []string{host, "apiKey"}},
			{name: "the key as the URL's password", url: "https://user:" + url.QueryEscape(key) + "@scriptlock.example/v1",
				want: []string{host, "apiKey"}},
			{name: "the key as typed in the userinfo", url: "https://user:" + key + "@scriptlock.example"},
			{name: "the key after a bad escape", url: "https://scriptlock.example/%zz" + key},
			{name: "the key as the port", url: "https://scriptlock.example:" + key + "/"},
			{name: "the key before a control character", url: "https://scriptlock.example/" + key + "\x01"},
			{name: "the key with no scheme", url: "//" + key + "@scriptlock.example"},
			{name: "the key in the query", url: host + "/?apiKey=" + url.QueryEscape(key), want: []string{host, "query"}},
			{name: "the key as the whole query", url: host + "?" + url.QueryEscape(key), want: []string{host}},
			{name: "the key in the fragment", url: host + "/#" + url.PathEscape(key), want: []string{host}},
			{name: "the key in the path", url: host + "/api/" + url.PathEscape(key) + "/v1", want: []string{host, "apiKey"}},
			{name: "the key percent-encoded in the path", url: host + "/" + pctAll(key), want: []string{host, "apiKey"}},
			{name: "base64 of the key in the path", url: host + "/" + base64.RawURLEncoding.EncodeToString([]byte(key)), want: []string{host, "apiKey"}},
			{name: "padded base64 of the key in the path", url: host + "/x/" + url.PathEscape(base64.StdEncoding.EncodeToString([]byte(key))), want: []string{host, "apiKey"}},
			{name: "the key in the path of a plain-http URL", url: "http://scriptlock.example/" + url.PathEscape(key)},
			{name: "the key as the host", url: "https://" + hostLabel(key) + ".example"},
			{name: "the key as the host of a host not allowed", url: "https://" + hostLabel(key) + ".example", allowed: []string{"scriptlock.example"}},
			{name: "the key as the scheme", url: schemeOf(key) + "://scriptlock.example"},
			{name: "the key as a CA bundle", ca: key, want: []string{"CA"}},
			{name: "the key inside a PEM block of the CA bundle", ca: "-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString([]byte(key)) + "\n-----END CERTIFICATE-----\n", want: []string{"CA"}},
			{name: "the key as a PEM header of the CA bundle", ca: "-----BEGIN " + key + "-----\nAAAA\n-----END " + key + "-----\n", want: []string{"CA"}},
		}
		for _, tt := range tests {
			if strings.Contains(tt.name, "as the host") && hostLabel(key) != key || strings.Contains(tt.name, "as the scheme") && schemeOf(key) != key {
				continue // this key cannot be a host name or a scheme as it is
			}
			t.Run(fmt.Sprintf("%s/%s", key[:6], tt.name), func(t *testing.T) {
				o := scriptlock.Options{BaseURL: tt.url, APIKey: key, CAPEM: []byte(tt.ca), AllowedHosts: tt.allowed}
				_, err := scriptlock.New(o)
				if err == nil {
					t.Fatalf("New accepted base URL %q / CA %q", tt.url, tt.ca)
				}
				_, perr := scriptlock.NewPool(scriptlock.Options{AllowedHosts: tt.allowed}, nil).For(tt.url, key, []byte(tt.ca))
				if perr == nil {
					t.Fatalf("Pool.For accepted base URL %q / CA %q", tt.url, tt.ca)
				}
				for _, err := range []error{err, perr} {
					assertNoSpelling(t, err.Error(), key)
					for _, w := range tt.want {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("the refusal should say %q: %v", w, err)
						}
					}
					if strings.Contains(err.Error(), "/api/") || strings.Contains(err.Error(), "/v1") {
						t.Errorf("the refusal quotes the URL's path: %v", err)
					}
				}
			})
		}
	}
}

// hostLabel is key made into a DNS label, as a person might have pasted it
// into a host name.
func hostLabel(key string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, key)
}

// schemeOf is key made into a URL scheme.
func schemeOf(key string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '+' || r == '.' {
			return r
		}
		return -1
	}, key)
}

// TestBaseURLRefusalsNameSchemeAndHostOnly: the errors of a URL that is not
// acceptable point at it by scheme and host, the part a person needs to find
// the Secret or flag, and leave out what a secret could hide in.
func TestBaseURLRefusalsNameSchemeAndHostOnly(t *testing.T) {
	tests := []struct{ name, url, want string }{
		{"a user and password", "https://someone:hunter2-password@scriptlock.example/base", "https://scriptlock.example"},
		{"a query", "https://scriptlock.example/base?token=hunter2-password", "https://scriptlock.example"},
		{"plain http", "http://scriptlock.example/hunter2-password", "http://scriptlock.example"},
		{"another scheme", "ftp://scriptlock.example/hunter2-password", "ftp://scriptlock.example"},
		{"a bad escape", "https://scriptlock.example/hunter2-password%zz", "invalid URL escape"},
		{"a bad port", "https://scriptlock.example:hunter2-password/", "invalid port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scriptlock.New(scriptlock.Options{BaseURL: tt.url, APIKey: testKey})
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") ||
				strings.Contains(err.Error(), "someone") || strings.Contains(err.Error(), "/base") {
				t.Fatalf("want an error naming %q and nothing more of the URL, got %v", tt.want, err)
			}
		})
	}
	t.Run("ValidateBaseURL refuses the same without a key", func(t *testing.T) {
		err := scriptlock.ValidateBaseURL("https://someone:hunter2-password@scriptlock.example", false)
		if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "someone") {
			t.Fatalf("got %v", err)
		}
		if err := scriptlock.ValidateBaseURL("https://scriptlock.example/base", false); err != nil {
			t.Fatal(err)
		}
		if err := scriptlock.ValidateBaseURL("", false); err != nil {
			t.Fatalf("empty means the default URL: %v", err)
		}
	})
}

// TestAPathPrefixWithoutTheKeyIsKept: the checks for the key in the URL do
// not refuse an ordinary base URL with a path.
func TestAPathPrefixWithoutTheKeyIsKept(t *testing.T) {
	c, err := scriptlock.New(scriptlock.Options{BaseURL: "https://Scriptlock.Example/tenant-a/", APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.BaseURL(); got != "https://scriptlock.example/tenant-a" {
		t.Fatalf("BaseURL() = %q", got)
	}
}

// TestRedact: every spelling of the key is replaced, in any case, and the
// rest of the text is kept.
func TestRedact(t *testing.T) {
	for _, key := range leakCanaries {
		for _, s := range canary.Spellings(key) {
			for _, text := range []string{s, strings.ToUpper(s), strings.ToLower(s), "before " + s + " after"} {
				got := scriptlock.Redact(text, key)
				assertNoSpelling(t, got, key)
				if strings.HasPrefix(text, "before ") && (!strings.HasPrefix(got, "before ") || !strings.HasSuffix(got, " after")) {
					t.Errorf("Redact(%q) = %q: the text around the key is lost", text, got)
				}
			}
		}
	}
	if got := scriptlock.Redact("nothing to hide", ""); got != "nothing to hide" {
		t.Errorf("an empty key changed the text: %q", got)
	}
	if got := scriptlock.Redact("nothing to hide", "secret-key"); got != "nothing to hide" {
		t.Errorf("text without the key changed: %q", got)
	}
}
