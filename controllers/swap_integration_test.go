package controllers_test

// Emails that move between Customers in one commit: ScriptLock keeps
// emails unique, so each PUT is refused while the other Customer's record
// still has the email. The condition names the other Customer and the way
// out, instead of a silent 409 loop; nothing is written to ScriptLock that
// the spec did not ask for (no temporary email).

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

func TestEmailsSwappedBetweenCustomersAreNamed(t *testing.T) {
	for _, n := range []int{
		2, // a swap
		3, // of the same kind: a cycle of three
	} {
		t.Run(fmt.Sprintf("a cycle of %d", n), func(t *testing.T) {
			e := newEnv(t, managerOpts{})
			names := make([]string, n)
			for i := range n {
				names[i] = fmt.Sprintf("c%d", i)
				e.waitReadyAfterCreate(names[i], names[i]+"@example.com")
			}
			puts := e.calls(http.MethodPut, routeOne)
			// Each takes the next one's email, in one commit.
			for i := range n {
				next := names[(i+1)%n]
				e.update(names[i], func(c *v1alpha1.Customer) { c.Spec.Email = next + "@example.com" })
			}
			for i := range n {
				next := names[(i+1)%n]
				got := e.waitReason(names[i], metav1.ConditionFalse, v1alpha1.ReasonConflict, patience)
				msg := e.ready(names[i]).Message
				if !strings.Contains(msg, e.ns+"/"+next) || !strings.Contains(msg, "unique") {
					t.Fatalf("%s: the message must name the Customer whose record has the email (%s) and why: %q", got.Name, next, msg)
				}
			}
			for _, rec := range e.records() {
				if !strings.HasSuffix(rec.Email, "@example.com") || !strings.HasPrefix(rec.Email, "c") {
					t.Fatalf("a temporary email was written to ScriptLock: %+v", rec)
				}
			}
			if extra := e.calls(http.MethodPut, routeOne) - puts; extra > 2*n {
				t.Fatalf("%d PUTs for %d Customers waiting for a person: a retry loop", extra, n)
			}
		})
	}
}
