package controllers

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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
	if err := eventsQueued(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// queuedOf is the recorder whose queue scriptlock_events_queued reads: the
// one made last in this process (a second manager, in tests, takes it over).
var (
	queuedOf       atomic.Pointer[eventrecorder.Recorder]
	registerQueued sync.Once
	queuedErr      error
)

// eventsQueued makes rec the recorder the gauge scriptlock_events_queued
// reads, registering the gauge once per process: managers made side by
// side (parallel tests) share it, so none can fail to register it.
func eventsQueued(rec *eventrecorder.Recorder) error {
	queuedOf.Store(rec)
	registerQueued.Do(func() {
		queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scriptlock_events_queued",
			Help: "Events (and series counts of repeated Events) waiting to be sent to the API server; at 10,000 new ones are dropped (scriptlock_events_dropped_total).",
		}, func() float64 {
			if r := queuedOf.Load(); r != nil {
				return float64(r.Queued())
			}
			return 0
		})
		if err := metrics.Registry.Register(queued); err != nil {
			queuedErr = fmt.Errorf("registering scriptlock_events_queued: %w", err)
		}
	})
	return queuedErr
}

// eventsDropped is the counter scriptlock_events_dropped_total.
func eventsDropped() prometheus.Counter {
	return registeredCounter(prometheus.CounterOpts{
		Name: "scriptlock_events_dropped_total",
		Help: "Events not sent because 10,000 were already waiting to be sent (the API server is slower than the Events come).",
	})
}
