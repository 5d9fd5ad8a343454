// Package eventrecorder records events.k8s.io/v1 Events in bounded memory.
//
// client-go's events.k8s.io recorder (tools/events, which controller-runtime's
// GetEventRecorder returns) keeps every Event it sent for 6 to 12 minutes, to
// fold repeats into a series: about 1.2 KB an Event, so 60 MB after 50,000
// Customers are created at once. Its core/v1 recorder (tools/record) keeps a
// bounded state but drops Events once 1,000 wait to be sent, which a storm of
// creates reaches in seconds. This recorder keeps what neither does at once:
// the same Events and series on the wire as tools/events, a fixed number of
// senders, a queue of QueueSize Events (the only place a whole Event waits),
// and a least-recently-used memory of SeriesSize series of about 200 bytes
// each. An Event is dropped, and counted, only when QueueSize wait already.
package eventrecorder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	eventsclient "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/tools/record/util"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/clock"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Defaults of Options.
const (
	// DefaultQueueSize Events wait to be sent at most (about 1.2 KB each).
	DefaultQueueSize = 10000
	// DefaultSeriesSize series are remembered at most; 4096 as tools/record's
	// LRU.
	DefaultSeriesSize = 4096
	// DefaultSenders Events are sent at once: as many as keep up with a
	// storm of creates on an API server that answers in 50 ms (320 a
	// second), so that Events wait seconds, not minutes.
	DefaultSenders = 16
	// seriesWindow is how long after its last repeat an Event still takes
	// repeats into its series (tools/events' finishTime).
	seriesWindow = 6 * time.Minute
	// maxTries is how many times an Event is sent before it is given up when
	// the API server cannot be reached (tools/events' maxTriesPerEvent).
	maxTries = 12
	// retryWait is the wait between two tries, ±25 % (tools/events'
	// defaultSleepDuration).
	retryWait = 10 * time.Second
)

// Options configure a Recorder. The zero value of each field takes its
// default.
type Options struct {
	// Controller is the Events' reportingController (required).
	Controller string
	// Instance is the Events' reportingInstance; Controller-hostname if empty.
	Instance string
	// QueueSize, SeriesSize and Senders: see the Default constants.
	QueueSize, SeriesSize, Senders int
	// OnDrop is called once for every Event dropped because the queue was
	// full (a metric's Inc); nil for none.
	OnDrop func()
	// Clock gives the Events' times; the real clock if nil.
	Clock clock.PassiveClock
	// RetryWait is the wait between two tries of an Event the API server
	// did not take; retryWait (10 s) if zero.
	RetryWait time.Duration
}

// Recorder implements client-go's events.EventRecorder (and
// controller-runtime's recorder.EventRecorder). Eventf never blocks. Events
// are sent by Start, which the manager runs (Recorder is a
// manager.Runnable); until then they wait in the queue.
type Recorder struct {
	client  eventsclient.EventsV1Interface
	scheme  *runtime.Scheme
	opts    Options
	queue   chan *pending
	mu      sync.Mutex
	series  *lru.Cache // seriesKey → *series
	dropped atomic.Uint64
}

// seriesKey says which Events are repeats of one another: those of
// tools/events' eventKey (the note is not part of it).
type seriesKey struct {
	eventType, action, reason string
	regarding, related        corev1.ObjectReference
}

// series is what is remembered of an Event sent, to fold its repeats.
type series struct {
	namespace, name string
	count           int32
	last            time.Time
	// queued is true while a patch of this series waits in the queue, so
	// that repeats in between only raise count.
	queued bool
	// created is true once the API server took the first Event: until
	// then repeats only count, and the create queues their patch.
	created bool
}

// pending is one thing to send: a new Event, which starts series s, or,
// when event is nil, the patch of series s's count and last time.
type pending struct {
	event *eventsv1.Event
	s     *series
	key   seriesKey
}

// New returns a Recorder that creates Events through c, resolving the kinds
// of objects with scheme.
func New(c eventsclient.EventsV1Interface, scheme *runtime.Scheme, opts Options) *Recorder {
	if opts.Instance == "" {
		host, _ := os.Hostname()
		opts.Instance = opts.Controller + "-" + host
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.SeriesSize <= 0 {
		opts.SeriesSize = DefaultSeriesSize
	}
	if opts.Senders <= 0 {
		opts.Senders = DefaultSenders
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.RetryWait <= 0 {
		opts.RetryWait = retryWait
	}
	return &Recorder{
		client: c,
		scheme: scheme,
		opts:   opts,
		queue:  make(chan *pending, opts.QueueSize),
		series: lru.New(opts.SeriesSize),
	}
}

// Dropped returns how many Events were dropped because the queue was full.
func (r *Recorder) Dropped() uint64 { return r.dropped.Load() }

// Queued returns how many Events and series patches wait to be sent.
func (r *Recorder) Queued() int { return len(r.queue) }

// Eventf records an Event about regarding (and related, if not nil): a new
// Event, or a repeat of one sent less than 6 minutes before it, which raises
// that Event's series count. An object whose kind the scheme does not know,
// or a type other than Normal and Warning, records nothing.
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.AnnotatedEventf(regarding, related, nil, eventtype, reason, action, note, args...)
}

// AnnotatedEventf is Eventf with annotations on a new Event.
func (r *Recorder) AnnotatedEventf(regarding, related runtime.Object, annotations map[string]string, eventtype, reason, action, note string, args ...any) {
	logger := log.Log.WithName("eventrecorder")
	if !util.ValidateEventType(eventtype) {
		logger.Error(nil, "Unsupported event type", "type", eventtype, "reason", reason)
		return
	}
	ref, err := reference.GetReference(r.scheme, regarding)
	if err != nil {
		logger.Error(err, "No reference to the object, Event not recorded", "reason", reason)
		return
	}
	key := seriesKey{eventType: eventtype, action: action, reason: reason, regarding: *ref}
	var relatedRef *corev1.ObjectReference
	if related != nil {
		if relatedRef, err = reference.GetReference(r.scheme, related); err == nil {
			key.related = *relatedRef
		}
	}
	now := r.opts.Clock.Now()

	r.mu.Lock()
	if v, ok := r.series.Get(key); ok {
		s := v.(*series)
		if now.Sub(s.last) < seriesWindow {
			s.count++
			s.last = now
			if !s.created || s.queued {
				// The create, once taken, queues the patch of the count;
				// a patch already queued sends the count as it is then.
				r.mu.Unlock()
				return
			}
			s.queued = true
			r.mu.Unlock()
			r.enqueue(&pending{s: s, key: key})
			return
		}
	}
	namespace := ref.Namespace
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:        util.GenerateEventName(ref.Name, now.UnixNano()),
			Namespace:   namespace,
			Annotations: annotations,
		},
		EventTime:           metav1.MicroTime{Time: now},
		ReportingController: r.opts.Controller,
		ReportingInstance:   r.opts.Instance,
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Related:             relatedRef,
		Note:                fmt.Sprintf(note, args...),
		Type:                eventtype,
	}
	made := &series{namespace: namespace, name: ev.Name, count: 1, last: now}
	r.series.Add(key, made)
	r.mu.Unlock()
	r.enqueue(&pending{event: ev, s: made, key: key})
}

// enqueue puts p in the queue, or drops it if the queue is full.
func (r *Recorder) enqueue(p *pending) {
	select {
	case r.queue <- p:
	default:
		r.abandon(p)
		if n := r.dropped.Add(1); n == 1 || n%1000 == 0 {
			log.Log.WithName("eventrecorder").Info("Events dropped: the queue of Events to send is full", "dropped", n, "queue", r.opts.QueueSize)
		}
		if r.opts.OnDrop != nil {
			r.opts.OnDrop()
		}
	}
}

// abandon undoes what p's queueing promised: a new Event that will not be
// created is forgotten, so that its next repeat is a new Event, not a
// patch of nothing; a series patch that will not be sent lets the next
// repeat queue another.
func (r *Recorder) abandon(p *pending) {
	if p.event != nil {
		r.forget(p.key, p.s)
		return
	}
	r.mu.Lock()
	p.s.queued = false
	r.mu.Unlock()
}

// forget drops key's series if it is still s.
func (r *Recorder) forget(key seriesKey, s *series) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.series.Get(key); ok && v.(*series) == s {
		r.series.Remove(key)
	}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica sends its own Events.
func (r *Recorder) NeedLeaderElection() bool { return false }

// Start sends the queued Events with Options.Senders goroutines until ctx
// is done, and returns nil then. Events still queued are not sent.
func (r *Recorder) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range r.opts.Senders {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case p := <-r.queue:
					r.send(ctx, p)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// outcome is what one try at sending came to.
type outcome int

const (
	done   outcome = iota // written, or nothing left to write
	again                 // the API server could not take it now
	failed                // refused: not worth another try
)

// send writes p, trying again while the API server cannot be reached, up
// to maxTries.
func (r *Recorder) send(ctx context.Context, p *pending) {
	for try := 1; ; try++ {
		switch r.write(ctx, p) {
		case done:
			return
		case failed:
			r.abandon(p)
			return
		}
		if try >= maxTries {
			log.FromContext(ctx).WithName("eventrecorder").Error(nil, "Event given up after retries", "reason", p.key.reason, "tries", try)
			r.abandon(p)
			return
		}
		pause := wait.Jitter(r.opts.RetryWait*3/4, 2.0/3) // RetryWait ± 25 %
		select {
		case <-ctx.Done():
			r.abandon(p)
			return
		case <-time.After(pause):
		}
	}
}

// write makes one try at p. A new Event refused for a reason other than
// the API server's load is lost (logged), as in tools/events.
func (r *Recorder) write(ctx context.Context, p *pending) outcome {
	s := p.s
	if p.event == nil {
		r.mu.Lock()
		s.queued = false
		count, last, namespace, name := s.count, s.last, s.namespace, s.name
		r.mu.Unlock()
		patch := fmt.Sprintf(`{"series":{"count":%d,"lastObservedTime":%q}}`, count,
			metav1.MicroTime{Time: last}.UTC().Format(metav1.RFC3339Micro))
		_, err := r.client.Events(namespace).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		switch {
		case err == nil:
			return done
		case apierrors.IsNotFound(err):
			// The Event was created and is gone (deleted, or past its
			// time to live): the next repeat is a new Event.
			r.forget(p.key, s)
			return done
		case retryable(ctx, err, p.key.reason):
			return again
		}
		return failed
	}
	_, err := r.client.Events(p.event.Namespace).Create(ctx, p.event, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		// AlreadyExists: an earlier try was taken and its answer lost
		// (the name is the regarding object's and the nanosecond's).
		if retryable(ctx, err, p.key.reason) {
			return again
		}
		return failed
	}
	// Repeats recorded while the create was under way are sent now.
	r.mu.Lock()
	s.created = true
	patch := s.count > 1 && !s.queued
	if patch {
		s.queued = true
	}
	r.mu.Unlock()
	if patch {
		r.enqueue(&pending{s: s, key: p.key})
	}
	return done
}

// retryable says whether err is worth another try: the API server could
// not be reached, or answered 429, 5xx or a timeout. Other answers are
// logged and not retried.
func retryable(ctx context.Context, err error, reason string) bool {
	logger := log.FromContext(ctx).WithName("eventrecorder")
	var status apierrors.APIStatus
	if !errors.As(err, &status) || apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) ||
		apierrors.IsTimeout(err) || apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) {
		logger.V(1).Info("Event not written, will try again", "reason", reason, "error", err.Error())
		return true
	}
	logger.Error(err, "Event refused by the API server, not retried", "reason", reason)
	return false
}
