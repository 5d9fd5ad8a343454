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
)

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

// Server is an in-memory ScriptLock customer API (SPEC section 1) with fault
// injection. It implements http.Handler and is safe for concurrent use.
type Server struct {
	mu        sync.Mutex
	accounts  map[string]*account
	nextID    int64
	latency   time.Duration
	stringIDs bool
	faults    []*fault
	lose      []LoseMode
	calls     map[string]int
	admin     http.Handler
}

type account struct {
	records map[string]scriptlock.Customer
	refused map[string]string // id -> message of the 409 answered on DELETE
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
		a = &account{records: map[string]scriptlock.Customer{}, refused: map[string]string{}}
		s.accounts[key] = a
	}
	return a
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

// ClearFaults removes every pending FailNext and LoseNextCreate.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	s.lose = nil
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
	s.lose = append(s.lose, mode)
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
		s.nextID++
		c.ID = strconv.FormatInt(s.nextID, 10)
	} else if n, err := strconv.ParseInt(c.ID, 10, 64); err == nil && n > s.nextID {
		// Keep ids increasing past seeded ones.
		s.nextID = n
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

// ResetCalls sets every call counter to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
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
}

func (x *exchange) count(status string) {
	x.s.mu.Lock()
	x.s.calls[x.method+" "+x.route+" "+status]++
	x.s.mu.Unlock()
}

func (x *exchange) reply(status int, body any, hdr map[string]string) {
	x.count(strconv.Itoa(status))
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
	x := &exchange{s: s, w: w, method: r.Method, route: tmpl}
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

func (s *Server) list(x *exchange, key string) {
	s.mu.Lock()
	recs := sortedRecords(s.accounts[key])
	s.mu.Unlock()
	if len(recs) == 0 {
		x.reply(http.StatusNoContent, nil, nil)
		return
	}
	out := make([]wireRecord, len(recs))
	for i, c := range recs {
		out[i] = s.wire(c)
	}
	x.reply(http.StatusOK, out, nil)
}

func (s *Server) get(x *exchange, key, id string) {
	s.mu.Lock()
	c, ok := s.accounts[key].records[id]
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
	if c.Email == "" {
		x.message(http.StatusBadRequest, "email is required", nil)
		return scriptlock.Customer{}, false
	}
	return c, true
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
	a := s.accounts[key]
	if owner, taken := emailOwner(a, in.Email, ""); taken {
		s.mu.Unlock()
		x.message(http.StatusConflict, "email already used by customer "+owner, nil)
		return
	}
	s.nextID++
	in.ID = strconv.FormatInt(s.nextID, 10)
	a.records[in.ID] = in
	var lose LoseMode
	if len(s.lose) > 0 {
		lose, s.lose = s.lose[0], s.lose[1:]
	}
	s.mu.Unlock()

	switch lose {
	case LoseWith500:
		x.message(http.StatusInternalServerError, "internal error", nil)
	case LoseByDroppingConnection:
		x.count("dropped")
		drop(x.w)
	default:
		x.reply(http.StatusCreated, s.wire(in), map[string]string{"Location": location(in.ID)})
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
	_, exists := s.accounts[key].records[id]
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
	a := s.accounts[key]
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
	if msg, refused := a.refused[id]; refused {
		s.mu.Unlock()
		x.message(http.StatusConflict, msg, nil)
		return
	}
	_, exists := a.records[id]
	delete(a.records, id)
	s.mu.Unlock()
	if !exists {
		x.message(http.StatusNotFound, "customer not found", nil)
		return
	}
	x.reply(http.StatusGone, nil, nil)
}
