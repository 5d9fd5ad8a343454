package scriptlock

import (
	"context"
	"sync/atomic"
	"time"
)

type callerKey struct{}

// WithCaller names who makes the calls made with ctx (for example the
// namespace/name of a Kubernetes object), so that a call past the
// account's rate limit is given a place in line and answered at once with
// ErrOverRate, instead of waiting: see ErrOverRate.
func WithCaller(ctx context.Context, caller string) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}

// callerOf returns the caller WithCaller named, or "".
func callerOf(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

type turnedAwayKey struct{}

// WithTurnedAwayMark returns a ctx whose calls note it when a gate turns
// them away (ErrThrottled: past the rate, in-flight cap or hold) before
// anything is sent, and a function that says whether one was. A caller
// that times its own work uses it to leave such passes, which end at once,
// out of its average.
func WithTurnedAwayMark(ctx context.Context) (context.Context, func() bool) {
	var mark atomic.Bool
	return context.WithValue(ctx, turnedAwayKey{}, &mark), mark.Load
}

type answerTimeKey struct{}

// WithAnswerTime returns a ctx whose calls add up how long ScriptLock took
// to answer them (from the request sent to the whole answer read, or to no
// answer), and the function that reads the sum. A call turned away by a
// gate, or not sent, adds nothing.
func WithAnswerTime(ctx context.Context) (context.Context, func() time.Duration) {
	var sum atomic.Int64
	return context.WithValue(ctx, answerTimeKey{}, &sum), func() time.Duration { return time.Duration(sum.Load()) }
}

// addAnswerTime adds d to ctx's sum (WithAnswerTime), if it has one.
func addAnswerTime(ctx context.Context, d time.Duration) {
	if s, ok := ctx.Value(answerTimeKey{}).(*atomic.Int64); ok {
		s.Add(int64(d))
	}
}

// markTurnedAway notes on ctx (WithTurnedAwayMark) that a call was turned
// away.
func markTurnedAway(ctx context.Context) {
	if m, ok := ctx.Value(turnedAwayKey{}).(*atomic.Bool); ok {
		m.Store(true)
	}
}
