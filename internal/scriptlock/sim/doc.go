// Package sim is an in-memory ScriptLock customer API for tests and the
// demo: a real http.Handler that implements the wire protocol of SPEC
// section 1 exactly (see package scriptlock), with fault injection.
//
// Behaviour:
//
//   - Each API key is its own account with its own records (WithAccount may
//     be given several times); a wrong or missing key answers 401.
//   - Ids are decimal and increase across all accounts; they are sent as
//     JSON numbers, or strings with WithStringIDs.
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
// Faults are injected with Go methods (FailNext, SetLatency, RefuseDelete,
// LoseNextCreate, EditOutOfBand, DeleteOutOfBand) or with the admin HTTP API
// on the same listener, which answers loopback clients only (403 otherwise).
// Where an account key is asked for, it may be left out when the server has
// exactly one account.
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
//	POST   /_sim/lose-create           {"mode":"500"} or {"mode":"drop"}: the next create
//	                                   stores the record, then answers 500 or drops
//	                                   the connection
//	POST   /_sim/accounts              {"key":K}: add an account
//
// Call counters are keyed "METHOD ROUTE STATUS" with ROUTE one of
// /api/customer, /api/customer/{id}, /api/customers or "unknown", and STATUS
// the code or "dropped".
package sim
