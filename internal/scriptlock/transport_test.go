package scriptlock_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
	"github.com/scriptlock/customer-operator/internal/version"
)

// blackHole returns the URL of a listener that accepts connections and never
// answers.
func blackHole(t *testing.T) string {
	t.Helper()
	url, _ := countingBlackHole(t)
	return url
}

// countingBlackHole is blackHole that also reports how many connections it
// accepted.
func countingBlackHole(t *testing.T) (url string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + ln.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
}

// fixed serves one canned answer and records the requests it got.
type fixed struct {
	status int
	header map[string]string
	body   func(w io.Writer)
	mu     sync.Mutex
	reqs   []*http.Request
	bodies []string
}

func (f *fixed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.bodies = append(f.bodies, string(b))
	f.mu.Unlock()
	for k, v := range f.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(f.status)
	if f.body != nil {
		f.body(w)
	}
}

func text(s string) func(io.Writer) { return func(w io.Writer) { _, _ = io.WriteString(w, s) } }

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestRequestsAreWhatTheVendorPageShows(t *testing.T) {
	f := &fixed{status: http.StatusCreated, body: text(`{"id":42}`)}
	url := serve(t, f)
	old := version.Version
	version.Version = "v9.9.9-test"
	defer func() { version.Version = old }()
	if _, err := newClient(t, url, testKey).Create(ctx(t), example); err != nil {
		t.Fatal(err)
	}
	r := f.reqs[0]
	checks := []struct{ name, got, want string }{
		{"method", r.Method, "POST"},
		{"path", r.URL.Path, "/api/customer"},
		{"authorization is the key verbatim", r.Header.Get("Authorization"), "Basic " + testKey},
		{"content type", r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"},
		{"user agent names project and version", r.Header.Get("User-Agent"), "scriptlock-customer-operator/v9.9.9-test"},
		{"form body byte for byte", f.bodies[0], "company=Example+Company+Inc.&firstname=Example&lastname=Customer&email=customer%40example.com"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if r.ContentLength != 93 {
		t.Errorf("Content-Length %d, the vendor example has 93", r.ContentLength)
	}
}

func TestRedirectIsNeverFollowed(t *testing.T) {
	var hits atomic.Int32
	var leaked atomic.Value
	other := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		leaked.Store(r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusOK)
	}))
	f := &fixed{status: http.StatusFound, header: map[string]string{"Location": other + "/api/customer/7", "Content-Type": "application/json"},
		body: text(`{"id":"7","company":"C","firstname":"F","lastname":"L","email":"e@example.com"}`)}
	got, err := newClient(t, serve(t, f), testKey).Get(ctx(t), "7")
	if err != nil || got.ID != "7" || got.Email != "e@example.com" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the other listener received %d requests (Authorization %v)", hits.Load(), leaked.Load())
	}
}

func TestAnswersThatAreNotTheProtocol(t *testing.T) {
	tenMB := func(w io.Writer) {
		_, _ = io.WriteString(w, `[{"id":1,"company":"`)
		_, _ = w.Write(bytes.Repeat([]byte("a"), 10<<20))
		_, _ = io.WriteString(w, `"}]`)
	}
	overListLimit := func(w io.Writer) {
		_, _ = io.WriteString(w, `[{"id":1,"company":"`)
		_, _ = w.Write(bytes.Repeat([]byte("a"), testListLimit))
		_, _ = io.WriteString(w, `"}]`)
	}
	tests := []struct {
		name  string
		h     *fixed
		call  func(c *scriptlock.Client, ctx context.Context) error
		kind  error
		maybe bool
	}{
		{"a list body over Options.MaxListBodyBytes is refused", &fixed{status: 200, body: overListLimit}, list, scriptlock.ErrBodyTooLarge, false},
		{"a 10 MB get body is refused", &fixed{status: 302, body: tenMB}, get("1"), scriptlock.ErrBodyTooLarge, false},
		{"a 10 MB create body is maybe created", &fixed{status: 201, body: tenMB}, create, scriptlock.ErrBodyTooLarge, true},
		{"an HTML get body is malformed", &fixed{status: 302, body: text("<html>moved</html>")}, get("1"), scriptlock.ErrMalformedBody, false},
		{"a get body for another id is malformed", &fixed{status: 302, body: text(`{"id":2}`)}, get("1"), scriptlock.ErrMalformedBody, false},
		{"a fractional id is malformed", &fixed{status: 302, body: text(`{"id":1.5}`)}, get("1"), scriptlock.ErrMalformedBody, false},
		{"a list that is an object is malformed", &fixed{status: 200, body: text(`{"id":1}`)}, list, scriptlock.ErrMalformedBody, false},
		{"a list element that is not a record is malformed", &fixed{status: 200, body: text(`[{"id":1},2]`)}, list, scriptlock.ErrMalformedBody, false},
		{"a truncated list is malformed", &fixed{status: 200, body: text(`[{"id":1`)}, list, scriptlock.ErrMalformedBody, false},
		{"a 201 without body or Location has no id and is maybe created", &fixed{status: 201}, create, scriptlock.ErrNoID, true},
		{"a 201 with garbage and no Location is maybe created", &fixed{status: 201, body: text("OK!")}, create, scriptlock.ErrNoID, true},
		{"a 200 on create is unexpected and maybe created", &fixed{status: 200, body: text(`{"id":1}`)}, create, scriptlock.ErrUnexpectedStatus, true},
		{"a 204 on get is unexpected", &fixed{status: 204}, get("1"), scriptlock.ErrUnexpectedStatus, false},
		{"a 200 on delete is unexpected", &fixed{status: 200}, del("1"), scriptlock.ErrUnexpectedStatus, false},
		{"a 201 on update is unexpected", &fixed{status: 201}, update("1"), scriptlock.ErrUnexpectedStatus, false},
		{"a 302 on list is unexpected", &fixed{status: 302, header: map[string]string{"Location": "/x"}}, list, scriptlock.ErrUnexpectedStatus, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(newClient(t, serve(t, tt.h), testKey, func(o *scriptlock.Options) { o.MaxListBodyBytes = testListLimit }), ctx(t))
			if !errors.Is(err, tt.kind) || scriptlock.IsMaybeCreated(err) != tt.maybe {
				t.Fatalf("got %v, want kind %v, maybeCreated=%v", err, tt.kind, tt.maybe)
			}
			if e := asErr(t, err); e.Op == "" {
				t.Fatalf("the error names no call: %+v", e)
			}
		})
	}
}

// testListLimit is the listing limit of TestAnswersThatAreNotTheProtocol:
// the default (256 MiB) is the same code with a larger number, and reading
// that much measures the machine, not the client.
const testListLimit = 1 << 20

// A listing past the limit stops being read at the limit: the server
// cannot make the client read more, however much it has to send.
func TestAListingStopsAtTheLimit(t *testing.T) {
	var sent atomic.Int64
	endless := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `[{"id":1,"company":"`)
		chunk := bytes.Repeat([]byte("a"), 32<<10)
		for r.Context().Err() == nil {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	const limit = 256 << 10
	err := list(newClient(t, serve(t, endless), testKey, func(o *scriptlock.Options) { o.MaxListBodyBytes = limit }), ctx(t))
	if !errors.Is(err, scriptlock.ErrBodyTooLarge) {
		t.Fatalf("got %v, want ErrBodyTooLarge", err)
	}
	// What the server wrote is what the client read, plus what the
	// connection buffers hold (a few MiB at most on loopback): not the
	// endless body.
	if n := sent.Load(); n > limit+16<<20 {
		t.Fatalf("the server wrote %d bytes before the client stopped reading at %d", n, limit)
	}
}

// The default listing limit is MaxListBodyBytes.
func TestTheDefaultListingLimit(t *testing.T) {
	if got := scriptlock.ListLimitForTest(newClient(t, "http://127.0.0.1:1", testKey)); got != scriptlock.MaxListBodyBytes {
		t.Fatalf("listing limit %d, want MaxListBodyBytes (%d)", got, scriptlock.MaxListBodyBytes)
	}
}

func TestCreateTakesTheIDFromLocationWhenTheBodyHasNone(t *testing.T) {
	for _, tt := range []struct{ name, body, loc, want string }{
		{"empty body", "", "/api/customer/77", "77"},
		{"absolute Location", "", "https://scriptlock.com/api/customer/78", "78"},
		{"body without id", `{"email":"customer@example.com"}`, "/api/customer/79", "79"},
		{"body id wins over Location", `{"id":"80"}`, "/api/customer/1", "80"},
		{"numeric body id", `{"id":81}`, "", "81"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fixed{status: 201, header: map[string]string{"Location": tt.loc}, body: text(tt.body)}
			got, err := newClient(t, serve(t, f), testKey).Create(ctx(t), example)
			if err != nil || got.ID != tt.want || !scriptlock.SameFields(got, example) {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
}

func TestUnsafeIDsAreRefusedWithoutACall(t *testing.T) {
	s, ts := startSim(t)
	c := newClient(t, ts.URL, testKey)
	for _, id := range []string{"", ".", "..", "a\nb", strings.Repeat("9", 200)} {
		_, err := c.Get(ctx(t), id)
		if !errors.Is(err, scriptlock.ErrInvalidArgument) {
			t.Errorf("Get(%q): %v", id, err)
		}
	}
	// Slashes and query characters are escaped, so they stay inside the id.
	if _, err := c.Get(ctx(t), "1/../../customers?x=1"); !scriptlock.IsNotFound(err) {
		t.Errorf("escaped id: %v", err)
	}
	if len(s.Calls()) != 1 || s.Calls()["GET /api/customer/{id} 404"] != 1 {
		t.Fatalf("calls %v", s.Calls())
	}
}

func TestBaseURLPolicy(t *testing.T) {
	tests := []struct {
		name     string
		url      string
		insecure bool
		ok       bool
	}{
		{"https is accepted", "https://scriptlock.example", false, true},
		{"empty means the vendor's https URL", "", false, true},
		{"http to a non-loopback host is refused", "http://scriptlock.com", false, false},
		{"http to a non-loopback host with AllowInsecureHTTP is accepted", "http://scriptlock.com", true, true},
		{"http to 127.0.0.1 is accepted", "http://127.0.0.1:8089", false, true},
		{"http to localhost is accepted", "http://localhost:8089", false, true},
		{"http to ::1 is accepted", "http://[::1]:8089", false, true},
		{"credentials in the URL are refused", "https://user:pw@scriptlock.com", false, false},
		{"a query is refused", "https://scriptlock.com/?a=b", false, false},
		{"ftp is refused", "ftp://scriptlock.com", false, false},
		{"a URL without host is refused", "https://", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scriptlock.New(scriptlock.Options{BaseURL: tt.url, APIKey: testKey, AllowInsecureHTTP: tt.insecure})
			if (err == nil) != tt.ok {
				t.Fatalf("New(%q) = %v", tt.url, err)
			}
		})
	}
	t.Run("a key with a newline is refused without echoing it", func(t *testing.T) {
		_, err := scriptlock.New(scriptlock.Options{APIKey: "secret\nX-Evil: 1"})
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestCustomCA(t *testing.T) {
	s := sim.New(sim.WithAccount(testKey))
	ts := httptest.NewUnstartedServer(s)
	// The untrusted-CA case makes the server log a handshake error; keep
	// the test output readable.
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})

	t.Run("without the CA the server is not trusted", func(t *testing.T) {
		_, err := newClient(t, ts.URL, testKey).List(ctx(t))
		if asErr(t, err).StatusCode != 0 || !errors.Is(err, scriptlock.ErrNetwork) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("with the CA bundle the call succeeds", func(t *testing.T) {
		c := newClient(t, ts.URL, testKey, func(o *scriptlock.Options) { o.CAPEM = caPEM })
		if _, err := c.List(ctx(t)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a CA bundle without certificates is refused", func(t *testing.T) {
		if _, err := scriptlock.New(scriptlock.Options{APIKey: testKey, CAPEM: []byte("junk")}); err == nil {
			t.Fatal("accepted")
		}
	})
}

func TestTLSBelow12IsRefusedBeforeTheKeyIsSent(t *testing.T) {
	s := sim.New(sim.WithAccount(testKey))
	ts := httptest.NewUnstartedServer(s)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	c := newClient(t, ts.URL, testKey, func(o *scriptlock.Options) { o.CAPEM = caPEM })
	_, err := c.List(ctx(t))
	if err == nil || asErr(t, err).StatusCode != 0 {
		t.Fatalf("a TLS 1.1 server was accepted: %v", err)
	}
	if n := len(s.Calls()); n != 0 {
		t.Fatalf("the server received %d requests", n)
	}
}

func TestKeyNeverInErrors(t *testing.T) {
	const canary = "CANARY-7f3a9c2e-do-not-leak"
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"message":"bad key `+r.Header.Get("Authorization")+`"}`)
	})
	echoPlain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, strings.Repeat("x", 500)+r.Header.Get("Authorization"))
	})
	s, simURL := sim.New(sim.WithAccount(canary)), ""
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	simURL = ts.URL
	s.Put(canary, example)

	var errs []error
	add := func(err error) {
		if err == nil {
			t.Fatal("expected an error")
		}
		errs = append(errs, err)
	}
	for _, u := range []string{serve(t, echo), serve(t, echoPlain)} {
		c := newClient(t, u, canary)
		_, err := c.List(ctx(t))
		add(err)
	}
	cs := newClient(t, simURL, canary)
	_, err := cs.Create(ctx(t), example)
	add(err) // 409
	_, err = cs.Get(ctx(t), "404404")
	add(err)
	_, err = newClient(t, blackHole(t), canary, func(o *scriptlock.Options) { o.Timeout = 100 * time.Millisecond }).List(ctx(t))
	add(err)
	_, err = newClient(t, "http://127.0.0.1:1", canary).List(ctx(t))
	add(err)
	_, err = scriptlock.New(scriptlock.Options{BaseURL: "http://example.com", APIKey: canary})
	add(err)
	for _, err := range errs {
		if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "CANARY") {
			t.Errorf("error leaks the key: %v", err)
		}
	}
}

func TestMetrics(t *testing.T) {
	s, ts := startSim(t)
	reg := prometheus.NewRegistry()
	p := scriptlock.NewPool(scriptlock.Options{BaseURL: ts.URL, APIKey: testKey}, reg)
	c, err := p.Default()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := c.Create(ctx(t), example)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Get(ctx(t), rec.ID)
	_, _ = c.Get(ctx(t), "31337")
	_, _ = c.List(ctx(t))
	s.FailNext("DELETE", "", 1, 503, 0)
	_, _ = c.Delete(ctx(t), rec.ID)
	_, _ = newPoolClient(t, reg, blackHole(t)).List(ctx(t))

	// A second Pool on the same registry neither panics nor splits series.
	p2 := scriptlock.NewPool(scriptlock.Options{BaseURL: ts.URL, APIKey: testKey}, reg)
	c2, _ := p2.Default()
	_, _ = c2.List(ctx(t))

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
				for _, bad := range []string{testKey, example.Email, "31337"} {
					if strings.Contains(l.GetValue(), bad) {
						t.Errorf("%s label %s=%q contains %q", mf.GetName(), l.GetName(), l.GetValue(), bad)
					}
				}
			}
			switch labels["route"] {
			case "/api/customer", "/api/customer/{id}", "/api/customers":
			case "":
				if mf.GetName() != "scriptlock_list_records_skipped_total" && mf.GetName() != "scriptlock_writes_total" {
					t.Errorf("%s has no route label", mf.GetName())
				}
			default:
				t.Errorf("%s has route %q, not a template", mf.GetName(), labels["route"])
			}
			if mf.GetName() == "scriptlock_requests_total" {
				seen[labels["method"]+" "+labels["route"]+" "+labels["code"]] = m.GetCounter().GetValue()
			}
			if mf.GetName() == "scriptlock_writes_total" {
				seen["writes "+labels["operation"]+" "+labels["result"]] = m.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"POST /api/customer 201":        1,
		"GET /api/customer/{id} 302":    1,
		"GET /api/customer/{id} 404":    1,
		"GET /api/customers 200":        2,
		"DELETE /api/customer/{id} 503": 1,
		"GET /api/customers error":      1,
		// The writes among them, by operation and result.
		"writes create created":     1,
		"writes delete serverError": 1,
	}
	for k, v := range want {
		if seen[k] != v {
			t.Errorf("scriptlock_requests_total{%s} = %v, want %v (all: %v)", k, seen[k], v, seen)
		}
	}
	if len(families) != 4 {
		t.Errorf("got %d metric families, want 4", len(families))
	}
}

func newPoolClient(t *testing.T, reg prometheus.Registerer, url string) *scriptlock.Client {
	t.Helper()
	c, err := scriptlock.NewPool(scriptlock.Options{Timeout: 100 * time.Millisecond}, reg).For(url, testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPool(t *testing.T) {
	p := scriptlock.NewPool(scriptlock.Options{BaseURL: "https://scriptlock.example/", APIKey: testKey}, nil)
	def, err := p.Default()
	if err != nil {
		t.Fatal(err)
	}
	same, _ := p.For("https://scriptlock.example", testKey, nil)
	other, _ := p.For("", "another-key", nil)
	otherURL, _ := p.For("https://elsewhere.example", testKey, nil)
	tests := []struct {
		name string
		ok   bool
	}{
		{"same account (trailing slash ignored) is the same client", def == same},
		{"another key is another client", other != def},
		{"another URL is another client", otherURL != def},
		{"Account is 12 hex digits", len(def.Account()) == 12 && strings.Trim(def.Account(), "0123456789abcdef") == ""},
		{"Account does not reveal the key", !strings.Contains(testKey, def.Account())},
		{"Account differs per key", other.Account() != def.Account()},
		{"Account is stable", def.Account() == same.Account()},
	}
	for _, tt := range tests {
		if !tt.ok {
			t.Errorf("%s: false", tt.name)
		}
	}
	if _, err := scriptlock.NewPool(scriptlock.Options{}, nil).Default(); err == nil {
		t.Error("Default without a key succeeded")
	}
	if _, err := p.For("http://insecure.example", "k", nil); err == nil {
		t.Error("For accepted plain http to a remote host")
	}
}

func TestPoolSharesTheRateLimiterPerAccount(t *testing.T) {
	_, ts := startSim(t)
	p := scriptlock.NewPool(scriptlock.Options{BaseURL: ts.URL, QPS: 0.1, Burst: 1}, nil)
	a, _ := p.For("", testKey, nil)
	b, _ := p.For("", testKey, nil)
	if _, err := a.List(ctx(t)); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.List(short); !errors.Is(err, scriptlock.ErrThrottled) {
		t.Fatalf("second caller of the account was not limited: %v", err)
	}
}

func get(id string) func(*scriptlock.Client, context.Context) error {
	return func(c *scriptlock.Client, ctx context.Context) error { _, err := c.Get(ctx, id); return err }
}

func del(id string) func(*scriptlock.Client, context.Context) error {
	return func(c *scriptlock.Client, ctx context.Context) error { _, err := c.Delete(ctx, id); return err }
}

func update(id string) func(*scriptlock.Client, context.Context) error {
	return func(c *scriptlock.Client, ctx context.Context) error {
		_, err := c.Update(ctx, id, example)
		return err
	}
}

func create(c *scriptlock.Client, ctx context.Context) error {
	_, err := c.Create(ctx, example)
	return err
}

func TestTheListingOfALargeAccountIsRead(t *testing.T) {
	s, srv := startSim(t)
	const n = 20000 // some 2.6 MB: more than the limit of a single record's body
	for i := range n {
		s.Seed(testKey, scriptlock.Customer{
			Company: "Example Company Inc.", FirstName: "Example", LastName: "Customer",
			Email: fmt.Sprintf("customer-%05d@example.com", i),
		})
	}
	recs, err := newClient(t, srv.URL, testKey).List(ctx(t))
	if err != nil {
		t.Fatalf("listing %d records: %v", n, err)
	}
	if len(recs) != n {
		t.Fatalf("listed %d records, want %d", len(recs), n)
	}
}

// A listing whose connection breaks off half way is no answer (retried),
// not a malformed one (stalled), and none of its records is used.
func TestAListingCutOffHalfWayIsATransportError(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `[{"id":1,"email":"a@example.com"},{"id":2,`)
		// The handler returns: the connection closes short of the length.
	}))
	t.Cleanup(ts.Close)
	seen := 0
	err := newClient(t, ts.URL, testKey).ListEach(ctx(t), func(scriptlock.Customer) { seen++ })
	if !errors.Is(err, scriptlock.ErrNetwork) || !scriptlock.IsRetryable(err) || errors.Is(err, scriptlock.ErrMalformedBody) {
		t.Fatalf("want a retryable network error, got %v", err)
	}
}

func TestAKeyHiddenByJSONEscapingIsScrubbedBeforeTheMessageIsCut(t *testing.T) {
	const key = "key/with/slashes/0123456789abcdef0123456789abcdef"
	escaped := strings.ReplaceAll(key, "/", `\/`) // what a JSON encoder may send
	for _, lead := range []int{0, 200, 230, 250} {
		body := `{"message":"` + strings.Repeat("x", lead) + escaped + ` trailing"}`
		f := &fixed{status: http.StatusBadRequest, body: text(body)}
		_, err := newClient(t, serve(t, f), key).List(ctx(t))
		var se *scriptlock.Error
		if !errors.As(err, &se) {
			t.Fatalf("lead %d: want an *Error, got %v", lead, err)
		}
		// No run of 8 or more of the key's own characters may survive,
		// whole or cut.
		for i := 0; i+8 <= len(key); i++ {
			if strings.Contains(se.Message, key[i:i+8]) {
				t.Fatalf("lead %d: a piece of the key (%q) reached the message %q", lead, key[i:i+8], se.Message)
			}
		}
	}
}
