package eventrecorder_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/scriptlock/customer-operator/internal/eventrecorder"
	"github.com/scriptlock/customer-operator/test/apiserver"
)

// env is a real API server with a namespace and objects to record Events
// about.
type env struct {
	t   *testing.T
	cs  *kubernetes.Clientset
	ns  string
	ctx context.Context
}

func start(t *testing.T) *env {
	cfg, c := apiserver.Start(t)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "events"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, cs: cs, ns: ns.Name, ctx: ctx}
}

// object returns a ConfigMap stored in the API server.
func (e *env) object(name string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}}
	got, err := e.cs.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// recorder returns a started recorder, or an unstarted one and its start.
func (e *env) recorder(opts eventrecorder.Options) (*eventrecorder.Recorder, func()) {
	opts.Controller = "test-controller"
	r := eventrecorder.New(e.cs.EventsV1(), scheme.Scheme, opts)
	return r, func() {
		go func() { _ = r.Start(e.ctx) }()
	}
}

// events waits until the API server holds n Events in the namespace that
// match keep, and returns them.
func (e *env) events(n int, keep func(eventsv1.Event) bool) []eventsv1.Event {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := e.cs.EventsV1().Events(e.ns).List(e.ctx, metav1.ListOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		var got []eventsv1.Event
		for _, ev := range list.Items {
			if keep(ev) {
				got = append(got, ev)
			}
		}
		if len(got) == n {
			return got
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("want %d Events, the API server holds %d: %+v", n, len(got), got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func all(eventsv1.Event) bool { return true }

// TestEventsReachTheAPIServerAsClientGoWritesThem records Events about many
// objects through several senders: each is stored once, with the fields
// client-go's events.k8s.io recorder gives it (reporting controller and
// instance, regarding, action, reason, type, note).
func TestEventsReachTheAPIServerAsClientGoWritesThem(t *testing.T) {
	e := start(t)
	r, run := e.recorder(eventrecorder.Options{Instance: "test-instance"})
	run()
	const n = 40
	for i := range n {
		obj := e.object(fmt.Sprintf("obj-%d", i))
		r.Eventf(obj, nil, corev1.EventTypeNormal, "Created", "Reconcile", "made %s number %d", obj.Name, i)
	}
	got := e.events(n, all)
	seen := map[string]bool{}
	for _, ev := range got {
		if ev.ReportingController != "test-controller" || ev.ReportingInstance != "test-instance" ||
			ev.Reason != "Created" || ev.Action != "Reconcile" || ev.Type != corev1.EventTypeNormal ||
			ev.Regarding.Kind != "ConfigMap" || ev.Regarding.UID == "" || ev.Series != nil {
			t.Errorf("Event %s: %+v", ev.Name, ev)
		}
		if want := "made " + ev.Regarding.Name + " number "; len(ev.Note) <= len(want) || ev.Note[:len(want)] != want {
			t.Errorf("Event %s: note %q", ev.Name, ev.Note)
		}
		seen[ev.Regarding.Name] = true
	}
	if len(seen) != n {
		t.Errorf("Events about %d objects, want %d", len(seen), n)
	}
	if r.Dropped() != 0 {
		t.Errorf("%d dropped", r.Dropped())
	}
}

// TestRepeatsFoldIntoASeries records the same Event about one object five
// times and another about a second object once: the API server holds one
// Event for the first, with series.count 5, and one for the second, with no
// series.
func TestRepeatsFoldIntoASeries(t *testing.T) {
	e := start(t)
	r, run := e.recorder(eventrecorder.Options{})
	run()
	a, b := e.object("a"), e.object("b")
	r.Eventf(b, nil, corev1.EventTypeWarning, "Refused", "Reconcile", "once")
	for range 5 {
		r.Eventf(a, nil, corev1.EventTypeWarning, "Refused", "Reconcile", "again")
		time.Sleep(20 * time.Millisecond)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := e.events(2, all)
		counts := map[string]int32{}
		for _, ev := range got {
			counts[ev.Regarding.Name] = 1
			if ev.Series != nil {
				counts[ev.Regarding.Name] = ev.Series.Count
			}
		}
		if counts["a"] == 5 && counts["b"] == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("series counts %v, want a: 5, b: 1", counts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTheSeriesMemoryIsBounded remembers 2 series: after Events about three
// objects, a repeat of the first is a new Event, not a series, while a
// repeat of the last still folds.
func TestTheSeriesMemoryIsBounded(t *testing.T) {
	e := start(t)
	r, run := e.recorder(eventrecorder.Options{SeriesSize: 2})
	run()
	objs := []*corev1.ConfigMap{e.object("x"), e.object("y"), e.object("z")}
	for _, o := range objs {
		r.Eventf(o, nil, corev1.EventTypeNormal, "Synced", "Reconcile", "first")
	}
	e.events(3, all)
	r.Eventf(objs[0], nil, corev1.EventTypeNormal, "Synced", "Reconcile", "second")
	r.Eventf(objs[2], nil, corev1.EventTypeNormal, "Synced", "Reconcile", "second")
	about := func(name string) func(eventsv1.Event) bool {
		return func(ev eventsv1.Event) bool { return ev.Regarding.Name == name }
	}
	if got := e.events(2, about("x")); got[0].Series != nil || got[1].Series != nil {
		t.Errorf("the forgotten series of x was patched: %+v", got)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := e.events(1, about("z"))
		if got[0].Series != nil && got[0].Series.Count == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("z's repeat did not fold into its series: %+v", got[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAFullQueueDropsAndCountsNewEvents fills a queue of 3 before the
// recorder starts: the 2 Events past it are dropped and counted, the 3
// queued are sent once it starts, and an OnDrop is called per drop.
func TestAFullQueueDropsAndCountsNewEvents(t *testing.T) {
	e := start(t)
	drops := 0
	r, run := e.recorder(eventrecorder.Options{QueueSize: 3, OnDrop: func() { drops++ }})
	for i := range 5 {
		obj := e.object(fmt.Sprintf("q-%d", i))
		r.Eventf(obj, nil, corev1.EventTypeNormal, "Created", "Reconcile", "n %d", i)
	}
	if r.Dropped() != 2 || drops != 2 {
		t.Fatalf("dropped %d, OnDrop %d times; want 2", r.Dropped(), drops)
	}
	run()
	got := e.events(3, all)
	for _, ev := range got {
		if ev.Regarding.Name == "q-3" || ev.Regarding.Name == "q-4" {
			t.Errorf("a dropped Event was sent: %s", ev.Regarding.Name)
		}
	}
}

// TestAnEventNotCreatedLeavesNoSeriesBehind: an Event dropped because the
// queue was full, or refused by the API server (its namespace does not
// exist yet), is forgotten, so that its next repeat is a new Event rather
// than a patch of an Event that was never made (and is lost).
func TestAnEventNotCreatedLeavesNoSeriesBehind(t *testing.T) {
	e := start(t)
	r, run := e.recorder(eventrecorder.Options{QueueSize: 1, RetryWait: 10 * time.Millisecond})
	a, b := e.object("a"), e.object("b")
	r.Eventf(a, nil, corev1.EventTypeNormal, "Synced", "Reconcile", "fills the queue")
	r.Eventf(b, nil, corev1.EventTypeNormal, "Synced", "Reconcile", "dropped")
	if r.Dropped() != 1 {
		t.Fatalf("dropped %d, want 1", r.Dropped())
	}
	run()
	e.events(1, all)
	r.Eventf(b, nil, corev1.EventTypeNormal, "Synced", "Reconcile", "after the drop")
	got := e.events(1, func(ev eventsv1.Event) bool { return ev.Regarding.Name == "b" })
	if got[0].Note != "after the drop" || got[0].Series != nil {
		t.Errorf("the repeat of a dropped Event: %+v", got[0])
	}

	// Refused: the namespace of the object does not exist yet.
	later := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "later", UID: "c-uid"}}
	r.Eventf(later, nil, corev1.EventTypeWarning, "Refused", "Reconcile", "no namespace")
	time.Sleep(500 * time.Millisecond)
	if _, err := e.cs.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "later"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.Eventf(later, nil, corev1.EventTypeWarning, "Refused", "Reconcile", "namespace made")
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := e.cs.EventsV1().Events("later").List(e.ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 1 && list.Items[0].Note == "namespace made" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the repeat of a refused Event was not created: %+v", list.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
