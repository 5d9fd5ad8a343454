package controllers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/clock"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

func TestClassifyDecidesReasonStalledAndWait(t *testing.T) {
	answered := func(op string, code int, retryAfter time.Duration) error {
		return fmt.Errorf("wrapped: %w", &scriptlock.Error{Op: op, StatusCode: code, RetryAfter: retryAfter})
	}
	cases := []struct {
		name       string
		err        error
		reason     string
		stalled    bool
		retryAfter time.Duration
	}{
		{"a refused key needs a person", answered("list", 401, 0), v1alpha1.ReasonUnauthorized, true, 0},
		{"a forbidden key needs a person", answered("get", 403, 0), v1alpha1.ReasonUnauthorized, true, 0},
		{"a 400 on a PUT is stalled, not reconciling", answered("update", 400, 0), v1alpha1.ReasonAPIError, true, 0},
		{"a 4xx carrying Retry-After is still stalled, its wait ignored", answered("update", 422, 3*time.Second), v1alpha1.ReasonAPIError, true, 0},
		{"a 401 carrying Retry-After is still stalled", answered("create", 401, time.Second), v1alpha1.ReasonUnauthorized, true, 0},
		{"a 5xx is transient", answered("get", 502, 0), v1alpha1.ReasonAPIError, false, 0},
		{"a 503 with Retry-After waits for it", answered("create", 503, 2*time.Second), v1alpha1.ReasonAPIError, false, 2 * time.Second},
		{"a 429 is rate limiting, transient", answered("create", 429, 0), v1alpha1.ReasonRateLimited, false, 0},
		{"a 429 with Retry-After waits for it", answered("create", 429, 4*time.Second), v1alpha1.ReasonRateLimited, false, 4 * time.Second},
		{"a call held back by the client waits for the hold", &scriptlock.Error{Op: "create", RetryAfter: time.Second, Err: scriptlock.ErrThrottled}, v1alpha1.ReasonRateLimited, false, time.Second},
		{"a call held back by the operator's own in-flight cap says nothing (its wait grows from 250 ms: retryBackoff)", &scriptlock.Error{Op: "create", Err: scriptlock.ErrThrottled}, "", false, 0},
		{"a call past the rate limit waits for its turn and says nothing", &scriptlock.Error{Op: "create", RetryAfter: 700 * time.Millisecond, Err: fmt.Errorf("%w: %w", scriptlock.ErrThrottled, scriptlock.ErrOverRate)}, "", false, 700 * time.Millisecond},
		{"a wait for the operator's own listing says nothing", &pending{retryAfter: throttledRetry, msg: "listing under way"}, "", false, throttledRetry},
		{"no answer is transient", &scriptlock.Error{Op: "get", Err: scriptlock.ErrTimeout}, v1alpha1.ReasonAPIError, false, 0},
		{"an unusable id is stalled with its own reason", &scriptlock.Error{Op: "get", Err: fmt.Errorf("%w: bad", scriptlock.ErrInvalidArgument)}, v1alpha1.ReasonInvalidID, true, 0},
		{"a body that cannot be read is stalled", &scriptlock.Error{Op: "get", StatusCode: 302, Err: scriptlock.ErrMalformedBody}, v1alpha1.ReasonAPIError, true, 0},
		{"bad credentials need a person", fmt.Errorf("%w: Secret missing", errCredentials), v1alpha1.ReasonInvalidCredentials, true, 0},
		{"an ownership problem keeps its reason", stuckf(v1alpha1.ReasonAccountChanged, "moved"), v1alpha1.ReasonAccountChanged, true, 0},
		{"a state that resolves by itself is transient", pendingf(v1alpha1.ReasonAPIError, "not listed yet"), v1alpha1.ReasonAPIError, false, 0},
		{"a create whose outcome is unknown is transient, never stalled", &pending{reason: v1alpha1.ReasonAPIError, retryAfter: time.Second, msg: "answered 202"}, v1alpha1.ReasonAPIError, false, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, ok := classify(tc.err)
			if !ok {
				t.Fatal("not classified as a ScriptLock failure")
			}
			if o.reason != tc.reason || o.stalled != tc.stalled || o.retryAfter != tc.retryAfter {
				t.Fatalf("got %+v, want reason %s stalled %v retryAfter %s", o, tc.reason, tc.stalled, tc.retryAfter)
			}
		})
	}
	t.Run("a Kubernetes API error leaves the conditions alone", func(t *testing.T) {
		err := apierrors.NewConflict(schema.GroupResource{Resource: "customers"}, "x", errors.New("stale"))
		if _, ok := classify(err); ok {
			t.Fatal("a Kubernetes API error was classified as a ScriptLock failure")
		}
	})
}

func TestStalledAndReconcilingNeverDisagree(t *testing.T) {
	c := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
	check := func(wantStalled, wantReconciling bool) {
		t.Helper()
		s := meta.IsStatusConditionTrue(c.Status.Conditions, v1alpha1.ConditionStalled)
		r := meta.IsStatusConditionTrue(c.Status.Conditions, v1alpha1.ConditionReconciling)
		if s != wantStalled || r != wantReconciling {
			t.Fatalf("Stalled=%v Reconciling=%v, want %v %v: %+v", s, r, wantStalled, wantReconciling, c.Status.Conditions)
		}
	}
	setReady(c, metav1.ConditionFalse, v1alpha1.ReasonAPIError, "400", true)
	check(true, false)
	setReady(c, metav1.ConditionFalse, v1alpha1.ReasonAPIError, "502", false)
	check(false, true)
	setReady(c, metav1.ConditionTrue, v1alpha1.ReasonAvailable, "ok", false)
	check(false, false)
	if cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady); cond.ObservedGeneration != 3 {
		t.Fatalf("Ready observedGeneration %d, want 3", cond.ObservedGeneration)
	}
}

// A pass past the account's rate has a turn in the limiter's line: it
// comes back exactly then, ahead of Customers not yet in the line; a pass
// held back by the in-flight cap waits a jittered while at the usual
// priority.
func TestATurnInTheRateLineComesBackOnTimeAndFirst(t *testing.T) {
	accounts := newAccountRegistry(clock.RealClock{})
	r := &CustomerReconciler{memory: newCustomerMemory(accounts), Clock: clock.RealClock{},
		retries: newRetryBackoff(backoffPolicy{Min: transientBackoffMin, Max: transientBackoffMax})}
	c := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c1", Generation: 1}}
	turn := &scriptlock.Error{Op: "create", RetryAfter: 1700 * time.Millisecond,
		Err: fmt.Errorf("%w: %w: its turn comes in 1.7s", scriptlock.ErrThrottled, scriptlock.ErrOverRate)}
	for range 5 {
		res, err := r.result(context.Background(), c, fmt.Errorf("creating: %w", turn))
		if err != nil {
			t.Fatal(err)
		}
		if res.RequeueAfter != 1700*time.Millisecond || res.Priority == nil || *res.Priority != turnPriority {
			t.Fatalf("a turn 1.7 s away: requeue after %s, priority %v; want exactly 1.7s at %d", res.RequeueAfter, res.Priority, turnPriority)
		}
	}
	full := &scriptlock.Error{Op: "create", Err: fmt.Errorf("%w: too many requests in flight", scriptlock.ErrThrottled)}
	res, err := r.result(context.Background(), c, full)
	if err != nil {
		t.Fatal(err)
	}
	if res.Priority != nil || res.RequeueAfter < selfWaitMin || res.RequeueAfter > selfWaitMax*3/2 {
		t.Fatalf("held back by the in-flight cap: requeue after %s, priority %v", res.RequeueAfter, res.Priority)
	}
}
