package controllers

import (
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestStalledBackoffDoublesFromTheMinimumToTheCap(t *testing.T) {
	b := backoffPolicy{Min: time.Minute, Max: 5 * time.Minute}
	for failures, want := range map[int]time.Duration{
		1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 4: 5 * time.Minute, 30: 5 * time.Minute,
	} {
		if got := b.after(failures); got != want {
			t.Errorf("after %d failures: %s, want %s", failures, got, want)
		}
	}
}

func TestASpecChangeSkipsTheStalledBackoff(t *testing.T) {
	b := newStalledBackoff(backoffPolicy{Min: time.Minute, Max: 5 * time.Minute})
	key := types.NamespacedName{Namespace: "ns", Name: "c"}
	now := time.Unix(1000, 0)
	if d := b.failed(key, 1, now); d != time.Minute {
		t.Fatalf("first failure waits %s, want 1m", d)
	}
	if d := b.wait(key, 1, now.Add(10*time.Second)); d != 50*time.Second {
		t.Fatalf("same generation must wait the rest of the minute, got %s", d)
	}
	if d := b.wait(key, 2, now.Add(10*time.Second)); d != 0 {
		t.Fatalf("a new generation must not wait, got %s", d)
	}
	if d := b.failed(key, 1, now.Add(time.Minute)); d != 2*time.Minute {
		t.Fatalf("second failure of the same generation waits %s, want 2m", d)
	}
	if d := b.failed(key, 2, now.Add(2*time.Minute)); d != time.Minute {
		t.Fatalf("a new generation starts the backoff again, got %s", d)
	}
	b.reset(key)
	if d := b.wait(key, 2, now.Add(2*time.Minute)); d != 0 {
		t.Fatalf("a success must end the wait, got %s", d)
	}
}

// The transient backoff grows with every failure since the last success,
// whatever waits the operator imposed on itself in between; only success
// resets it.
func TestOnlySuccessResetsTheRetryBackoff(t *testing.T) {
	b := newRetryBackoff(backoffPolicy{Min: transientBackoffMin, Max: transientBackoffMax})
	key := types.NamespacedName{Namespace: "ns", Name: "c"}
	var got []time.Duration
	for range 4 {
		got = append(got, b.failed(key, 0))
		b.waited(key, 0) // the in-flight cap, a listing under way
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("failures with waits between back off %v, want %v", got, want)
	}
	if d := b.failed(key, 30*time.Second); d != 30*time.Second {
		t.Fatalf("a Retry-After longer than the backoff: %s", d)
	}
	if w := b.waited(key, 0); w <= selfWaitMin || w > selfWaitMax {
		t.Fatalf("the operator's own waits grow from %s to %s: %s", selfWaitMin, selfWaitMax, w)
	}
	b.reset(key)
	if d := b.failed(key, 0); d != time.Second {
		t.Fatalf("after a success the backoff starts again from 1 s: %s", d)
	}
}
