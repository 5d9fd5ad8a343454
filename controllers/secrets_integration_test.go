package controllers_test

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/test/canary"
)

// canarySpellingIn returns the spelling of canaryKey that text holds, if
// any (package canary lists them).
func canarySpellingIn(text string) (string, bool) { return canary.Find(text, canaryKey) }

// assertNoCanarySpelling is assertNoLeak for every spelling of the key, in
// the Events and Customers of the namespace.
func (e *env) assertNoCanarySpelling(evs []eventsv1.Event, cs []v1alpha1.Customer) {
	e.t.Helper()
	for _, ev := range evs {
		if s, ok := canarySpellingIn(fmt.Sprintf("%+v", ev)); ok {
			e.t.Errorf("the API key appeared as %q in event %s: %s", s, ev.Reason, ev.Note)
		}
	}
	for _, c := range cs {
		if s, ok := canarySpellingIn(fmt.Sprintf("%+v", c)); ok {
			e.t.Errorf("the API key appeared as %q in Customer %s", s, c.Name)
		}
	}
}

func pctEncodeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// TestNoSpellingOfASecretsKeyInAnyText gives Customers credentials Secrets
// whose url or ca.crt carries the Secret's own apiKey (the canary) every
// way a person could paste it there. Each Customer is InvalidCredentials,
// with a message that names the URL by scheme and host only and says where
// the key belongs; no spelling of the key reaches a condition, an Event,
// the status, a metric (here) or a log line (TestMain).
func TestNoSpellingOfASecretsKeyInAnyText(t *testing.T) {
	e := newEnv(t, managerOpts{})
	sim := e.srv.URL
	const remote = "https://scriptlock.example"
	tests := []struct {
		name string
		data map[string]string
		want []string
	}{
		{"the key as the URL's user", map[string]string{"url": "https://" + canaryKey + "@scriptlock.example"}, []string{remote, "apiKey"}},
		{"the key as the URL's password", map[string]string{"url": "https://user:" + canaryKey + "@scriptlock.example/v1"}, []string{remote, "apiKey"}},
		{"the key as the port, unparseable", map[string]string{"url": "https://scriptlock.example:" + canaryKey}, []string{"does not parse"}},
		{"the key after a bad escape, unparseable", map[string]string{"url": sim + "/%zz" + canaryKey}, []string{"does not parse"}},
		{"the key in the query", map[string]string{"url": sim + "/?apiKey=" + canaryKey}, []string{sim, "query"}},
		{"the key in the path", map[string]string{"url": sim + "/" + canaryKey}, []string{sim, "apiKey"}},
		{"the key percent-encoded in the path", map[string]string{"url": sim + "/" + pctEncodeAll(canaryKey)}, []string{sim, "apiKey"}},
		{"the key partly percent-encoded in the path", map[string]string{"url": sim + "/" + strings.ReplaceAll(canaryKey, "-", "%2d")}, []string{sim, "apiKey"}},
		{"base64 of the key in the path", map[string]string{"url": sim + "/" + base64.RawURLEncoding.EncodeToString([]byte(canaryKey))}, []string{sim, "apiKey"}},
		{"padded base64 of the key in the path", map[string]string{"url": sim + "/" + url.PathEscape(base64.StdEncoding.EncodeToString([]byte(canaryKey)))}, []string{sim, "apiKey"}},
		{"the key as the host", map[string]string{"url": "https://" + canaryKey + ".example"}, []string{"apiKey"}},
		{"the key upper-cased as the host", map[string]string{"url": "https://" + strings.ToUpper(canaryKey) + ".example"}, []string{"apiKey"}},
		{"the key as garbage in ca.crt", map[string]string{"url": sim, "ca.crt": canaryKey}, []string{"CA"}},
		{"the key in a PEM block of ca.crt", map[string]string{"url": sim, "ca.crt": "-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString([]byte(canaryKey)) + "\n-----END CERTIFICATE-----\n"}, []string{"CA"}},
	}
	names := make([]string, len(tests))
	for i, tt := range tests {
		names[i] = fmt.Sprintf("leak-%d", i)
		data := map[string]string{"apiKey": canaryKey + "\n"}
		for k, v := range tt.data {
			data[k] = v
		}
		e.secret(e.ns, names[i], data)
		c := e.customer(names[i], names[i]+"@example.com")
		c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: names[i]}
		e.create(c)
	}
	for i, tt := range tests {
		c := e.waitReason(names[i], metav1.ConditionFalse, v1alpha1.ReasonInvalidCredentials, 20*time.Second)
		msg := e.ready(c.Name).Message
		if s, ok := canarySpellingIn(msg); ok {
			t.Errorf("%s: the message holds the key as %q: %s", tt.name, s, msg)
		}
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: the message should say %q: %s", tt.name, w, msg)
			}
		}
		if strings.Contains(msg, "/v1") || strings.Contains(msg, "%") {
			t.Errorf("%s: the message quotes more of the URL than scheme and host: %s", tt.name, msg)
		}
		if c.Status.URL != "" || c.Status.CustomerID != "" {
			t.Errorf("%s: status names an account the credentials never reached: %+v", tt.name, c.Status)
		}
	}
	if n := len(e.sim.Calls()); n != 0 {
		t.Errorf("ScriptLock was called %d times with credentials that should have been refused: %v", n, e.sim.Calls())
	}

	// The metrics of the controller (reconcile counts, queue latencies by
	// controller name) in the process's registry.
	fams, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&text, f); err != nil {
			t.Fatal(err)
		}
	}
	if text.Len() == 0 {
		t.Fatal("the registry holds no metric: the check would prove nothing")
	}
	if s, ok := canarySpellingIn(text.String()); ok {
		t.Errorf("the API key appeared as %q in the metrics", s)
	}
}
