package controllers

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// A sweep's re-check waits behind a new Customer in controller-runtime's
// priority queue, even when the sweep named it first; an event for a
// Customer already queued by a sweep raises it to the event's priority.
func TestASweepsRecheckWaitsBehindANewCustomer(t *testing.T) {
	ctx := context.Background()
	customer := func(name string) *v1alpha1.Customer {
		return &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
	}
	q := priorityqueue.New[reconcile.Request]("sweep-test")
	defer q.ShutDown()

	sweep, events := sweepHandler(), &handler.TypedEnqueueRequestForObject[*v1alpha1.Customer]{}
	for _, name := range []string{"in-sync-1", "in-sync-2", "changed"} {
		sweep.Generic(ctx, event.TypedGenericEvent[*v1alpha1.Customer]{Object: customer(name)}, q)
	}
	events.Create(ctx, event.TypedCreateEvent[*v1alpha1.Customer]{Object: customer("new")}, q)
	old, changed := customer("changed"), customer("changed")
	old.ResourceVersion, changed.ResourceVersion = "1", "2"
	events.Update(ctx, event.TypedUpdateEvent[*v1alpha1.Customer]{ObjectOld: old, ObjectNew: changed}, q)

	var got []string
	var priorities []int
	for range 4 {
		item, priority, _ := q.GetWithPriority()
		got, priorities = append(got, item.Name), append(priorities, priority)
		q.Done(item)
	}
	want := []string{"new", "changed", "in-sync-1", "in-sync-2"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("dequeued %v (priorities %v), want %v", got, priorities, want)
		}
	}
	if priorities[2] != handler.LowPriority || priorities[0] != 0 {
		t.Errorf("priorities %v, want 0 for the new Customer and %d for a sweep's", priorities, handler.LowPriority)
	}
}

// In per-object mode, a record just checked comes back within a resync
// period at the same low priority as a sweep's re-check; in list mode it
// does not come back on its own.
func TestAPerObjectRecheckIsQueuedAtLowPriority(t *testing.T) {
	r := &CustomerReconciler{DriftDetection: DriftPerObject, ResyncPeriod: time.Minute}
	for _, obs := range []observation{{}, {fromMemory: true, recheckIn: 20 * time.Second}} {
		res := r.next(obs)
		if res.RequeueAfter <= 0 || res.RequeueAfter > time.Minute || res.Priority == nil || *res.Priority != handler.LowPriority {
			t.Errorf("next(fromMemory %v) = after %v, priority %v; want within a minute at %d", obs.fromMemory, res.RequeueAfter, res.Priority, handler.LowPriority)
		}
	}
	r.DriftDetection = DriftByList
	if res := r.next(observation{}); res.RequeueAfter != 0 {
		t.Errorf("list mode: next = %+v, want no requeue", res)
	}
}
