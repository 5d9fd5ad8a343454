package scriptlock

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// After holdAfterFailures calls of an account in a row get no answer
// (ErrTimeout or ErrNetwork), the account is held for holdBase, doubling
// with each further hold up to holdMax. A ScriptLock host that accepts
// connections and never answers would otherwise cost every caller a full
// Timeout on every attempt.
const (
	holdAfterFailures = 3
	holdBase          = 30 * time.Second
	holdMax           = 5 * time.Minute
)

// gate is what every Client of one account (base URL + key) shares, whatever
// its CA or transport: the rate limiter, the hold (from Retry-After or from
// repeated calls without an answer) and the in-flight count. Sharing it is
// what makes a limit per account rather than per Secret.
type gate struct {
	scope       string // "account" or "host", for the ErrThrottled message
	limiter     *rate.Limiter
	maxInFlight func() int       // the in-flight cap, read at every call
	now         func() time.Time // time.Now; replaced in tests

	mu         sync.Mutex
	tickets    map[string]*rate.Reservation // a caller's place in the rate limiter's line
	inFlight   int
	holdUntil  time.Time // no call before this instant
	holdReason string    // why, for the ErrThrottled message
	failures   int       // calls in a row that got no answer
	holds      int       // holds in a row caused by those failures
}

func newGate(o Options) *gate {
	return &gate{
		scope:       "account",
		limiter:     rate.NewLimiter(rate.Limit(o.QPS), o.Burst),
		maxInFlight: capOf(o.MaxInFlight, o.MaxInFlightFunc),
		now:         time.Now,
	}
}

// capOf is an in-flight cap: dynamic's value at each call (at least 1)
// when it is set, else the fixed one.
func capOf(fixed int, dynamic func() int) func() int {
	if dynamic == nil {
		return func() int { return fixed }
	}
	return func() int { return max(1, dynamic()) }
}

// newHostGate is the gate every account at one host shares: no rate limit
// (that is per account), but the in-flight cap and the no-answer hold, so
// that many accounts pointing at one host that never answers (a tenant can
// make as many Secrets as it likes) hold no more workers than one account.
func newHostGate(o Options) *gate {
	return &gate{
		scope:       "host",
		limiter:     rate.NewLimiter(rate.Inf, 0),
		maxInFlight: capOf(o.MaxInFlightPerHost, o.MaxInFlightPerHostFunc),
		now:         time.Now,
	}
}

// admit lets a call through or fails it at once with ErrThrottled: when the
// account is held (the time left is in RetryAfter) or has maxInFlight calls
// in flight. Only the rate limiter waits, and never past ctx's deadline; a
// hold that began during that wait is honoured too. A nil error means a slot
// was taken: the caller must call done exactly once.
//
// A call that names its caller (WithCaller) never waits for the limiter
// either: past the rate it is given a place in the limiter's line (a
// ticket) and fails at once with ErrThrottled, ErrOverRate and RetryAfter
// the time until its place comes; the same caller's call at that time
// uses the place. So a worker never waits on one account while another
// account has work, and callers of a busy account take turns in order.
func (g *gate) admit(ctx context.Context, op string) error {
	g.mu.Lock()
	err := g.refuseLocked(op)
	g.mu.Unlock()
	if err != nil {
		return err
	}
	if caller := callerOf(ctx); caller != "" {
		if err := g.takeTurn(op, caller); err != nil {
			return err
		}
	} else if err := g.limiter.Wait(ctx); err != nil {
		return &Error{Op: op, Err: fmt.Errorf("%w: rate limiter: %w", ErrThrottled, err)}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.refuseLocked(op); err != nil {
		return err
	}
	g.inFlight++
	return nil
}

// takeTurn lets caller's call pass the rate limiter now, or gives it a
// place in the limiter's line and an ErrOverRate error saying when its
// turn comes.
func (g *gate) takeTurn(op, caller string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	r, ok := g.tickets[caller]
	if !ok {
		r = g.limiter.ReserveN(now, 1)
		if !r.OK() {
			return &Error{Op: op, Err: fmt.Errorf("%w: %w: the rate limiter allows no call", ErrThrottled, ErrOverRate)}
		}
	}
	wait := r.DelayFrom(now)
	if wait <= 0 {
		delete(g.tickets, caller)
		return nil
	}
	if g.tickets == nil {
		g.tickets = map[string]*rate.Reservation{}
	}
	g.tickets[caller] = r
	g.pruneTicketsLocked(now)
	return &Error{Op: op, RetryAfter: wait,
		Err: fmt.Errorf("%w: %w: its turn comes in %s", ErrThrottled, ErrOverRate, wait.Round(time.Millisecond))}
}

// ticketGrace is how long past its time a place in the line is kept for a
// caller that does not come back (a deleted Customer).
const ticketGrace = time.Minute

// pruneTicketsLocked drops the places of callers that did not come back.
// g.mu must be held.
func (g *gate) pruneTicketsLocked(now time.Time) {
	if len(g.tickets) < 64 {
		return
	}
	for caller, r := range g.tickets {
		if r.DelayFrom(now) < -ticketGrace {
			delete(g.tickets, caller)
		}
	}
}

// refuseLocked returns the ErrThrottled error for a held or full account,
// or nil. g.mu must be held.
func (g *gate) refuseLocked(op string) *Error {
	if left := g.holdUntil.Sub(g.now()); left > 0 {
		// Whole seconds, as Retry-After: waking a fraction early would
		// only meet the hold again.
		if r := left % time.Second; r != 0 {
			left += time.Second - r
		}
		return &Error{Op: op, RetryAfter: left,
			Err: fmt.Errorf("%w: %s held back %s", ErrThrottled, g.scope, g.holdReason)}
	}
	if limit := g.maxInFlight(); g.inFlight >= limit {
		// No RetryAfter: the caller's own backoff is the right wait, since
		// nothing says when a slot frees up.
		return &Error{Op: op,
			Err: fmt.Errorf("%w: %s has too many requests in flight (%d)", ErrThrottled, g.scope, limit)}
	}
	return nil
}

// outcome is how an admitted call ended, for the no-answer hold.
type outcome int

const (
	// answered: an HTTP status was received; the failure count resets.
	answered outcome = iota
	// noAnswer: the call timed out or the connection failed.
	noAnswer
	// uncounted: the call ended for the caller's reasons (its context was
	// cancelled or its deadline passed, or the request could not be built),
	// which says nothing about the server.
	uncounted
)

// done releases the slot taken by admit and records the call's outcome.
func (g *gate) done(o outcome) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	switch o {
	case answered:
		g.failures, g.holds = 0, 0
		return
	case uncounted:
		return
	}
	g.failures++
	now := g.now()
	if g.failures < holdAfterFailures || now.Before(g.holdUntil) {
		// A failure that ends while the account is held comes from a call
		// sent before the hold began: it must not lengthen the hold, or a
		// few concurrent callers would jump straight to holdMax.
		return
	}
	d := holdBase
	for i := 0; i < g.holds && d < holdMax; i++ {
		d *= 2
	}
	d = min(d, holdMax)
	g.holds++
	g.holdUntil = now.Add(d)
	g.holdReason = fmt.Sprintf("after %d calls in a row got no answer", g.failures)
}

// holdFor holds the account for a Retry-After, unless it is already held
// longer.
func (g *gate) holdFor(d time.Duration) {
	if d <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	until := g.now().Add(d)
	if until.After(g.holdUntil) {
		g.holdUntil = until
		g.holdReason = "by an earlier Retry-After"
	}
}
