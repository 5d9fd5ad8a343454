package main

import (
	"context"
	"errors"
	"testing"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// deleteAllAnswering is a client whose collection deletes answer the
// errors given, one a call, then nil; calls counts them.
func deleteAllAnswering(calls *int, errs ...error) client.Client {
	return fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		DeleteAllOf: func(context.Context, client.WithWatch, client.Object, ...client.DeleteAllOfOption) error {
			*calls++
			if *calls <= len(errs) {
				return errs[*calls-1]
			}
			return nil
		},
	}).Build()
}

// A collection delete the busy API server answers with a timeout is asked
// again until it is answered; any other error is returned at once.
func TestDeleteAllAsksAgainAfterATimeoutOnly(t *testing.T) {
	gr := schema.GroupResource{Resource: "customers"}
	timeout, serverTimeout := apierrors.NewTimeoutError("busy", 1), apierrors.NewServerTimeout(gr, "deletecollection", 1)
	var calls int
	if err := deleteAll(context.Background(), deleteAllAnswering(&calls, timeout, serverTimeout), &eventsv1.Event{}); err != nil || calls != 3 {
		t.Fatalf("two timeouts then an answer: err %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	forbidden := apierrors.NewForbidden(gr, "", errors.New("no"))
	if err := deleteAll(context.Background(), deleteAllAnswering(&calls, forbidden), &eventsv1.Event{}); !apierrors.IsForbidden(err) || calls != 1 {
		t.Fatalf("forbidden: err %v after %d calls, want it at once", err, calls)
	}
	calls = 0
	always := make([]error, 20)
	for i := range always {
		always[i] = timeout
	}
	if err := deleteAll(context.Background(), deleteAllAnswering(&calls, always...), &eventsv1.Event{}); !apierrors.IsTimeout(err) || calls != 10 {
		t.Fatalf("timeouts for ever: err %v after %d calls, want the timeout after 10", err, calls)
	}
}
