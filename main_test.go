package main

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestAManagerWithoutLeaderElectionRefusesBesideALiveLeader(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	lease := func(holder string, renewed time.Duration) *coordinationv1.Lease {
		secs := int32(15)
		return &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "lease"},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: &holder, LeaseDurationSeconds: &secs,
				RenewTime: &metav1.MicroTime{Time: now.Add(-renewed)},
			},
		}
	}
	cases := []struct {
		name   string
		lease  *coordinationv1.Lease
		refuse bool
	}{
		{"no lease: no other manager ever elected", nil, false},
		{"a lease renewed 3 s ago: a leader is running", lease("pod-a", 3*time.Second), true},
		{"a lease not renewed for a minute: its holder is gone", lease("pod-a", time.Minute), false},
		{"a released lease (no holder)", lease("", time.Second), false},
		{"a lease in another namespace does not count", func() *coordinationv1.Lease {
			l := lease("pod-a", time.Second)
			l.Namespace = "elsewhere"
			return l
		}(), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(scheme)
			if tc.lease != nil {
				b = b.WithObjects(tc.lease)
			}
			err := refuseBesideALeader(context.Background(), b.Build(), "ops", "lease", now)
			if (err != nil) != tc.refuse {
				t.Fatalf("refused: %v, want %v", err, tc.refuse)
			}
			if err != nil && !strings.Contains(err.Error(), "--leader-elect") {
				t.Fatalf("the error must say how to fix it: %v", err)
			}
		})
	}
}
