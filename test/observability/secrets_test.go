package observability

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/hack/localenv"
	"github.com/scriptlock/customer-operator/test/canary"
)

// observedKey is the default account's key of the manager under test, and
// the apiKey of every credentials Secret below.
const observedKey = "observability-canary-8d2f-never-shown"

// TestNoKeyInAnyTextOfTheRealManager runs the real manager (bin/manager,
// at the highest log verbosity, against kube-apiserver, etcd and the
// simulator, as the demo does) and gives it credentials Secrets whose url
// or ca.crt carries their own apiKey every way a person could paste it
// there; and starts it with a --scriptlock-url or SCRIPTLOCK_URL that
// carries the key. No spelling of the key (package canary) may reach its
// log, an Event, a Customer's status, its /metrics or its output at start.
func TestNoKeyInAnyTextOfTheRealManager(t *testing.T) {
	root, err := filepath.Abs(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		if _, err := os.Stat(filepath.Join(root, "bin", "k8s", "kube-apiserver")); err != nil {
			t.Skip("no control plane: run `make controlplane`, or set KUBEBUILDER_ASSETS")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := localenv.Start(ctx, localenv.Options{Root: root, Logf: t.Logf, APIKey: observedKey,
		ManagerArgs: []string{"--zap-log-level=10"}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	sim := env.SimURL
	urls := []string{
		"https://" + observedKey + "@scriptlock.example",
		"https://user:" + observedKey + "@scriptlock.example/v1",
		"https://scriptlock.example:" + observedKey,
		sim + "/%zz" + observedKey,
		sim + "/?apiKey=" + observedKey,
		sim + "/" + observedKey,
		sim + "/" + strings.ReplaceAll(observedKey, "-", "%2D"),
		sim + "/" + base64.RawURLEncoding.EncodeToString([]byte(observedKey)),
		"https://" + observedKey + ".example",
	}
	type input struct{ url, ca string }
	var inputs []input
	for _, u := range urls {
		inputs = append(inputs, input{url: u})
	}
	inputs = append(inputs, input{url: sim, ca: observedKey},
		input{url: sim, ca: "-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString([]byte(observedKey)) + "\n-----END CERTIFICATE-----\n"})
	var names []string
	for i, in := range inputs {
		name := fmt.Sprintf("leak-%d", i)
		names = append(names, name)
		data := map[string]string{"apiKey": observedKey, "url": in.url}
		if in.ca != "" {
			data["ca.crt"] = in.ca
		}
		if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, StringData: data}); err != nil {
			t.Fatal(err)
		}
		cu := customer(name)
		cu.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: name}
		if err := c.Create(ctx, cu); err != nil {
			t.Fatal(err)
		}
	}
	// One Customer of the default account, so that the scrape has calls
	// to ScriptLock to show.
	if err := c.Create(ctx, customer("fine")); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"fine": v1alpha1.ReasonAvailable}
	for _, n := range names {
		want[n] = v1alpha1.ReasonInvalidCredentials
	}
	deadline := time.Now().Add(time.Minute)
	for name, reason := range want {
		cu := &v1alpha1.Customer{}
		for {
			if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, cu); err != nil {
				t.Fatal(err)
			}
			r := meta.FindStatusCondition(cu.Status.Conditions, v1alpha1.ConditionReady)
			if r != nil && r.Reason == reason {
				break
			}
			if time.Now().After(deadline) {
				// Go on: what it says instead is checked below too.
				t.Errorf("Customer %s is not %s: %+v", name, reason, r)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	texts := map[string]string{}
	log, err := os.ReadFile(env.ManagerLog)
	if err != nil {
		t.Fatal(err)
	}
	texts["the manager's log"] = string(log)
	evs := &eventsv1.EventList{}
	if err := c.List(ctx, evs, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	texts["the Events"] = jsonText(t, evs)
	cs := &v1alpha1.CustomerList{}
	if err := c.List(ctx, cs, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	texts["the Customers"] = jsonText(t, cs)
	texts["/metrics"] = get(ctx, t, env.MetricsURL)
	for what, text := range texts {
		if s, ok := canary.Find(text, observedKey); ok {
			t.Errorf("the API key appeared in %s as %q", what, s)
		}
	}
	// The checks above prove something only if the texts are there.
	for what, sub := range map[string]string{
		"the manager's log": "Reconcile", "the Events": "InvalidCredentials",
		"the Customers": "apiKey", "/metrics": "scriptlock_requests_total",
	} {
		if !strings.Contains(texts[what], sub) {
			t.Errorf("%s do not say %q: the check would prove nothing", what, sub)
		}
	}

	t.Run("a URL that carries the key stops the start, and --help never shows it", func(t *testing.T) {
		startWith(ctx, t, filepath.Join(root, "bin", "manager"), env.KubeconfigPath)
	})
}

func customer(name string) *v1alpha1.Customer {
	return &v1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1alpha1.CustomerSpec{
			Company: "Example Company Inc.", FirstName: "Example", LastName: "Customer", Email: name + "@example.com",
		},
	}
}

func jsonText(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// get returns the body of a GET of url.
func get(ctx context.Context, t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startWith runs the manager binary with a URL that carries the key, by
// flag and by SCRIPTLOCK_URL, with and without a default account, and asks
// for its help: each must end at once (never start managing), name the URL
// by scheme and host at most, and show no spelling of the key.
func startWith(ctx context.Context, t *testing.T, bin, kubeconfig string) {
	const host = "https://scriptlock.example"
	tests := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"the key as the flag's password, with a default account", []string{"--scriptlock-url", "https://user:" + observedKey + "@scriptlock.example"},
			[]string{"SCRIPTLOCK_API_KEY=" + observedKey}, []string{host, "--scriptlock-api-key-file"}},
		{"the key as the flag's user, without a default account", []string{"--scriptlock-url", "https://" + observedKey + "@scriptlock.example"},
			nil, []string{host, "--scriptlock-url"}},
		{"the key in SCRIPTLOCK_URL's userinfo", nil,
			[]string{"SCRIPTLOCK_URL=https://" + observedKey + "@scriptlock.example"}, []string{host}},
		{"the key as SCRIPTLOCK_URL's port", nil,
			[]string{"SCRIPTLOCK_URL=https://scriptlock.example:" + observedKey}, []string{"does not parse"}},
		{"the default key in the flag's path", []string{"--scriptlock-url", host + "/" + observedKey},
			[]string{"SCRIPTLOCK_API_KEY=" + observedKey}, []string{host, "holds the API key"}},
		{"a mistyped flag prints the defaults", []string{"--no-such-flag"},
			[]string{"SCRIPTLOCK_URL=https://user:" + observedKey + "@scriptlock.example"}, []string{"-scriptlock-url", host}},
		{"--help prints the defaults", []string{"--help"},
			[]string{"SCRIPTLOCK_URL=https://user:" + observedKey + "@scriptlock.example"}, []string{"-scriptlock-url", host}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			args := append([]string{"--kubeconfig", kubeconfig, "--metrics-bind-address=0", "--health-probe-bind-address=0",
				"--leader-elect=false", "--zap-log-level=10"}, tt.args...)
			cmd := exec.CommandContext(runCtx, bin, args...)
			cmd.Env = append(localenv.WithoutEnv(os.Environ(), "SCRIPTLOCK_URL", "SCRIPTLOCK_API_KEY", "KUBECONFIG"), tt.env...)
			out, err := cmd.CombinedOutput()
			if runCtx.Err() != nil {
				t.Fatalf("the manager started and ran (it should have stopped at once): %s", out)
			}
			var exit *exec.ExitError
			if tt.name != "--help prints the defaults" && !errors.As(err, &exit) {
				t.Errorf("want a failed exit, got %v: %s", err, out)
			}
			if s, ok := canary.Find(string(out), observedKey); ok {
				t.Errorf("the output shows the key as %q: %s", s, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("the output should say %q: %s", w, out)
				}
			}
		})
	}
}
