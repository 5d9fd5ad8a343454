package controllers_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
)

// A Customer bound to a record in one account whose credentials are then
// changed to credentials that cannot be used (a Secret whose url carries
// another account's key, a Secret that does not exist), and then deleted
// with deletionPolicy: Delete. The key it last used belongs to the old
// account, and a change of credentials is no proof there (README, the
// credentials-change row): the deletion must not DELETE the record with
// the old key. It reports InvalidCredentials and keeps its finalizer
// (explorer seed 1100978: `point c0 other` after `urlkey`, then
// `massdelete`). Only a Secret deleted first, the very Secret the key came
// from, lets a deletion use the key it last used
// (TestThePlanSaysADeletionWithoutItsSecretMayRevoke).
func TestADeletionAfterTheCredentialsChangedToUnusableOnesDeletesNothing(t *testing.T) {
	const otherKey = "other-account-key"
	for _, tt := range []struct {
		name   string
		secret string // "" for the default key
		point  func(e *env)
	}{
		{"from the default key to a Secret whose url holds another key", "", func(e *env) {
			e.secret(e.ns, "other", map[string]string{controllers.SecretKeyAPIKey: otherKey,
				controllers.SecretKeyURL: strings.Replace(e.srv.URL, "://", "://"+otherKey+"@", 1)})
			e.update("acme", func(c *v1alpha1.Customer) { c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "other"} })
		}},
		{"from the default key to a Secret that does not exist", "", func(e *env) {
			e.update("acme", func(c *v1alpha1.Customer) { c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "missing"} })
		}},
		{"from one Secret to another that does not exist", "acct", func(e *env) {
			e.update("acme", func(c *v1alpha1.Customer) { c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "missing"} })
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, managerOpts{})
			e.sim.AddAccount(otherKey)
			c := e.customer("acme", "changed-creds@example.com")
			if tt.secret != "" {
				e.secret(e.ns, tt.secret, map[string]string{controllers.SecretKeyAPIKey: canaryKey, controllers.SecretKeyURL: e.srv.URL})
				c = e.customerWith("acme", "changed-creds@example.com", tt.secret)
			}
			c.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
			e.create(c)
			id := e.waitReady("acme").Status.CustomerID
			tt.point(e)
			e.waitReason("acme", metav1.ConditionFalse, v1alpha1.ReasonInvalidCredentials, patience)

			deletes := e.calls(http.MethodDelete, routeOne)
			if err := e.k8s.Delete(e.ctx, e.get("acme")); err != nil {
				t.Fatal(err)
			}
			e.eventually(patience, "the deletion's pass", func() error {
				if e.get("acme").DeletionTimestamp.IsZero() {
					return fmt.Errorf("no deletionTimestamp yet")
				}
				return nil
			})
			// Give the deletion time for its passes (backoff 1 s, 2 s, …).
			time.Sleep(4 * time.Second)
			if n := e.calls(http.MethodDelete, routeOne) - deletes; n != 0 {
				t.Fatalf("%d DELETEs with the key of the account the credentials no longer name, want none", n)
			}
			if _, ok := e.sim.Record(canaryKey, id); !ok {
				t.Fatalf("record %s was deleted", id)
			}
			got := e.get("acme")
			if r := e.ready("acme"); r == nil || r.Reason != v1alpha1.ReasonInvalidCredentials || len(got.Finalizers) == 0 {
				t.Fatalf("want InvalidCredentials and the finalizer kept: %+v, finalizers %v", r, got.Finalizers)
			}
		})
	}
}
