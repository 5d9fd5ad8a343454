package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
	"github.com/scriptlock/customer-operator/test/apiserver"
	"github.com/scriptlock/customer-operator/test/kustomized"
)

// The keys of the plan test's accounts: the default one (A), another
// account the credentials Secret "other" names (B), and a key ScriptLock
// does not know (Secret "locked").
const (
	planKeyA   = "plan-key-a-5f1d8c0e-must-never-leak"
	planKeyB   = "plan-key-b-93a7be21-must-never-leak"
	planKeyBad = "plan-key-bad-0c4e-must-never-leak"
)

// planWant is what the plan must say for one Customer (the kinds of row
// the test covers), before it is compared with what the operator does.
type planWant struct {
	action  controllers.PlanAction
	fields  []string
	revokes bool
	reason  string
	// sameMessage: the operator's Ready message is the plan's, word for
	// word (both come from the same code).
	sameMessage bool
}

// TestPlanPredictsWhatTheOperatorDoes sets up every kind of plan row in a
// real kube-apiserver and the simulator, runs `kubectl scriptlock plan`
// with the read-only identity of config/plan-rbac (its writes counted by
// the API server's audit log, ScriptLock's by the simulator's counters),
// then applies the same manifests with pruning and runs the real
// reconciler on them, and compares each row with what the operator did:
// its ScriptLock calls (POST by email, PUT and DELETE by record, with
// their answers) and the Customer's Ready condition or its deletion.
func TestPlanPredictsWhatTheOperatorDoes(t *testing.T) { //nolint:gocyclo // one world, every kind of row, compared call by call
	env, cfg, scheme, k8s, auditLog := startAuditedEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const ns = "shop"
	must(t, k8s.Create(ctx, namespace(ns)))
	planKubeconfig := planUser(t, ctx, env, cfg, k8s, "plan-ci")

	s := sim.New(sim.WithAccount(planKeyA), sim.WithAccount(planKeyB))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	for name, key := range map[string]string{"other": planKeyB, "locked": planKeyBad, "acct": planKeyA} {
		must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			StringData: map[string]string{controllers.SecretKeyAPIKey: key, controllers.SecretKeyURL: srv.URL}}))
	}
	seed := func(email, last string) string {
		return s.Seed(planKeyA, scriptlock.Customer{Company: "Seeded", FirstName: "Seed", LastName: last, Email: email}).ID
	}
	seed("taken0@example.com", "L")
	seed("taken@example.com", "L")
	seed("adopt@example.com", "Old")
	seed("watch@example.com", "Other")
	seed("held@example.com", "L")
	seed("watched@example.com", "L")
	pinTo := seed("pinned-target@example.com", "L")

	// Phase 1: the cluster as it is before the merge, reconciled by the
	// operator.
	cust := func(name string, edit ...func(*v1alpha1.Customer)) *v1alpha1.Customer {
		c := &v1alpha1.Customer{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Customer"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       v1alpha1.CustomerSpec{Company: "Example", FirstName: "F", LastName: "L", Email: name + "@example.com"},
		}
		for _, e := range edit {
			e(c)
		}
		return c
	}
	orphan := func(c *v1alpha1.Customer) { c.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan }
	before := []*v1alpha1.Customer{
		cust("same"), cust("upd"), cust("keep"), cust("gone"), cust("kept", orphan), cust("vanished"),
		cust("moved"), cust("pinned"), cust("swap"),
		cust("never", func(c *v1alpha1.Customer) { c.Spec.Email = "taken0@example.com" }),
		cust("watched", func(c *v1alpha1.Customer) {
			c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve
			c.Spec.Company, c.Spec.FirstName, c.Spec.Email = "Seeded", "Seed", "watched@example.com"
		}),
		cust("rehomed", func(c *v1alpha1.Customer) { c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "acct"} }),
		cust("lost"),
		cust("guarded", func(c *v1alpha1.Customer) {
			c.Annotations = map[string]string{v1alpha1.DeletionProtectionAnnotation: "true"}
		}),
	}
	for _, c := range before {
		must(t, k8s.Create(ctx, c.DeepCopy()))
	}
	stop := startPlanOperator(t, ctx, cfg, scheme, srv.URL)
	for _, c := range before {
		want := map[string]string{"never": v1alpha1.ReasonConflict, "watched": v1alpha1.ReasonObserved}[c.Name]
		if want == "" {
			want = v1alpha1.ReasonAvailable
		}
		waitCustomer(t, ctx, k8s, c.Name, func(cu *v1alpha1.Customer) error { return settledAs(cu, want) })
	}
	stop()
	live := map[string]*v1alpha1.Customer{}
	for _, c := range before {
		live[c.Name] = getCustomer(t, ctx, k8s, c.Name)
	}
	for _, name := range []string{"vanished", "lost"} {
		if !s.DeleteOutOfBand(planKeyA, live[name].Status.CustomerID) {
			t.Fatalf("%s has no record to delete", name)
		}
	}
	// lostcreate sent a create whose answer was lost (its proof is in the
	// status), and the record with its email has other fields than it
	// posted: not provably its own.
	seed("lostcreate@example.com", "Other")
	lc := cust("lostcreate")
	must(t, k8s.Create(ctx, lc))
	lc.Status.PendingCreate = &v1alpha1.PendingCreate{UID: string(lc.UID), Account: scriptlock.AccountID(srv.URL, planKeyA),
		Email: "lostcreate@example.com", Digests: []string{"0123456789abcdef"}, Since: metav1.NewTime(time.Now().Add(-time.Hour))}
	must(t, k8s.Status().Update(ctx, lc))

	// Someone points the Secret of rehomed at another account.
	acct := &corev1.Secret{}
	must(t, k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "acct"}, acct))
	acct.Data[controllers.SecretKeyAPIKey] = []byte(planKeyB)
	must(t, k8s.Update(ctx, acct))

	// The merge: the manifests of the pull request. gone, kept, vanished,
	// never, watched, rehomed and guarded are not in them (pruned).
	after := []*v1alpha1.Customer{
		cust("same"),
		cust("lost"),
		cust("lostcreate"),
		cust("upd", func(c *v1alpha1.Customer) { c.Spec.Company = "Example Renamed" }),
		cust("keep"),
		cust("moved", func(c *v1alpha1.Customer) {
			c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "other"}
		}),
		cust("pinned", func(c *v1alpha1.Customer) { c.Spec.CustomerID = pinTo }),
		cust("swap", func(c *v1alpha1.Customer) { c.Spec.Email = "held@example.com" }),
		cust("new"),
		cust("adopt", func(c *v1alpha1.Customer) {
			c.Spec.Adoption, c.Spec.Company, c.Spec.FirstName = v1alpha1.AdoptionIfExists, "Seeded", "Seed"
		}),
		cust("taken"),
		cust("dup", func(c *v1alpha1.Customer) { c.Spec.Email = "keep@example.com" }),
		cust("named", func(c *v1alpha1.Customer) { c.Spec.CustomerID = live["keep"].Status.CustomerID }),
		cust("missing", func(c *v1alpha1.Customer) { c.Spec.CustomerID = "999999" }),
		cust("locked", func(c *v1alpha1.Customer) {
			c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "locked"}
		}),
		cust("twin-a", func(c *v1alpha1.Customer) { c.Spec.Email = "twin@example.com" }),
		cust("twin-b", func(c *v1alpha1.Customer) { c.Spec.Email = "twin@example.com" }),
		cust("paused", func(c *v1alpha1.Customer) { c.Annotations = map[string]string{v1alpha1.PausedAnnotation: "true"} }),
		cust("watch", func(c *v1alpha1.Customer) {
			c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve
			c.Spec.Company, c.Spec.FirstName = "Seeded", "Seed"
		}),
	}
	wants := map[string]planWant{
		"same":       {action: controllers.PlanNone},
		"keep":       {action: controllers.PlanNone},
		"paused":     {action: controllers.PlanNone, reason: "Paused"},
		"lost":       {action: controllers.PlanCreate, fields: []string{"company", "firstName", "lastName", "email"}, reason: v1alpha1.ReasonRemoteDeleted},
		"upd":        {action: controllers.PlanUpdate, fields: []string{"company"}},
		"twin-a":     {action: controllers.PlanCreate, fields: []string{"company", "firstName", "lastName", "email"}},
		"twin-b":     {action: controllers.PlanConflict, reason: v1alpha1.ReasonConflict},
		"new":        {action: controllers.PlanCreate, fields: []string{"company", "firstName", "lastName", "email"}},
		"adopt":      {action: controllers.PlanAdopt, fields: []string{"lastName"}},
		"taken":      {action: controllers.PlanConflict, reason: v1alpha1.ReasonConflict, sameMessage: true},
		"dup":        {action: controllers.PlanConflict, reason: v1alpha1.ReasonConflict, sameMessage: true},
		"named":      {action: controllers.PlanConflict, reason: v1alpha1.ReasonConflict, sameMessage: true},
		"pinned":     {action: controllers.PlanConflict, reason: v1alpha1.ReasonConflict, sameMessage: true},
		"lostcreate": {action: controllers.PlanConflict, reason: v1alpha1.ReasonConflict, sameMessage: true},
		"swap":       {action: controllers.PlanConflict, fields: []string{"email"}, reason: v1alpha1.ReasonConflict},
		"moved":      {action: controllers.PlanConflict, reason: v1alpha1.ReasonAccountChanged, sameMessage: true},
		"missing":    {action: controllers.PlanConflict, reason: v1alpha1.ReasonNotFound, sameMessage: true},
		"locked":     {action: controllers.PlanError, reason: v1alpha1.ReasonUnauthorized, sameMessage: true},
		"watch":      {action: controllers.PlanObserve, fields: []string{"lastName"}, reason: v1alpha1.ReasonDiffers},
		"gone":       {action: controllers.PlanDelete, revokes: true},
		// No admission policy in this API server: the deletion goes ahead.
		"guarded":  {action: controllers.PlanDelete, revokes: true, reason: "DeletionProtected"},
		"vanished": {action: controllers.PlanDelete},
		"never":    {action: controllers.PlanDelete},
		"kept":     {action: controllers.PlanOrphan},
		"watched":  {action: controllers.PlanOrphan},
		"rehomed":  {action: controllers.PlanOrphan, reason: "RecordKept"},
	}
	dir := t.TempDir()
	for _, c := range after {
		b, err := yaml.Marshal(c)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, c.Name+".yaml"), b, 0o600))
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	must(t, os.WriteFile(keyFile, []byte(planKeyA+"\n"), 0o600))
	planArgs := []string{"plan", "-f", dir, "--prune", "--kubeconfig", planKubeconfig, "--scriptlock-url", srv.URL, "--scriptlock-api-key-file", keyFile}
	noEnv := deps{getenv: func(string) string { return "" }}

	s.ResetCalls()
	auditBefore := len(readAudit(t, auditLog))
	var stdout, stderr bytes.Buffer
	if err := run(ctx, append(planArgs, "-o", "json"), &stdout, &stderr, noEnv); err != nil {
		t.Fatalf("plan: %v\n%s", err, stderr.String())
	}
	var report planReport
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("plan -o json: %v\n%s", err, stdout.String())
	}
	var raw struct {
		Items []map[string]any `json:"items"`
	}
	must(t, json.Unmarshal(stdout.Bytes(), &raw))
	for _, it := range raw.Items {
		for _, k := range []string{"namespace", "name", "action", "fields", "revokesLicenses", "held"} {
			if _, ok := it[k]; !ok {
				t.Errorf("plan -o json: item %v has no %q", it, k)
			}
		}
	}
	// The gate: exit code 2 with --fail-on revoke, the table with
	// --hide-values, revocations first.
	var table, tableErr bytes.Buffer
	err := run(ctx, append(planArgs, "--hide-values", "--fail-on", "revoke"), &table, &tableErr, noEnv)
	var exit exitError
	if !errors.As(err, &exit) || exit.code != planExitCode {
		t.Errorf("plan --fail-on revoke: %v, want exit code %d", err, planExitCode)
	}
	assertPlanSendsNothing(t, s, auditLog, auditBefore, 3, 3)
	for _, out := range []string{stdout.String(), stderr.String(), table.String(), tableErr.String()} {
		for _, key := range []string{planKeyA, planKeyB, planKeyBad} {
			if strings.Contains(out, key) {
				t.Fatalf("an API key is in the plan's output:\n%s", out)
			}
		}
	}
	t.Logf("plan --hide-values:\n%s", table.String())
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) < 2 || !strings.Contains(lines[1], "gone") || !strings.Contains(lines[1], "DELETE (revokes licenses)") {
		t.Errorf("the table does not start with the revocation:\n%s", table.String())
	}
	if want := "3 create, 1 update, 1 adopt, 9 conflict, 4 delete, 3 orphan, 1 observe, 1 error — revokes licenses of 2 customers (3 unchanged)"; lines[len(lines)-1] != want {
		t.Errorf("summary line %q", lines[len(lines)-1])
	}
	if strings.Contains(table.String(), "@example.com") || strings.Contains(table.String(), "Renamed") {
		t.Errorf("--hide-values shows values:\n%s", table.String())
	}
	if report.Summary.Text != strings.TrimSpace(lines[len(lines)-1]) || report.Summary.RevokesLicenses != 2 || report.Summary.Held != 0 {
		t.Errorf("summary %+v", report.Summary)
	}

	items := map[string]controllers.PlanItem{}
	for _, it := range report.Items {
		items[it.Name] = it
	}
	if len(items) != len(wants) || len(report.Items) != len(wants) {
		t.Fatalf("plan has %d items, want %d: %+v", len(report.Items), len(wants), report.Items)
	}
	for name, w := range wants {
		it := items[name]
		if it.Action != w.action || !slices.Equal(it.Fields, w.fields) || it.RevokesLicenses != w.revokes || it.Reason != w.reason && w.reason != "" {
			t.Errorf("plan for %s: %+v; want %+v", name, it, w)
		}
	}
	if it := items["gone"]; it.Approval != "budget" || it.Held {
		t.Errorf("gone: %+v; want it let through on the default budget (20)", it)
	}
	if strings.Contains(stderr.String(), "warning") {
		t.Errorf("plan warns: %s", stderr.String())
	}
	if t.Failed() {
		t.FailNow()
	}

	// Phase 2: the merge applied as a GitOps sync with pruning does it,
	// and the operator on it.
	for _, c := range after {
		cur := &v1alpha1.Customer{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(c), cur); err == nil {
			cur.Spec = c.Spec
			must(t, k8s.Update(ctx, cur))
		} else {
			must(t, k8s.Create(ctx, c.DeepCopy()))
		}
	}
	for _, name := range []string{"gone", "kept", "vanished", "never", "watched", "rehomed", "guarded"} {
		must(t, k8s.Delete(ctx, live[name]))
	}
	s.ResetCalls()
	stop = startPlanOperator(t, ctx, cfg, scheme, srv.URL)
	for name, w := range wants {
		if name == "same" || name == "keep" || name == "paused" {
			// Nothing to wait for: they must do nothing.
			continue
		}
		switch w.action {
		case controllers.PlanDelete, controllers.PlanOrphan:
			waitCustomer(t, ctx, k8s, name, nil)
		default:
			waitCustomer(t, ctx, k8s, name, func(cu *v1alpha1.Customer) error {
				if l := live[name]; l != nil && l.Generation == cu.Generation && l.Status.CustomerID == cu.Status.CustomerID && name == "lost" {
					return errors.New("its record is not created again yet")
				}
				return settledAs(cu, "")
			})
		}
	}
	stop()

	// What the operator did, call by call: every write ScriptLock saw is
	// one the plan announced.
	// A POST belongs to the Customer that holds the record it made (two
	// Customers can want one email), else to the one with its email; a
	// PUT or DELETE to the Customer of the record.
	byEmail, byID, holder := map[string]string{}, map[string]string{}, map[string]string{}
	for _, c := range after {
		byEmail[strings.ToLower(c.Spec.Email)] = c.Name
		if cu := customerOrNil(t, ctx, k8s, c.Name); cu != nil && cu.Status.CustomerID != "" {
			holder[cu.Status.CustomerID] = c.Name
		}
	}
	for name, it := range items {
		if it.RecordID != "" {
			byID[it.RecordID] = name
		}
	}
	writes := map[string][]sim.Call{}
	for _, call := range s.CallLog() {
		var who string
		switch call.Method {
		case "POST":
			if who = holder[call.ID]; who == "" {
				who = byEmail[strings.ToLower(call.Email)]
			}
		case "PUT", "DELETE":
			who = byID[call.ID]
		default:
			continue
		}
		if who == "" {
			t.Errorf("the operator sent %+v, which the plan does not announce for any Customer", call)
			continue
		}
		writes[who] = append(writes[who], call)
	}
	for name, w := range wants {
		it := items[name]
		if err := agrees(it, w, writes[name], customerOrNil(t, ctx, k8s, name), s); err != nil {
			t.Errorf("%s: the plan said %s (%s), the operator did otherwise: %v (calls %+v)", name, it.Action, it.Message, err, writes[name])
		}
	}
}

// agrees compares one plan item with what the operator did: its writes
// to ScriptLock and the Customer after (nil: deleted).
//
//nolint:gocyclo // one case per kind of row, each a few checks
func agrees(it controllers.PlanItem, w planWant, calls []sim.Call, c *v1alpha1.Customer, s *sim.Server) error {
	count := func(method string, status int) int {
		n := 0
		for _, call := range calls {
			if call.Method == method && (status == 0 || call.Status == status) {
				n++
			}
		}
		return n
	}
	ready := func() (*metav1.Condition, error) {
		if c == nil {
			return nil, errors.New("the Customer is gone")
		}
		cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
		if cond == nil {
			return nil, errors.New("no Ready condition")
		}
		return cond, nil
	}
	switch it.Action {
	case controllers.PlanCreate:
		cond, err := ready()
		if err != nil {
			return err
		}
		if len(calls) != 1 || count("POST", 201) != 1 || cond.Reason != v1alpha1.ReasonAvailable {
			return fmt.Errorf("want one POST answered 201 and Ready Available, got Ready %s", cond.Reason)
		}
	case controllers.PlanUpdate, controllers.PlanAdopt:
		cond, err := ready()
		if err != nil {
			return err
		}
		puts := 0
		if len(it.Fields) > 0 {
			puts = 1
		}
		if len(calls) != puts || count("PUT", 200) != puts || cond.Reason != v1alpha1.ReasonAvailable || c.Status.CustomerID != it.RecordID {
			return fmt.Errorf("want %d PUT of %s answered 200 and Ready Available, got Ready %s on record %s", puts, it.RecordID, cond.Reason, c.Status.CustomerID)
		}
		if it.Action == controllers.PlanUpdate || len(it.Fields) > 0 {
			rec, _ := s.Record(planKeyA, it.RecordID)
			if rec.Company != c.Spec.Company || rec.LastName != c.Spec.LastName {
				return fmt.Errorf("the record is %+v", rec)
			}
		}
	case controllers.PlanConflict, controllers.PlanError, controllers.PlanObserve:
		cond, err := ready()
		if err != nil {
			return err
		}
		if count("POST", 0) != 0 || count("DELETE", 0) != 0 || count("PUT", 0) != count("PUT", 409) {
			return errors.New("want no write that ScriptLock carried out")
		}
		if cond.Status != metav1.ConditionFalse || cond.Reason != it.Reason || w.sameMessage && cond.Message != it.Message {
			return fmt.Errorf("want Ready False %s %q, got %s %s %q", it.Reason, it.Message, cond.Status, cond.Reason, cond.Message)
		}
	case controllers.PlanNone:
		if it.Reason == "Paused" {
			if len(calls) != 0 || c == nil || len(c.Status.Conditions) != 0 || len(c.Finalizers) != 0 {
				return errors.New("want a paused Customer left alone")
			}
			return nil
		}
		cond, err := ready()
		if err != nil {
			return err
		}
		if len(calls) != 0 || cond.Status != metav1.ConditionTrue {
			return fmt.Errorf("want no write and Ready True, got %s %s", cond.Status, cond.Reason)
		}
	case controllers.PlanDelete:
		if c != nil {
			return errors.New("the Customer is still there")
		}
		if it.RevokesLicenses != (count("DELETE", 410) == 1) || count("DELETE", 410) > 1 || count("POST", 0)+count("PUT", 0) != 0 {
			return errors.New("want a DELETE answered 410 exactly when the plan says it revokes licenses")
		}
		if _, still := s.Record(planKeyA, it.RecordID); it.RecordID != "" && still {
			return errors.New("the record is still there")
		}
	case controllers.PlanOrphan:
		if c != nil {
			return errors.New("the Customer is still there")
		}
		if len(calls) != 0 {
			return errors.New("want no write")
		}
		if _, still := s.Record(planKeyA, it.RecordID); !still {
			return errors.New("the record is gone")
		}
	default:
		return fmt.Errorf("unknown action %q", it.Action)
	}
	return nil
}

// assertPlanSendsNothing: since auditBefore, the plan's identity sent the
// API server reads only (and some; each of the secrets Secrets read once a
// run), none of them refused, and ScriptLock saw no write and one listing
// per account a run (accounts of them; two runs).
func assertPlanSendsNothing(t *testing.T, s *sim.Server, auditLog string, auditBefore, accounts, secrets int) {
	t.Helper()
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if n := s.CallCount(m, sim.RouteCustomer) + s.CallCount(m, sim.RouteCustomerID); n != 0 {
			t.Errorf("the plan sent %d %s calls to ScriptLock: %v", n, m, s.Calls())
		}
	}
	if n := s.CallCount("GET", sim.RouteCustomers); n != 2*accounts {
		t.Errorf("the plan listed accounts %d times in two runs, want %d (one listing per account a run): %v", n, 2*accounts, s.Calls())
	}
	var reads, read int
	for _, ev := range readAudit(t, auditLog)[auditBefore:] {
		if ev.User.Username != "plan-ci" {
			continue
		}
		switch ev.Verb {
		case "get", "list", "watch":
			reads++
			if ev.ObjectRef.Resource == "secrets" {
				read++
			}
			if ev.ResponseStatus.Code == 403 {
				t.Errorf("the plan's identity may not %s %s %s/%s: config/plan-rbac lacks it", ev.Verb, ev.ObjectRef.Resource, ev.ObjectRef.Namespace, ev.ObjectRef.Name)
			}
		default:
			t.Errorf("the plan sent the API server a %s of %s/%s", ev.Verb, ev.ObjectRef.Resource, ev.ObjectRef.Name)
		}
	}
	if reads == 0 {
		t.Errorf("the audit log holds no request of the plan: it proves nothing")
	}
	if read != 2*secrets {
		t.Errorf("the plan read Secrets %d times in two runs, want %d (each of the %d Secrets the Customers name, once a run)", read, 2*secrets, secrets)
	}
}

// startAuditedEnv starts a kube-apiserver with the CRD whose audit log
// (auditLog, one JSON event a line) records every request's metadata.
func startAuditedEnv(t *testing.T) (env *envtest.Environment, cfg *rest.Config, scheme *runtime.Scheme, k8s client.Client, auditLog string) {
	t.Helper()
	auditDir := t.TempDir()
	policy := filepath.Join(auditDir, "policy.yaml")
	auditLog = filepath.Join(auditDir, "audit.log")
	if err := os.WriteFile(policy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  omitStages: [RequestReceived]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	env.ControlPlane.GetAPIServer().Configure().Set("audit-policy-file", policy).Set("audit-log-path", auditLog)
	cfg = apiserver.StartEnv(t, env)
	scheme = runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, rbacv1.AddToScheme, coordinationv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return env, cfg, scheme, k8s, auditLog
}

// auditEvent is the part of an audit.k8s.io/v1 Event the test reads.
type auditEvent struct {
	Verb string `json:"verb"`
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

func readAudit(t *testing.T, path string) []auditEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit log line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	must(t, sc.Err())
	return out
}

// planUser adds the user name, bound to the ClusterRoles config/plan-rbac
// ships (and nothing else; they must grant get and list only), and returns
// a kubeconfig for it.
func planUser(t *testing.T, ctx context.Context, env *envtest.Environment, cfg *rest.Config, k8s client.Client, name string) string {
	t.Helper()
	objs, err := kustomized.Build(filepath.Join(kustomized.RepoRoot(), "config", "plan-rbac"))
	must(t, err)
	readOnly := func(kind, name string, rules []rbacv1.PolicyRule) {
		for _, rule := range rules {
			for _, verb := range rule.Verbs {
				if verb != "get" && verb != "list" {
					t.Errorf("config/plan-rbac: %s %s grants %s on %v: the plan's identity must only read", kind, name, verb, rule.Resources)
				}
			}
		}
	}
	clusterRoles, roles := 0, 0
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole":
			role := &rbacv1.ClusterRole{}
			must(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, role))
			readOnly("ClusterRole", role.Name, role.Rules)
			must(t, k8s.Create(ctx, role))
			must(t, k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name + "-" + role.Name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}},
			}))
			clusterRoles++
		case "Role":
			// The revocation brake's Leases, in the operator's namespace.
			role := &rbacv1.Role{}
			must(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, role))
			readOnly("Role", role.Name, role.Rules)
			if err := k8s.Create(ctx, namespace(role.Namespace)); client.IgnoreAlreadyExists(err) != nil {
				t.Fatal(err)
			}
			must(t, k8s.Create(ctx, role))
			must(t, k8s.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Namespace: role.Namespace, Name: name + "-" + role.Name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}},
			}))
			roles++
		}
	}
	if clusterRoles != 2 || roles != 1 {
		t.Fatalf("config/plan-rbac renders %d ClusterRoles and %d Roles, want 2 and 1", clusterRoles, roles)
	}
	user, err := env.AddUser(envtest.User{Name: name}, cfg)
	must(t, err)
	kubeconfig, err := user.KubeConfig()
	must(t, err)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, os.WriteFile(path, kubeconfig, 0o600))
	return path
}

// startPlanOperator runs the operator's reconciler as main wires it, with
// the simulator's account A as the default account (and what tune sets);
// stop stops it and waits for it.
func startPlanOperator(t *testing.T, ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, url string, tune ...func(*controllers.CustomerReconciler)) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  cache.Options{DefaultTransform: controllers.CacheTransform()},
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: new(true)},
	})
	must(t, err)
	r := &controllers.CustomerReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("scriptlock-customer-operator"),
		Accounts: scriptlock.NewPool(scriptlock.Options{BaseURL: url, APIKey: planKeyA, Timeout: 5 * time.Second,
			QPS: 100, Burst: 100, MaxInFlight: 1, MaxInFlightPerHost: 1}, nil),
		ResyncPeriod:        time.Hour,
		PermanentBackoff:    time.Hour,
		PermanentBackoffMax: time.Hour,
		VanishReads:         3,
		VanishInterval:      300 * time.Millisecond,
	}
	for _, f := range tune {
		f(r)
	}
	must(t, r.SetupWithManager(mgr, 2))
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(mctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	return func() { cancel(); <-done }
}

// settledAs says whether c's Ready condition is of its generation and
// settled: True, or False and Stalled (a person must act); with reason
// when reason is not empty.
func settledAs(c *v1alpha1.Customer, reason string) error {
	ready := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	stalled := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionStalled)
	switch {
	case ready == nil || ready.ObservedGeneration != c.Generation:
		return fmt.Errorf("Ready %+v, generation %d", ready, c.Generation)
	case ready.Status != metav1.ConditionTrue && (stalled == nil || stalled.Status != metav1.ConditionTrue):
		return fmt.Errorf("still working: %s %s", ready.Reason, ready.Message)
	case reason != "" && ready.Reason != reason:
		return fmt.Errorf("Ready %s, want %s: %s", ready.Reason, reason, ready.Message)
	}
	return nil
}

// waitCustomer waits until ok accepts the Customer, or (ok nil) until it
// is gone.
func waitCustomer(t *testing.T, ctx context.Context, k8s client.Client, name string, ok func(*v1alpha1.Customer) error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // liveness only: fail rather than hang
	for {
		c := &v1alpha1.Customer{}
		err := k8s.Get(ctx, types.NamespacedName{Namespace: "shop", Name: name}, c)
		switch {
		case ok == nil && client.IgnoreNotFound(err) == nil && err != nil:
			return
		case ok == nil && err == nil:
			err = fmt.Errorf("still there, finalizers %v", c.Finalizers)
		case ok != nil && err == nil:
			if err = ok(c); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Customer %s: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getCustomer(t *testing.T, ctx context.Context, k8s client.Client, name string) *v1alpha1.Customer {
	t.Helper()
	c := &v1alpha1.Customer{}
	must(t, k8s.Get(ctx, types.NamespacedName{Namespace: "shop", Name: name}, c))
	return c
}

func customerOrNil(t *testing.T, ctx context.Context, k8s client.Client, name string) *v1alpha1.Customer {
	t.Helper()
	c := &v1alpha1.Customer{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: "shop", Name: name}, c); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return nil
		}
		t.Fatal(err)
	}
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
