package main

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// customerLister lists the Customers of every namespace of a cluster. It
// is an interface so that tests can give a fake.
type customerLister interface {
	ListCustomers(ctx context.Context) ([]v1alpha1.Customer, error)
}

// readerLister lists Customers with a controller-runtime client.
type readerLister struct{ client.Reader }

func (l readerLister) ListCustomers(ctx context.Context) ([]v1alpha1.Customer, error) {
	list := &v1alpha1.CustomerList{}
	if err := l.List(ctx, list); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("listing Customers: the Customer CRD is not installed in this cluster: %w", err)
		}
		return nil, fmt.Errorf("listing Customers in all namespaces: %w", err)
	}
	return list.Items, nil
}

// managedIndex says which ScriptLock records the cluster's Customers
// already manage, and which names are already used in the namespace the
// import writes to.
type managedIndex struct {
	byID    map[string]claim
	byEmail map[string]claim
	names   map[string]bool
}

// claim is a Customer that claims a record, and how.
type claim struct {
	customer types.NamespacedName
	field    string
}

// newManagedIndex indexes Customers the way the operator finds competing
// claims (controllers/claims.go): by status.customerID and spec.customerID,
// and by email in lower case. names collects the names used in namespace.
func newManagedIndex(customers []v1alpha1.Customer, namespace string) managedIndex {
	idx := managedIndex{byID: map[string]claim{}, byEmail: map[string]claim{}, names: map[string]bool{}}
	for i := range customers {
		c := &customers[i]
		key := types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
		add := func(m map[string]claim, k, field string) {
			if _, dup := m[k]; k != "" && !dup {
				m[k] = claim{customer: key, field: field}
			}
		}
		add(idx.byID, c.Status.CustomerID, "status.customerID")
		add(idx.byID, c.Spec.CustomerID, "spec.customerID")
		add(idx.byEmail, strings.ToLower(c.Spec.Email), "spec.email")
		if c.Namespace == namespace {
			idx.names[c.Name] = true
		}
	}
	return idx
}

// managedBy returns the Customer that already manages record r, with a
// reason for the user, or ok=false when none does. It does not consider
// which ScriptLock account a Customer uses: a Customer of another account
// with the same email also counts, which errs on the side of skipping.
func (idx managedIndex) managedBy(r scriptlock.Customer) (reason string, ok bool) {
	if c, found := idx.byID[r.ID]; found && r.ID != "" {
		return fmt.Sprintf("already managed by Customer %s (%s %s)", c.customer, c.field, r.ID), true
	}
	if c, found := idx.byEmail[strings.ToLower(r.Email)]; found && r.Email != "" {
		return fmt.Sprintf("already managed by Customer %s (same email)", c.customer), true
	}
	return "", false
}
