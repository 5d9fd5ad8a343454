package sim

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// Route templates, as used by FailNext, CallCount and the call counters.
const (
	RouteCustomer   = "/api/customer"
	RouteCustomerID = "/api/customer/{id}"
	RouteCustomers  = "/api/customers"
	// RouteUnknown labels calls to paths that are not part of the API.
	RouteUnknown = "unknown"
)

// maxFormBytes bounds request bodies; real records are tiny.
const maxFormBytes = 1 << 20

// LoseMode says how the answer of a create is lost (see LoseNextCreate).
type LoseMode int

const (
	// LoseWith500 creates the record, then answers 500 Internal Server Error.
	LoseWith500 LoseMode = iota + 1
	// LoseByDroppingConnection creates the record, then closes the
	// connection without answering.
	LoseByDroppingConnection
	// LoseWith504 creates the record, then answers 504 Gateway Timeout, as
	// a proxy in front of ScriptLock that gave up waiting would.
	LoseWith504
	// LoseWithConflict creates the record, then answers 409 "email already
	// used by customer <id>" naming the record just made, as a gateway that
	// retried the POST passes on the retry's answer.
	LoseWithConflict
)

// maxCallLog bounds the call log, so a long-running simulator does not
// grow without end; the oldest entries are dropped first.
const maxCallLog = 10000

// Option configures a Server.
type Option func(*Server)

// WithAccount adds an account whose API key is key. It may be given several
// times; each account has its own records.
func WithAccount(key string) Option {
	return func(s *Server) { s.addAccountLocked(key) }
}

// WithLatency delays every API answer by d.
func WithLatency(d time.Duration) Option {
	return func(s *Server) { s.latency = d }
}

// WithStringIDs makes the server send ids as JSON strings ("42") instead of
// numbers (42); SPEC section 1 allows both.
func WithStringIDs() Option {
	return func(s *Server) { s.stringIDs = true }
}

// WithIDsPerAccount makes each account number its own records from 1, as
// ScriptLock installations that shard by account do: two accounts of one
// instance then both have a record 1.
func WithIDsPerAccount() Option {
	return func(s *Server) { s.idsPerAccount = true }
}

// WithClock sets the time source used for CommitNextCreateLate (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now = now }
}

// Server is an in-memory ScriptLock customer API (SPEC section 1) with fault
// injection. It implements http.Handler and is safe for concurrent use.
type Server struct {
	mu        sync.Mutex
	accounts  map[string]*account
	nextID    int64
	latency   time.Duration
	stringIDs bool
	// idsPerAccount numbers records per account (account.nextID) instead
	// of across the server (nextID).
	idsPerAccount bool
	// vanishReads is how many more reads answer as if the account were
	// empty (VanishNext); vanished makes every read do so (SetVanished).
	vanishReads int
	vanished    bool
	faults      []*fault
	creates     []createPlan // what the next successful creates do, in order
	tidy        func(string) string
	now         func() time.Time
	calls       map[string]int
	log         []Call
	admin       http.Handler
}

type account struct {
	records map[string]scriptlock.Customer
	refused map[string]string    // id -> message of the 409 answered on DELETE
	hidden  map[string]time.Time // id -> when a late-committed record shows
	raw     []json.RawMessage    // extra items appended to every listing
	nextID  int64                // the last id given, WithIDsPerAccount
}

// createPlan is how one successful create is answered: lose (when set)
// loses the answer, else status (when set) replaces 201; hide keeps the
// record out of GETs for that long.
type createPlan struct {
	lose   LoseMode
	status int
	hide   time.Duration
}

// Call is one answered API call, as recorded in the call log.
type Call struct {
	Method string `json:"method"`
	// Route is the route template, as in the call counters.
	Route string `json:"route"`
	// Status is the answered status code, 0 when the connection was dropped.
	Status int `json:"status"`
	// ID is the id in the path, or for a create the id of the stored record.
	ID string `json:"id,omitempty"`
	// Email is the email of the form body of a POST or PUT.
	Email string `json:"email,omitempty"`
}

type fault struct {
	method, route string
	remaining     int
	status        int
	retryAfter    time.Duration
}

// New returns a Server. Without WithAccount it has no accounts and answers
// 401 to every API call.
func New(opts ...Option) *Server {
	s := &Server{
		accounts: map[string]*account{},
		calls:    map[string]int{},
		now:      time.Now,
	}
	s.admin = s.adminMux()
	for _, o := range opts {
		o(s)
	}
	return s
}

// AddAccount adds an account for key if there is none.
func (s *Server) AddAccount(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addAccountLocked(key)
}

func (s *Server) addAccountLocked(key string) *account {
	a, ok := s.accounts[key]
	if !ok {
		a = &account{records: map[string]scriptlock.Customer{}, refused: map[string]string{}, hidden: map[string]time.Time{}}
		s.accounts[key] = a
	}
	return a
}

// RotateKey gives the account of oldKey the new key newKey, as ScriptLock
// does when a key is revoked and another issued: the records stay, oldKey
// is refused with 401 from now on. It reports whether oldKey existed.
func (s *Server) RotateKey(oldKey, newKey string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[oldKey]
	if !ok {
		return false
	}
	delete(s.accounts, oldKey)
	s.accounts[newKey] = a
	return true
}

// SetLatency changes the delay added to every API answer.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailNext makes the next n calls matching method and route (a template
// such as RouteCustomerID; "" matches any method or route) answer status,
// with a Retry-After of retryAfter rounded to seconds when it is positive.
// Faults apply after authentication, in the order they were added.
func (s *Server) FailNext(method, route string, n int, status int, retryAfter time.Duration) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{method: strings.ToUpper(method), route: route, remaining: n, status: status, retryAfter: retryAfter})
}

// ClearFaults removes every pending FailNext, LoseNextCreate,
// AnswerNextCreate, CommitNextCreateLate, VanishNext and SetVanished.
// Records already hidden by CommitNextCreateLate stay hidden until their
// time.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	s.creates = nil
	s.vanishReads, s.vanished = 0, false
}

// RefuseDelete makes DELETE of the record id of account key answer 409
// Conflict with msg, until AllowDelete.
func (s *Server) RefuseDelete(key, id, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addAccountLocked(key).refused[id] = msg
}

// AllowDelete lifts a RefuseDelete.
func (s *Server) AllowDelete(key, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[key]; ok {
		delete(a.refused, id)
	}
}

// LoseNextCreate makes the next successful create (of any account) store the
// record and then lose the answer as mode says. Calls queue up.
func (s *Server) LoseNextCreate(mode LoseMode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creates = append(s.creates, createPlan{lose: mode})
}

// AnswerNextCreate makes the next successful create (of any account) store
// the record as usual and answer status instead of 201: 200 with the JSON
// record; 202 and 204 with Location and no body; 302 with Location and the
// JSON record; any other status with Location and no body. It queues up with
// LoseNextCreate and CommitNextCreateLate, in call order.
func (s *Server) AnswerNextCreate(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creates = append(s.creates, createPlan{status: status})
}

// CommitNextCreateLate makes the next successful create (of any account)
// store the record, lose the answer as answer says (0 means LoseWith504),
// and keep the record out of GET /api/customer/{id} (404) and GET
// /api/customers until hide has passed on the server's clock (WithClock).
// While hidden the record still takes its email, so a retried create
// answers 409; PUT and DELETE, Records and Record see it. It queues up with
// LoseNextCreate and AnswerNextCreate, in call order.
func (s *Server) CommitNextCreateLate(hide time.Duration, answer LoseMode) {
	if answer == 0 {
		answer = LoseWith504
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creates = append(s.creates, createPlan{lose: answer, hide: hide})
}

// SetTidy makes the server pass every field (company, firstname, lastname,
// email) of a create or an update through f before storing it, as a back end
// that normalises values would; a PUT whose tidied values equal the stored
// ones answers 304. nil turns it off. Put, Seed and EditOutOfBand store
// values as given.
func (s *Server) SetTidy(f func(string) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tidy = f
}

// CollapseSpaces replaces every run of spaces between two other characters
// with one space ("Two  Spaces" -> "Two Spaces"); leading and trailing
// spaces are kept. It is a ready-made tidy for SetTidy.
func CollapseSpaces(v string) string {
	inner := strings.Trim(v, " ")
	if !strings.Contains(inner, "  ") {
		return v
	}
	lead := len(v) - len(strings.TrimLeft(v, " "))
	trail := len(v) - len(strings.TrimRight(v, " "))
	var b strings.Builder
	b.Grow(len(v))
	b.WriteString(v[:lead])
	prevSpace := false
	for _, r := range inner {
		if r == ' ' && prevSpace {
			continue
		}
		prevSpace = r == ' '
		b.WriteRune(r)
	}
	b.WriteString(v[len(v)-trail:])
	return b.String()
}

// AddRawListItem appends raw, verbatim, to every GET /api/customers answer of
// account key (creating the account if needed), after the records; an
// account with only raw items lists them with 200. Records, Record and GET
// by id do not see it. raw must be valid JSON (it panics otherwise).
func (s *Server) AddRawListItem(key string, raw json.RawMessage) {
	if !json.Valid(raw) {
		panic("sim: AddRawListItem: not valid JSON: " + string(raw))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addAccountLocked(key)
	a.raw = append(a.raw, slices.Clone(raw))
}

// ClearRawListItems removes every AddRawListItem of account key.
func (s *Server) ClearRawListItems(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[key]; ok {
		a.raw = nil
	}
}

// Records returns the records of account key, ordered by id.
func (s *Server) Records(key string) []scriptlock.Customer {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[key]
	if !ok {
		return []scriptlock.Customer{}
	}
	return sortedRecords(a)
}

// Record returns one record of account key.
func (s *Server) Record(key, id string) (scriptlock.Customer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[key]
	if !ok {
		return scriptlock.Customer{}, false
	}
	c, ok := a.records[id]
	return c, ok
}

// Put stores c in account key (creating the account if needed), bypassing
// the API and its checks, and returns it. An empty c.ID gets the next id.
func (s *Server) Put(key string, c scriptlock.Customer) scriptlock.Customer {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addAccountLocked(key)
	if c.ID == "" {
		c.ID = s.newIDLocked(a)
	} else if n, err := strconv.ParseInt(c.ID, 10, 64); err == nil {
		// Keep ids increasing past seeded ones.
		s.nextID = max(s.nextID, n)
		a.nextID = max(a.nextID, n)
	}
	a.records[c.ID] = c
	return c
}

// Seed is Put, named for test setup.
func (s *Server) Seed(key string, c scriptlock.Customer) scriptlock.Customer { return s.Put(key, c) }

// EditOutOfBand changes a record as someone using ScriptLock directly would
// (drift). The id cannot be changed. It reports whether the record exists.
func (s *Server) EditOutOfBand(key, id string, f func(*scriptlock.Customer)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[key]
	if !ok {
		return false
	}
	c, ok := a.records[id]
	if !ok {
		return false
	}
	f(&c)
	c.ID = id
	a.records[id] = c
	return true
}

// DeleteOutOfBand removes a record as someone using ScriptLock directly
// would. It reports whether the record existed.
func (s *Server) DeleteOutOfBand(key, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[key]
	if !ok {
		return false
	}
	_, existed := a.records[id]
	delete(a.records, id)
	delete(a.hidden, id)
	return existed
}

// Calls returns how many API calls were answered, keyed like
// "POST /api/customer 201" (method, route template, status; "dropped" for a
// connection closed without an answer).
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// CallCount returns how many calls of method and route were answered, any
// status.
func (s *Server) CallCount(method, route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := strings.ToUpper(method) + " " + route + " "
	n := 0
	for k, v := range s.calls {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// CallLog returns the answered API calls in the order they were answered
// (the last 10000 at most).
func (s *Server) CallLog() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// ResetCalls sets every call counter to zero and empties the call log.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.log = nil
}

// newIDLocked returns the next id for a new record of a.
func (s *Server) newIDLocked(a *account) string {
	if s.idsPerAccount {
		a.nextID++
		return strconv.FormatInt(a.nextID, 10)
	}
	s.nextID++
	return strconv.FormatInt(s.nextID, 10)
}

func sortedRecords(a *account) []scriptlock.Customer {
	out := make([]scriptlock.Customer, 0, len(a.records))
	for _, c := range a.records {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return idLess(out[i].ID, out[j].ID) })
	return out
}

func idLess(a, b string) bool {
	na, ea := strconv.ParseInt(a, 10, 64)
	nb, eb := strconv.ParseInt(b, 10, 64)
	if ea == nil && eb == nil {
		return na < nb
	}
	return a < b
}

// ServeHTTP serves the ScriptLock API under /api/ and the admin API under
// /_sim/ (loopback clients only).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_sim" || strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.serveAdmin(w, r)
		return
	}
	s.serveAPI(w, r)
}

// exchange carries one API call, so that every answer is counted once.
type exchange struct {
	s      *Server
	w      http.ResponseWriter
	method string
	route  string
	id     string // path id, or the id a create stored
	email  string // form email
}

func (x *exchange) count(status int) {
	label := "dropped"
	if status != 0 {
		label = strconv.Itoa(status)
	}
	x.s.mu.Lock()
	x.s.calls[x.method+" "+x.route+" "+label]++
	if len(x.s.log) >= maxCallLog {
		x.s.log = slices.Delete(x.s.log, 0, len(x.s.log)-maxCallLog+1)
	}
	x.s.log = append(x.s.log, Call{Method: x.method, Route: x.route, Status: status, ID: x.id, Email: x.email})
	x.s.mu.Unlock()
}

func (x *exchange) reply(status int, body any, hdr map[string]string) {
	x.count(status)
	for k, v := range hdr {
		x.w.Header().Set(k, v)
	}
	if body == nil {
		x.w.WriteHeader(status)
		return
	}
	b, err := json.Marshal(body)
	if err != nil {
		b = []byte(`{"message":"encoding error"}`)
	}
	x.w.Header().Set("Content-Type", "application/json")
	x.w.WriteHeader(status)
	_, _ = x.w.Write(b)
}

func (x *exchange) message(status int, msg string, hdr map[string]string) {
	x.reply(status, map[string]string{"message": msg}, hdr)
}

// route maps a request path to its template and id.
func route(p string) (tmpl, id string, ok bool) {
	switch {
	case p == RouteCustomers:
		return RouteCustomers, "", true
	case p == RouteCustomer:
		return RouteCustomer, "", true
	case strings.HasPrefix(p, RouteCustomer+"/"):
		seg := p[len(RouteCustomer)+1:]
		if seg == "" || strings.Contains(seg, "/") {
			return RouteUnknown, "", false
		}
		id, err := url.PathUnescape(seg)
		if err != nil {
			return RouteUnknown, "", false
		}
		return RouteCustomerID, id, true
	}
	return RouteUnknown, "", false
}

// allowedMethods lists the methods the vendor page documents per route.
func allowedMethods(tmpl string) []string {
	switch tmpl {
	case RouteCustomers:
		return []string{http.MethodGet}
	case RouteCustomer:
		return []string{http.MethodPost}
	case RouteCustomerID:
		return []string{http.MethodGet, http.MethodPut, http.MethodDelete}
	}
	return nil
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	tmpl, id, ok := route(r.URL.EscapedPath())
	x := &exchange{s: s, w: w, method: r.Method, route: tmpl, id: id}
	if !ok {
		x.message(http.StatusNotFound, "no such endpoint", nil)
		return
	}
	if methods := allowedMethods(tmpl); !slices.Contains(methods, r.Method) {
		x.message(http.StatusMethodNotAllowed, "method not allowed", map[string]string{"Allow": strings.Join(methods, ", ")})
		return
	}

	s.mu.Lock()
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	key, ok := s.authenticate(r)
	if !ok {
		x.message(http.StatusUnauthorized, "invalid or missing API key", nil)
		return
	}
	if f, ok := s.takeFault(r.Method, tmpl); ok {
		hdr := map[string]string{}
		if f.retryAfter > 0 {
			secs := int64((f.retryAfter + time.Second - 1) / time.Second)
			hdr["Retry-After"] = strconv.FormatInt(secs, 10)
		}
		x.message(f.status, "injected fault: "+http.StatusText(f.status), hdr)
		return
	}

	switch {
	case tmpl == RouteCustomers:
		s.list(x, key)
	case tmpl == RouteCustomer:
		s.create(x, r, key)
	case r.Method == http.MethodGet:
		s.get(x, key, id)
	case r.Method == http.MethodPut:
		s.update(x, r, key, id)
	default:
		s.delete(x, key, id)
	}
}

// authenticate finds the account of "Authorization: Basic <key>" (the key
// verbatim, as on the vendor page).
func (s *Server) authenticate(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "Basic "
	if !strings.HasPrefix(h, prefix) {
		return "", false
	}
	given := h[len(prefix):]
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.accounts {
		if subtle.ConstantTimeCompare([]byte(key), []byte(given)) == 1 {
			return key, true
		}
	}
	return "", false
}

func (s *Server) takeFault(method, tmpl string) (fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.method == "" || f.method == method) && (f.route == "" || f.route == tmpl) {
			out := *f
			f.remaining--
			if f.remaining <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			return out, true
		}
	}
	return fault{}, false
}

// wireRecord is a record as sent on the wire: the id is a JSON number when it
// is numeric, unless the server was built WithStringIDs.
type wireRecord struct {
	ID        any    `json:"id"`
	Company   string `json:"company"`
	FirstName string `json:"firstname"`
	LastName  string `json:"lastname"`
	Email     string `json:"email"`
}

func (s *Server) wire(c scriptlock.Customer) wireRecord {
	var id any = c.ID
	if !s.stringIDs {
		if _, err := strconv.ParseUint(c.ID, 10, 64); err == nil {
			id = json.Number(c.ID)
		}
	}
	return wireRecord{ID: id, Company: c.Company, FirstName: c.FirstName, LastName: c.LastName, Email: c.Email}
}

func location(id string) string { return RouteCustomer + "/" + url.PathEscape(id) }

// visibleLocked reports whether record id of a shows to GETs: false while a
// late commit (CommitNextCreateLate) keeps it hidden.
func (s *Server) visibleLocked(a *account, id string) bool {
	until, hidden := a.hidden[id]
	if !hidden {
		return true
	}
	if s.now().Before(until) {
		return false
	}
	delete(a.hidden, id)
	return true
}

func (s *Server) list(x *exchange, key string) {
	s.mu.Lock()
	a := s.accounts[key]
	if a == nil {
		// The key was rotated away since it was authenticated.
		s.mu.Unlock()
		x.message(http.StatusUnauthorized, "unknown API key", nil)
		return
	}
	if s.vanishLocked() {
		s.mu.Unlock()
		x.reply(http.StatusNoContent, nil, nil)
		return
	}
	var out []any
	for _, c := range sortedRecords(a) {
		if s.visibleLocked(a, c.ID) {
			out = append(out, s.wire(c))
		}
	}
	for _, raw := range a.raw {
		out = append(out, raw)
	}
	s.mu.Unlock()
	if len(out) == 0 {
		x.reply(http.StatusNoContent, nil, nil)
		return
	}
	x.reply(http.StatusOK, out, nil)
}

func (s *Server) get(x *exchange, key, id string) {
	s.mu.Lock()
	a := s.accounts[key]
	if a == nil {
		// The key was rotated away since it was authenticated.
		s.mu.Unlock()
		x.message(http.StatusUnauthorized, "unknown API key", nil)
		return
	}
	c, ok := a.records[id]
	ok = ok && s.visibleLocked(a, id) && !s.vanishLocked()
	s.mu.Unlock()
	if !ok {
		x.message(http.StatusNotFound, "customer not found", nil)
		return
	}
	x.reply(http.StatusFound, s.wire(c), map[string]string{"Location": location(id)})
}

// readForm parses the form body; the vendor page fixes the four fields.
func readForm(x *exchange, r *http.Request) (scriptlock.Customer, bool) {
	r.Body = http.MaxBytesReader(x.w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		x.message(http.StatusBadRequest, "malformed form body", nil)
		return scriptlock.Customer{}, false
	}
	c := scriptlock.Customer{
		Company:   r.PostForm.Get("company"),
		FirstName: r.PostForm.Get("firstname"),
		LastName:  r.PostForm.Get("lastname"),
		Email:     r.PostForm.Get("email"),
	}
	x.email = c.Email
	if c.Email == "" {
		x.message(http.StatusBadRequest, "email is required", nil)
		return scriptlock.Customer{}, false
	}
	return c, true
}

// tidyLocked applies the SetTidy function, if any, to every field of c.
func (s *Server) tidyLocked(c scriptlock.Customer) scriptlock.Customer {
	if s.tidy == nil {
		return c
	}
	c.Company = s.tidy(c.Company)
	c.FirstName = s.tidy(c.FirstName)
	c.LastName = s.tidy(c.LastName)
	c.Email = s.tidy(c.Email)
	return c
}

// emailOwner returns the id of another record of a with the same email,
// compared case-insensitively.
func emailOwner(a *account, email, except string) (string, bool) {
	for id, c := range a.records {
		if id != except && strings.EqualFold(c.Email, email) {
			return id, true
		}
	}
	return "", false
}

func (s *Server) create(x *exchange, r *http.Request, key string) {
	in, ok := readForm(x, r)
	if !ok {
		return
	}
	s.mu.Lock()
	in = s.tidyLocked(in)
	a := s.accounts[key]
	if a == nil {
		// The key was rotated away since it was authenticated.
		s.mu.Unlock()
		x.message(http.StatusUnauthorized, "unknown API key", nil)
		return
	}
	if owner, taken := emailOwner(a, in.Email, ""); taken {
		s.mu.Unlock()
		x.message(http.StatusConflict, "email already used by customer "+owner, nil)
		return
	}
	in.ID = s.newIDLocked(a)
	a.records[in.ID] = in
	var plan createPlan
	if len(s.creates) > 0 {
		plan, s.creates = s.creates[0], s.creates[1:]
	}
	if plan.hide > 0 {
		a.hidden[in.ID] = s.now().Add(plan.hide)
	}
	s.mu.Unlock()
	x.id = in.ID

	loc := map[string]string{"Location": location(in.ID)}
	switch {
	case plan.lose == LoseWith500:
		x.message(http.StatusInternalServerError, "internal error", nil)
	case plan.lose == LoseWith504:
		x.message(http.StatusGatewayTimeout, "gateway timeout", nil)
	case plan.lose == LoseWithConflict:
		x.message(http.StatusConflict, "email already used by customer "+in.ID, nil)
	case plan.lose == LoseByDroppingConnection:
		x.count(0)
		drop(x.w)
	case plan.status == 0:
		x.reply(http.StatusCreated, s.wire(in), loc)
	case plan.status == http.StatusOK:
		x.reply(http.StatusOK, s.wire(in), nil)
	case plan.status == http.StatusFound:
		x.reply(http.StatusFound, s.wire(in), loc)
	default:
		x.reply(plan.status, nil, loc)
	}
}

// drop closes the connection without an answer. Hijacking gives a clean
// TCP close on HTTP/1.x; where it is not possible (HTTP/2), aborting the
// handler resets the stream, which the client sees the same way.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (s *Server) update(x *exchange, r *http.Request, key, id string) {
	s.mu.Lock()
	var exists bool
	if a := s.accounts[key]; a != nil {
		_, exists = a.records[id]
	}
	s.mu.Unlock()
	if !exists {
		// Answer 404 before reading the body, as a router would.
		x.message(http.StatusNotFound, "customer not found", nil)
		return
	}
	in, ok := readForm(x, r)
	if !ok {
		return
	}
	s.mu.Lock()
	in = s.tidyLocked(in)
	a := s.accounts[key]
	if a == nil {
		// The key was rotated away since it was authenticated.
		s.mu.Unlock()
		x.message(http.StatusUnauthorized, "unknown API key", nil)
		return
	}
	cur, exists := a.records[id]
	if !exists {
		s.mu.Unlock()
		x.message(http.StatusNotFound, "customer not found", nil)
		return
	}
	if owner, taken := emailOwner(a, in.Email, id); taken {
		s.mu.Unlock()
		x.message(http.StatusConflict, "email already used by customer "+owner, nil)
		return
	}
	in.ID = id
	if in == cur {
		s.mu.Unlock()
		x.reply(http.StatusNotModified, nil, nil)
		return
	}
	a.records[id] = in
	s.mu.Unlock()
	x.reply(http.StatusOK, s.wire(in), nil)
}

func (s *Server) delete(x *exchange, key, id string) {
	s.mu.Lock()
	a := s.accounts[key]
	if a == nil {
		// The key was rotated away since it was authenticated.
		s.mu.Unlock()
		x.message(http.StatusUnauthorized, "unknown API key", nil)
		return
	}
	if msg, refused := a.refused[id]; refused {
		s.mu.Unlock()
		x.message(http.StatusConflict, msg, nil)
		return
	}
	_, exists := a.records[id]
	delete(a.records, id)
	delete(a.hidden, id)
	s.mu.Unlock()
	if !exists {
		x.message(http.StatusNotFound, "customer not found", nil)
		return
	}
	x.reply(http.StatusGone, nil, nil)
}
