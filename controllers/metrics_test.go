package controllers_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
)

func customerWithReady(ns, name string, conds ...metav1.Condition) *v1alpha1.Customer {
	return &v1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.CustomerSpec{FirstName: "A", LastName: "B", Email: name + "@example.com"},
		Status:     v1alpha1.CustomerStatus{Conditions: conds},
	}
}

func readyCond(status metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: "m"}
}

func TestCustomerCollectorCountsCustomersByReadyStatusAndReason(t *testing.T) {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	other := metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: "Conflict", Message: "m"}
	r := fake.NewClientBuilder().WithScheme(s).WithObjects(
		customerWithReady("a", "ready-1", readyCond(metav1.ConditionTrue, v1alpha1.ReasonAvailable)),
		customerWithReady("b", "ready-2", other, readyCond(metav1.ConditionTrue, v1alpha1.ReasonAvailable)),
		customerWithReady("a", "conflict", readyCond(metav1.ConditionFalse, v1alpha1.ReasonConflict), other),
		customerWithReady("a", "blocked", readyCond(metav1.ConditionFalse, v1alpha1.ReasonDeletionBlocked)),
		customerWithReady("c", "new"),                 // no condition at all yet
		customerWithReady("c", "only-stalled", other), // conditions, but no Ready
	).Build()

	want := `
# HELP scriptlock_customers Customers by the status and reason of their Ready condition (ready="Unknown", reason="NotObserved" before the first reconcile).
# TYPE scriptlock_customers gauge
scriptlock_customers{ready="False",reason="Conflict"} 1
scriptlock_customers{ready="False",reason="DeletionBlocked"} 1
scriptlock_customers{ready="True",reason="Available"} 2
scriptlock_customers{ready="Unknown",reason="NotObserved"} 2
# HELP scriptlock_customers_list_errors_total Scrapes at which the Customers could not be listed from the cache, so scriptlock_customers was left out.
# TYPE scriptlock_customers_list_errors_total counter
scriptlock_customers_list_errors_total 0
`
	if err := testutil.CollectAndCompare(controllers.NewCustomerCollector(r), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestCustomerCollectorRegistersAndReportsNothingWithoutCustomers(t *testing.T) {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(controllers.NewCustomerCollector(fake.NewClientBuilder().WithScheme(s).Build())); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "scriptlock_customers"); err != nil || n != 0 {
		t.Fatalf("got %d series, error %v; want none", n, err)
	}
}

// failingReader fails every List, as a cache that cannot sync does.
type failingReader struct{ client.Reader }

func (failingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("cache not synced")
}

func TestCustomerCollectorListErrorLeavesTheGaugeOutWithoutFailingTheScrape(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(controllers.NewCustomerCollector(failingReader{})); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("a failed listing must not fail the scrape: %v", err)
		}
	}
	want := `
# HELP scriptlock_customers_list_errors_total Scrapes at which the Customers could not be listed from the cache, so scriptlock_customers was left out.
# TYPE scriptlock_customers_list_errors_total counter
scriptlock_customers_list_errors_total 3
`
	// Two scrapes above, and the one GatherAndCompare makes.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
