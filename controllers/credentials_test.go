package controllers

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/scriptlock/customer-operator/test/canary"
)

// TestSecretErrorsNeverHoldTheSecretsKey: whatever text the pool's error
// holds, the credentials error made of it holds no spelling of the
// Secret's key, keeps the rest, and is a credentials error.
func TestSecretErrorsNeverHoldTheSecretsKey(t *testing.T) {
	const key = "tenant/key+with=odd chars"
	spellings := append(canary.Spellings(key), base64.StdEncoding.EncodeToString([]byte(key)), strings.ToUpper(url.QueryEscape(key)))
	for _, s := range spellings {
		poolErr := errors.New(`scriptlock: base URL "https://` + s + `.example" is refused`)
		err := secretError("creds", key, poolErr)
		if !isCredentials(err) {
			t.Fatalf("not a credentials error: %v", err)
		}
		if sp, ok := canary.Find(err.Error(), key); ok {
			t.Errorf("%v holds the key as %q", err, sp)
		}
		if !strings.Contains(err.Error(), `Secret "creds"`) || !strings.Contains(err.Error(), "is refused") {
			t.Errorf("the rest of the message is lost: %v", err)
		}
		if errors.Is(err, poolErr) {
			t.Errorf("the pool's error, with the key, can be reached by unwrapping: %v", err)
		}
	}
}
