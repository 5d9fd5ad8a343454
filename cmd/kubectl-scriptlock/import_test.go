package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

const testKey = "sk_test_5up3r-s3cr3t"

// startSim serves a simulator with one account holding records, and
// returns its URL and a file holding the account's key.
func startSim(t *testing.T, records ...scriptlock.Customer) (*sim.Server, string, string) {
	t.Helper()
	s := sim.New(sim.WithAccount(testKey))
	for _, r := range records {
		s.Seed(testKey, r)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	keyFile := filepath.Join(t.TempDir(), "api-key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s, srv.URL, keyFile
}

// testDeps has an empty environment and, when lister is set, a cluster
// that holds what it lists.
func testDeps(lister customerLister) deps {
	return deps{
		getenv: func(string) string { return "" },
		newLister: func(genericclioptions.RESTClientGetter) (customerLister, error) {
			if lister == nil {
				return nil, errors.New("no cluster in this test")
			}
			return lister, nil
		},
	}
}

// runCmd runs the command and returns its stdout and stderr; it fails the
// test if the API key shows up in either.
func runCmd(t *testing.T, d deps, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr, d)
	for name, out := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String()} {
		if strings.Contains(out, testKey) {
			t.Errorf("%s contains the API key:\n%s", name, out)
		}
	}
	if err != nil && strings.Contains(err.Error(), testKey) {
		t.Errorf("error contains the API key: %v", err)
	}
	return stdout.String(), stderr.String(), err
}

// decodeStream decodes a multi-document YAML stream strictly into Customers.
func decodeStream(t *testing.T, stream string) []v1alpha1.Customer {
	t.Helper()
	var out []v1alpha1.Customer
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		out = append(out, decodeManifest(t, doc))
	}
}

func decodeManifest(t *testing.T, doc []byte) v1alpha1.Customer {
	t.Helper()
	for _, unwanted := range []string{"creationTimestamp", "status:"} {
		if bytes.Contains(doc, []byte(unwanted)) {
			t.Errorf("manifest contains %q:\n%s", unwanted, doc)
		}
	}
	var c v1alpha1.Customer
	if err := yaml.UnmarshalStrict(doc, &c); err != nil {
		t.Fatalf("manifest does not decode into a Customer: %v\n%s", err, doc)
	}
	if c.APIVersion != "licensing.scriptlock.com/v1alpha1" || c.Kind != "Customer" {
		t.Errorf("manifest %s is a %s %s", c.Name, c.APIVersion, c.Kind)
	}
	return c
}

// byEmail indexes Customers by spec.email.
func byEmail(cs []v1alpha1.Customer) map[string]v1alpha1.Customer {
	m := map[string]v1alpha1.Customer{}
	for _, c := range cs {
		m[c.Spec.Email] = c
	}
	return m
}

var seedRecords = []scriptlock.Customer{
	{Company: "Acme", FirstName: "Ada", LastName: "Lovelace", Email: "Ada.Lovelace@Example.com"},
	{FirstName: "Alan", LastName: "Turing", Email: "ada-lovelace@example.com"}, // same name as the first
	{FirstName: "", LastName: "Nameless", Email: "nameless@example.com"},       // invalid
	{FirstName: "Grace", LastName: "Hopper", Email: "not-an-email"},            // invalid
	{Company: strings.Repeat("c", 300), FirstName: "Long", LastName: "Co", Email: "long@example.com"},
	{FirstName: "Edsger", LastName: "Dijkstra", Email: strings.Repeat("e", 80) + "@example.com"},
}

func TestImportWritesOneFilePerCustomer(t *testing.T) {
	s, url, keyFile := startSim(t, seedRecords...)
	dir := filepath.Join(t.TempDir(), "customers")
	stdout, stderr, err := runCmd(t, testDeps(nil), "import",
		"--scriptlock-url", url, "--api-key-file", keyFile, "--output-dir", dir, "--namespace", "sales")
	if err != nil {
		t.Fatalf("import failed: %v\n%s", err, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout is not empty with --output-dir:\n%s", stdout)
	}
	if !strings.Contains(stderr, "imported 3, skipped 3 (already managed 0, invalid 3)\n") {
		t.Errorf("stderr has no or a wrong summary:\n%s", stderr)
	}
	for _, want := range []string{"firstname is empty", `email "not-an-email" must be a valid address`, "company has 300 characters"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var customers []v1alpha1.Customer
	for _, e := range entries {
		doc, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		c := decodeManifest(t, doc)
		if e.Name() != c.Name+".yaml" {
			t.Errorf("file %s holds Customer %s", e.Name(), c.Name)
		}
		customers = append(customers, c)
	}
	if len(customers) != 3 {
		t.Fatalf("wrote %d manifests, want 3", len(customers))
	}
	var names []string
	for _, c := range customers {
		names = append(names, c.Name)
	}
	checkNames(t, names)

	remote := map[string]scriptlock.Customer{}
	for _, r := range s.Records(testKey) {
		remote[r.Email] = r
	}
	got := byEmail(customers)
	for _, email := range []string{"Ada.Lovelace@Example.com", "ada-lovelace@example.com", seedRecords[5].Email} {
		c, ok := got[email]
		if !ok {
			t.Errorf("no manifest for %s", email)
			continue
		}
		r := remote[email]
		want := v1alpha1.CustomerSpec{Company: r.Company, FirstName: r.FirstName, LastName: r.LastName, Email: r.Email,
			DeletionPolicy: v1alpha1.DeletionPolicyOrphan, CustomerID: r.ID}
		if c.Spec != want {
			t.Errorf("%s: spec %+v, want %+v", email, c.Spec, want)
		}
		if c.Namespace != "sales" {
			t.Errorf("%s: namespace %q, want sales", email, c.Namespace)
		}
	}
	if n := got["Ada.Lovelace@Example.com"].Name; n != "ada-lovelace-example-com" {
		t.Errorf("the older record is named %q, want the plain name", n)
	}

	// A second run writes the same files.
	before := readDir(t, dir)
	if _, stderr, err := runCmd(t, testDeps(nil), "import",
		"--scriptlock-url", url, "--api-key-file", keyFile, "--output-dir", dir, "--namespace", "sales"); err != nil {
		t.Fatalf("second import failed: %v\n%s", err, stderr)
	}
	if after := readDir(t, dir); !mapsEqual(before, after) {
		t.Errorf("a second run changed the output")
	}
}

func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestImportToStdout(t *testing.T) {
	_, url, _ := startSim(t,
		scriptlock.Customer{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"},
		scriptlock.Customer{Company: "Navy", FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com"})
	d := testDeps(nil)
	d.getenv = func(k string) string {
		return map[string]string{"SCRIPTLOCK_API_KEY": testKey, "SCRIPTLOCK_URL": url}[k]
	}
	stdout, stderr, err := runCmd(t, d, "import", "--deletion-policy=Delete", "--credentials-secret", "scriptlock-acct")
	if err != nil {
		t.Fatalf("import failed: %v\n%s", err, stderr)
	}
	if strings.Count(stdout, "\n---\n") != 1 {
		t.Errorf("want two documents separated by ---:\n%s", stdout)
	}
	customers := decodeStream(t, stdout)
	if len(customers) != 2 {
		t.Fatalf("decoded %d Customers, want 2:\n%s", len(customers), stdout)
	}
	for _, c := range customers {
		if c.Namespace != "default" || c.Spec.DeletionPolicy != v1alpha1.DeletionPolicyDelete ||
			c.Spec.CredentialsSecretRef == nil || c.Spec.CredentialsSecretRef.Name != "scriptlock-acct" || c.Spec.CustomerID == "" {
			t.Errorf("Customer %s: namespace %q, spec %+v", c.Name, c.Namespace, c.Spec)
		}
	}
	if c := byEmail(customers)["grace@example.com"]; c.Name != "grace-example-com" || c.Spec.Company != "Navy" {
		t.Errorf("grace: %s %+v", c.Name, c.Spec)
	}
	if !strings.HasSuffix(stderr, "imported 2, skipped 0 (already managed 0, invalid 0)\n") {
		t.Errorf("summary missing:\n%s", stderr)
	}
}

func TestImportObserveWritesObservingManifests(t *testing.T) {
	_, url, _ := startSim(t, scriptlock.Customer{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"})
	d := testDeps(nil)
	d.getenv = func(k string) string {
		return map[string]string{"SCRIPTLOCK_API_KEY": testKey, "SCRIPTLOCK_URL": url}[k]
	}
	for _, tc := range []struct {
		args []string
		want v1alpha1.ManagementPolicy
	}{
		{[]string{"import", "--observe"}, v1alpha1.ManagementPolicyObserve},
		{[]string{"import"}, ""}, // the CRD's default, Manage
	} {
		stdout, stderr, err := runCmd(t, d, tc.args...)
		if err != nil {
			t.Fatalf("%v failed: %v\n%s", tc.args, err, stderr)
		}
		customers := decodeStream(t, stdout)
		if len(customers) != 1 || customers[0].Spec.ManagementPolicy != tc.want || customers[0].Spec.CustomerID == "" {
			t.Fatalf("%v: want one Customer with managementPolicy %q and its customerID, got %+v", tc.args, tc.want, customers)
		}
	}
}

func TestImportSkipsManagedRecords(t *testing.T) {
	_, url, keyFile := startSim(t,
		scriptlock.Customer{ID: "1", FirstName: "A", LastName: "A", Email: "a@example.com"},
		scriptlock.Customer{ID: "2", FirstName: "B", LastName: "B", Email: "b@example.com"},
		scriptlock.Customer{ID: "3", FirstName: "C", LastName: "C", Email: "C@Example.com"},
		scriptlock.Customer{ID: "4", FirstName: "", LastName: "D", Email: "d@example.com"},
		scriptlock.Customer{ID: "5", FirstName: "E", LastName: "E", Email: "e@example.com"})
	cl := newFakeClient(t,
		cluster("sales", "imported-a", "1", "1", "a@example.com"),
		cluster("ops", "created-b", "", "2", "b@example.com"),
		cluster("sales", "pending-c", "", "", "c@example.com"),
		// Not managing anything of this account, but holds the name
		// record 5 would get.
		cluster("default", "e-example-com", "", "", "someone-else@example.com"))
	stdout, stderr, err := runCmd(t, testDeps(readerLister{cl}), "import",
		"--scriptlock-url", url, "--api-key-file", keyFile, "--skip-managed")
	if err != nil {
		t.Fatalf("import failed: %v\n%s", err, stderr)
	}
	for _, want := range []string{
		"skipping customer 1 (\"a@example.com\"): already managed by Customer sales/imported-a",
		"skipping customer 2 (\"b@example.com\"): already managed by Customer ops/created-b (status.customerID 2)",
		"skipping customer 3 (\"C@Example.com\"): already managed by Customer sales/pending-c (same email)",
		"warning: skipping customer 4",
		"imported 1, skipped 4 (already managed 3, invalid 1)\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}
	customers := decodeStream(t, stdout)
	if len(customers) != 1 || customers[0].Spec.CustomerID != "5" {
		t.Fatalf("want only record 5 imported, got %+v", customers)
	}
	if n := customers[0].Name; n == "e-example-com" || !strings.HasPrefix(n, "e-example-com-") {
		t.Errorf("record 5 is named %q; the name e-example-com is taken in the namespace", n)
	}
}

func TestImportFailures(t *testing.T) {
	_, url, keyFile := startSim(t, scriptlock.Customer{FirstName: "A", LastName: "A", Email: "a@example.com"})
	wrongKey := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrongKey, []byte("sk_wrong_"+testKey), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyKey := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(emptyKey, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	brokenCluster := testDeps(listerFunc(func(context.Context) ([]v1alpha1.Customer, error) {
		return nil, errors.New("customers.licensing.scriptlock.com is forbidden")
	}))
	for _, tc := range []struct {
		name string
		d    deps
		args []string
		want string
	}{
		{"no API key at all", testDeps(nil), []string{"import", "--scriptlock-url", url}, "no ScriptLock API key"},
		{"an empty key file", testDeps(nil), []string{"import", "--scriptlock-url", url, "--api-key-file", emptyKey}, "--api-key-file is empty"},
		{"a wrong key is refused by ScriptLock", testDeps(nil), []string{"import", "--scriptlock-url", url, "--api-key-file", wrongKey}, "401"},
		{"plain http to a remote host needs --allow-insecure-http", testDeps(nil), []string{"import", "--scriptlock-url", "http://scriptlock.example.com", "--api-key-file", keyFile}, "plain http"},
		{"an unknown deletion policy", testDeps(nil), []string{"import", "--api-key-file", keyFile, "--deletion-policy", "Retain"}, "--deletion-policy must be Orphan or Delete"},
		{"an invalid namespace", testDeps(nil), []string{"import", "--api-key-file", keyFile, "--namespace", "Sales"}, "--namespace"},
		{"an invalid secret name", testDeps(nil), []string{"import", "--api-key-file", keyFile, "--credentials-secret", "a_b"}, "--credentials-secret"},
		{"a stray argument", testDeps(nil), []string{"import", "extra"}, "unexpected arguments"},
		{"an unknown command", testDeps(nil), []string{"export"}, "unknown command"},
		{"a cluster that cannot be reached with --skip-managed", testDeps(nil), []string{"import", "--scriptlock-url", url, "--api-key-file", keyFile, "--skip-managed"}, "no cluster"},
		{"a cluster list that fails with --skip-managed", brokenCluster, []string{"import", "--scriptlock-url", url, "--api-key-file", keyFile, "--skip-managed"}, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			args := tc.args
			if args[0] == "import" {
				args = append(slices.Clone(args), "--output-dir", dir)
			}
			stdout, _, err := runCmd(t, tc.d, args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if stdout != "" {
				t.Errorf("a failed run wrote to stdout:\n%s", stdout)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a failed run created --output-dir")
			}
		})
	}
}

type listerFunc func(context.Context) ([]v1alpha1.Customer, error)

func (f listerFunc) ListCustomers(ctx context.Context) ([]v1alpha1.Customer, error) { return f(ctx) }

func TestHelp(t *testing.T) {
	stdout, _, err := runCmd(t, testDeps(nil), "import", "--help")
	if err != nil {
		t.Fatalf("--help failed: %v", err)
	}
	for _, flag := range []string{"--scriptlock-url", "--api-key-file", "--ca-file", "--allow-insecure-http", "--namespace",
		"--deletion-policy", "--credentials-secret", "--output-dir", "--skip-managed", "--kubeconfig", "--context"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("help does not list %s", flag)
		}
	}
	stdout, _, err = runCmd(t, testDeps(nil))
	if err != nil || !strings.Contains(stdout, "import") {
		t.Errorf("usage %q, %v", stdout, err)
	}
}

// The help never shows SCRIPTLOCK_URL's value: a URL can hold a key (the
// curl habit https://KEY@host), and help text is pasted into tickets.
func TestImportHelpNeverShowsTheURLFromTheEnvironment(t *testing.T) {
	d := testDeps(nil)
	d.getenv = func(k string) string {
		return map[string]string{"SCRIPTLOCK_URL": "https://" + testKey + "@scriptlock.example"}[k]
	}
	stdout, stderr, _ := runCmd(t, d, "import", "--help")
	if !strings.Contains(stdout+stderr, "--scriptlock-url") {
		t.Fatalf("no help printed:\n%s%s", stdout, stderr)
	}
}
