package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Transient errors back off exponentially from about a second to five
// minutes (SPEC section 3) by default (CustomerReconciler.TransientBackoff). The
// operator's own writes to the object never re-queue it (see
// relevantChange), so they cannot shorten this backoff.
const (
	transientBackoffMin = time.Second
	transientBackoffMax = 5 * time.Minute
)

// backoffPolicy says how long a Customer waits after a failure that needs a
// person (Stalled): no faster than Min, doubling up to Max.
type backoffPolicy struct {
	Min, Max time.Duration
}

func (b backoffPolicy) after(failures int) time.Duration {
	d := b.Min
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// stalledBackoff remembers, per Customer, the stalled failures of its
// current generation, so that a Customer waiting for a person costs no
// ScriptLock call and no API-server read, and a spec change retries at once.
type stalledBackoff struct {
	policy backoffPolicy

	mu      sync.Mutex
	objects map[types.NamespacedName]stalledState
}

type stalledState struct {
	generation int64
	failures   int
	notBefore  time.Time
}

func newStalledBackoff(p backoffPolicy) *stalledBackoff {
	return &stalledBackoff{policy: p, objects: map[types.NamespacedName]stalledState{}}
}

// failed records a stalled failure of key at generation and returns how
// long to wait before the next attempt.
func (b *stalledBackoff) failed(key types.NamespacedName, generation int64, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.objects[key]
	if s.generation != generation {
		s = stalledState{generation: generation}
	}
	s.failures++
	d := b.policy.after(s.failures)
	s.notBefore = now.Add(d)
	b.objects[key] = s
	return d
}

// wait returns how long key must still wait after a stalled failure of the
// same generation; a new generation (a spec change) never waits.
func (b *stalledBackoff) wait(key types.NamespacedName, generation int64, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.objects[key]
	if !ok || s.generation != generation || !now.Before(s.notBefore) {
		return 0
	}
	return s.notBefore.Sub(now)
}

// reset forgets the failures of key, after a success.
func (b *stalledBackoff) reset(key types.NamespacedName) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.objects, key)
}

// retryBackoff is the one backoff of a Customer's transient failures
// (5xx, no answer, 429, a create whose outcome is unknown) and of the
// waits the operator imposes on itself (its in-flight cap, a listing under
// way): kept by the operator, per Customer, and reset only by success. The
// workqueue's own backoff is forgotten by controller-runtime whenever a
// pass asks to be requeued after a wait, so a Customer that kept failing
// would start again from a second after every such wait.
type retryBackoff struct {
	failure backoffPolicy // transient failures: 1 s doubling to 5 min
	self    backoffPolicy // the operator's own waits: 250 ms doubling to 4 s

	mu      sync.Mutex
	objects map[types.NamespacedName]*retryState
}

type retryState struct {
	failures, waits int
}

// Self-imposed waits grow from selfWaitMin to selfWaitMax.
const (
	selfWaitMin = 250 * time.Millisecond
	selfWaitMax = 4 * time.Second
)

func newRetryBackoff(failure backoffPolicy) *retryBackoff {
	return &retryBackoff{
		failure: failure,
		self:    backoffPolicy{Min: selfWaitMin, Max: selfWaitMax},
		objects: map[types.NamespacedName]*retryState{},
	}
}

func (b *retryBackoff) state(key types.NamespacedName) *retryState {
	s, ok := b.objects[key]
	if !ok {
		s = &retryState{}
		b.objects[key] = s
	}
	return s
}

// failed records a transient failure of key and returns the wait before
// the next attempt: at least atLeast (a Retry-After), else the exponential
// backoff of the failures since the last success.
func (b *retryBackoff) failed(key types.NamespacedName, atLeast time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.state(key)
	s.failures++
	return max(atLeast, b.failure.after(s.failures))
}

// waited records a wait the operator imposes on itself and returns how
// long: at least atLeast (the turn the rate limiter gave), else growing
// with the waits since the last success.
func (b *retryBackoff) waited(key types.NamespacedName, atLeast time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.state(key)
	s.waits++
	if atLeast > 0 {
		return atLeast
	}
	return b.self.after(s.waits)
}

// reset forgets key's failures and waits, after a success.
func (b *retryBackoff) reset(key types.NamespacedName) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.objects, key)
}
