package scriptlock

import "context"

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
