package controllers_test

// The plan beside the running operator, on the same API server and
// ScriptLock: where the plan cannot read what the operator still can.

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// A teardown deletes a Customer and its credentials Secret together, the
// Secret first. The plan cannot read the credentials, so it cannot read the
// record; but the running operator still holds the account's client from
// its earlier passes and DELETEs the record with it. The plan says so: a
// delete that may revoke licenses (CredentialsGone), not an error.
func TestThePlanSaysADeletionWithoutItsSecretMayRevoke(t *testing.T) {
	e := newEnv(t, managerOpts{})
	e.secret(e.ns, "acct", map[string]string{controllers.SecretKeyAPIKey: canaryKey, controllers.SecretKeyURL: e.srv.URL})
	c := e.customerWith("acme", "gone-secret@example.com", "acct")
	e.create(c)
	c = e.waitReady("acme")
	id := c.Status.CustomerID
	if err := e.k8s.Delete(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "acct"}}); err != nil {
		t.Fatal(err)
	}

	deleting := c.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	pool := scriptlock.NewPool(scriptlock.Options{BaseURL: e.srv.URL, Timeout: 5 * time.Second, ReadOnly: true}, nil)
	items, err := controllers.Plan(context.Background(), controllers.PlanInput{
		Customers: []v1alpha1.Customer{*deleting}, Keys: []client.ObjectKey{client.ObjectKeyFromObject(c)},
		Secrets: e.k8s, Accounts: pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	it := items[0]
	if it.Action != controllers.PlanDelete || !it.RevokesLicenses || it.Reason != controllers.PlanReasonCredentialsGone || it.RecordID != id ||
		!strings.Contains(it.Message, "may revoke") {
		t.Fatalf("the plan's row: %+v", it)
	}

	deletes := e.calls(http.MethodDelete, routeOne)
	e.deleteAndWait("acme")
	if n := e.calls(http.MethodDelete, routeOne) - deletes; n != 1 {
		t.Fatalf("%d DELETEs by the operator, want 1 (what the plan warned of)", n)
	}
	if _, ok := e.sim.Record(canaryKey, id); ok {
		t.Fatalf("record %s is still there", id)
	}
}
