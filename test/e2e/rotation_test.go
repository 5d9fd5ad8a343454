//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensingv1alpha1 "github.com/scriptlock/customer-operator/api/v1alpha1"
)

// keyChangedLog is what the manager logs when it has read a new key from
// its key file (main.go, keyFileWatcher).
const keyChangedLog = "the default account's key file changed"

// checkKeyRotation rotates the default account's key as a user does: a new
// key at ScriptLock (the old one refused from then on), the same Secret
// updated with it. The kubelet refreshes the mounted file, the manager
// reads it again, and the Customer stays Ready throughout, with no restart
// of the Pod; a spec change afterwards is written with the new key.
func checkKeyRotation(ctx context.Context, t *testing.T, k *cluster, sim *simulator, oldKey string) {
	t.Helper()
	pod := k.waitAvailable(ctx, t, deploymentName, time.Minute)[0]
	k.followLogs(pod)
	if strings.Contains(k.logOf(pod), keyChangedLog) {
		t.Fatalf("pod %s logged a key change before any rotation", pod.Name)
	}

	key := types.NamespacedName{Namespace: "default", Name: "key-rotation"}
	cust := &licensingv1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace},
		Spec: licensingv1alpha1.CustomerSpec{
			Company: "Before Rotation", FirstName: "Key", LastName: "Rotation", Email: "key-rotation@example.com",
		},
	}
	if err := k.c.Create(ctx, cust); err != nil {
		t.Fatal(err)
	}
	id := waitReady(ctx, t, k, key, time.Minute).Status.CustomerID

	newKey := oldKey + "-rotated"
	if err := sim.do(ctx, http.MethodPost, "/_sim/rotate-key", fmt.Sprintf(`{"old":%q,"new":%q}`, oldKey, newKey), nil); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{}
	if err := k.c.Get(ctx, types.NamespacedName{Namespace: operatorNS, Name: "scriptlock-credentials"}, secret); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(secret.DeepCopy())
	secret.Data["apiKey"] = []byte(newKey)
	if err := k.c.Patch(ctx, secret, patch); err != nil {
		t.Fatal(err)
	}
	rotated := time.Now()

	// The kubelet refreshes a Secret volume on its periodic Pod sync
	// (a minute by default); the manager reads the file every 10 s.
	eventually(t, 3*time.Minute, time.Second, "the manager reads the rotated key from its file", func() (bool, string) {
		c := &licensingv1alpha1.Customer{}
		if err := k.c.Get(ctx, key, c); err != nil {
			return false, err.Error()
		}
		if r := meta.FindStatusCondition(c.Status.Conditions, licensingv1alpha1.ConditionReady); r == nil || r.Status != metav1.ConditionTrue {
			t.Fatalf("Ready left True during the rotation: %+v", c.Status.Conditions)
		}
		return strings.Contains(k.logOf(pod), keyChangedLog), "no line " + keyChangedLog + " yet"
	})
	t.Logf("the manager uses the rotated key %s after the Secret changed", time.Since(rotated).Round(time.Second))

	// A change now must reach ScriptLock, which refuses the old key: a
	// PUT answered 200 from here on was sent with the new one. (A 401 may
	// be in the log: the operator checks once that the old key is refused
	// before it takes the new account for the old one.)
	if err := sim.do(ctx, http.MethodDelete, "/_sim/calls", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := k.c.Get(ctx, key, cust); err != nil {
		t.Fatal(err)
	}
	patch = client.MergeFrom(cust.DeepCopy())
	cust.Spec.Company = "After Rotation"
	if err := k.c.Patch(ctx, cust, patch); err != nil {
		t.Fatal(err)
	}
	if got := waitReady(ctx, t, k, key, time.Minute).Status.CustomerID; got != id {
		t.Fatalf("the rotation changed the record: %s -> %s", id, got)
	}
	put := false
	for _, c := range sim.callLog(ctx, t) {
		put = put || c.Method == http.MethodPut && c.ID == id && c.Status == http.StatusOK
	}
	if !put {
		t.Errorf("no PUT of record %s answered 200 after the rotation: %+v", id, sim.callLog(ctx, t))
	}

	after := &corev1.Pod{}
	if err := k.c.Get(ctx, client.ObjectKeyFromObject(&pod), after); err != nil {
		t.Fatalf("the manager's Pod %s is gone: %v", pod.Name, err)
	}
	if s := managerStatus(after); s == nil || s.RestartCount != 0 {
		t.Fatalf("pod %s restarted: %s", after.Name, describePods([]corev1.Pod{*after}))
	}

	if err := k.c.Delete(ctx, cust); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, time.Second, key.String()+" gone", func() (bool, string) {
		err := k.c.Get(ctx, key, &licensingv1alpha1.Customer{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}
