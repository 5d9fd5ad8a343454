package scriptlock

import (
	"context"
	"sync/atomic"
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

// markTurnedAway notes on ctx (WithTurnedAwayMark) that a call was turned
// away.
func markTurnedAway(ctx context.Context) {
	if m, ok := ctx.Value(turnedAwayKey{}).(*atomic.Bool); ok {
		m.Store(true)
	}
}
