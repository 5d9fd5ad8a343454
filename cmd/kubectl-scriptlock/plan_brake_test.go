package main

import (
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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

// TestPlanPredictsTheRevocationBrake: a prune of six Customers with
// records, planned with --deletion-budget 2, then done by the real
// operator with the same budget. Account A: four deletions, one of them
// annotated approve-deletion "true" before its deletion (a manifest in
// Git), which approves nothing: two go ahead on the budget, two are
// held. Account B, whose budget an earlier DELETE storm spent (its
// Lease): the Customer of a namespace whose approval time is after the
// prune goes ahead, the other is held. The plan must say so
// (rows, JSON, summary, the revoke gate), read the brake's Lease and the
// namespaces with config/plan-rbac's identity and write nothing; the
// operator must then send exactly the DELETEs the plan announced and hold
// as many as it said, with the plan's reason and words.
func TestPlanPredictsTheRevocationBrake(t *testing.T) { //nolint:gocyclo // one prune, planned then done, compared step by step
	env, cfg, scheme, k8s, auditLog := startAuditedEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const brakeNS = defaultBrakeNamespace
	must(t, k8s.Create(ctx, namespace("shop")))
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulk",
		Annotations: map[string]string{v1alpha1.ApproveDeletionAnnotation: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}}}))
	planKubeconfig := planUser(t, ctx, env, cfg, k8s, "plan-ci") // creates brakeNS

	s := sim.New(sim.WithAccount(planKeyA), sim.WithAccount(planKeyB))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	for _, ns := range []string{"shop", "bulk"} {
		must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"},
			StringData: map[string]string{controllers.SecretKeyAPIKey: planKeyB, controllers.SecretKeyURL: srv.URL}}))
	}
	cust := func(key string, edit ...func(*v1alpha1.Customer)) *v1alpha1.Customer {
		ns, name, _ := strings.Cut(key, "/")
		c := &v1alpha1.Customer{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Customer"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       v1alpha1.CustomerSpec{Company: "Example", FirstName: "F", LastName: "L", Email: ns + "-" + name + "@example.com"},
		}
		for _, e := range edit {
			e(c)
		}
		return c
	}
	inB := func(c *v1alpha1.Customer) { c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "other"} }
	preApproved := func(c *v1alpha1.Customer) {
		c.Annotations = map[string]string{v1alpha1.ApproveDeletionAnnotation: "true"}
	}
	stays := []*v1alpha1.Customer{cust("shop/stay"), cust("bulk/stay")}
	pruned := []*v1alpha1.Customer{cust("shop/a"), cust("shop/b", preApproved), cust("shop/c"), cust("shop/d"), cust("shop/f", inB), cust("bulk/e", inB)}
	withBrake := func(r *controllers.CustomerReconciler) {
		r.DeletionBudget, r.DeletionBudgetWindow, r.BrakeNamespace = 2, time.Hour, brakeNS
	}
	stop := startPlanOperator(t, ctx, cfg, scheme, srv.URL, withBrake)
	for _, c := range append(slices.Clone(stays), pruned...) {
		must(t, k8s.Create(ctx, c.DeepCopy()))
	}
	live := map[string]*v1alpha1.Customer{}
	for _, c := range append(slices.Clone(stays), pruned...) {
		key := client.ObjectKeyFromObject(c)
		live[key.String()] = waitSettled(t, ctx, k8s, key, func(cu *v1alpha1.Customer) error { return settledAs(cu, v1alpha1.ReasonAvailable) })
	}
	stop()

	// An earlier DELETE storm spent account B's budget: its Lease, as the
	// brake writes it, holds two DELETEs of the last minute.
	accountB := scriptlock.AccountID(srv.URL, planKeyB)
	stamp := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	must(t, k8s.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
		Namespace: brakeNS, Name: "scriptlock-deletions-" + accountB,
		Annotations: map[string]string{
			"licensing.scriptlock.com/deletions":      fmt.Sprintf(`{"earlier-1":%q,"earlier-2":%q}`, stamp, stamp),
			"licensing.scriptlock.com/held-at-budget": "0",
		},
	}}))

	// The plan of the merge: only stays is in the manifests, the rest is
	// pruned.
	dir := t.TempDir()
	for _, c := range stays {
		b, err := yaml.Marshal(c)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, c.Namespace+"-"+c.Name+".yaml"), b, 0o600))
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	must(t, os.WriteFile(keyFile, []byte(planKeyA+"\n"), 0o600))
	planArgs := []string{"plan", "-f", dir, "--prune", "--kubeconfig", planKubeconfig, "--scriptlock-url", srv.URL, "--scriptlock-api-key-file", keyFile,
		"--deletion-budget", "2", "--deletion-budget-window", "1h", "--deletion-budget-namespace", brakeNS}
	noEnv := deps{getenv: func(string) string { return "" }}
	s.ResetCalls()
	auditBefore := len(readAudit(t, auditLog))
	var stdout, stderr bytes.Buffer
	if err := run(ctx, append(planArgs, "-o", "json"), &stdout, &stderr, noEnv); err != nil {
		t.Fatalf("plan: %v\n%s", err, stderr.String())
	}
	var report planReport
	must(t, json.Unmarshal(stdout.Bytes(), &report))
	var table, tableErr bytes.Buffer
	err := run(ctx, append(planArgs, "--fail-on", "revoke"), &table, &tableErr, noEnv)
	var exit exitError
	if !errors.As(err, &exit) || exit.code != planExitCode || !strings.Contains(tableErr.String(), "3 deletions that revoke licenses wait for approval") {
		t.Errorf("plan --fail-on revoke: %v (%s), want exit code %d and the held deletions named", err, tableErr.String(), planExitCode)
	}
	// Two accounts listed, the Secret "other" read in each namespace.
	assertPlanSendsNothing(t, s, auditLog, auditBefore, 2, 2)
	var leases, namespaces int
	for _, ev := range readAudit(t, auditLog)[auditBefore:] {
		if ev.User.Username == "plan-ci" && ev.Verb == "get" {
			switch ev.ObjectRef.Resource {
			case "leases":
				leases++
			case "namespaces":
				namespaces++
			}
		}
	}
	if leases != 2*2 || namespaces == 0 {
		t.Errorf("the plan read %d Leases (want one per account a run: 4) and %d namespaces (want some)", leases, namespaces)
	}
	t.Logf("plan:\n%s", table.String())

	type row struct {
		action   controllers.PlanAction
		revokes  bool
		held     bool
		approval string
	}
	wants := map[string]row{
		"shop/stay": {action: controllers.PlanNone},
		"bulk/stay": {action: controllers.PlanNone},
		// Account B: its budget is spent; bulk is approved.
		"bulk/e": {controllers.PlanDelete, true, false, "namespace"},
		"shop/f": {controllers.PlanDelete, false, true, ""},
		// Account A, in the plan's order: two on the budget, two held
		// (an approval given before the deletion is none).
		"shop/a": {controllers.PlanDelete, true, false, "budget"},
		"shop/b": {controllers.PlanDelete, true, false, "budget"},
		"shop/c": {controllers.PlanDelete, false, true, ""},
		"shop/d": {controllers.PlanDelete, false, true, ""},
	}
	items := map[string]controllers.PlanItem{}
	for _, it := range report.Items {
		items[it.Namespace+"/"+it.Name] = it
	}
	if len(items) != len(wants) {
		t.Fatalf("plan has %d items, want %d: %+v", len(report.Items), len(wants), report.Items)
	}
	for key, w := range wants {
		it := items[key]
		got := row{it.Action, it.RevokesLicenses, it.Held, it.Approval}
		if got != w || it.Held != (it.Reason == v1alpha1.ReasonDeletionHeld) || it.Account == "" && it.Action == controllers.PlanDelete {
			t.Errorf("plan for %s: %+v; want %+v", key, it, w)
		}
	}
	const summary = "6 delete — revokes licenses of 3 customers, 3 held by the revocation brake (2 unchanged)"
	if report.Summary.Text != summary || report.Summary.Held != 3 || report.Summary.RevokesLicenses != 3 {
		t.Errorf("summary %+v, want %q", report.Summary, summary)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 1+len(wants)+1 || !strings.Contains(lines[4], "DELETE (held by the revocation brake)") ||
		!strings.Contains(lines[5], "DELETE (held by the revocation brake)") || !strings.Contains(lines[6], "DELETE (held by the revocation brake)") ||
		!strings.Contains(lines[4], v1alpha1.ReasonDeletionHeld) ||
		strings.TrimSpace(lines[len(lines)-1]) != summary {
		t.Errorf("the table does not show the revocations, then the held deletions:\n%s", table.String())
	}
	// A namespace without the brake's Leases is named on stderr; one the
	// plan's identity may not read them in makes the deletes error rows,
	// never a guess.
	var elsewhere, elsewhereErr bytes.Buffer
	must(t, run(ctx, append(slices.Clone(planArgs), "--deletion-budget-namespace", "nowhere", "-o", "json"), &elsewhere, &elsewhereErr, noEnv))
	var other planReport
	must(t, json.Unmarshal(elsewhere.Bytes(), &other))
	if !strings.Contains(elsewhereErr.String(), "namespace nowhere does not exist") || other.Summary.Error != 6 ||
		!strings.Contains(other.Items[2].Message, "needs get on leases in namespace nowhere") {
		t.Errorf("plan with the wrong brake namespace: %s\n%+v", elsewhereErr.String(), other)
	}
	if t.Failed() {
		t.FailNow()
	}

	// The prune, done; the operator with the same budget on it.
	for _, c := range pruned {
		must(t, k8s.Delete(ctx, live[client.ObjectKeyFromObject(c).String()]))
	}
	s.ResetCalls()
	stop = startPlanOperator(t, ctx, cfg, scheme, srv.URL, withBrake)
	gone := func(key string) bool {
		ns, name, _ := strings.Cut(key, "/")
		err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &v1alpha1.Customer{})
		return client.IgnoreNotFound(err) == nil && err != nil
	}
	heldNow := func(key string) (*v1alpha1.Customer, bool) {
		ns, name, _ := strings.Cut(key, "/")
		c := &v1alpha1.Customer{}
		if k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, c) != nil {
			return nil, false
		}
		cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
		return c, cond != nil && cond.Reason == v1alpha1.ReasonDeletionHeld
	}
	var goneA, heldA []string
	deadline := time.Now().Add(2 * time.Minute) // liveness only: fail rather than hang
	for {
		goneA, heldA = nil, nil
		for _, key := range []string{"shop/a", "shop/b", "shop/c", "shop/d"} {
			if gone(key) {
				goneA = append(goneA, key)
			} else if _, ok := heldNow(key); ok {
				heldA = append(heldA, key)
			}
		}
		_, fHeld := heldNow("shop/f")
		if gone("bulk/e") && fHeld && len(goneA)+len(heldA) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the operator did not settle: gone %v, held %v, bulk/e gone %v, shop/f held %v",
				goneA, heldA, gone("bulk/e"), fHeld)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()

	// As many held as the plan said, in each account; the ones the plan
	// could name (approved, or in a spent account) exactly.
	if len(heldA) != 2 || len(goneA) != 2 {
		t.Errorf("account A: the operator held %v and deleted %v; the plan said 2 held, 2 deleted on the budget", heldA, goneA)
	}
	byID := map[string]string{}
	for key, c := range live {
		byID[c.Status.CustomerID] = key
	}
	var deleted []string
	for _, call := range s.CallLog() {
		switch call.Method {
		case "DELETE":
			if call.Status != 410 {
				t.Errorf("DELETE of %s answered %d", byID[call.ID], call.Status)
			}
			deleted = append(deleted, byID[call.ID])
		case "POST", "PUT":
			t.Errorf("the operator sent %+v", call)
		}
	}
	slices.Sort(deleted)
	want := append([]string{"bulk/e"}, goneA...)
	slices.Sort(want)
	if !slices.Equal(deleted, want) {
		t.Errorf("the operator sent DELETEs of %v, want exactly %v (the plan's deletes that go ahead)", deleted, want)
	}
	for _, key := range append([]string{"shop/f"}, heldA...) {
		if _, still := s.Record(map[bool]string{true: planKeyB, false: planKeyA}[key == "shop/f"], live[key].Status.CustomerID); !still {
			t.Errorf("%s is held, but its record is gone", key)
		}
	}
	// The plan's words are the operator's (the plan adds how it counts).
	f, _ := heldNow("shop/f")
	cond := meta.FindStatusCondition(f.Status.Conditions, v1alpha1.ConditionReady)
	if plan := items["shop/f"].Message; !strings.HasPrefix(plan, cond.Message+" (the plan counts") {
		t.Errorf("shop/f: the operator says %q, the plan said %q", cond.Message, plan)
	}
}

// waitSettled waits until ok accepts the Customer key, and returns it.
func waitSettled(t *testing.T, ctx context.Context, k8s client.Client, key types.NamespacedName, ok func(*v1alpha1.Customer) error) *v1alpha1.Customer {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // liveness only: fail rather than hang
	for {
		c := &v1alpha1.Customer{}
		err := k8s.Get(ctx, key, c)
		if err == nil {
			if err = ok(c); err == nil {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Customer %s: %v", key, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
