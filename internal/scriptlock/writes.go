package scriptlock

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Write describes one POST, PUT or DELETE that was sent to ScriptLock: the
// three calls that change an account (Create, Update, Delete). It never
// holds the API key or a field value.
type Write struct {
	// Operation is "create", "update" or "delete".
	Operation string
	// Method is the HTTP method: POST, PUT or DELETE.
	Method string
	// Account is the account fingerprint (Client.Account).
	Account string
	// RecordID is the record written: the id in the path, or for a create
	// the id of the new record ("" when the answer did not give one).
	RecordID string
	// StatusCode is ScriptLock's answer, 0 when none was received.
	StatusCode int
	// Result is the outcome, one of the WriteResult constants.
	Result WriteResult
	// Err is the call's error (an *Error, scrubbed of the key), or nil.
	Err error
	// Duration is the time from admission to the answer.
	Duration time.Duration
}

// WriteResult is the outcome of a Write, a bounded set fit for a metric
// label.
type WriteResult string

// The outcomes of a Write.
const (
	// WriteCreated: 201, the record was created.
	WriteCreated WriteResult = "created"
	// WriteUpdated: 200, the record was changed.
	WriteUpdated WriteResult = "updated"
	// WriteUnchanged: 304, the record already held the fields.
	WriteUnchanged WriteResult = "unchanged"
	// WriteDeleted: 410, the record was deleted and its licenses revoked.
	WriteDeleted WriteResult = "deleted"
	// WriteAlreadyGone: 404 to a DELETE, the record was already gone.
	WriteAlreadyGone WriteResult = "alreadyGone"
	// WriteConflict: 409 (an email taken, a DELETE refused).
	WriteConflict WriteResult = "conflict"
	// WriteNotFound: 404 to a PUT.
	WriteNotFound WriteResult = "notFound"
	// WriteRateLimited: 429.
	WriteRateLimited WriteResult = "rateLimited"
	// WriteRefused: any other 4xx; nothing was changed.
	WriteRefused WriteResult = "refused"
	// WriteServerError: 5xx; the write may or may not have been applied.
	WriteServerError WriteResult = "serverError"
	// WriteNoAnswer: sent, and no answer was received (a timeout, a
	// dropped connection); the write may or may not have been applied.
	WriteNoAnswer WriteResult = "noAnswer"
	// WriteInvalidAnswer: an answer the client could not use (an
	// undocumented status, a malformed body).
	WriteInvalidAnswer WriteResult = "invalidAnswer"
)

// WriteObserver is told of every write a Client sent (Options.OnWrite),
// once, after its outcome is known, with the caller's context: a caller can
// put in ctx why it writes, for a change log. It is not called for a write
// that was never sent (refused by the client's gates, an invalid id, a
// prepare hook that failed). It must not block: the caller waits for it.
type WriteObserver func(ctx context.Context, w Write)

// writeTrace is what send learns of a write: whether it left, and its
// answer's status.
type writeTrace struct {
	sent   bool
	status int
}

type writeTraceKey struct{}

// traceOf returns the trace a write method put in ctx, or nil.
func traceOf(ctx context.Context) *writeTrace {
	t, _ := ctx.Value(writeTraceKey{}).(*writeTrace)
	return t
}

// beginWrite starts tracing one write; finish reports it to the metrics and
// to Options.OnWrite once its outcome is known.
func (c *Client) beginWrite(ctx context.Context, op, method string) (context.Context, func(id string, ok WriteResult, err error)) {
	t := &writeTrace{}
	start := time.Now()
	ctx = context.WithValue(ctx, writeTraceKey{}, t)
	return ctx, func(id string, ok WriteResult, err error) {
		if !t.sent {
			return
		}
		w := Write{Operation: op, Method: method, Account: c.account, RecordID: id, StatusCode: t.status,
			Result: writeResult(t.status, ok, err), Err: err, Duration: time.Since(start)}
		c.metrics.wrote(op, w.Result)
		if c.onWrite != nil {
			c.onWrite(ctx, w)
		}
	}
}

// writeResult is the outcome of a write answered status with err; ok is
// the outcome when err is nil.
func writeResult(status int, ok WriteResult, err error) WriteResult {
	switch {
	case err == nil:
		return ok
	case status == 0 || errors.Is(err, ErrNetwork) || errors.Is(err, ErrTimeout):
		return WriteNoAnswer
	case errors.Is(err, ErrUnexpectedStatus) || errors.Is(err, ErrMalformedBody) || errors.Is(err, ErrNoID) || errors.Is(err, ErrBodyTooLarge):
		if status >= 500 {
			return WriteServerError
		}
		if status == http.StatusTooManyRequests {
			return WriteRateLimited
		}
		if status >= 400 {
			return WriteRefused
		}
		return WriteInvalidAnswer
	case status == http.StatusConflict:
		return WriteConflict
	case status == http.StatusNotFound:
		return WriteNotFound
	}
	return WriteInvalidAnswer
}
