package main

import (
	"bytes"
	"encoding/base64"
	"flag"
	"strings"
	"testing"

	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/test/canary"
)

// mainCanary is the default account's key in these tests.
const mainCanary = "canary-main-3c9d0e7f-never-shown"

// assertNoKey fails when text holds any spelling of mainCanary.
func assertNoKey(t *testing.T, text string) {
	t.Helper()
	if s, ok := canary.Find(text, mainCanary); ok {
		t.Errorf("%q shows the key as %q", text, s)
	}
}

// TestTheScriptLockURLIsCheckedAtStartWithoutShowingTheKey: a
// --scriptlock-url (or SCRIPTLOCK_URL) that carries the key, or that is
// not acceptable, stops the start with an error that names scheme and host
// only, with a default account and without one.
func TestTheScriptLockURLIsCheckedAtStartWithoutShowingTheKey(t *testing.T) {
	const host = "https://scriptlock.example"
	tests := []struct {
		name string
		url  string
		// withKeyOnly: only a known key makes the URL wrong (it is the
		// key, but nothing says so without one).
		withKeyOnly bool
		want        []string
	}{
		{name: "the key as the user", url: "https://" + mainCanary + "@scriptlock.example", want: []string{host, "--scriptlock-api-key-file"}},
		{name: "the key as the password", url: "https://user:" + mainCanary + "@scriptlock.example/v1", want: []string{host, "--scriptlock-api-key-file"}},
		{name: "the key after a bad escape", url: host + "/%zz" + mainCanary, want: []string{"--scriptlock-url", "does not parse"}},
		{name: "the key as the port", url: host + ":" + mainCanary, want: []string{"--scriptlock-url", "does not parse"}},
		{name: "the key in the query", url: host + "/?key=" + mainCanary, want: []string{host, "query"}},
		{name: "the key in the path", url: host + "/" + mainCanary, withKeyOnly: true, want: []string{host}},
		{name: "the key percent-encoded in the path", url: host + "/" + strings.ReplaceAll(mainCanary, "-", "%2D"), withKeyOnly: true, want: []string{host}},
		{name: "base64 of the key in the path", url: host + "/" + base64.RawURLEncoding.EncodeToString([]byte(mainCanary)), withKeyOnly: true, want: []string{host}},
		{name: "the key as the host", url: "https://" + mainCanary + ".example", withKeyOnly: true},
	}
	for _, tt := range tests {
		for _, key := range []string{mainCanary, ""} {
			if key == "" && tt.withKeyOnly {
				continue
			}
			t.Run(tt.name+map[bool]string{true: "/default account", false: "/no default account"}[key != ""], func(t *testing.T) {
				_, err := defaultOptions(config{scriptlockURL: tt.url}, controllers.NewConcurrency(0, 10), key, nil)
				if err == nil {
					t.Fatalf("the manager would start with --scriptlock-url %q", tt.url)
				}
				assertNoKey(t, err.Error())
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("the error should say %q: %v", w, err)
					}
				}
			})
		}
	}
	t.Run("an acceptable URL starts", func(t *testing.T) {
		o, err := defaultOptions(config{scriptlockURL: host + "/tenant"}, controllers.NewConcurrency(0, 10), mainCanary, nil)
		if err != nil || o.BaseURL != host+"/tenant" {
			t.Fatalf("got %+v, %v", o.BaseURL, err)
		}
	})
	t.Run("the start line names scheme and host only", func(t *testing.T) {
		if got := shownURL(config{scriptlockURL: host + "/tenant-" + mainCanary}); got != host {
			t.Fatalf("shownURL = %q", got)
		}
	})
}

// TestTheHelpNeverShowsSCRIPTLOCK_URL: the flag package prints each flag's
// default in --help and after a mistyped flag; the default of
// --scriptlock-url is SCRIPTLOCK_URL, which is shown by scheme and host
// only, and still used.
func TestTheHelpNeverShowsSCRIPTLOCK_URL(t *testing.T) {
	env := "https://user:" + mainCanary + "@scriptlock.example/" + mainCanary
	t.Setenv("SCRIPTLOCK_URL", env)
	var cfg config
	var out bytes.Buffer
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(&out)
	bindFlags(fs, &cfg)
	if err := fs.Parse([]string{"--no-such-flag"}); err == nil {
		t.Fatal("a mistyped flag was accepted")
	}
	fs.PrintDefaults()
	assertNoKey(t, out.String())
	if !strings.Contains(out.String(), "https://scriptlock.example") {
		t.Errorf("the help should show SCRIPTLOCK_URL's scheme and host:\n%s", out.String())
	}
	if cfg.scriptlockURL != env {
		t.Errorf("SCRIPTLOCK_URL is not the default any more: %q", cfg.scriptlockURL)
	}
	if err := fs.Parse([]string{"--scriptlock-url", "https://other.example"}); err != nil || cfg.scriptlockURL != "https://other.example" {
		t.Errorf("--scriptlock-url is not taken: %q, %v", cfg.scriptlockURL, err)
	}
}
