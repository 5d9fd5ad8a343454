package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scriptlock/customer-operator/test/apiserver"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// TestAdviceCoversEveryReason: every reason of the README troubleshooting
// table, and every reason status makes up, has its own advice, not the
// fallback.
func TestAdviceCoversEveryReason(t *testing.T) {
	for _, tc := range []struct{ reason, want string }{
		{v1alpha1.ReasonConflict, "spec.adoption: IfExists"},
		{v1alpha1.ReasonNotFound, "fix the id"},
		{v1alpha1.ReasonUnauthorized, "fix the credentials Secret"},
		{v1alpha1.ReasonInvalidCredentials, "create the credentials Secret"},
		{v1alpha1.ReasonDeletionBlocked, "deletionPolicy: Orphan"},
		{v1alpha1.ReasonDeletionHeld, "approve-deletion"},
		{v1alpha1.ReasonAPIError, "nothing: the operator backs off"},
		{v1alpha1.ReasonRateLimited, "nothing: the operator waits"},
		{v1alpha1.ReasonAccountChanged, "point the credentials back"},
		{v1alpha1.ReasonStoredDifferently, "change the spec to what ScriptLock stores"},
		{v1alpha1.ReasonInvalidID, "status.customerID was edited by hand"},
		{v1alpha1.ReasonCreating, "the create's outcome"},
		{v1alpha1.ReasonDeleting, "being deleted"},
		{v1alpha1.ReasonRemoteDeleted, "creates it again"},
		{v1alpha1.ReasonDiffers, "managementPolicy: Manage"},
		{reasonPaused, "remove the annotation licensing.scriptlock.com/paused"},
		{reasonPending, "--selector"},
		{reasonOutdated, "reconcile the new spec"},
		{"SomethingNew", "README troubleshooting table"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			if got := adviceFor(tc.reason); !strings.Contains(got, tc.want) || strings.ContainsAny(got, "\t\n") {
				t.Errorf("adviceFor(%s) = %q, want one line containing %q", tc.reason, got, tc.want)
			}
		})
	}
}

func TestNotReady(t *testing.T) {
	cond := func(status metav1.ConditionStatus, reason, msg string) []metav1.Condition {
		return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: msg}}
	}
	now := metav1.Now()
	for _, tc := range []struct {
		name   string
		c      v1alpha1.Customer
		reason string // "" means Ready
	}{
		{"Ready=True of the current generation is Ready", v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Generation: 2},
			Status: v1alpha1.CustomerStatus{ObservedGeneration: 2, Conditions: cond("True", v1alpha1.ReasonAvailable, "")}}, ""},
		{"Observed (Ready=True) is Ready", v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Generation: 1},
			Status: v1alpha1.CustomerStatus{ObservedGeneration: 1, Conditions: cond("True", v1alpha1.ReasonObserved, "")}}, ""},
		{"no conditions is Pending", v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Generation: 1}}, reasonPending},
		{"an older generation is Outdated", v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Generation: 3},
			Status: v1alpha1.CustomerStatus{ObservedGeneration: 2, Conditions: cond("True", v1alpha1.ReasonAvailable, "")}}, reasonOutdated},
		{"Ready=False gives its reason", v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Generation: 1},
			Status: v1alpha1.CustomerStatus{ObservedGeneration: 1, Conditions: cond("False", v1alpha1.ReasonConflict, "x")}}, v1alpha1.ReasonConflict},
		{"Ready=Unknown without a reason is Unknown", v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Generation: 1},
			Status: v1alpha1.CustomerStatus{ObservedGeneration: 1, Conditions: cond("Unknown", "", "")}}, reasonUnknown},
		{"paused wins over Ready=True", v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Generation: 1, Annotations: map[string]string{v1alpha1.PausedAnnotation: "true"}},
			Status: v1alpha1.CustomerStatus{ObservedGeneration: 1, Conditions: cond("True", v1alpha1.ReasonAvailable, "")}}, reasonPaused},
		{"paused=false is not paused", v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Generation: 1, Annotations: map[string]string{v1alpha1.PausedAnnotation: "false"}},
			Status: v1alpha1.CustomerStatus{ObservedGeneration: 1, Conditions: cond("True", v1alpha1.ReasonAvailable, "")}}, ""},
		{"being deleted is Deleting", v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Generation: 1, DeletionTimestamp: &now},
			Status: v1alpha1.CustomerStatus{ObservedGeneration: 1, Conditions: cond("True", v1alpha1.ReasonAvailable, "")}}, v1alpha1.ReasonDeleting},
		{"a blocked deletion is DeletionBlocked", v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Generation: 1, DeletionTimestamp: &now},
			Status: v1alpha1.CustomerStatus{ObservedGeneration: 1, Conditions: cond("False", v1alpha1.ReasonDeletionBlocked, "has licenses")}}, v1alpha1.ReasonDeletionBlocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, _, bad := notReady(&tc.c)
			if bad != (tc.reason != "") || reason != tc.reason {
				t.Errorf("notReady = %q, %v; want %q", reason, bad, tc.reason)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\n\tb\x07  c", 80); got != "a b c" {
		t.Errorf("oneLine = %q", got)
	}
	if got := oneLine(strings.Repeat("é", 100), 10); got != strings.Repeat("é", 7)+"..." {
		t.Errorf("oneLine cut = %q", got)
	}
	if got := oneLine("", 10); got != "-" {
		t.Errorf("oneLine empty = %q", got)
	}
}

// startAPIServer starts a kube-apiserver with the Customer CRD and returns
// an admin client and a kubeconfig file for it.
func startAPIServer(t *testing.T) (client.Client, string) {
	t.Helper()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg := apiserver.StartEnv(t, env)
	path := apiserver.AdminKubeconfig(t, env, cfg, "status-test")
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, path
}

// TestStatusAgainstAnAPIServer creates Customers in several states in a
// real kube-apiserver, and checks what status prints and its exit code
// for one namespace, all namespaces and a namespace where all are Ready.
func TestStatusAgainstAnAPIServer(t *testing.T) { //nolint:gocyclo // one API server, many checks of one printed table in a row, each a line
	c, kubeconfig := startAPIServer(t)
	ctx := context.Background()
	for _, ns := range []string{"sales", "ops", "fine"} {
		if err := c.Create(ctx, namespace(ns)); err != nil {
			t.Fatal(err)
		}
	}
	type state struct {
		ns, name    string
		ready       metav1.ConditionStatus // "" means no status at all
		reason, msg string
		paused      bool
		bumpSpec    bool // change the spec after the status: observedGeneration falls behind
		deleting    bool
	}
	states := []state{
		{ns: "sales", name: "ready", ready: "True", reason: v1alpha1.ReasonAvailable, msg: "in sync"},
		{ns: "sales", name: "conflict", ready: "False", reason: v1alpha1.ReasonConflict, msg: "ScriptLock already has email a@x.io\n(record 42)"},
		{ns: "sales", name: "pending"},
		{ns: "sales", name: "outdated", ready: "True", reason: v1alpha1.ReasonAvailable, bumpSpec: true},
		{ns: "sales", name: "paused", ready: "True", reason: v1alpha1.ReasonAvailable, paused: true},
		{ns: "sales", name: "differs", ready: "False", reason: v1alpha1.ReasonDiffers, msg: "company: " + strings.Repeat("x", 200)},
		{ns: "sales", name: "deleting", ready: "True", reason: v1alpha1.ReasonAvailable, deleting: true},
		{ns: "ops", name: "unauthorized", ready: "False", reason: v1alpha1.ReasonUnauthorized, msg: "401"},
		{ns: "ops", name: "observed", ready: "True", reason: v1alpha1.ReasonObserved},
		{ns: "fine", name: "ready", ready: "True", reason: v1alpha1.ReasonAvailable},
	}
	for _, s := range states {
		cu := &v1alpha1.Customer{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: s.name},
			Spec:       v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: s.name + "@example.com"},
		}
		if s.paused {
			cu.Annotations = map[string]string{v1alpha1.PausedAnnotation: "true"}
		}
		if s.deleting {
			cu.Finalizers = []string{"test.scriptlock.com/keep"}
		}
		if err := c.Create(ctx, cu); err != nil {
			t.Fatalf("creating %s/%s: %v", s.ns, s.name, err)
		}
		if s.ready != "" {
			cu.Status.ObservedGeneration = cu.Generation
			cu.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: s.ready, Reason: s.reason,
				Message: s.msg, ObservedGeneration: cu.Generation, LastTransitionTime: metav1.Now()}}
			if err := c.Status().Update(ctx, cu); err != nil {
				t.Fatalf("status of %s/%s: %v", s.ns, s.name, err)
			}
		}
		if s.bumpSpec {
			cu.Spec.Company = "Changed"
			if err := c.Update(ctx, cu); err != nil {
				t.Fatal(err)
			}
		}
		if s.deleting {
			if err := c.Delete(ctx, cu); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		// Let the namespaces' Customers go (not needed by envtest, but tidy).
		for _, s := range states {
			if s.deleting {
				cu := &v1alpha1.Customer{}
				if c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: s.name}, cu) == nil {
					cu.Finalizers = nil
					_ = c.Update(ctx, cu)
				}
			}
		}
	})

	d := defaultDeps()
	t.Run("one namespace", func(t *testing.T) {
		stdout, stderr, err := runCmd(t, d, "status", "--kubeconfig", kubeconfig, "-n", "sales")
		checkExit(t, err, 1)
		rows := tableRows(t, stdout)
		want := map[string]string{
			"conflict": v1alpha1.ReasonConflict, "pending": reasonPending, "outdated": reasonOutdated,
			"paused": reasonPaused, "differs": v1alpha1.ReasonDiffers, "deleting": v1alpha1.ReasonDeleting,
		}
		if len(rows) != len(want) {
			t.Errorf("%d rows, want %d:\n%s", len(rows), len(want), stdout)
		}
		for name, reason := range want {
			row, ok := rows["sales/"+name]
			if !ok {
				t.Errorf("no row for sales/%s:\n%s", name, stdout)
				continue
			}
			if !strings.Contains(row, " "+reason+" ") || !strings.Contains(row, adviceFor(reason)) {
				t.Errorf("row for %s lacks reason %s or its advice: %q", name, reason, row)
			}
		}
		if strings.Contains(stdout, "sales/ready") || strings.Contains(stdout, " ready ") {
			t.Errorf("a Ready Customer is listed:\n%s", stdout)
		}
		if row := rows["sales/conflict"]; !strings.Contains(row, "ScriptLock already has email a@x.io (record 42)") {
			t.Errorf("the message is not on one line: %q", row)
		}
		if row := rows["sales/differs"]; !strings.Contains(row, "company: xxx") || strings.Contains(row, strings.Repeat("x", 100)) || !strings.Contains(row, "...") {
			t.Errorf("a long message is not cut: %q", row)
		}
		if !strings.Contains(stderr, "6 of 7 Customers in namespace sales are not Ready") {
			t.Errorf("stderr: %q", stderr)
		}
	})
	t.Run("all namespaces", func(t *testing.T) {
		stdout, _, err := runCmd(t, d, "status", "--kubeconfig", kubeconfig, "-A")
		checkExit(t, err, 1)
		rows := tableRows(t, stdout)
		if len(rows) != 7 || rows["ops/unauthorized"] == "" || rows["ops/observed"] != "" {
			t.Errorf("want the 6 of sales and ops/unauthorized:\n%s", stdout)
		}
	})
	t.Run("as JSON and YAML: the same Customers, the whole message, the same exit code", func(t *testing.T) {
		for _, format := range []string{"json", "yaml"} {
			stdout, _, err := runCmd(t, d, "status", "--kubeconfig", kubeconfig, "-n", "sales", "-o", format)
			checkExit(t, err, 1)
			var r statusReport
			if err := yaml.UnmarshalStrict([]byte(stdout), &r); err != nil {
				t.Fatalf("-o %s: %v\n%s", format, err, stdout)
			}
			reasons := map[string]string{}
			for _, e := range r.NotReady {
				reasons[e.Name] = e.Reason
				if e.Namespace != "sales" || e.Do != adviceFor(e.Reason) || e.Created.IsZero() {
					t.Errorf("-o %s: entry %+v", format, e)
				}
				if e.Name == "differs" && !strings.Contains(e.Message, strings.Repeat("x", 200)) {
					t.Errorf("-o %s: the message is cut: %q", format, e.Message)
				}
			}
			if r.Total != 7 || len(r.NotReady) != 6 || reasons["conflict"] != v1alpha1.ReasonConflict || reasons["pending"] != reasonPending || reasons["ready"] != "" {
				t.Errorf("-o %s: total %d, reasons %v", format, r.Total, reasons)
			}
		}
		stdout, _, err := runCmd(t, d, "status", "--kubeconfig", kubeconfig, "-n", "fine", "-o", "json")
		if err != nil || !strings.Contains(stdout, `"notReady": []`) {
			t.Errorf("all Ready as JSON: err %v\n%s", err, stdout)
		}
		if _, _, err := runCmd(t, d, "status", "--kubeconfig", kubeconfig, "-o", "wide"); err == nil || !strings.Contains(err.Error(), "json or yaml") {
			t.Errorf("-o wide: err %v, want a refusal", err)
		}
	})
	t.Run("a namespace where all are Ready", func(t *testing.T) {
		stdout, stderr, err := runCmd(t, d, "status", "--kubeconfig", kubeconfig, "--namespace", "fine")
		if err != nil || stdout != "All 1 Customers in namespace fine are Ready.\n" || stderr != "" {
			t.Errorf("stdout %q, stderr %q, err %v", stdout, stderr, err)
		}
	})
	t.Run("the kubeconfig's namespace by default", func(t *testing.T) {
		stdout, _, err := runCmd(t, d, "status", "--kubeconfig", kubeconfig)
		if err != nil || !strings.Contains(stdout, "in namespace default are Ready") {
			t.Errorf("stdout %q, err %v", stdout, err)
		}
	})
	t.Run("an unreachable cluster is an error, not a verdict", func(t *testing.T) {
		_, _, err := runCmd(t, d, "status", "--kubeconfig", kubeconfig, "--server", "https://127.0.0.1:1", "-A")
		var exit exitError
		if err == nil || errors.As(err, &exit) {
			t.Errorf("err %v, want a plain error", err)
		}
	})
}

func namespace(name string) client.Object {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func checkExit(t *testing.T, err error, code int) {
	t.Helper()
	var exit exitError
	if !errors.As(err, &exit) || exit.code != code {
		t.Errorf("err %v, want exit code %d", err, code)
	}
}

// tableRows maps "namespace/name" to the row of the status table.
func tableRows(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "NAMESPACE") {
		t.Fatalf("no table header:\n%s", out)
	}
	rows := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 5 {
			t.Fatalf("short row %q", l)
		}
		rows[f[0]+"/"+f[1]] = l
	}
	return rows
}
