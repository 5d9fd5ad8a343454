package controllers_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/eventrecorder"
)

// TestLongEventNotesAreCutNotRefused sends the real API server Events about
// a Customer with the longest name Kubernetes allows, with notes far over
// its 1024-byte limit (events.k8s.io/v1) in one-, two-, three- and
// four-byte characters: each is stored, cut on a character boundary with a
// marker, instead of being refused and lost.
func TestLongEventNotesAreCutNotRefused(t *testing.T) {
	e := newEnv(t, managerOpts{})
	// 253 bytes, the longest object name: labels of 63 joined by dots.
	label := strings.Repeat("n", 63)
	name := strings.Join([]string{label, label, label, label[:61]}, ".")
	c := e.create(e.customer(name, "long-name@example.com"))

	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	b.StartRecordingToSink(e.ctx.Done())
	t.Cleanup(b.Shutdown)
	r := &controllers.CustomerReconciler{Recorder: b.NewRecorder(scheme, "scriptlock-customer-operator")}

	long := "Customer " + e.ns + "/" + name + " already manages ScriptLock customer 42; only one Customer may manage a record. " +
		"To move the record to this Customer without revoking licenses: set spec.deletionPolicy: Orphan on " + e.ns + "/" + name +
		", delete it, then set spec.customerID: \"42\" here"
	notes := map[string]string{
		"Short":     "a note well under the limit",
		"Ascii":     long + strings.Repeat(" and more", 200),
		"TwoBytes":  long + strings.Repeat("é", 1000),
		"ThreeByte": long + strings.Repeat("€", 1000),
		"FourByte":  long + strings.Repeat("🔑", 1000),
	}
	for reason, note := range notes {
		r.EventForTest(c, corev1.EventTypeWarning, reason, "Reconcile", "%s", note)
	}
	for reason, note := range notes {
		var ev eventsv1.Event
		e.eventually(15*time.Second, "Event "+reason+" stored", func() error {
			evs := e.events(name, reason)
			if len(evs) == 0 {
				return errors.New("no such Event yet")
			}
			ev = evs[0]
			return nil
		})
		switch {
		case !utf8.ValidString(ev.Note):
			t.Errorf("%s: the stored note is not valid UTF-8", reason)
		case len(ev.Note) > 1024:
			t.Errorf("%s: the stored note has %d bytes", reason, len(ev.Note))
		case len(note) <= 1024 && ev.Note != note:
			t.Errorf("%s: a note that fits was changed to %q", reason, ev.Note)
		case len(note) > 1024 && !strings.HasSuffix(ev.Note, "[truncated]"):
			t.Errorf("%s: a cut note has no marker: %q", reason, ev.Note)
		case len(note) > 1024 && !strings.HasPrefix(note, strings.TrimSuffix(ev.Note, "… [truncated]")):
			t.Errorf("%s: the kept part is not the start of the note: %q", reason, ev.Note)
		}
	}
	// The Customer's name is too long to prefix the Events' names; client-go
	// names them otherwise, and they still point at the Customer.
	if got := e.events(name, "Short"); len(got) != 1 || got[0].Regarding.Kind != "Customer" {
		t.Fatalf("the Event does not point at the Customer: %+v", got)
	}
}

// TestTheQueuedGaugeReadsTheNewestRecordersQueue: scriptlock_events_queued
// is the number of Events waiting in the queue of the recorder made last in
// the process (a manager that never starts sends none), not a number kept
// beside it: it follows each Event queued, and a second recorder takes the
// gauge over instead of failing to register it.
func TestTheQueuedGaugeReadsTheNewestRecordersQueue(t *testing.T) {
	queued := func() float64 {
		t.Helper()
		fams, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "scriptlock_events_queued" && len(f.GetMetric()) == 1 {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("scriptlock_events_queued is not registered")
		return 0
	}
	recorder := func() *eventrecorder.Recorder {
		t.Helper()
		mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
			Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := controllers.NewEventRecorder(mgr)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	obj := &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Name: "gauge", Namespace: "default", UID: "gauge-uid"}}
	first := recorder()
	for i := range 3 {
		first.Eventf(obj, nil, corev1.EventTypeNormal, fmt.Sprintf("Reason%d", i), "Reconcile", "event %d", i)
	}
	if got := queued(); got != 3 {
		t.Fatalf("scriptlock_events_queued = %v with 3 Events waiting, want 3", got)
	}
	second := recorder()
	if got := queued(); got != 0 {
		t.Fatalf("scriptlock_events_queued = %v after a new recorder with nothing queued, want 0 (it must read the newest)", got)
	}
	second.Eventf(obj, nil, corev1.EventTypeWarning, "Conflict", "Reconcile", "one")
	if got := queued(); got != 1 {
		t.Fatalf("scriptlock_events_queued = %v with 1 Event waiting in the newest recorder, want 1", got)
	}
}
