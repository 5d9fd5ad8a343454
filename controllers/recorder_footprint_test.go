package controllers

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// coreSink stands for the API server behind the core/v1 recorder: it
// counts the Events written and keeps none.
type coreSink struct{ written atomic.Int64 }

func (s *coreSink) Create(e *corev1.Event) (*corev1.Event, error) { s.written.Add(1); return e, nil }
func (s *coreSink) Update(e *corev1.Event) (*corev1.Event, error) { s.written.Add(1); return e, nil }
func (s *coreSink) Patch(e *corev1.Event, _ []byte) (*corev1.Event, error) {
	s.written.Add(1)
	return e, nil
}

// seriesSink is the same for client-go's events.k8s.io broadcaster (what
// the manager's GetEventRecorder returns).
type seriesSink struct{ written atomic.Int64 }

func (s *seriesSink) Create(_ context.Context, e *eventsv1.Event) (*eventsv1.Event, error) {
	s.written.Add(1)
	return e, nil
}
func (s *seriesSink) Update(_ context.Context, e *eventsv1.Event) (*eventsv1.Event, error) {
	s.written.Add(1)
	return e, nil
}
func (s *seriesSink) Patch(_ context.Context, e *eventsv1.Event, _ []byte) (*eventsv1.Event, error) {
	s.written.Add(1)
	return e, nil
}

// recorderHeld is the live heap a recorder holds after one Created Event
// for each of n distinct Customers has reached its sink. The Events go in
// batches smaller than the broadcasters' queue (1000), each written before
// the next is sent, so that none is dropped.
func recorderHeld(t *testing.T, scheme *k8sruntime.Scheme, n int, start func() (events.EventRecorder, func() int64, func())) uint64 {
	t.Helper()
	rec, written, stop := start()
	defer stop()
	base := liveHeap()
	c := &v1alpha1.Customer{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Customer"}}
	c.Namespace = "tenant"
	const batch = 500
	for i := 0; i < n; i++ {
		c.Name = fmt.Sprintf("customer-%06d", i)
		c.UID = types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
		rec.Eventf(c, nil, corev1.EventTypeNormal, "Created", "Create", "Created ScriptLock customer %d for %s@example.com", i, c.Name)
		if (i+1)%batch == 0 || i == n-1 {
			// A bound on the polls, not on time: a lost Event fails the
			// test instead of hanging it.
			for polls := 0; written() < int64(i+1); polls++ {
				if polls > 100000 {
					t.Fatalf("%d of %d Events written", written(), i+1)
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	held := liveHeap()
	if held < base {
		return 0
	}
	return held - base
}

// TestEventRecorderHoldsBoundedBytes measures the bytes the Event recorder
// holds after one Event for each of N distinct Customers (issue 27: each
// new Customer gets a Created Event). client-go's events.k8s.io
// broadcaster keeps every Event for 6 to 12 minutes, so what it holds grows
// with N; the recorder the manager uses (NewEventBroadcaster) keeps LRU
// caches of eventCorrelatorOptions.LRUCacheSize entries, so what it holds
// stops growing once they are full.
func TestEventRecorderHoldsBoundedBytes(t *testing.T) {
	scheme := k8sruntime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	small, large := 5000, 20000
	if eventCorrelatorOptions.LRUCacheSize >= small {
		t.Fatalf("the LRU caches (%d) must fill with %d Events for this test to measure a bound", eventCorrelatorOptions.LRUCacheSize, small)
	}
	bounded := func() (events.EventRecorder, func() int64, func()) {
		sink := &coreSink{}
		b := NewEventBroadcaster(sink)
		return NewEventRecorder(b, scheme), sink.written.Load, b.Shutdown
	}
	series := func() (events.EventRecorder, func() int64, func()) {
		sink := &seriesSink{}
		b := events.NewBroadcaster(sink)
		stopCh := make(chan struct{})
		b.StartRecordingToSink(stopCh)
		return b.NewRecorder(scheme, EventReportingController), sink.written.Load, func() { close(stopCh); b.Shutdown() }
	}
	for _, r := range []struct {
		name  string
		start func() (events.EventRecorder, func() int64, func())
	}{{"events.k8s.io broadcaster (before)", series}, {"core/v1 recorder (NewEventBroadcaster)", bounded}} {
		atSmall := recorderHeld(t, scheme, small, r.start)
		atLarge := recorderHeld(t, scheme, large, r.start)
		t.Logf("%s: holds %d B after %d Events (%d B per Customer), %d B after %d (%d B per Customer)",
			r.name, atSmall, small, atSmall/uint64(small), atLarge, large, atLarge/uint64(large))
	}
	atSmall := recorderHeld(t, scheme, small, bounded)
	atLarge := recorderHeld(t, scheme, large, bounded)
	// Once the LRU caches are full, 15,000 more Events for 15,000 more
	// Customers add nothing it keeps; a slack of 64 B per extra Event for
	// the collector's noise is far under the ~1 KB each the series cache
	// keeps.
	if slack := uint64(64 * (large - small)); atLarge > atSmall+slack {
		t.Errorf("the recorder holds %d B after %d Events and %d B after %d: it grows with the Customers (more than %d B)",
			atSmall, small, atLarge, large, slack)
	}
}

// noteSink keeps the notes of the Events created, in order.
type noteSink struct {
	coreSink
	mu    sync.Mutex
	notes []string
}

func (s *noteSink) Create(e *corev1.Event) (*corev1.Event, error) {
	s.mu.Lock()
	s.notes = append(s.notes, e.Message)
	s.mu.Unlock()
	return s.coreSink.Create(e)
}

// TestTheRecorderNeitherDropsNorMergesACustomersEvents sends, for one
// Customer, 60 Warning Events of one reason with different notes (more than
// client-go's default spam burst of 25 and its aggregation threshold of
// 10), then one repeat: each different note is its own Event, unmerged, and
// the repeat counts up the last one instead of adding an Event.
func TestTheRecorderNeitherDropsNorMergesACustomersEvents(t *testing.T) {
	scheme := k8sruntime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	sink := &noteSink{}
	b := NewEventBroadcaster(sink)
	defer b.Shutdown()
	rec := NewEventRecorder(b, scheme)
	c := &v1alpha1.Customer{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Customer"}}
	c.Namespace, c.Name, c.UID = "tenant", "acme", "00000000-0000-0000-0000-000000000001"
	const n = 60
	for i := range n {
		rec.Eventf(c, nil, corev1.EventTypeWarning, v1alpha1.ReasonDiffers, "Observe", "differs in field %d", i)
	}
	rec.Eventf(c, nil, corev1.EventTypeWarning, v1alpha1.ReasonDiffers, "Observe", "differs in field %d", n-1)
	for polls := 0; sink.written.Load() < n+1; polls++ {
		if polls > 20000 {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if got := sink.written.Load(); got != n+1 || len(sink.notes) != n {
		t.Fatalf("%d writes, %d Events created; want %d writes, %d created", got, len(sink.notes), n+1, n)
	}
	for i, note := range sink.notes {
		if want := fmt.Sprintf("differs in field %d", i); note != want {
			t.Errorf("Event %d: %q, want %q", i, note, want)
		}
	}
}
