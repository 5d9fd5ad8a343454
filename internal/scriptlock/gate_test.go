package scriptlock_test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
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
)

// fakeClock is a settable time source for the account gate.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// held fails the test unless err is a fail-fast ErrThrottled with a
// RetryAfter of want (any positive wait if want < 0).
func held(t *testing.T, err error, want time.Duration) {
	t.Helper()
	d, ok := retryAfter(err)
	if !errors.Is(err, scriptlock.ErrThrottled) || !ok || (want >= 0 && d != want) || (want < 0 && d <= 0) {
		t.Fatalf("got %v (RetryAfter %v), want ErrThrottled with RetryAfter %v", err, d, want)
	}
}

func TestCreateAnswersOtherThan201(t *testing.T) {
	tests := []struct {
		name         string
		h            *fixed
		maybeCreated bool
		refused      bool
		unexpected   bool
	}{
		{"200 with the record may have created it", &fixed{status: 200, body: text(`{"id":1}`)}, true, false, true},
		{"202 Accepted may have created it", &fixed{status: 202}, true, false, true},
		{"204 with Location may have created it", &fixed{status: 204, header: map[string]string{"Location": "/api/customer/9"}}, true, false, true},
		{"302 may have created it", &fixed{status: 302, header: map[string]string{"Location": "/api/customer/9"}}, true, false, true},
		{"304 may have created it", &fixed{status: 304}, true, false, true},
		{"500 may have created it", &fixed{status: 500}, true, false, true},
		{"503 may have created it", &fixed{status: 503}, true, false, true},
		{"400 created nothing", &fixed{status: 400, body: text("bad email")}, false, true, true},
		{"401 created nothing", &fixed{status: 401}, false, true, true},
		{"403 created nothing", &fixed{status: 403}, false, true, true},
		{"404 created nothing", &fixed{status: 404}, false, true, true},
		{"408 created nothing", &fixed{status: 408}, false, true, true},
		{"409 created nothing and is a conflict, not unexpected", &fixed{status: 409, body: text("email used by 42")}, false, true, false},
		{"422 created nothing", &fixed{status: 422}, false, true, true},
		{"429 created nothing", &fixed{status: 429}, false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newClient(t, serve(t, tt.h), testKey).Create(ctx(t), example)
			if e := asErr(t, err); e.StatusCode != tt.h.status || e.Op != "create" {
				t.Fatalf("got %v", err)
			}
			if scriptlock.IsMaybeCreated(err) != tt.maybeCreated || scriptlock.IsRefused(err) != tt.refused ||
				errors.Is(err, scriptlock.ErrUnexpectedStatus) != tt.unexpected {
				t.Fatalf("got %v: maybeCreated=%v refused=%v", err, scriptlock.IsMaybeCreated(err), scriptlock.IsRefused(err))
			}
		})
	}
}

func TestIsRefused(t *testing.T) {
	tests := []struct {
		name    string
		url     func(t *testing.T) string
		call    func(c *scriptlock.Client, ctx context.Context) error
		refused bool
	}{
		{"404 on update is refused", func(t *testing.T) string { return serve(t, &fixed{status: 404}) }, update("1"), true},
		{"409 on delete is refused", func(t *testing.T) string { return serve(t, &fixed{status: 409}) }, del("1"), true},
		{"401 on list is refused", func(t *testing.T) string { return serve(t, &fixed{status: 401}) }, list, true},
		{"500 on list is not refused", func(t *testing.T) string { return serve(t, &fixed{status: 500}) }, list, false},
		{"a 200 list that is not JSON is not refused", func(t *testing.T) string { return serve(t, &fixed{status: 200, body: text("<html>")}) }, list, false},
		{"no answer is not refused", func(t *testing.T) string { return "http://127.0.0.1:1" }, list, false},
		{"an invalid id, never sent, is not refused", func(t *testing.T) string { return "http://127.0.0.1:1" }, get(".."), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(newClient(t, tt.url(t), testKey), ctx(t))
			if err == nil || scriptlock.IsRefused(err) != tt.refused {
				t.Fatalf("got %v, refused=%v", err, scriptlock.IsRefused(err))
			}
		})
	}
	if scriptlock.IsRefused(errors.New("scriptlock delete: 409 Conflict")) {
		t.Error("a foreign error is refused")
	}
}

func TestErrorTextLabelsAndQuotesTheServerMessage(t *testing.T) {
	tests := []struct {
		name string
		h    *fixed
		call func(c *scriptlock.Client, ctx context.Context) error
		want string
	}{
		{"a refused delete", &fixed{status: 409, body: text(`{"message":"customer has 3 active licenses"}`)}, del("1"),
			`scriptlock delete: 409 Conflict: server said "customer has 3 active licenses"`},
		{"a forged log line stays on one line and in quotes", &fixed{status: 409, body: text("no\nlevel=info msg=\"deleted\"\u2028x")}, del("1"),
			`scriptlock delete: 409 Conflict: server said "no level=info msg=\"deleted\" x"`},
		{"our own words come before the server's", &fixed{status: 418, body: text("short and stout")}, get("1"),
			`scriptlock get: 418 I'm a teapot: unexpected status: server said "short and stout"`},
		{"no message, no label", &fixed{status: 404}, get("1"), `scriptlock get: 404 Not Found`},
		{"a long message is cut to 256 bytes", &fixed{status: 400, body: text(strings.Repeat("x", 1000))}, list,
			`scriptlock list: 400 Bad Request: unexpected status: server said "` + strings.Repeat("x", 256) + `"`},
		{"the key is scrubbed from the message", &fixed{status: 400, body: text("bad key " + testKey)}, list,
			`scriptlock list: 400 Bad Request: unexpected status: server said "bad key [redacted]"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(newClient(t, serve(t, tt.h), testKey), ctx(t))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestListSkipsRecordsWithoutAUsableID(t *testing.T) {
	body := `[{"id":1,"email":"a@example.com"},{"email":"no-id@example.com"},{"id":null},{"id":""},` +
		`{"id":".."},{"id":"a\u0000b"},{"id":2.5},null,{"id":"2","email":"b@example.com"}]`
	url := serve(t, &fixed{status: 200, body: text(body)})
	reg := prometheus.NewRegistry()
	p := scriptlock.NewPool(scriptlock.Options{}, reg)
	c, err := p.For(url, testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		got, err := c.List(ctx(t))
		if err != nil || len(got) != 2 || got[0].ID != "1" || got[1].ID != "2" || got[1].Email != "b@example.com" {
			t.Fatalf("got %+v, %v", got, err)
		}
		if n := skippedTotal(t, reg); n != float64(7*round) {
			t.Fatalf("after %d listings scriptlock_list_records_skipped_total = %v, want %d", round, n, 7*round)
		}
	}
	t.Run("a Client without metrics skips too", func(t *testing.T) {
		got, err := newClient(t, url, testKey).List(ctx(t))
		if err != nil || len(got) != 2 {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("a body that is not an array still fails", func(t *testing.T) {
		_, err := newClient(t, serve(t, &fixed{status: 200, body: text(`{"id":1}`)}), testKey).List(ctx(t))
		if !errors.Is(err, scriptlock.ErrMalformedBody) {
			t.Fatalf("got %v", err)
		}
	})
}

func skippedTotal(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "scriptlock_list_records_skipped_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("scriptlock_list_records_skipped_total is not registered")
	return 0
}

func TestPoolSharesTheAccountGateWhateverTheCA(t *testing.T) {
	var calls atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusting client's handshake fails
	ts.StartTLS()
	t.Cleanup(ts.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})

	t.Run("a Retry-After answered to one holds the other", func(t *testing.T) {
		p := scriptlock.NewPool(scriptlock.Options{}, nil)
		withCA, _ := p.For(ts.URL, testKey, caPEM)
		withoutCA, err := p.For(ts.URL, testKey, nil)
		if err != nil || withCA == withoutCA || withCA.Account() != withoutCA.Account() {
			t.Fatalf("want two Clients with one Account, got %p %p %v", withCA, withoutCA, err)
		}
		if _, err := withCA.List(ctx(t)); asErr(t, err).StatusCode != http.StatusTooManyRequests {
			t.Fatalf("first call: %v", err)
		}
		// Without the shared gate this call would be sent, and fail the
		// TLS handshake (ErrNetwork).
		_, err = withoutCA.List(ctx(t))
		held(t, err, -1)
		if d, _ := retryAfter(err); d > 5*time.Second {
			t.Fatalf("RetryAfter %v", d)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("server got %d requests", n)
		}
	})
	t.Run("the rate limiter is shared", func(t *testing.T) {
		p := scriptlock.NewPool(scriptlock.Options{QPS: 0.1, Burst: 1}, nil)
		withCA, _ := p.For(ts.URL, testKey, caPEM)
		withoutCA, _ := p.For(ts.URL, testKey, nil)
		if _, err := withCA.List(ctx(t)); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := withoutCA.List(short); !errors.Is(err, scriptlock.ErrThrottled) {
			t.Fatalf("the Client without CA has a limiter of its own: %v", err)
		}
	})
}

func TestAHoldThatBeganDuringTheLimiterWaitIsHonoured(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			close(arrived)
			<-release
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	c := newClient(t, url, testKey, func(o *scriptlock.Options) { o.QPS, o.Burst = 1, 1 })
	// The hold is measured on a clock that stands still, so the second
	// call sees all of it however long the limiter made it wait.
	now := time.Now()
	scriptlock.SetClockForTest(c, func() time.Time { return now })

	first := make(chan error, 1)
	go func() { _, err := c.List(ctx(t)); first <- err }()
	<-arrived // the first call took the only token and is in flight
	second := make(chan error, 1)
	go func() { _, err := c.List(ctx(t)); second <- err }()
	// Wait until the second call passed the hold check and waits for the
	// limiter (it has reserved the next token).
	for deadline := time.Now().Add(time.Minute); scriptlock.LimiterTokensForTest(c) > -0.5; {
		if time.Now().After(deadline) {
			t.Fatal("the second call never waited for the limiter")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; asErr(t, err).StatusCode != http.StatusTooManyRequests {
		t.Fatalf("first call: %v", err)
	}
	held(t, <-second, 5*time.Second)
	if n := calls.Load(); n != 1 {
		t.Fatalf("server got %d requests, want 1", n)
	}
}

func TestInFlightCap(t *testing.T) {
	url, accepted := countingBlackHole(t)
	c := newClient(t, url, testKey, func(o *scriptlock.Options) { o.MaxInFlight, o.Timeout = 2, 10*time.Second })
	hang, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _, _ = c.List(hang) })
	}
	for deadline := time.Now().Add(time.Minute); accepted() < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, want 2 calls in flight", accepted())
		}
		time.Sleep(time.Millisecond)
	}

	// Had it waited for a slot, it would wait until the test's context
	// ends (the two calls hang) and fail with the deadline instead.
	_, err := c.Create(ctx(t), example)
	if !errors.Is(err, scriptlock.ErrThrottled) || !strings.Contains(err.Error(), "too many requests in flight") {
		t.Fatalf("third call: %v", err)
	}
	if _, ok := retryAfter(err); ok || scriptlock.IsMaybeCreated(err) || !scriptlock.IsRetryable(err) {
		t.Fatalf("third call: %v: want no RetryAfter, not maybe created, retryable", err)
	}
	if n := accepted(); n != 2 {
		t.Fatalf("the third call opened a connection (%d)", n)
	}

	// The slots are freed when the calls end; cancelled calls say nothing
	// about the server, so they start no hold either.
	stop()
	wg.Wait()
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.List(short); errors.Is(err, scriptlock.ErrThrottled) || !errors.Is(err, scriptlock.ErrTimeout) {
		t.Fatalf("a call after the others ended: %v, want it sent and timed out", err)
	}
}

func TestRepeatedTimeoutsHoldTheAccount(t *testing.T) {
	url, accepted := countingBlackHole(t)
	c := newClient(t, url, testKey, func(o *scriptlock.Options) { o.Timeout = 200 * time.Millisecond })
	for i := 1; i <= 3; i++ {
		if _, err := c.List(ctx(t)); !errors.Is(err, scriptlock.ErrTimeout) {
			t.Fatalf("call %d: %v, want a timeout", i, err)
		}
	}
	for deadline := time.Now().Add(time.Minute); accepted() < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, want 3", accepted())
		}
		time.Sleep(time.Millisecond)
	}
	// Held: refused without a connection (counted below), not sent, for
	// the first hold (30 s from the third timeout, less what has passed).
	_, err := c.List(ctx(t))
	held(t, err, -1)
	if d, _ := retryAfter(err); d > 30*time.Second {
		t.Fatalf("held for %v, want at most the first hold, 30s", d)
	}
	if !scriptlock.IsRetryable(err) || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("fourth call: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // a connection attempt would have been accepted by now
	if n := accepted(); n != 3 {
		t.Fatalf("the held call opened a connection (%d)", n)
	}
}

// TestNoAnswerHoldSchedule drives the hold with a fake clock against a
// server that can drop connections (no answer) or answer.
func TestNoAnswerHoldSchedule(t *testing.T) {
	type step struct {
		advance time.Duration // clock moves before the call
		serve   string        // "drop", "204" or "500"
		held    time.Duration // 0: the call must reach the server; else the RetryAfter of a held call
	}
	drop := step{serve: "drop"}
	ok := step{serve: "204"}
	after := func(d time.Duration, s step) step { s.advance = d; return s }
	holdOf := func(d time.Duration) step { return step{serve: "204", held: d} }
	tests := []struct {
		name  string
		steps []step
	}{
		{"three calls without an answer hold the account for 30s", []step{drop, drop, drop, holdOf(30 * time.Second)}},
		{"two are not enough", []step{drop, drop, ok}},
		{"an answer resets the count", []step{drop, drop, ok, drop, drop, ok}},
		{"a 5xx is an answer too", []step{drop, drop, {serve: "500"}, drop, drop, ok}},
		{"the hold counts down and ends", []step{drop, drop, drop,
			after(10*time.Second, holdOf(20*time.Second)), after(19500*time.Millisecond, holdOf(time.Second)),
			after(500*time.Millisecond, ok)}},
		{"each further failure doubles the hold up to 5 minutes", []step{drop, drop, drop, holdOf(30 * time.Second),
			after(30*time.Second, drop), holdOf(time.Minute),
			after(time.Minute, drop), holdOf(2 * time.Minute),
			after(2*time.Minute, drop), holdOf(4 * time.Minute),
			after(4*time.Minute, drop), holdOf(5 * time.Minute),
			after(5*time.Minute, drop), holdOf(5 * time.Minute)}},
		{"an answer after a hold starts the schedule again", []step{drop, drop, drop,
			after(30*time.Second, drop), holdOf(time.Minute),
			after(time.Minute, ok), drop, drop, drop, holdOf(30 * time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mode atomic.Value
			var calls atomic.Int32
			url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				switch mode.Load() {
				case "drop":
					conn, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						_ = conn.Close()
					}
				case "500":
					w.WriteHeader(http.StatusInternalServerError)
				default:
					w.WriteHeader(http.StatusNoContent)
				}
			}))
			c := newClient(t, url, testKey)
			clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			scriptlock.SetClockForTest(c, clock.Now)
			for i, s := range tt.steps {
				clock.Add(s.advance)
				mode.Store(s.serve)
				before := calls.Load()
				_, err := c.List(ctx(t))
				sent := calls.Load() > before
				switch {
				case s.held > 0:
					if sent {
						t.Fatalf("step %d: a held call reached the server", i)
					}
					held(t, err, s.held)
				case !sent:
					t.Fatalf("step %d: the call was not sent: %v", i, err)
				case s.serve == "drop" && !errors.Is(err, scriptlock.ErrNetwork):
					t.Fatalf("step %d: %v, want no answer", i, err)
				case s.serve == "204" && err != nil:
					t.Fatalf("step %d: %v", i, err)
				}
			}
		})
	}
}

func TestAllowedHosts(t *testing.T) {
	const canary = "CANARY-key-7f3a9c2e"
	tests := []struct {
		name    string
		allowed []string
		url     string
		ok      bool
	}{
		{"an empty list allows any host", nil, "https://anywhere.example", true},
		{"a listed host is allowed", []string{"scriptlock.com"}, "https://scriptlock.com", true},
		{"a host entry allows any port", []string{"scriptlock.example"}, "https://scriptlock.example:8443/prefix", true},
		{"hosts compare case-insensitively", []string{"ScriptLock.Example"}, "https://SCRIPTLOCK.example", true},
		{"one of several entries", []string{"a.example", " scriptlock.example "}, "https://scriptlock.example", true},
		{"an entry with a port allows that port", []string{"scriptlock.example:8443"}, "https://scriptlock.example:8443", true},
		{"the scheme's default port counts", []string{"scriptlock.example:443"}, "https://scriptlock.example", true},
		{"an entry with a port refuses the default port", []string{"scriptlock.example:8443"}, "https://scriptlock.example", false},
		{"an entry with a port refuses another port", []string{"scriptlock.example:8443"}, "https://scriptlock.example:9443", false},
		{"another host is refused", []string{"scriptlock.example"}, "https://evil.example", false},
		{"a suffix is not a match", []string{"example"}, "https://scriptlock.example", false},
		{"a longer name is not a match", []string{"scriptlock.example"}, "https://scriptlock.example.evil.com", false},
		{"an IPv6 host", []string{"::1"}, "http://[::1]:8089", true},
		{"an IPv6 host with port", []string{"[::1]:8089"}, "http://[::1]:8089", true},
		{"a blank entry allows nothing", []string{""}, "https://scriptlock.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := scriptlock.Options{BaseURL: tt.url, APIKey: canary, AllowedHosts: tt.allowed}
			_, err := scriptlock.New(o)
			_, perr := scriptlock.NewPool(scriptlock.Options{AllowedHosts: tt.allowed}, nil).For(tt.url, canary, nil)
			if (err == nil) != tt.ok || (perr == nil) != tt.ok {
				t.Fatalf("New: %v; Pool.For: %v; want ok=%v", err, perr, tt.ok)
			}
			for _, err := range []error{err, perr} {
				if err != nil && (strings.Contains(err.Error(), "CANARY") || !strings.Contains(err.Error(), "--allowed-scriptlock-hosts")) {
					t.Fatalf("error %q leaks the key or does not name the flag", err)
				}
			}
		})
	}
	t.Run("the error names the host", func(t *testing.T) {
		_, err := scriptlock.New(scriptlock.Options{BaseURL: "https://Evil.Example:8443/x", APIKey: canary, AllowedHosts: []string{"scriptlock.com"}})
		if err == nil || !strings.Contains(err.Error(), `"evil.example:8443"`) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("the Pool's default account is checked too", func(t *testing.T) {
		p := scriptlock.NewPool(scriptlock.Options{APIKey: canary, AllowedHosts: []string{"scriptlock.example"}}, nil)
		if _, err := p.Default(); err == nil || !strings.Contains(err.Error(), `"scriptlock.com"`) {
			t.Fatalf("the default https://scriptlock.com was allowed: %v", err)
		}
	})
}

func TestCallsInFlightWhenTheHoldBeganDoNotLengthenIt(t *testing.T) {
	const n = 5
	var arrivedN atomic.Int32
	all := make(chan struct{})
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrivedN.Add(1) == n {
			close(all)
		}
		<-all // every call is in flight before any fails
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
	}))
	c := newClient(t, url, testKey, func(o *scriptlock.Options) { o.MaxInFlight = n })
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	scriptlock.SetClockForTest(c, clock.Now)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := c.List(ctx(t)); !errors.Is(err, scriptlock.ErrNetwork) {
				t.Errorf("got %v, want no answer", err)
			}
		})
	}
	wg.Wait()
	// Five failures in a row, but the last two ended during the hold the
	// third began: one 30s hold, not 2 minutes.
	_, err := c.List(ctx(t))
	held(t, err, 30*time.Second)
}

func TestSetDefaultAPIKeyChangesTheDefaultAccount(t *testing.T) {
	p := scriptlock.NewPool(scriptlock.Options{BaseURL: "http://127.0.0.1:1", APIKey: "old-key"}, nil)
	before, err := p.Default()
	if err != nil {
		t.Fatal(err)
	}
	p.SetDefaultAPIKey("new-key")
	after, err := p.Default()
	if err != nil {
		t.Fatal(err)
	}
	if before.Account() == after.Account() {
		t.Fatal("a rotated default key must give another account fingerprint")
	}
	p.SetDefaultAPIKey("")
	if _, err := p.Default(); err == nil {
		t.Fatal("an empty default key must mean no default account")
	}
}

func TestKeyIDIdentifiesTheKeyWhateverTheURLSpelling(t *testing.T) {
	a, err := scriptlock.New(scriptlock.Options{BaseURL: "http://127.0.0.1:8089/", APIKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := scriptlock.New(scriptlock.Options{BaseURL: "http://localhost:8089", APIKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := scriptlock.New(scriptlock.Options{BaseURL: "http://127.0.0.1:8089", APIKey: "k2"})
	if err != nil {
		t.Fatal(err)
	}
	if a.KeyID() != b.KeyID() || a.KeyID() == c.KeyID() {
		t.Fatalf("KeyID must follow the key only: %s %s %s", a.KeyID(), b.KeyID(), c.KeyID())
	}
	if strings.Contains(a.KeyID(), "k1") || a.BaseURL() != "http://127.0.0.1:8089" {
		t.Fatalf("KeyID %q, BaseURL %q", a.KeyID(), a.BaseURL())
	}
}

func TestManyAccountsAtOneHostShareItsInFlightCapAndHold(t *testing.T) {
	url := blackHole(t)
	accounts := func(timeout time.Duration) []*scriptlock.Client {
		p := scriptlock.NewPool(scriptlock.Options{BaseURL: url, Timeout: timeout, MaxInFlight: 2, MaxInFlightPerHost: 2}, nil)
		var clients []*scriptlock.Client
		for i := range 6 {
			c, err := p.For("", fmt.Sprintf("tenant-key-%d", i), nil)
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
		}
		return clients
	}
	// Two calls of two accounts fill the host; a third account is refused
	// at once, without a connection. The calls in flight never time out
	// on their own (however slow the machine), and are cancelled by their
	// caller at the end, which neither counts nor holds.
	clients := accounts(time.Hour)
	cctx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	started := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, c := range clients[:2] {
		wg.Add(1)
		go func() { defer wg.Done(); started <- struct{}{}; _, _ = c.List(cctx) }()
	}
	<-started
	<-started
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := clients[2].List(cctx)
		if errors.Is(err, scriptlock.ErrThrottled) && strings.Contains(err.Error(), "host has too many requests in flight") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a third account at the same host was not refused: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	// Three calls without an answer, from three accounts, hold the host for
	// every account.
	clients = accounts(200 * time.Millisecond)
	for _, c := range clients[:3] {
		if _, err := c.List(ctx(t)); !errors.Is(err, scriptlock.ErrTimeout) {
			t.Fatalf("want a timeout, got %v", err)
		}
	}
	_, err := clients[5].List(ctx(t))
	if !errors.Is(err, scriptlock.ErrThrottled) || !strings.Contains(err.Error(), "host held back") {
		t.Fatalf("an account that never called the host must be held with it: %v", err)
	}
}

// Callers named with WithCaller never wait for the rate limiter: past the
// rate each gets a place in line, in order, and RetryAfter until its turn;
// coming back early keeps the place, coming back on time passes.
func TestNamedCallersTakeTurnsInsteadOfWaiting(t *testing.T) {
	s, ts := startSim(t)
	c := newClient(t, ts.URL, testKey, func(o *scriptlock.Options) { o.QPS, o.Burst = 1, 1 })
	now := time.Now()
	scriptlock.SetClockForTest(c, func() time.Time { return now })
	as := func(who string) context.Context { return scriptlock.WithCaller(ctx(t), who) }

	if _, err := c.List(as("a")); err != nil {
		t.Fatalf("the first call: %v", err)
	}
	turn := func(who string) time.Duration {
		t.Helper()
		_, err := c.List(as(who))
		d, ok := retryAfter(err)
		if !errors.Is(err, scriptlock.ErrOverRate) || !errors.Is(err, scriptlock.ErrThrottled) || !ok {
			t.Fatalf("%s: got %v, want ErrOverRate with a RetryAfter", who, err)
		}
		return d
	}
	b, c2 := turn("b"), turn("c")
	if b <= 0 || c2 <= b {
		t.Fatalf("places in line out of order: b in %s, c in %s", b, c2)
	}
	if again := turn("b"); again != b {
		t.Fatalf("b came back early and lost its place: %s, was %s", again, b)
	}
	if n := s.CallCount(http.MethodGet, sim.RouteCustomers); n != 1 {
		t.Fatalf("%d calls sent, want only the first", n)
	}
	now = now.Add(b)
	if _, err := c.List(as("b")); err != nil {
		t.Fatalf("b on its turn: %v", err)
	}
	if _, err := c.List(as("c")); !errors.Is(err, scriptlock.ErrOverRate) {
		t.Fatalf("c before its turn: %v", err)
	}
}

// A cap given as a function is read at every call: the manager's derived
// reconcile limit raises and lowers it while calls are in flight.
func TestAnInFlightCapThatChangesIsReadAtEveryCall(t *testing.T) {
	url, accepted := countingBlackHole(t)
	var limit atomic.Int64
	limit.Store(1)
	c := newClient(t, url, testKey, func(o *scriptlock.Options) {
		o.MaxInFlight, o.Timeout = 100, 10*time.Second
		o.MaxInFlightFunc = func() int { return int(limit.Load()) }
	})
	hang, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	hangingCalls := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); accepted() < want; {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections, want %d calls in flight", accepted(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	wg.Go(func() { _, _ = c.List(hang) })
	hangingCalls(1)
	marked, turnedAway := scriptlock.WithTurnedAwayMark(ctx(t))
	if _, err := c.Create(marked, example); !errors.Is(err, scriptlock.ErrThrottled) || !turnedAway() {
		t.Fatalf("a second call at a cap of 1 (not the fixed 100): %v, marked turned away: %v", err, turnedAway())
	}
	limit.Store(3)
	sent, notTurnedAway := scriptlock.WithTurnedAwayMark(hang)
	wg.Go(func() { _, _ = c.List(sent) })
	wg.Go(func() { _, _ = c.List(hang) })
	hangingCalls(3)
	if notTurnedAway() {
		t.Fatal("a call that was sent is marked turned away")
	}
	if _, err := c.Create(ctx(t), example); !errors.Is(err, scriptlock.ErrThrottled) || !strings.Contains(err.Error(), "in flight (3)") {
		t.Fatalf("a fourth call at a cap raised to 3: %v", err)
	}
	if n := accepted(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}
