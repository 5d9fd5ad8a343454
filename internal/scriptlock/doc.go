// Package scriptlock is the operator's client for the ScriptLock customer
// REST API. It has no Kubernetes imports: the controller maps its errors to
// conditions and requeues.
//
// # Wire protocol
//
// The vendor page gives paths, methods, form fields and status codes, but no
// bodies. This package fixes the following assumptions (SPEC section 1), and
// the simulator in package sim implements exactly these:
//
//	call      request                               success                              other answers
//	get one   GET /api/customer/{id}                302 Found, JSON record body          404 Not Found
//	create    POST /api/customer, form body         201 Created, JSON record body and    409 Conflict (email used)
//	                                                Location: /api/customer/{id}
//	modify    PUT /api/customer/{id}, form body     200 OK (body optional)               304 Not Modified (also success)
//	list      GET /api/customers                    200 OK, JSON array of records        204 No Content = empty list
//	delete    DELETE /api/customer/{id}             410 Gone (licenses revoked)          409 Conflict (refused);
//	                                                                                     404 = already gone (success)
//
// The details:
//
//   - A record is {"id": 42, "company": "...", "firstname": "...",
//     "lastname": "...", "email": "..."}; the id may be a JSON number or a
//     string and is held as a string. Unknown fields are ignored.
//   - Form bodies are application/x-www-form-urlencoded with the fields in
//     the vendor's order: company, firstname, lastname, email. The whole
//     record is always sent, so an empty company clears it.
//   - Authentication is "Authorization: Basic <api key>" with the key
//     verbatim, as the vendor page shows (not base64 of user:password).
//   - The 302 of "get one" carries the record in its body; redirects are
//     never followed, so the key is never sent to another host.
//   - On create the id is taken from the body, else from the last path
//     segment of Location.
//   - On get, a body without an id takes the requested id; a body with a
//     different id is a malformed answer.
//   - Emails are unique per account, compared case-insensitively; that is
//     what 409 on create (and on modify) means.
//   - An error answer's message is the JSON "message" (or "error") field,
//     else the body text, trimmed to one line of at most 256 bytes. It is
//     foreign text (the base URL can come from a tenant's Secret), so
//     Error() labels and quotes it: `server said "..."`.
//   - A listed record without a usable id (absent, null, empty, or unsafe
//     in a URL) is left out of the listing and counted; a body that is not
//     a JSON array fails the listing.
//   - Create answered with anything but 201 or 409: a 4xx means nothing was
//     created; any other status (200, 202, 204, 302, 5xx, ...) or no answer
//     means the record may exist.
//   - Retry-After is honoured as delay-seconds or an HTTP date, capped at
//     one hour.
//
// Anything else (401/403, 429 or 5xx with Retry-After, other codes, a body
// that is not the expected JSON, a body over 1 MiB (64 MiB for a listing,
// which holds the whole account), a timeout, a dropped
// connection) is returned as an *Error, never a panic or a hang.
//
// # Errors
//
// Every call returns *Error on failure. Use IsNotFound, IsConflict,
// IsUnauthorized, IsRefused, IsRetryable and IsMaybeCreated, and the
// Error's RetryAfter field, to decide what to do, and errors.Is with the Kind constants (ErrTimeout,
// ErrNetwork, ErrBodyTooLarge, ...) for the cause.
//
// # Transport and throttling
//
// A Client owns one http.Client with connection reuse, TLS 1.2 minimum, an
// optional CA bundle, HTTPS_PROXY support and a per-request timeout that also
// covers reading the body. Options.AllowedHosts, when set, limits the hosts a
// base URL may name (the --allowed-scriptlock-hosts flag).
//
// Every Client of one host (scheme, host and port) in a Pool shares a host
// gate: the in-flight cap (Options.MaxInFlightPerHost, across all its
// accounts) and the no-answer hold below, so that many accounts pointing at
// one host that never answers hold a bounded number of workers.
//
// Every Client of one account (base URL + key) in a Pool, whatever its CA,
// shares one gate:
//
//   - a token-bucket rate limiter (QPS/burst), the only thing that waits,
//     never past the caller's deadline;
//   - a hold: after a 429 or 5xx with Retry-After, or after 3 calls in a row
//     got no answer (timeout or connection failure; 30s, doubling with each
//     further hold up to 5 minutes, until any HTTP answer), further calls
//     fail at once, without being sent, with ErrThrottled and RetryAfter
//     the time left; a call waiting for the limiter checks again after the
//     wait;
//   - an in-flight cap (MaxInFlight, default 4): a call beyond it fails at
//     once with ErrThrottled and no RetryAfter, so that a host that accepts
//     connections and never answers cannot hold every worker.
//
// The client never sleeps or retries by itself; the caller requeues.
//
// # Metrics
//
// A Pool registers scriptlock_requests_total{method,route,code},
// scriptlock_request_duration_seconds{method,route} and
// scriptlock_list_records_skipped_total (listed records left out for want of
// a usable id). route is a template such as /api/customer/{id}; code is the
// status, or "error" when no answer was received. Calls held back by the
// client are not sent and not counted.
package scriptlock
