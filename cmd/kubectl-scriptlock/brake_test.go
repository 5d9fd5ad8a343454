package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
)

// TestTheBrakeHoldsACRDRemoval removes the Customer CRD, which deletes
// every Customer of the cluster at once (the API server's own cleanup; the
// finalizers keep each one until the operator has dealt with it), with a
// deletion budget of two: two records are deleted, the other three
// deletions are held in both namespaces and the CRD stays Terminating,
// until approve-deletion -A --namespace-wide --yes --uids=(the listing's)
// lets them go; then the CRD is gone.
func TestTheBrakeHoldsACRDRemoval(t *testing.T) { //nolint:gocyclo // one history, checked step by step
	cfg, c, kubeconfig := startCluster(t)
	s := startOperator(t, cfg, func(r *controllers.CustomerReconciler) {
		r.DeletionBudget, r.DeletionBudgetWindow, r.BrakeNamespace = 2, time.Hour, "default"
	})
	ctx := context.Background()
	type nn struct{ ns, name string }
	var all []nn
	for _, ns := range []string{"sales", "ops"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, x := range []nn{{"sales", "a"}, {"sales", "b"}, {"sales", "c"}, {"ops", "d"}, {"ops", "e"}} {
		cu := &v1alpha1.Customer{
			ObjectMeta: metav1.ObjectMeta{Namespace: x.ns, Name: x.name},
			Spec:       v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: fmt.Sprintf("%s%d@example.com", x.name, i)},
		}
		if err := c.Create(ctx, cu); err != nil {
			t.Fatal(err)
		}
		waitFor(t, x.name+" Ready", func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(cu), cu); err != nil {
				return err
			}
			if !meta.IsStatusConditionTrue(cu.Status.Conditions, v1alpha1.ConditionReady) {
				return fmt.Errorf("conditions %+v", cu.Status.Conditions)
			}
			return nil
		})
		all = append(all, x)
	}

	scheme := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ext, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "customers.licensing.scriptlock.com"}}
	if err := ext.Delete(ctx, crd); err != nil {
		t.Fatal(err)
	}
	fates := func(gone int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d gone, the rest held", gone), func() error {
			n, h := 0, 0
			for _, x := range all {
				cu := &v1alpha1.Customer{}
				err := c.Get(ctx, client.ObjectKey{Namespace: x.ns, Name: x.name}, cu)
				switch {
				case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
					n++
				case err != nil:
					return err
				case held(cu):
					h++
				}
			}
			if n != gone || h != len(all)-gone {
				return fmt.Errorf("%d gone, %d held", n, h)
			}
			return nil
		})
	}
	fates(2)
	if n := len(s.Records(operatorKey)); n != 3 {
		t.Fatalf("%d records left, want 3", n)
	}
	if err := ext.Get(ctx, client.ObjectKeyFromObject(crd), crd); err != nil || crd.DeletionTimestamp.IsZero() {
		t.Fatalf("the CRD should stay Terminating while deletions are held: %v", err)
	}

	listing, _, err := runCmd(t, defaultDeps(), "approve-deletion", "-A", "--namespace-wide", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("approve-deletion: %v\n%s", err, listing)
	}
	_, uids, ok := strings.Cut(listing, "kubectl scriptlock approve-deletion -A --namespace-wide --yes --uids=")
	if !ok || strings.Count(uids, ",") != 2 {
		t.Fatalf("the listing does not end with the command that approves the three held:\n%s", listing)
	}
	stdout, _, err := runCmd(t, defaultDeps(), "approve-deletion", "-A", "--namespace-wide", "--yes", "--uids="+strings.TrimSpace(uids), "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("approve-deletion: %v\n%s", err, stdout)
	}
	waitFor(t, "the CRD gone", func() error {
		if err := ext.Get(ctx, client.ObjectKeyFromObject(crd), crd); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %w", err)
		}
		return nil
	})
	if n := len(s.Records(operatorKey)); n != 0 {
		t.Fatalf("%d records left after approving", n)
	}
}
