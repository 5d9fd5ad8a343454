// Package sim is an in-memory ScriptLock customer API for tests and the
// demo: a real http.Handler that implements the wire protocol of SPEC
// section 1 exactly (see package scriptlock), with fault injection.
//
// Behaviour:
//
//   - Each API key is its own account with its own records (WithAccount may
//     be given several times); a wrong or missing key answers 401.
//   - Ids are decimal and increase across all accounts of one Server; each
//     Server (each New) starts at 1, so two instances both hand out id 1
//     first. They are sent as JSON numbers, or strings with WithStringIDs.
//   - Emails are unique per account, compared case-insensitively: 409 on a
//     create, and on a PUT that would take another record's email.
//   - GET /api/customer/{id} answers 302 with the JSON record and
//     Location: /api/customer/{id}; POST answers 201 with the record and
//     Location; PUT answers 200 with the record, or 304 when nothing changes
//     (exact comparison, so a change of email case is a change); an empty
//     list answers 204; DELETE answers 410 and removes the record, 404 when
//     it is not there, 409 when refused.
//   - Form bodies must carry an email (400 otherwise); fields that are
//     absent are stored empty, since the client always sends the whole record.
//
// Faults are injected with Go methods or with the admin HTTP API on the same
// listener, which answers loopback clients only (403 otherwise):
//
//   - FailNext: the next n matching calls answer a status (Retry-After optional).
//   - SetLatency: every answer is delayed.
//   - RefuseDelete: DELETE of one record answers 409.
//   - LoseNextCreate: the next create stores the record, then answers 500
//     (LoseWith500) or 504 (LoseWith504), or drops the connection
//     (LoseByDroppingConnection), or answers 409 naming the record just
//     made, as a gateway that retried the POST would (LoseWithConflict).
//   - AnswerNextCreate: the next create stores the record, then answers an
//     odd status instead of 201: 200 with the record; 202 or 204 with
//     Location only; 302 with Location and the record; any other status with
//     Location only.
//   - CommitNextCreateLate: the next create stores the record and loses the
//     answer (504 by default), and the record stays out of GET by id (404)
//     and the listing for a while (measured on the WithClock time source),
//     yet takes its email at once, so a retry answers 409. PUT, DELETE,
//     Records and Record see it.
//   - SetTidy: every field of a create or update is passed through a function
//     before it is stored, and a PUT whose tidied values equal the stored ones
//     answers 304 (CollapseSpaces collapses runs of inner spaces to one).
//   - AddRawListItem: a raw JSON item (say, a record without an id) is
//     appended to every listing of an account; nothing else sees it.
//   - VanishNext, SetVanished: reads (listings, GET by id) answer as if
//     the account were empty (204, 404) while the records are still there
//     (a lagging replica; a failover to an empty replica); writes still
//     see them.
//   - WithIDsPerAccount: each account numbers its records from 1.
//   - Clone: another instance with the same keys, ids and records (staging
//     restored from production).
//   - EditOutOfBand, DeleteOutOfBand: drift, as someone using ScriptLock
//     directly would cause.
//
// LoseNextCreate, AnswerNextCreate and CommitNextCreateLate share one queue,
// applied to successful creates (of any account) in call order; ClearFaults
// empties it. Calls and CallCount count answers; CallLog lists them in order
// (method, route, status, id, form email; the last 10000).
//
// Admin HTTP API. Where an account key is asked for, it may be left out
// when the server has exactly one account.
//
//	GET    /_sim/records?key=K         records of an account, JSON array
//	POST   /_sim/records?key=K         store a record as is (JSON record; empty id = next id)
//	PUT    /_sim/records/{id}?key=K    out-of-band edit: JSON object with any of
//	                                   company, firstname, lastname, email
//	DELETE /_sim/records/{id}?key=K    out-of-band delete
//	GET    /_sim/calls                 call counters, {"POST /api/customer 201": 3, ...}
//	DELETE /_sim/calls                 reset the counters
//	POST   /_sim/fail                  {"method":"GET","route":"/api/customer/{id}",
//	                                    "count":2,"status":503,"retryAfterSeconds":2}
//	                                   (empty method or route matches any)
//	DELETE /_sim/fail                  clear pending faults and lost creates
//	POST   /_sim/latency               {"latency":"250ms"}
//	POST   /_sim/refuse-delete         {"key":K,"id":"42","message":"has active licenses"}
//	DELETE /_sim/refuse-delete?key=K&id=42   allow the delete again
//	POST   /_sim/lose-create           {"mode":"500"}, {"mode":"504"}, {"mode":"drop"} or
//	                                   {"mode":"409"}: the next create stores the record,
//	                                   then answers 500 or 504, drops the connection, or
//	                                   answers 409 naming the record
//	POST   /_sim/answer-create         {"status":202}: AnswerNextCreate
//	POST   /_sim/late-create           {"hide":"1.5s","mode":"504"}: CommitNextCreateLate
//	                                   (mode "504" (default), "500" or "drop")
//	POST   /_sim/tidy                  {"tidy":"collapse-spaces"} or {"tidy":"off"}
//	POST   /_sim/raw-list-items?key=K  any JSON value: AddRawListItem
//	DELETE /_sim/raw-list-items?key=K  remove the raw list items
//	GET    /_sim/call-log              [{"method":"POST","route":"/api/customer",
//	                                     "status":201,"id":"1","email":"a@example.com"}, ...]
//	                                   (status 0 = dropped; DELETE /_sim/calls empties it)
//	POST   /_sim/accounts              {"key":K}: add an account
//
// Call counters are keyed "METHOD ROUTE STATUS" with ROUTE one of
// /api/customer, /api/customer/{id}, /api/customers or "unknown", and STATUS
// the code or "dropped".
package sim
