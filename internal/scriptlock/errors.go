package scriptlock

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Kind classifies the cause carried in Error.Err, so that callers can test
// for it with errors.Is without comparing strings. Kinds are constants, not
// variables, so that no package-level state can be changed at run time.
type Kind string

// Error makes a Kind usable as a sentinel error.
func (k Kind) Error() string { return string(k) }

// The kinds of failure the client reports. Each is wrapped in Error.Err,
// together with the underlying cause when there is one.
const (
	// ErrNetwork means no HTTP answer was received: the dial, TLS handshake,
	// write or read failed (for example a dropped connection).
	ErrNetwork Kind = "network error"
	// ErrTimeout means the per-request timeout (or the caller's deadline)
	// expired before a complete answer arrived.
	ErrTimeout Kind = "timeout"
	// ErrThrottled means the call was not sent: the account is held back
	// (by a Retry-After answer, or after several calls in a row got no
	// answer; RetryAfter is the time left), it already has
	// Options.MaxInFlight requests in flight, or the caller's deadline was
	// too short to wait for the client-side rate limiter.
	ErrThrottled Kind = "throttled by the client"
	// ErrOverRate comes with ErrThrottled when a call that named its
	// caller (WithCaller) is past the account's rate limit: RetryAfter is
	// when its turn comes, and the caller's call at that time passes. It
	// is the client's own limit, not ScriptLock's answer.
	ErrOverRate Kind = "over the client's rate limit"
	// ErrBodyTooLarge means a response body exceeded MaxBodyBytes.
	ErrBodyTooLarge Kind = "response body too large"
	// ErrMalformedBody means a success answer did not carry the expected JSON.
	ErrMalformedBody Kind = "malformed response body"
	// ErrNoID means a create was answered 201 without a usable id in either
	// the body or the Location header.
	ErrNoID Kind = "no customer id in the answer"
	// ErrUnexpectedStatus means ScriptLock answered with a status code that
	// is not documented for the call; the code is in Error.StatusCode.
	ErrUnexpectedStatus Kind = "unexpected status"
	// ErrInvalidArgument means the call was refused before anything was sent,
	// for example because of an empty or unsafe customer id.
	ErrInvalidArgument Kind = "invalid argument"
	// ErrReadOnly means a write (POST, PUT, DELETE) was refused before
	// anything was sent, because the Client is read-only
	// (Options.ReadOnly).
	ErrReadOnly Kind = "refused by a read-only client"
)

// maxMessageBytes bounds Error.Message so that a chatty or hostile server
// cannot bloat conditions, events and logs: the base URL can come from a
// tenant's Secret, so the text can come from any host.
const maxMessageBytes = 256

// Error is the only error type returned by the client's calls. Callers
// inspect it with errors.As or the Is* helpers rather than its text.
type Error struct {
	// Op is the call: "get", "create", "update", "list" or "delete".
	Op string
	// StatusCode is the HTTP status, or 0 when no HTTP answer was received.
	StatusCode int
	// Message is the server's own explanation (body text, or the JSON
	// "message"/"error" field), trimmed, single-line and at most 256 bytes.
	// It is foreign text: the base URL may come from a tenant's Secret, so
	// it can come from any host. Error() quotes it.
	Message string
	// RetryAfter is the wait asked for by a Retry-After header, or the time
	// left before the account may be called again; 0 if none.
	RetryAfter time.Duration
	// Err is the underlying cause, wrapping one of the Kind constants.
	Err error
}

// Error describes the failure, for example
//
//	scriptlock delete: 409 Conflict: server said "customer has 3 active licenses"
//
// The server's Message comes last, labelled and Go-quoted, so that it cannot
// pass for the client's own words nor forge a log line. The text never
// contains the API key: the key travels only in a request header, which is
// never part of an error, and Message is scrubbed of the key when the Error
// is built.
func (e *Error) Error() string {
	s := "scriptlock " + e.Op
	if e.StatusCode != 0 {
		s += ": " + strconv.Itoa(e.StatusCode) + " " + http.StatusText(e.StatusCode)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Message != "" {
		s += ": server said " + strconv.Quote(e.Message)
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Unwrap returns the underlying cause so errors.Is works with the Kind
// constants and with causes such as context.DeadlineExceeded.
func (e *Error) Unwrap() error { return e.Err }

func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsNotFound reports whether ScriptLock answered 404 Not Found.
func IsNotFound(err error) bool {
	e, ok := asError(err)
	return ok && e.StatusCode == http.StatusNotFound
}

// IsConflict reports whether ScriptLock answered 409 Conflict: on create or
// update the email is used by another record, on delete the delete was
// refused (see Message).
func IsConflict(err error) bool {
	e, ok := asError(err)
	return ok && e.StatusCode == http.StatusConflict
}

// IsUnauthorized reports whether ScriptLock refused the API key (401 or 403).
func IsUnauthorized(err error) bool {
	e, ok := asError(err)
	return ok && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden)
}

// IsRetryable reports whether the same call may succeed later without any
// change: no answer (network error, timeout, client-side throttling), 408,
// 429 or any 5xx. A body that broke off mid-read is also retryable.
func IsRetryable(err error) bool {
	e, ok := asError(err)
	if !ok || errors.Is(e.Err, ErrReadOnly) {
		return false
	}
	switch {
	case e.StatusCode == 0,
		e.StatusCode == http.StatusRequestTimeout,
		e.StatusCode == http.StatusTooManyRequests,
		e.StatusCode >= 500 && e.StatusCode <= 599:
		return true
	}
	return errors.Is(e.Err, ErrNetwork) || errors.Is(e.Err, ErrTimeout)
}

// IsMaybeCreated reports whether a create failed in a way that leaves the
// record possibly created: the request may have reached ScriptLock but its
// answer was lost (no answer, a 5xx), was a 201 whose body or id was
// unusable, or was any other non-4xx status (200, 202, 204, 302, ...,
// reported as ErrUnexpectedStatus), which does not say that nothing was
// written. The caller must look for the record (for example by listing and
// matching the email) before creating again, or it risks a duplicate.
// Failures that prove nothing was written are excluded: invalid arguments
// throttling and a read-only client (nothing was sent) and any 4xx (see IsRefused).
func IsMaybeCreated(err error) bool {
	e, ok := asError(err)
	if !ok || e.Op != "create" {
		return false
	}
	if e.StatusCode == 0 {
		return !errors.Is(e.Err, ErrThrottled) && !errors.Is(e.Err, ErrInvalidArgument) && !errors.Is(e.Err, ErrReadOnly)
	}
	return !IsRefused(e)
}

// IsRefused reports whether ScriptLock answered the call with a 4xx status
// (400, 401, 403, 404, 408, 409, 422, 429, ...): it did not carry the call
// out, so nothing was written. It says nothing about whether retrying can
// help (see IsRetryable: 408 and 429 can). A call that got no answer, a
// 5xx, or a call that was never sent is not refused.
func IsRefused(err error) bool {
	e, ok := asError(err)
	return ok && e.StatusCode >= 400 && e.StatusCode <= 499
}
