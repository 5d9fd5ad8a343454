package main

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/hack/localenv"
)

// ceilingNamespace holds the Customers of the ceiling measurement. They
// are deleted before the manager starts, so it never sees them.
const ceilingNamespace = "bench-ceiling"

// ceiling is what the API server absorbs at full speed, with no operator
// running: the upper bound of how fast Customers can become Ready on this
// machine whatever the operator does.
type ceiling struct {
	objects int // Customers created and status-patched

	// objectsPerSec is Customers per second, each one create and one
	// status patch (a Ready condition, as the operator writes it): the
	// least API-server work a Customer needs to become Ready.
	objectsPerSec float64
	// statusPerSec is plain status patches per second on existing
	// Customers, a second pass over the same objects.
	statusPerSec float64
	// contractPerSec is Customers per second, each one create, one
	// metadata patch, one status patch and one Event (events.k8s.io/v1):
	// the least API-server work a Customer needs to become Ready through an
	// operator of 3 writes per new Customer (finalizer and proof, status,
	// Event), which is what issue 27 allows. Third pass, new objects.
	contractPerSec float64
}

// writesPerSec is the API-server writes per second of the first pass: two
// per Customer.
func (c ceiling) writesPerSec() float64 { return 2 * c.objectsPerSec }

// measureCeiling creates n Customers in ceilingNamespace and patches each
// one's status, from workers goroutines at once (the client is not
// throttled), then patches every status once more, timing both passes; at
// the end it deletes them all. It must run while no manager watches.
func measureCeiling(ctx context.Context, k8s client.Client, n, workers int) (ceiling, error) {
	c := ceiling{objects: n}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ceilingNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return c, err
	}
	localenv.Logf("API-server ceiling: %d Customers, each created and status-patched, by %d goroutines", n, workers)
	start := time.Now()
	if err := parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		cu := benchCustomer(i)
		cu.Namespace = ceilingNamespace
		if err := k8s.Create(ctx, cu); err != nil {
			return fmt.Errorf("creating %s: %w", cu.Name, err)
		}
		return patchReadyStatus(ctx, k8s, cu.Name, i, "first")
	}); err != nil {
		return c, err
	}
	c.objectsPerSec = float64(n) / time.Since(start).Seconds()

	start = time.Now()
	if err := parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		return patchReadyStatus(ctx, k8s, benchCustomer(i).Name, i, "second")
	}); err != nil {
		return c, err
	}
	c.statusPerSec = float64(n) / time.Since(start).Seconds()

	start = time.Now()
	if err := parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		return contractWrites(ctx, k8s, i)
	}); err != nil {
		return c, err
	}
	c.contractPerSec = float64(n) / time.Since(start).Seconds()
	localenv.Logf("API-server ceiling: %.0f Customers a second (create + status patch), %.0f status patches a second, "+
		"%.0f Customers a second (create + metadata patch + status patch + Event)",
		c.objectsPerSec, c.statusPerSec, c.contractPerSec)

	// No finalizers (no manager ran), so the objects go at once.
	if err := deleteAll(ctx, k8s, &v1alpha1.Customer{}); err != nil {
		return c, fmt.Errorf("deleting the ceiling's Customers: %w", err)
	}
	if err := deleteAll(ctx, k8s, &eventsv1.Event{}); err != nil {
		return c, fmt.Errorf("deleting the ceiling's Events: %w", err)
	}
	return c, nil
}

// deleteAll deletes every obj of its kind in ceilingNamespace. A busy API
// server may answer a collection delete of thousands with a timeout while
// it goes on deleting: the delete is asked again, at most 10 times.
func deleteAll(ctx context.Context, k8s client.Client, obj client.Object) error {
	var err error
	for range 10 {
		if err = k8s.DeleteAllOf(ctx, obj, client.InNamespace(ceilingNamespace)); !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) {
			return err
		}
		localenv.Logf("API-server ceiling: deleting the %T objects timed out; asking again", obj)
	}
	return err
}

// contractWrites makes the i-th Customer of the third pass Ready with the
// writes of an operator of 3 writes per new Customer: it creates it,
// patches its metadata (an annotation as big as the operator's create-time
// proof, in place of the finalizer that would keep it from going), patches
// its status and creates one Event about it.
func contractWrites(ctx context.Context, k8s client.Client, i int) error {
	cu := benchCustomer(i)
	cu.Namespace = ceilingNamespace
	cu.Name = fmt.Sprintf("contract-%05d", i)
	if err := k8s.Create(ctx, cu); err != nil {
		return fmt.Errorf("creating %s: %w", cu.Name, err)
	}
	meta := fmt.Sprintf(`{"metadata":{"annotations":{"bench.scriptlock.com/proof":`+
		`"{\"uid\":\"%s\",\"account\":\"0123456789ab\",\"email\":\"%s\",\"since\":\"%s\"}"}}}`,
		cu.UID, cu.Spec.Email, time.Now().UTC().Format(time.RFC3339))
	if err := k8s.Patch(ctx, cu, client.RawPatch(types.MergePatchType, []byte(meta))); err != nil {
		return fmt.Errorf("patching the metadata of %s: %w", cu.Name, err)
	}
	if err := patchReadyStatus(ctx, k8s, cu.Name, i, "contract"); err != nil {
		return err
	}
	now := time.Now()
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: ceilingNamespace, Name: fmt.Sprintf("%s.%x", cu.Name, now.UnixNano())},
		EventTime:           metav1.MicroTime{Time: now},
		ReportingController: "licensing.scriptlock.com/customer-operator",
		ReportingInstance:   "bench-ceiling",
		Action:              "Create",
		Reason:              "Created",
		Regarding: corev1.ObjectReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Customer",
			Namespace: cu.Namespace, Name: cu.Name, UID: cu.UID},
		Note: fmt.Sprintf("created ScriptLock customer %d", i),
		Type: corev1.EventTypeNormal,
	}
	if err := k8s.Create(ctx, ev); err != nil {
		return fmt.Errorf("creating the Event of %s: %w", cu.Name, err)
	}
	return nil
}

// patchReadyStatus writes the status the operator writes for a Ready
// Customer (record id, account, URL, conditions), as a merge patch of the
// status subresource. pass makes the second pass's patch differ from the
// first, so that it is a real write.
func patchReadyStatus(ctx context.Context, k8s client.Client, name string, i int, pass string) error {
	now := time.Now().UTC().Format(time.RFC3339)
	body := fmt.Sprintf(`{"status":{"customerID":"%d","account":"0123456789ab","url":"http://127.0.0.1:8089",`+
		`"observedGeneration":1,"conditions":[`+
		`{"type":%q,"status":"True","observedGeneration":1,"lastTransitionTime":%q,"reason":"Synced","message":"the record matches the spec (%s pass)"},`+
		`{"type":%q,"status":"False","observedGeneration":1,"lastTransitionTime":%q,"reason":"Synced","message":""},`+
		`{"type":%q,"status":"False","observedGeneration":1,"lastTransitionTime":%q,"reason":"Synced","message":""}]}}`,
		i, v1alpha1.ConditionReady, now, pass, v1alpha1.ConditionReconciling, now, v1alpha1.ConditionStalled, now)
	cu := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ceilingNamespace, Name: name}}
	if err := k8s.Status().Patch(ctx, cu, client.RawPatch(types.MergePatchType, []byte(body))); err != nil {
		return fmt.Errorf("patching the status of %s: %w", name, err)
	}
	return nil
}

// parallel calls f for i = 1..n from workers goroutines and returns the
// first error, after which no new call starts.
func parallel(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, workers))
	for i := 1; i <= n && gctx.Err() == nil; i++ {
		g.Go(func() error {
			if gctx.Err() != nil {
				return nil // a call failed (its error is Wait's) or ctx ended
			}
			return f(gctx, i)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
