package controllers

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// stuck is a failure that retrying cannot fix: a person has to change
// something (the spec, a Secret, the record in ScriptLock). It carries the
// Ready reason to show.
type stuck struct {
	reason string
	msg    string
}

func (e *stuck) Error() string { return e.msg }

func stuckf(reason, format string, args ...any) error {
	return &stuck{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// pending is a state that resolves by itself, such as a create whose record
// ScriptLock does not list yet: retried with the transient backoff.
type pending struct {
	reason     string
	msg        string
	retryAfter time.Duration // 0: the transient backoff
	// wait is what a wait the operator imposes on itself (reason "")
	// waits for, the label of scriptlock_waits_total (waitKind).
	wait string
}

// The kinds of wait the operator imposes on itself: the label wait of
// scriptlock_waits_total.
const (
	waitRate         = "rate"        // a turn in the account's rate-limiter line
	waitInFlight     = "in_flight"   // the account's or host's cap on calls in flight
	waitListing      = "listing"     // a listing of the account under way
	waitRelist       = "relist"      // a listing that lacks a record a Customer holds (a lagging replica?)
	waitNewerCopy    = "newer_copy"  // the cached copy of the Customer is older than the API server's
	waitIndex        = "index"       // the claims index still filling after a start
	waitBrakeLease   = "brake_lease" // the deletion budget's Lease changed under this manager
	waitOtherPending = "other"       // any other
)

// waitKind is the kind of a wait the operator imposes on itself (classify
// gave it no reason).
func waitKind(err error) string {
	var pe *pending
	switch {
	case errors.Is(err, scriptlock.ErrOverRate):
		return waitRate
	case isThrottled(err):
		return waitInFlight
	case errors.As(err, &pe) && pe.wait != "":
		return pe.wait
	default:
		return waitOtherPending
	}
}

func (e *pending) Error() string { return e.msg }

func pendingf(reason, format string, args ...any) error {
	return &pending{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// isThrottled says whether err is the client holding a call back for the
// operator's own in-flight cap (no Retry-After: nothing says to wait long):
// a wait the operator imposes on itself, retried shortly by a Customer
// (classify) and by the drift detector alike.
func isThrottled(err error) bool {
	var se *scriptlock.Error
	return errors.As(err, &se) && errors.Is(err, scriptlock.ErrThrottled) && (se.RetryAfter <= 0 || errors.Is(err, scriptlock.ErrOverRate))
}

// throttledRetry is how soon a call the client held back for its account's
// requests in flight is tried again.
const throttledRetry = 250 * time.Millisecond

// turnPriority is the work-queue priority of a Customer coming back for its
// turn in its account's rate-limiter line: above the 0 of a new or changed
// Customer, so that in a storm the turns are taken on time and the
// account's rate is spent on them (controller-runtime's priority queue).
const turnPriority = 1

// outcome is what a failure means for the Customer: the Ready reason (empty
// for a wait the operator imposes on itself, which changes no condition), whether
// it is stalled (a person must act: Stalled=True and the permanent backoff)
// or transient (Reconciling=True and the exponential backoff), and how long
// ScriptLock or the client asked to wait at least.
type outcome struct {
	reason     string
	stalled    bool
	retryAfter time.Duration
}

// classify is the one place that decides what a failure means. ok is false
// for failures that say nothing about ScriptLock (Kubernetes API errors):
// the conditions are left alone and the workqueue retries.
func classify(err error) (o outcome, ok bool) {
	var (
		st *stuck
		pe *pending
		se *scriptlock.Error
	)
	switch {
	case errors.As(err, &st):
		return outcome{reason: st.reason, stalled: true}, true
	case errors.As(err, &pe):
		return outcome{reason: pe.reason, retryAfter: pe.retryAfter}, true
	case isCredentials(err):
		return outcome{reason: v1alpha1.ReasonInvalidCredentials, stalled: true}, true
	case !errors.As(err, &se):
		return outcome{}, false
	case scriptlock.IsUnauthorized(err):
		return outcome{reason: v1alpha1.ReasonUnauthorized, stalled: true}, true
	case errors.Is(err, scriptlock.ErrInvalidArgument):
		return outcome{reason: v1alpha1.ReasonInvalidID, stalled: true}, true
	case isThrottled(err):
		// Held back by the operator's own in-flight cap or rate limit:
		// nothing was sent and nothing is wrong; try again when its turn
		// comes (the rate limit) or shortly, saying nothing.
		return outcome{retryAfter: se.RetryAfter}, true
	case errors.Is(err, scriptlock.ErrThrottled):
		// The account or its host is held (Retry-After, or calls without
		// an answer): try again when the hold ends.
		return outcome{reason: v1alpha1.ReasonRateLimited, retryAfter: se.RetryAfter}, true
	case se.StatusCode == http.StatusTooManyRequests:
		return outcome{reason: v1alpha1.ReasonRateLimited, retryAfter: se.RetryAfter}, true
	case scriptlock.IsRetryable(err):
		// 5xx, 408, no answer: Retry-After counts only where retrying is
		// the answer at all, so a 4xx carrying one stays stalled below.
		return outcome{reason: v1alpha1.ReasonAPIError, retryAfter: se.RetryAfter}, true
	default:
		// ScriptLock answered and refused (a 4xx other than the above), or
		// answered something the client cannot read: the same call would
		// be refused again.
		return outcome{reason: v1alpha1.ReasonAPIError, stalled: true}, true
	}
}

// setReady sets Ready and the kstatus conditions that follow from it:
// Stalled=True for a failure that needs a person, Reconciling=True while
// the operator is still working, neither once Ready.
func setReady(c *v1alpha1.Customer, status metav1.ConditionStatus, reason, msg string, stalled bool) {
	set := func(t string, s metav1.ConditionStatus) {
		meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{
			Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: c.Generation,
		})
	}
	set(v1alpha1.ConditionReady, status)
	switch {
	case status == metav1.ConditionTrue:
		meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionStalled)
	case stalled:
		meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionReconciling)
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue)
	default:
		meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionStalled)
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue)
	}
}
