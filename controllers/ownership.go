package controllers

import (
	"context"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// Field indexes over Customers, so that finding another Customer that claims
// the same record or email is a lookup in the cache, not a list of everything.
const (
	// indexEmail holds spec.email in lower case: ScriptLock compares emails
	// case-insensitively.
	indexEmail = "spec.email.lower"
	// indexRecord holds the record ids a Customer claims: status.customerID
	// and spec.customerID.
	indexRecord = "record.id"
)

func emailIndex(o client.Object) []string {
	return []string{strings.ToLower(o.(*v1alpha1.Customer).Spec.Email)}
}

func recordIndex(o client.Object) []string {
	c := o.(*v1alpha1.Customer)
	var ids []string
	for _, id := range []string{c.Status.CustomerID, c.Spec.CustomerID} {
		if id != "" && (len(ids) == 0 || ids[0] != id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// claimant returns another Customer of the same account that has a better
// claim than c on c's email or on the record id (if not empty): one that
// already manages a record, or failing that the older one. Nil means c may
// go ahead.
func (r *CustomerReconciler) claimant(ctx context.Context, c *v1alpha1.Customer, cl *scriptlock.Client, id string) (*v1alpha1.Customer, error) {
	var candidates []v1alpha1.Customer
	lookups := map[string]string{indexEmail: strings.ToLower(c.Spec.Email)}
	if id != "" {
		lookups[indexRecord] = id
	}
	for field, value := range lookups {
		list := &v1alpha1.CustomerList{}
		if err := r.List(ctx, list, client.MatchingFields{field: value}); err != nil {
			return nil, fmt.Errorf("looking up Customers by %s: %w", field, err)
		}
		candidates = append(candidates, list.Items...)
	}
	for i := range candidates {
		other := &candidates[i]
		if other.UID == c.UID || !claimsBefore(other, c) {
			continue
		}
		same, err := r.sameAccount(ctx, c, other, cl)
		if err != nil {
			return nil, err
		}
		if same {
			return other, nil
		}
	}
	return nil, nil
}

// claimsBefore says whether other's claim beats c's: a Customer that
// manages a record keeps it; then one whose create is under way (it holds
// the create-pending marker); otherwise the older Customer wins, then the
// smaller namespace/name, so that both sides agree.
func claimsBefore(other, c *v1alpha1.Customer) bool {
	if (other.Status.CustomerID != "") != (c.Status.CustomerID != "") {
		return other.Status.CustomerID != ""
	}
	if creating(other) != creating(c) {
		return creating(other)
	}
	if !other.CreationTimestamp.Equal(&c.CreationTimestamp) {
		return other.CreationTimestamp.Before(&c.CreationTimestamp)
	}
	return other.Namespace+"/"+other.Name < c.Namespace+"/"+c.Name
}

// sameAccount says whether other uses the account of c (whose client is cl).
func (r *CustomerReconciler) sameAccount(ctx context.Context, c, other *v1alpha1.Customer, cl *scriptlock.Client) (bool, error) {
	ref, oref := c.Spec.CredentialsSecretRef, other.Spec.CredentialsSecretRef
	if ref == nil && oref == nil || ref != nil && oref != nil && c.Namespace == other.Namespace && ref.Name == oref.Name {
		return true, nil
	}
	ocl, err := r.account(ctx, other)
	if err != nil {
		// A Customer whose account cannot be resolved cannot act on any
		// record, so it claims nothing.
		return false, client.IgnoreNotFound(nilIfCredentials(err))
	}
	return ocl.Account() == cl.Account(), nil
}

func nilIfCredentials(err error) error {
	if isCredentials(err) {
		return nil
	}
	return err
}

// claimMessage explains a Conflict between c and the Customer other.
func claimMessage(c, other *v1alpha1.Customer) string {
	what := fmt.Sprintf("email %q", c.Spec.Email)
	if other.Status.CustomerID != "" && (other.Status.CustomerID == c.Spec.CustomerID || strings.EqualFold(other.Spec.Email, c.Spec.Email)) {
		what = fmt.Sprintf("ScriptLock customer %s", other.Status.CustomerID)
	}
	return fmt.Sprintf("Customer %s/%s already manages %s; only one Customer may manage a record", other.Namespace, other.Name, what)
}

// findByEmail lists the account and returns the record with email, compared
// case-insensitively as ScriptLock does.
func findByEmail(ctx context.Context, cl *scriptlock.Client, email string) (scriptlock.Customer, bool, error) {
	recs, err := cl.List(ctx)
	if err != nil {
		return scriptlock.Customer{}, false, err
	}
	for _, rec := range recs {
		if strings.EqualFold(rec.Email, email) {
			return rec, true, nil
		}
	}
	return scriptlock.Customer{}, false, nil
}

// creating says whether c has a create under way whose outcome is unknown.
func creating(c *v1alpha1.Customer) bool {
	_, pending := c.Annotations[v1alpha1.CreatePendingAnnotation]
	return pending && c.Status.CustomerID == ""
}
