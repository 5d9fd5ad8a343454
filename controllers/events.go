package controllers

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/scriptlock/customer-operator/internal/eventrecorder"
)

// maxEventNote is the most bytes the API server accepts in an Event's note
// (events.k8s.io/v1; NoteLengthLimit of Kubernetes' event validation). A
// longer note is refused, and the Event lost: a message that quotes
// names, emails and ScriptLock's answers can be longer.
const maxEventNote = 1024

// truncatedMarker ends a note that was cut to fit.
const truncatedMarker = "… [truncated]"

// eventNote formats an Event's note and cuts it to maxEventNote bytes on a
// UTF-8 boundary, ending it with truncatedMarker, so that no Event is
// refused for its length. Bytes that are not UTF-8 become U+FFFD first, as
// JSON would make them on the wire, so the length checked is the length
// sent.
func eventNote(format string, args ...any) string {
	note := strings.ToValidUTF8(fmt.Sprintf(format, args...), "\uFFFD")
	if len(note) <= maxEventNote {
		return note
	}
	cut := maxEventNote - len(truncatedMarker)
	for cut > 0 && !utf8.RuneStart(note[cut]) {
		cut--
	}
	return note[:cut] + truncatedMarker
}

// EventRecorderName is the reportingController of the operator's Events.
const EventRecorderName = "scriptlock-customer-operator"

// NewEventRecorder returns the operator's Event recorder
// (internal/eventrecorder: bounded memory, the Events and series of
// client-go's events.k8s.io recorder), added to mgr so that it sends while
// the manager runs. Events dropped because too many wait to be sent are
// counted in scriptlock_events_dropped_total.
func NewEventRecorder(mgr manager.Manager) (*eventrecorder.Recorder, error) {
	cs, err := kubernetes.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, fmt.Errorf("an Events client: %w", err)
	}
	rec := eventrecorder.New(cs.EventsV1(), mgr.GetScheme(), eventrecorder.Options{
		Controller: EventRecorderName,
		OnDrop:     eventsDropped().Inc,
	})
	if err := mgr.Add(rec); err != nil {
		return nil, err
	}
	// The gauge reads this recorder's queue; one made before in this
	// process (a second manager, in tests) gives it its place.
	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "scriptlock_events_queued",
		Help: "Events (and series counts of repeated Events) waiting to be sent to the API server; at 10,000 new ones are dropped (scriptlock_events_dropped_total).",
	}, func() float64 { return float64(rec.Queued()) })
	metrics.Registry.Unregister(queued)
	if err := metrics.Registry.Register(queued); err != nil {
		return nil, fmt.Errorf("registering scriptlock_events_queued: %w", err)
	}
	return rec, nil
}

// eventsDropped is the counter scriptlock_events_dropped_total.
func eventsDropped() prometheus.Counter {
	return registeredCounter(prometheus.CounterOpts{
		Name: "scriptlock_events_dropped_total",
		Help: "Events not sent because 10,000 were already waiting to be sent (the API server is slower than the Events come).",
	})
}
