package controllers

import (
	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// Test hooks, compiled only into this package's tests.

// EventForTest emits an Event about c as the reconciler does.
func (r *CustomerReconciler) EventForTest(c *v1alpha1.Customer, kind, reason, action, format string, args ...any) {
	r.event(c, kind, reason, action, format, args...)
}
