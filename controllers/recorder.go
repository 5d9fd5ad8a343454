package controllers

import (
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// EventReportingController names the manager in the Events it emits
// (source.component and reportingComponent).
const EventReportingController = "scriptlock-customer-operator"

// eventCorrelatorOptions bound what the recorder remembers of the Events it
// sent. client-go's events.k8s.io broadcaster (what the manager's
// GetEventRecorder returns) keeps every Event in a map for 6 to 12 minutes,
// with no setting: about 1 KB per new Customer while many are created
// (issue 27). The core/v1 recorder of client-go's tools/record keeps its
// state in LRU caches of LRUCacheSize entries each instead.
//
// Its spam filter is keyed per object (source, kind, namespace, name, UID,
// type), so one Customer's Events never count against another's. Its
// default burst (25 Events of a type per object, then one per 5 minutes)
// could swallow Events of a Customer whose condition changes often; the
// burst is raised so that only a runaway loop meets it.
//
// Its aggregation, which would merge the 10th Event of one reason with a
// different note for one object into a "(combined from similar events)"
// Event (named without the care for long names that other Events get), is
// turned off: every note goes to the aggregator as the same local key, so
// no object's set of notes ever reaches MaxEvents, and each entry holds one
// empty string. An Event repeated with the same note is still counted up
// on the Event already sent.
var eventCorrelatorOptions = record.CorrelatorOptions{
	LRUCacheSize: 4096,
	BurstSize:    200,
	KeyFunc:      notAggregated,
}

// notAggregated groups Events as client-go's default does, but gives every
// note the same local key: no Event is ever merged with another.
func notAggregated(event *corev1.Event) (aggregateKey, localKey string) {
	aggregateKey, _ = record.EventAggregatorByReasonFunc(event)
	return aggregateKey, ""
}

// NewEventBroadcaster returns the broadcaster the manager's Events go
// through, recording to sink. Shut it down when the manager stops.
func NewEventBroadcaster(sink record.EventSink) record.EventBroadcaster {
	b := record.NewBroadcaster(record.WithCorrelatorOptions(eventCorrelatorOptions))
	b.StartRecordingToSink(sink)
	return b
}

// NewEventSink returns a sink writing core/v1 Events to the API server of
// cfg over httpClient (the manager's GetConfig and GetHTTPClient).
func NewEventSink(cfg *rest.Config, httpClient *http.Client) (record.EventSink, error) {
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	return &typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")}, nil
}

// NewEventRecorder returns the recorder the reconciler emits Events with:
// b's core/v1 recorder behind the events.EventRecorder interface
// (client-go's adapter). Core/v1 Events have no action and no related
// object; the adapter drops both.
func NewEventRecorder(b record.EventBroadcaster, scheme *runtime.Scheme) events.EventRecorder {
	return record.NewEventRecorderAdapter(b.NewRecorder(scheme, corev1.EventSource{Component: EventReportingController}))
}

// NewManagerEventRecorder wires the above for mgr: a broadcaster writing to
// mgr's API server with mgr's HTTP client, and its recorder for mgr's
// scheme. Call shutdown once the manager has stopped.
func NewManagerEventRecorder(mgr manager.Manager) (recorder events.EventRecorder, shutdown func(), err error) {
	sink, err := NewEventSink(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, nil, err
	}
	b := NewEventBroadcaster(sink)
	return NewEventRecorder(b, mgr.GetScheme()), b.Shutdown, nil
}
