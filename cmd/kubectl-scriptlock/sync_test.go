package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/test/apiserver"
)

// startCluster starts a kube-apiserver with the Customer CRD and returns
// its config, an admin client and a kubeconfig file for the plugin.
func startCluster(t *testing.T) (*rest.Config, client.Client, string) {
	t.Helper()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg := apiserver.StartEnv(t, env)
	path := apiserver.AdminKubeconfig(t, env, cfg, "plugin-test")
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, c, path
}

// waitFor polls f every 100ms for up to a minute.
func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSyncAsksTheOperatorAndWaits runs the real operator with a resync
// period of an hour: `sync NAME` has the record read and an edit made in
// ScriptLock put back now, and prints the result only once the operator
// has handled the request; `sync --all` does so for every Customer of the
// namespace, and exits 1 when one is not Ready after its pass.
func TestSyncAsksTheOperatorAndWaits(t *testing.T) {
	cfg, c, kubeconfig := startCluster(t)
	s := startOperator(t, cfg, nil)
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sales"}}); err != nil {
		t.Fatal(err)
	}
	mk := func(name, email string) *v1alpha1.Customer {
		cu := &v1alpha1.Customer{
			ObjectMeta: metav1.ObjectMeta{Namespace: "sales", Name: name},
			Spec:       v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: email},
		}
		if err := c.Create(ctx, cu); err != nil {
			t.Fatal(err)
		}
		return cu
	}
	ready := func(cu *v1alpha1.Customer) *v1alpha1.Customer {
		t.Helper()
		waitFor(t, cu.Name+" Ready", func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(cu), cu); err != nil {
				return err
			}
			if !meta.IsStatusConditionTrue(cu.Status.Conditions, v1alpha1.ConditionReady) {
				return fmt.Errorf("conditions %+v", cu.Status.Conditions)
			}
			return nil
		})
		return cu
	}
	acme := ready(mk("acme", "acme@example.com"))
	s.EditOutOfBand(operatorKey, acme.Status.CustomerID, func(r *scriptlock.Customer) { r.LastName = "Edited by hand" })

	d := defaultDeps()
	stdout, stderr, err := runCmd(t, d, "sync", "acme", "--kubeconfig", kubeconfig, "-n", "sales")
	if err != nil {
		t.Fatalf("sync: %v\n%s%s", err, stdout, stderr)
	}
	if rec, _ := s.Record(operatorKey, acme.Status.CustomerID); rec.LastName != "L" {
		t.Fatalf("sync returned before the edit was put back: %+v", rec)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(acme), acme); err != nil {
		t.Fatal(err)
	}
	if v := acme.Annotations[v1alpha1.ReconcileRequestAnnotation]; v == "" || acme.Status.LastHandledReconcileAt != v {
		t.Fatalf("annotation %q, lastHandledReconcileAt %q", v, acme.Status.LastHandledReconcileAt)
	}
	if !strings.Contains(stdout, "sales") || !strings.Contains(stdout, "acme") || !strings.Contains(stdout, "True") {
		t.Fatalf("stdout:\n%s", stdout)
	}

	// One Customer that cannot be Ready (its email is taken, adoption
	// Never) makes --all exit 1, after its pass.
	s.Put(operatorKey, scriptlock.Customer{FirstName: "X", LastName: "Y", Email: "taken@example.com"})
	taken := mk("taken", "taken@example.com")
	waitFor(t, "taken in Conflict", func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(taken), taken); err != nil {
			return err
		}
		if cond := meta.FindStatusCondition(taken.Status.Conditions, v1alpha1.ConditionReady); cond == nil || cond.Reason != v1alpha1.ReasonConflict {
			return fmt.Errorf("conditions %+v", taken.Status.Conditions)
		}
		return nil
	})
	// A paused Customer handles no request: reported as such, not waited
	// for (the timeout is longer than the test may run).
	paused := &v1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sales", Name: "paused", Annotations: map[string]string{v1alpha1.PausedAnnotation: "true"}},
		Spec:       v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: "paused@example.com"},
	}
	if err := c.Create(ctx, paused); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err = runCmd(t, d, "sync", "--all", "--timeout", "1h", "--kubeconfig", kubeconfig, "-n", "sales")
	checkExit(t, err, 1)
	if !strings.Contains(stderr, "2 of 3 Customers are not Ready") || !strings.Contains(stdout, v1alpha1.ReasonConflict) || !strings.Contains(stdout, "no: paused") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	for _, cu := range []*v1alpha1.Customer{acme, taken} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(cu), cu); err != nil {
			t.Fatal(err)
		}
		if v := cu.Annotations[v1alpha1.ReconcileRequestAnnotation]; cu.Status.LastHandledReconcileAt != v {
			t.Fatalf("%s: printed before its request %q was handled (%q)", cu.Name, v, cu.Status.LastHandledReconcileAt)
		}
	}

	if _, _, err := runCmd(t, d, "sync", "--kubeconfig", kubeconfig, "-n", "sales"); err == nil || !strings.Contains(err.Error(), "--all") {
		t.Fatalf("sync without a NAME or --all: %v", err)
	}
}

// TestApproveDeletionListsThenReleasesExactlyThat runs the real operator
// with a deletion budget of one: of four Customers deleted at once, three
// are held. approve-deletion lists them with their UIDs and records and
// changes nothing without --yes; --all --yes without the reviewed --uids
// approves nothing; with a NAME and --yes it releases that one only; with
// --uids only those; with --namespace-wide it annotates the namespace
// with a time, which releases the rest. The approvals name the deletion:
// the Customer's deletionTimestamp, a time on the namespace.
func TestApproveDeletionListsThenReleasesExactlyThat(t *testing.T) { //nolint:gocyclo // one history, checked step by step
	cfg, c, kubeconfig := startCluster(t)
	s := startOperator(t, cfg, func(r *controllers.CustomerReconciler) {
		r.DeletionBudget, r.DeletionBudgetWindow, r.BrakeNamespace = 1, time.Hour, "default"
	})
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sales"}}); err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b", "c", "d"}
	for _, n := range names {
		cu := &v1alpha1.Customer{
			ObjectMeta: metav1.ObjectMeta{Namespace: "sales", Name: n},
			Spec:       v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: n + "@example.com"},
		}
		if err := c.Create(ctx, cu); err != nil {
			t.Fatal(err)
		}
		waitFor(t, n+" Ready", func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(cu), cu); err != nil {
				return err
			}
			if !meta.IsStatusConditionTrue(cu.Status.Conditions, v1alpha1.ConditionReady) {
				return fmt.Errorf("conditions %+v", cu.Status.Conditions)
			}
			return nil
		})
	}
	if err := c.DeleteAllOf(ctx, &v1alpha1.Customer{}, client.InNamespace("sales")); err != nil {
		t.Fatal(err)
	}
	// fates returns the held Customers once the others are gone.
	fates := func(gone int) []string {
		t.Helper()
		var heldNow []string
		waitFor(t, fmt.Sprintf("%d gone, the rest held", gone), func() error {
			heldNow = nil
			n := 0
			for _, name := range names {
				cu := &v1alpha1.Customer{}
				err := c.Get(ctx, client.ObjectKey{Namespace: "sales", Name: name}, cu)
				switch {
				case client.IgnoreNotFound(err) == nil && err != nil:
					n++
				case err != nil:
					return err
				case held(cu):
					heldNow = append(heldNow, name)
				}
			}
			if n != gone || len(heldNow) != len(names)-gone {
				return fmt.Errorf("%d gone, held %v", n, heldNow)
			}
			return nil
		})
		return heldNow
	}
	heldNow := fates(1)
	records := len(s.Records(operatorKey))

	d := defaultDeps()
	stdout, _, err := runCmd(t, d, "approve-deletion", "--all", "--kubeconfig", kubeconfig, "-n", "sales")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range heldNow {
		if !strings.Contains(stdout, " "+name+" ") || !strings.Contains(stdout, name+"@example.com") {
			t.Errorf("the listing lacks %s:\n%s", name, stdout)
		}
	}
	if !strings.Contains(stdout, "Nothing was changed") {
		t.Errorf("without --yes it must say nothing changed:\n%s", stdout)
	}
	time.Sleep(2 * time.Second) // two backoffs of the held ones: nothing may go
	fates(1)
	if n := len(s.Records(operatorKey)); n != records {
		t.Fatalf("a listing without --yes deleted %d records", records-n)
	}

	uidOf := map[string]string{}
	for _, name := range heldNow {
		cu := &v1alpha1.Customer{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "sales", Name: name}, cu); err != nil {
			t.Fatal(err)
		}
		uidOf[name] = string(cu.UID)
		if !strings.Contains(stdout, string(cu.UID)) {
			t.Errorf("the listing lacks the UID of %s:\n%s", name, stdout)
		}
	}
	if !strings.Contains(stdout, "kubectl scriptlock approve-deletion --all -n sales --yes --uids=") {
		t.Errorf("the listing does not end with the command that approves what it showed:\n%s", stdout)
	}

	// --all --yes re-lists: without the reviewed UIDs it approves nothing.
	if _, _, err := runCmd(t, d, "approve-deletion", "--all", "--yes", "--kubeconfig", kubeconfig, "-n", "sales"); err == nil ||
		!strings.Contains(err.Error(), "--uids") {
		t.Fatalf("--all --yes without --uids: %v", err)
	}
	time.Sleep(2 * time.Second) // two backoffs of the held ones: nothing may go
	fates(1)

	if _, _, err := runCmd(t, d, "approve-deletion", heldNow[0], "--yes", "--kubeconfig", kubeconfig, "-n", "sales"); err != nil {
		t.Fatal(err)
	}
	rest := fates(2)
	if len(rest) != 2 || rest[0] != heldNow[1] || rest[1] != heldNow[2] {
		t.Fatalf("approving %s released %v", heldNow[0], rest)
	}

	if _, _, err := runCmd(t, d, "approve-deletion", "--all", "--yes", "--uids="+uidOf[heldNow[1]], "--kubeconfig", kubeconfig, "-n", "sales"); err != nil {
		t.Fatal(err)
	}
	rest = fates(3)
	if len(rest) != 1 || rest[0] != heldNow[2] {
		t.Fatalf("approving the UID of %s released %v", heldNow[1], rest)
	}

	stdout, _, err = runCmd(t, d, "approve-deletion", "--all", "--namespace-wide", "--yes", "--uids="+uidOf[heldNow[2]], "--kubeconfig", kubeconfig, "-n", "sales")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "namespace/sales annotated") || !strings.Contains(stdout, "approve each Customer") {
		t.Errorf("stdout:\n%s", stdout)
	}
	fates(4)
	if n := len(s.Records(operatorKey)); n != 0 {
		t.Fatalf("%d records left", n)
	}
	ns := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: "sales"}, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339, ns.Annotations[v1alpha1.ApproveDeletionAnnotation]); err != nil {
		t.Errorf("the namespace's approval is not a time: %v", err)
	}
}
