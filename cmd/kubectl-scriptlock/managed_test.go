package main

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

func cluster(ns, name, specID, statusID, email string) *v1alpha1.Customer {
	return &v1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: email, CustomerID: specID},
		Status:     v1alpha1.CustomerStatus{CustomerID: statusID},
	}
}

func TestManagedBy(t *testing.T) {
	customers := []v1alpha1.Customer{
		*cluster("sales", "by-spec", "7", "", "seven@example.com"),
		*cluster("ops", "by-status", "", "8", "eight@example.com"),
		*cluster("default", "by-email", "", "", "Nine@Example.COM"),
		*cluster("default", "pending", "", "", ""),
	}
	idx := newManagedIndex(customers, "default")
	for _, tc := range []struct {
		name string
		rec  scriptlock.Customer
		want string // substring of the reason; "" means not managed
	}{
		{"a record named by spec.customerID is managed", rec("7", "other@example.com"), "sales/by-spec (spec.customerID 7)"},
		{"a record in a status.customerID is managed", rec("8", "other@example.com"), "ops/by-status (status.customerID 8)"},
		{"a record with the same email in another case is managed", rec("9", "nine@example.com"), "default/by-email (same email)"},
		{"the id match is reported before the email match", rec("7", "nine@example.com"), "spec.customerID"},
		{"a record nobody claims is not managed", rec("10", "ten@example.com"), ""},
		{"an empty email does not match a Customer without one", rec("11", ""), ""},
		{"an id that only appears as an email local part is not managed", rec("seven", "x@example.com"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, ok := idx.managedBy(tc.rec)
			if ok != (tc.want != "") || !strings.Contains(reason, tc.want) {
				t.Errorf("managedBy = %q, %v; want a reason containing %q", reason, ok, tc.want)
			}
		})
	}
}

func TestManagedIndexReservesNamesOfTheTargetNamespaceOnly(t *testing.T) {
	idx := newManagedIndex([]v1alpha1.Customer{
		*cluster("default", "a", "", "", "a@x.io"),
		*cluster("sales", "b", "", "", "b@x.io"),
	}, "default")
	if !idx.names["a"] || idx.names["b"] {
		t.Errorf("reserved names %v, want only a", idx.names)
	}
}

func newFakeClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
}

func TestReaderListerListsEveryNamespace(t *testing.T) {
	c := newFakeClient(t, cluster("a", "x", "1", "", "x@x.io"), cluster("b", "y", "", "2", "y@x.io"))
	got, err := readerLister{c}.ListCustomers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("listed %d Customers, want 2", len(got))
	}
	idx := newManagedIndex(got, "a")
	if _, ok := idx.managedBy(rec("2", "z@x.io")); !ok {
		t.Error("status.customerID read through the client is not seen")
	}
}

func TestReaderListerReportsAMissingCRD(t *testing.T) {
	// A scheme without the Customer type fails like a cluster without the CRD.
	c := fake.NewClientBuilder().WithScheme(runtime.NewScheme()).Build()
	_, err := readerLister{c}.ListCustomers(context.Background())
	if err == nil {
		t.Fatal("listing without the Customer type succeeded")
	}
	if !strings.Contains(err.Error(), "listing Customers") {
		t.Errorf("error %v does not say what failed", err)
	}
}
