package main

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(dir, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o750))
		must(t, os.WriteFile(p, []byte(text), 0o600))
	}
}

const customerDoc = `apiVersion: licensing.scriptlock.com/v1alpha1
kind: Customer
metadata:
  name: %s
spec:
  firstName: F
  lastName: L
  email: %s@example.com
`

func customerYAML(name string) string {
	return fmt.Sprintf(customerDoc, name, name)
}

// TestReadManifests: -f reads a file, the manifest files of a directory
// (its subdirectories with -R only), stdin and Lists; -k builds a
// kustomization; other kinds are skipped, in order.
func TestReadManifests(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.yaml":               customerYAML("a") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n---\n" + customerYAML("b"),
		"c.json":               `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"licensing.scriptlock.com/v1alpha1","kind":"Customer","metadata":{"name":"c"},"spec":{"firstName":"F","lastName":"L","email":"c@example.com"}}]}`,
		"notes.txt":            "not a manifest",
		"sub/d.yaml":           customerYAML("d"),
		"k/kustomization.yaml": "namespace: kns\nnamePrefix: p-\nresources:\n- e.yaml\n",
		"k/e.yaml":             customerYAML("e"),
	})
	names := func(cs []v1alpha1.Customer) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Namespace+"/"+c.Name)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		o    planOptions
		want []string
	}{
		{"a directory", planOptions{filenames: []string{dir}}, []string{"/a", "/b", "/c"}},
		{"a directory, recursively", planOptions{filenames: []string{dir}, recursive: true}, []string{"/a", "/b", "/c", "/e", "/d"}},
		{"a file and stdin", planOptions{filenames: []string{filepath.Join(dir, "c.json"), "-"}}, []string{"/c", "/s"}},
		{"a kustomization", planOptions{kustomize: filepath.Join(dir, "k")}, []string{"kns/p-e"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readManifests(&tc.o, strings.NewReader(customerYAML("s")))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(got), tc.want) {
				t.Errorf("got %v, want %v", names(got), tc.want)
			}
		})
	}
	writeFiles(t, dir, map[string]string{"bad/x.yaml": strings.Replace(customerYAML("x"), "firstName", "fistName", 1)})
	if _, err := readManifests(&planOptions{filenames: []string{filepath.Join(dir, "bad")}}, nil); err == nil || !strings.Contains(err.Error(), "fistName") {
		t.Errorf("a manifest with an unknown field: %v", err)
	}
}

// TestPlanWorld: the manifests' spec (with the CRD's defaults) replaces the
// live one and moves the generation on only when it changes; labels and
// annotations are set over the live ones; status, UID and finalizers stay;
// a manifest the CRD refuses (a CEL transition rule, a pattern) changes
// nothing and says why;
// a new Customer gets the default namespace; --prune deletes the live
// Customers of the manifests' namespaces (and of an explicit --namespace)
// that the selector matches and the manifests lack.
func TestPlanWorld(t *testing.T) {
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	spec := v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: "a@example.com", DeletionPolicy: v1alpha1.DeletionPolicyDelete,
		Adoption: v1alpha1.AdoptionNever, ManagementPolicy: v1alpha1.ManagementPolicyManage}
	liveCustomer := func(ns, name string, lbl map[string]string) v1alpha1.Customer {
		return v1alpha1.Customer{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Generation: 3, Labels: lbl,
				Annotations: map[string]string{"keep": "me"}, Finalizers: []string{v1alpha1.Finalizer}},
			Spec:   spec,
			Status: v1alpha1.CustomerStatus{CustomerID: "id-" + name},
		}
	}
	// The API server's clock is ahead of this machine's: a new Customer is
	// still younger than every live one.
	serverNow := now.Add(time.Hour)
	ahead := liveCustomer("shop", "changed", nil)
	ahead.CreationTimestamp = metav1.NewTime(serverNow)
	live := []v1alpha1.Customer{
		liveCustomer("shop", "same", nil), ahead,
		liveCustomer("shop", "pruned", map[string]string{"team": "a"}), liveCustomer("shop", "other-team", map[string]string{"team": "b"}),
		liveCustomer("elsewhere", "untouched", map[string]string{"team": "a"}),
	}
	manifest := func(ns, name string, edit func(*v1alpha1.CustomerSpec)) v1alpha1.Customer {
		s := v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: "a@example.com"} // no defaults, as written
		if edit != nil {
			edit(&s)
		}
		return v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{"new": "x"}}, Spec: s}
	}
	manifests := []v1alpha1.Customer{
		manifest("shop", "same", nil),
		manifest("shop", "changed", func(s *v1alpha1.CustomerSpec) { s.Company = "New" }),
		manifest("", "fresh", nil),
	}
	prune := &pruneRule{selector: labels.SelectorFromSet(labels.Set{"team": "a"}), namespaces: map[string]bool{}}
	v, err := loadValidator()
	must(t, err)
	pinned := liveCustomer("shop", "pinned", nil)
	pinned.Spec.CustomerID = "7"
	live = append(live, pinned)
	manifests = append(manifests,
		manifest("shop", "pinned", func(s *v1alpha1.CustomerSpec) { s.CustomerID = "8" }),
		manifest("shop", "bad-email", func(s *v1alpha1.CustomerSpec) { s.Email = "not an email" }))
	world, keys, refused, err := planWorld(live, manifests, "shop", prune, now, v.admit)
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 2 || !strings.Contains(refused[types.NamespacedName{Namespace: "shop", Name: "pinned"}], "spec.customerID is immutable") ||
		!strings.Contains(refused[types.NamespacedName{Namespace: "shop", Name: "bad-email"}], "email must be a valid address") {
		t.Errorf("refused %v", refused)
	}
	got := map[string]v1alpha1.Customer{}
	for _, c := range world {
		got[c.Namespace+"/"+c.Name] = c
	}
	var keyNames []string
	for _, k := range keys {
		keyNames = append(keyNames, k.String())
	}
	if want := []string{"shop/same", "shop/changed", "shop/fresh", "shop/pinned", "shop/bad-email", "shop/pruned"}; !slices.Equal(keyNames, want) {
		t.Errorf("keys %v, want %v", keyNames, want)
	}
	if c := got["shop/same"]; c.Generation != 3 || c.UID != "uid-same" || c.Status.CustomerID != "id-same" || c.Spec != spec ||
		c.Annotations["keep"] != "me" || c.Annotations["new"] != "x" || len(c.Finalizers) != 1 {
		t.Errorf("an unchanged manifest changed the live object: %+v", c)
	}
	if c := got["shop/changed"]; c.Generation != 4 || c.Spec.Company != "New" || c.Status.CustomerID != "id-changed" {
		t.Errorf("a changed spec: %+v", c)
	}
	if c := got["shop/fresh"]; c.Generation != 1 || c.UID != "" || !c.CreationTimestamp.Equal(&metav1.Time{Time: serverNow.Add(time.Second)}) || c.Spec.DeletionPolicy != v1alpha1.DeletionPolicyDelete {
		t.Errorf("a new Customer: %+v", c)
	}
	for name, deleted := range map[string]bool{"shop/pruned": true, "shop/other-team": false, "elsewhere/untouched": false, "shop/same": false} {
		if c := got[name]; c.DeletionTimestamp.IsZero() == deleted {
			t.Errorf("%s: deletionTimestamp %v, want deleted %v", name, c.DeletionTimestamp, deleted)
		}
	}
	if c := got["shop/pinned"]; c.Spec.CustomerID != "7" || c.Generation != 3 {
		t.Errorf("a refused manifest changed the live object: %+v", c.Spec)
	}
	if _, ok := got["shop/bad-email"]; ok {
		t.Error("a refused new manifest is in the world")
	}
	if _, _, _, err := planWorld(live, append(manifests, manifest("shop", "same", nil)), "shop", nil, now, v.admit); err == nil {
		t.Error("a Customer twice in the manifests is accepted")
	}
}

// TestSummaryAndGates: the summary line counts every action and calls out
// the revocations; each --fail-on gate matches its own rows only, and a
// row that cannot be planned fails every gate.
func TestSummaryAndGates(t *testing.T) {
	item := func(a controllers.PlanAction, revokes bool) controllers.PlanItem {
		return controllers.PlanItem{Action: a, RevokesLicenses: revokes}
	}
	items := []controllers.PlanItem{
		item(controllers.PlanCreate, false), item(controllers.PlanCreate, false), item(controllers.PlanUpdate, false),
		item(controllers.PlanDelete, true), item(controllers.PlanDelete, true), item(controllers.PlanDelete, false), item(controllers.PlanNone, false),
	}
	r := planReport{Items: items, Summary: summarize(items)}
	if want := "2 create, 1 update, 3 delete — revokes licenses of 2 customers (1 unchanged)"; r.Summary.Text != want {
		t.Errorf("summary %q, want %q", r.Summary.Text, want)
	}
	for _, tc := range []struct {
		failOn []string
		match  bool
	}{
		{nil, false}, {[]string{"revoke"}, true}, {[]string{"conflict"}, false}, {[]string{"any"}, true}, {[]string{"conflict", "revoke"}, true},
	} {
		if why := gate(tc.failOn, r); (why != "") != tc.match {
			t.Errorf("--fail-on %v: %q, want match %v", tc.failOn, why, tc.match)
		}
	}
	quiet := []controllers.PlanItem{item(controllers.PlanNone, false), item(controllers.PlanObserve, false)}
	q := planReport{Items: quiet, Summary: summarize(quiet)}
	if why := gate([]string{"revoke", "conflict"}, q); why != "" {
		t.Errorf("nothing to revoke or conflict, yet the gate says %q", why)
	}
	if summarize(nil).Text != "no change" {
		t.Errorf("empty plan: %q", summarize(nil).Text)
	}
	// A held delete is a revocation waiting for a person: --fail-on
	// revoke matches it alone.
	held := []controllers.PlanItem{{Action: controllers.PlanDelete, Held: true, Reason: "DeletionHeld"}, item(controllers.PlanNone, false)}
	h := planReport{Items: held, Summary: summarize(held)}
	if want := "1 delete — 1 held by the revocation brake (1 unchanged)"; h.Summary.Text != want || h.Summary.Held != 1 || h.Summary.RevokesLicenses != 0 {
		t.Errorf("summary %+v, want %q", h.Summary, want)
	}
	if why := gate([]string{"revoke"}, h); !strings.Contains(why, "1 deletions that revoke licenses wait for approval") {
		t.Errorf("a held delete passes --fail-on revoke: %q", why)
	}
	broken := []controllers.PlanItem{item(controllers.PlanError, false)}
	b := planReport{Items: broken, Summary: summarize(broken)}
	if why := gate([]string{"revoke"}, b); !strings.Contains(why, "cannot be planned") {
		t.Errorf("an error row passes --fail-on revoke: %q", why)
	}
}

// TestACredentialsGoneRowIsARevocation: a delete whose credentials are
// gone may revoke (a running operator that still has the account's client
// DELETEs): it is shown first, as such, and --fail-on revoke matches it as
// a revocation, not as a row that cannot be planned.
func TestACredentialsGoneRowIsARevocation(t *testing.T) {
	items := []controllers.PlanItem{
		{Namespace: "shop", Name: "quiet", Action: controllers.PlanNone},
		{Namespace: "shop", Name: "gone", Action: controllers.PlanDelete, RevokesLicenses: true, RecordID: "7",
			Reason: controllers.PlanReasonCredentialsGone, Message: "may revoke: the credentials are gone"},
	}
	r := planReport{Items: items, Summary: summarize(items)}
	why := gate([]string{"revoke"}, r)
	if !strings.Contains(why, "revokes licenses of 1 customers") || strings.Contains(why, "cannot be planned") {
		t.Errorf("--fail-on revoke: %q", why)
	}
	var out strings.Builder
	must(t, printPlanTable(&out, r))
	lines := strings.Split(out.String(), "\n")
	if !strings.Contains(lines[1], "gone") || !strings.Contains(lines[1], "DELETE (may revoke licenses)") {
		t.Errorf("the row that may revoke is not first, as such:\n%s", out.String())
	}
}

// TestHideValues: the values go from the item and, as whole words, from
// its message; the words they are part of stay.
func TestHideValues(t *testing.T) {
	spec := &v1alpha1.CustomerSpec{Company: "Acme", FirstName: "F", LastName: "L", Email: "Jo@Example.com"}
	it := controllers.PlanItem{Namespace: "shop", Name: "a", Action: controllers.PlanUpdate,
		Changes: []controllers.PlanField{{Name: "company", From: "Old Co", To: "Acme"}},
		Message: `ScriptLock customer 7 has email "jo@example.com" and company Old Co, not Acme; Lastly F.`}
	hideValues(&it, spec)
	if want := `ScriptLock customer 7 has email "***" and company ***, not ***; Lastly ***.`; it.Message != want || it.Changes != nil {
		t.Errorf("got %q %v, want %q", it.Message, it.Changes, want)
	}
}

// TestPlanRefusesAClientThatCanWrite: controllers.Plan does not rely on its
// caller for read-only ScriptLock clients: given a pool that could write,
// every row is an error and ScriptLock sees no call at all.
func TestPlanRefusesAClientThatCanWrite(t *testing.T) {
	s := sim.New(sim.WithAccount(planKeyA))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "a"},
		Spec: v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: "a@example.com"}}
	pool := scriptlock.NewPool(scriptlock.Options{BaseURL: srv.URL, APIKey: planKeyA}, nil)
	items, err := controllers.Plan(context.Background(), controllers.PlanInput{
		Customers: []v1alpha1.Customer{c}, Keys: []types.NamespacedName{{Namespace: "shop", Name: "a"}}, Accounts: pool})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Action != controllers.PlanError || !strings.Contains(items[0].Message, "read-only") {
		t.Errorf("items %+v", items)
	}
	if calls := s.Calls(); len(calls) != 0 {
		t.Errorf("ScriptLock saw %v", calls)
	}
}

// TestPlanVanishBreaker: records missing from an account are planned as
// the operator's vanish breaker decides, whatever their order: one of four
// missing is created again (RemoteDeleted); three of four are held
// (RecordsVanished, nothing written) unless a person annotated the
// Customer to recreate it; three of seven are created again.
func TestPlanVanishBreaker(t *testing.T) {
	s := sim.New(sim.WithAccount(planKeyA))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	account := scriptlock.AccountID(srv.URL, planKeyA)
	pool := scriptlock.NewPool(scriptlock.Options{BaseURL: srv.URL, APIKey: planKeyA, ReadOnly: true}, nil)
	world := func(total, missing int, recreate string) ([]v1alpha1.Customer, []types.NamespacedName) {
		var cs []v1alpha1.Customer
		var keys []types.NamespacedName
		for i := range total {
			name := fmt.Sprintf("c%d", i)
			email := name + "@example.com"
			id := "gone-" + name
			if i >= missing {
				id = s.Seed(planKeyA, scriptlock.Customer{FirstName: "F", LastName: "L", Email: email}).ID
			}
			c := v1alpha1.Customer{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID("uid-" + name), Generation: 1},
				Spec:       v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: email},
				Status:     v1alpha1.CustomerStatus{CustomerID: id, Account: account, URL: srv.URL, ObservedGeneration: 1},
			}
			if name == recreate {
				c.Annotations = map[string]string{v1alpha1.RecreateAnnotation: "true"}
			}
			cs = append(cs, c)
			keys = append(keys, types.NamespacedName{Namespace: "shop", Name: name})
		}
		return cs, keys
	}
	plan := func(total, missing int, recreate string) []controllers.PlanItem {
		cs, keys := world(total, missing, recreate)
		items, err := controllers.Plan(context.Background(), controllers.PlanInput{Customers: cs, Keys: keys, Accounts: pool})
		must(t, err)
		for _, c := range s.Records(planKeyA) {
			s.DeleteOutOfBand(planKeyA, c.ID)
		}
		return items
	}
	got := func(items []controllers.PlanItem) []string {
		var out []string
		for _, it := range items {
			out = append(out, string(it.Action)+"/"+it.Reason)
		}
		return out
	}
	for _, tc := range []struct {
		total, missing int
		recreate       string
		want           []string
	}{
		{4, 1, "", []string{"create/RemoteDeleted", "none/", "none/", "none/"}},
		{4, 3, "", []string{"none/RecordsVanished", "none/RecordsVanished", "none/RecordsVanished", "none/"}},
		{4, 3, "c1", []string{"none/RecordsVanished", "create/RemoteDeleted", "none/RecordsVanished", "none/"}},
		// Fewer than half of the account's records: each is created again.
		{7, 3, "", []string{"create/RemoteDeleted", "create/RemoteDeleted", "create/RemoteDeleted", "none/", "none/", "none/", "none/"}},
	} {
		if g := got(plan(tc.total, tc.missing, tc.recreate)); !slices.Equal(g, tc.want) {
			t.Errorf("%d of %d missing, recreate %q: %v, want %v", tc.missing, tc.total, tc.recreate, g, tc.want)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if n := s.CallCount(m, sim.RouteCustomer) + s.CallCount(m, sim.RouteCustomerID); n != 0 {
			t.Errorf("%d %s calls", n, m)
		}
	}
}

// TestPlanAllowedHosts: with --allowed-scriptlock-hosts, a Secret whose url
// names another host is InvalidCredentials, as for the manager, and its key
// is sent nowhere; the default URL's host stays allowed.
func TestPlanAllowedHosts(t *testing.T) {
	s := sim.New(sim.WithAccount(planKeyA), sim.WithAccount(planKeyB))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	other := sim.New(sim.WithAccount(planKeyB))
	otherSrv := httptest.NewServer(other)
	t.Cleanup(otherSrv.Close)
	otherURL := strings.Replace(otherSrv.URL, "127.0.0.1", "localhost", 1)
	pool, err := planPool(&planOptions{scriptlockURL: srv.URL, allowedHosts: "scriptlock.example.com"},
		func(k string) string { return map[string]string{"SCRIPTLOCK_API_KEY": planKeyA}[k] })
	must(t, err)
	secrets := fake.NewClientBuilder().WithObjects(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "elsewhere"},
			Data: map[string][]byte{controllers.SecretKeyAPIKey: []byte(planKeyB), controllers.SecretKeyURL: []byte(otherURL)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "here"},
			Data: map[string][]byte{controllers.SecretKeyAPIKey: []byte(planKeyB), controllers.SecretKeyURL: []byte(srv.URL)}},
	).Build()
	customer := func(name, secret string) v1alpha1.Customer {
		return v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec: v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: name + "@example.com",
				CredentialsSecretRef: &v1alpha1.SecretReference{Name: secret}}}
	}
	items, err := controllers.Plan(context.Background(), controllers.PlanInput{
		Customers: []v1alpha1.Customer{customer("a", "elsewhere"), customer("b", "here")},
		Keys:      []types.NamespacedName{{Namespace: "shop", Name: "a"}, {Namespace: "shop", Name: "b"}},
		Secrets:   secrets, Accounts: pool,
	})
	must(t, err)
	if items[0].Action != controllers.PlanError || items[0].Reason != v1alpha1.ReasonInvalidCredentials || items[1].Action != controllers.PlanCreate {
		t.Errorf("items %+v", items)
	}
	if n := len(other.Calls()); n != 0 {
		t.Errorf("the host that is not allowed got %d calls", n)
	}
	if got := allowedHosts("", srv.URL); got != nil {
		t.Errorf("no list allows any host, got %v", got)
	}
}

// TestPlanNeedsManifests: without -f and -k the manifests come from stdin
// when it is a pipe; a character device (a terminal, /dev/null) is refused
// with what to give.
func TestPlanNeedsManifests(t *testing.T) {
	devNull, err := os.Open(os.DevNull)
	must(t, err)
	defer func() { _ = devNull.Close() }()
	kubeconfig := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		name  string
		stdin io.Reader
		want  string
	}{
		{"a character device", devNull, "-f FILE|DIR|-, -k DIR, or on stdin"},
		// Read from the pipe; then the (missing) cluster is what fails.
		{"a pipe", strings.NewReader(customerYAML("a")), "kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newPlanCmd(io.Discard, io.Discard, deps{getenv: func(string) string { return "" }})
			cmd.SetIn(tc.stdin)
			cmd.SetArgs([]string{"--kubeconfig", kubeconfig})
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestPlanHeldDeletionStaysHeld: the plan asks the brake with the
// account's Lease (its held deletions) and the Customer's own status, as
// the operator does. A deletion the Lease lists as held is held whatever
// its Ready reason (a pass that ended in a transient error wrote
// Deleting). A
// deletion held before stays held once the window has passed, while the
// budget is not above the one that held it; a larger budget lets it go,
// and a deletion never held goes on the refilled window. The fake client's
// Lease is not changed by the plan.
func TestPlanHeldDeletionStaysHeld(t *testing.T) {
	s := sim.New(sim.WithAccount(planKeyA))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	account := scriptlock.AccountID(srv.URL, planKeyA)
	pool := scriptlock.NewPool(scriptlock.Options{BaseURL: srv.URL, APIKey: planKeyA, ReadOnly: true}, nil)
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "scriptlock-deletions-" + account, ResourceVersion: "7",
		Annotations: map[string]string{
			// Two DELETEs, both older than the window; the budget of 2
			// held a deletion.
			"licensing.scriptlock.com/deletions":      `{"x":"2026-01-01T00:00:00Z","y":"2026-01-01T00:00:00Z"}`,
			"licensing.scriptlock.com/held-at-budget": "2",
			"licensing.scriptlock.com/held":           `["uid-leased"]`,
		}}}
	reader := fake.NewClientBuilder().WithObjects(lease).Build()
	deleting := func(name string, held bool) v1alpha1.Customer {
		id := s.Seed(planKeyA, scriptlock.Customer{FirstName: "F", LastName: "L", Email: name + "@example.com"}).ID
		now := metav1.Now()
		c := v1alpha1.Customer{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID("uid-" + name), Generation: 1,
				Finalizers: []string{v1alpha1.Finalizer}, DeletionTimestamp: &now},
			Spec:   v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: name + "@example.com"},
			Status: v1alpha1.CustomerStatus{CustomerID: id, Account: account, URL: srv.URL, ObservedGeneration: 1},
		}
		if held {
			c.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
				Reason: v1alpha1.ReasonDeletionHeld, LastTransitionTime: now, ObservedGeneration: 1}}
		}
		return c
	}
	leased := deleting("leased", false)
	leased.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: v1alpha1.ReasonDeleting, LastTransitionTime: metav1.Now(), ObservedGeneration: 1}}
	world := []v1alpha1.Customer{deleting("held", true), leased, deleting("fresh", false)}
	keys := []types.NamespacedName{{Namespace: "shop", Name: "held"}, {Namespace: "shop", Name: "leased"}, {Namespace: "shop", Name: "fresh"}}
	for _, tc := range []struct {
		budget int
		want   []string
	}{
		{2, []string{"delete/held/", "delete/held/", "delete/revokes/budget"}},
		{3, []string{"delete/revokes/budget", "delete/revokes/budget", "delete/revokes/budget"}},
	} {
		items, err := controllers.Plan(context.Background(), controllers.PlanInput{Customers: world, Keys: keys, Accounts: pool,
			Brake: &controllers.PlanBrake{Budget: tc.budget, Window: time.Hour, Namespace: "ops", Reader: reader}})
		must(t, err)
		var got []string
		for _, it := range items {
			state := "revokes"
			if it.Held {
				state = "held"
			}
			got = append(got, string(it.Action)+"/"+state+"/"+it.Approval)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("budget %d: %v, want %v (%+v)", tc.budget, got, tc.want, items)
		}
	}
	after := &coordinationv1.Lease{}
	must(t, reader.Get(context.Background(), types.NamespacedName{Namespace: "ops", Name: lease.Name}, after))
	if after.ResourceVersion != "7" || after.Annotations["licensing.scriptlock.com/held-at-budget"] != "2" {
		t.Errorf("the plan changed the Lease: %+v", after.ObjectMeta)
	}
}
