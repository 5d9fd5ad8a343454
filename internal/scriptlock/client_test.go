package scriptlock_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

const testKey = "63f9db5f7b532f1879df8dd751e185d5"

var example = scriptlock.Customer{
	Company:   "Example Company Inc.",
	FirstName: "Example",
	LastName:  "Customer",
	Email:     "customer@example.com",
}

// startSim serves a simulator with the test account over real HTTP.
func startSim(t *testing.T, opts ...sim.Option) (*sim.Server, *httptest.Server) {
	t.Helper()
	s := sim.New(append([]sim.Option{sim.WithAccount(testKey)}, opts...)...)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func newClient(t *testing.T, baseURL, key string, edit ...func(*scriptlock.Options)) *scriptlock.Client {
	t.Helper()
	o := scriptlock.Options{BaseURL: baseURL, APIKey: key, Timeout: 5 * time.Second, QPS: 1000, Burst: 1000}
	for _, e := range edit {
		e(&o)
	}
	c, err := scriptlock.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func asErr(t *testing.T, err error) *scriptlock.Error {
	t.Helper()
	var e *scriptlock.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *scriptlock.Error", err, err)
	}
	return e
}

func TestGet(t *testing.T) {
	tests := []struct {
		name   string
		opts   []sim.Option
		id     func(s *sim.Server) string
		want   func(t *testing.T, s *sim.Server, got scriptlock.Customer, err error)
		answer string
	}{
		{
			name:   "302 with a JSON body is the record, id sent as a number",
			id:     func(s *sim.Server) string { return s.Put(testKey, example).ID },
			answer: "GET /api/customer/{id} 302",
			want: func(t *testing.T, s *sim.Server, got scriptlock.Customer, err error) {
				if err != nil {
					t.Fatal(err)
				}
				want := s.Records(testKey)[0]
				if got != want {
					t.Fatalf("got %+v, want %+v", got, want)
				}
			},
		},
		{
			name:   "id sent as a JSON string is decoded",
			opts:   []sim.Option{sim.WithStringIDs()},
			id:     func(s *sim.Server) string { return s.Put(testKey, example).ID },
			answer: "GET /api/customer/{id} 302",
			want: func(t *testing.T, s *sim.Server, got scriptlock.Customer, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if got.ID != s.Records(testKey)[0].ID || got.Email != example.Email {
					t.Fatalf("got %+v", got)
				}
			},
		},
		{
			name:   "404 is NotFound and not retryable",
			id:     func(*sim.Server) string { return "999" },
			answer: "GET /api/customer/{id} 404",
			want: func(t *testing.T, _ *sim.Server, _ scriptlock.Customer, err error) {
				if !scriptlock.IsNotFound(err) || scriptlock.IsRetryable(err) || asErr(t, err).Op != "get" {
					t.Fatalf("got %v", err)
				}
			},
		},
		{
			name: "record deleted out of band is NotFound",
			id: func(s *sim.Server) string {
				id := s.Put(testKey, example).ID
				s.DeleteOutOfBand(testKey, id)
				return id
			},
			answer: "GET /api/customer/{id} 404",
			want: func(t *testing.T, _ *sim.Server, _ scriptlock.Customer, err error) {
				if !scriptlock.IsNotFound(err) {
					t.Fatalf("got %v", err)
				}
			},
		},
		{
			name: "record edited out of band shows the drift",
			id: func(s *sim.Server) string {
				id := s.Put(testKey, example).ID
				s.EditOutOfBand(testKey, id, func(c *scriptlock.Customer) { c.Company = "Someone Else Ltd" })
				return id
			},
			answer: "GET /api/customer/{id} 302",
			want: func(t *testing.T, _ *sim.Server, got scriptlock.Customer, err error) {
				if err != nil || got.Company != "Someone Else Ltd" || scriptlock.SameFields(got, example) {
					t.Fatalf("got %+v, %v", got, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := startSim(t, tt.opts...)
			id := tt.id(s)
			got, err := newClient(t, ts.URL, testKey).Get(ctx(t), id)
			tt.want(t, s, got, err)
			if n := s.Calls()[tt.answer]; n != 1 {
				t.Errorf("simulator calls %v, want one %q", s.Calls(), tt.answer)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	t.Run("201 returns the record with the new id and ids increase", func(t *testing.T) {
		s, ts := startSim(t)
		c := newClient(t, ts.URL, testKey)
		a, err := c.Create(ctx(t), example)
		if err != nil {
			t.Fatal(err)
		}
		other := example
		other.Email = "other@example.com"
		b, err := c.Create(ctx(t), other)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID == "" || b.ID == "" || a.ID >= b.ID || !scriptlock.SameFields(a, example) {
			t.Fatalf("got %+v and %+v", a, b)
		}
		if got := s.Records(testKey); len(got) != 2 || got[0] != a || got[1] != b {
			t.Fatalf("simulator holds %+v", got)
		}
	})
	t.Run("409 when the email is used, compared case-insensitively, with the message", func(t *testing.T) {
		s, ts := startSim(t)
		owner := s.Put(testKey, example)
		dup := example
		dup.Email = "CUSTOMER@Example.COM"
		_, err := newClient(t, ts.URL, testKey).Create(ctx(t), dup)
		if !scriptlock.IsConflict(err) || scriptlock.IsRetryable(err) || scriptlock.IsMaybeCreated(err) {
			t.Fatalf("got %v", err)
		}
		if msg := asErr(t, err).Message; !strings.Contains(msg, owner.ID) {
			t.Fatalf("message %q does not carry ScriptLock's text", msg)
		}
		if n := len(s.Records(testKey)); n != 1 {
			t.Fatalf("%d records, want 1", n)
		}
	})
	for _, mode := range []struct {
		name string
		mode sim.LoseMode
	}{{"answer lost as a 500", sim.LoseWith500}, {"answer lost by a dropped connection", sim.LoseByDroppingConnection}} {
		t.Run(mode.name+" is MaybeCreated and the record exists", func(t *testing.T) {
			s, ts := startSim(t)
			s.LoseNextCreate(mode.mode)
			_, err := newClient(t, ts.URL, testKey).Create(ctx(t), example)
			if err == nil || !scriptlock.IsMaybeCreated(err) || !scriptlock.IsRetryable(err) {
				t.Fatalf("got %v, want a maybe-created retryable error", err)
			}
			if recs := s.Records(testKey); len(recs) != 1 || !scriptlock.SameFields(recs[0], example) {
				t.Fatalf("simulator holds %+v", recs)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	changed := example
	changed.Company = "Renamed Inc."
	tests := []struct {
		name        string
		in          scriptlock.Customer
		id          string // "" = the seeded record
		wantChanged bool
		check       func(error) bool
		answer      string
	}{
		{"200 when a field changes", changed, "", true, func(err error) bool { return err == nil }, "PUT /api/customer/{id} 200"},
		{"304 when nothing changes is success", example, "", false, func(err error) bool { return err == nil }, "PUT /api/customer/{id} 304"},
		{"404 for a missing record", example, "424242", false, scriptlock.IsNotFound, "PUT /api/customer/{id} 404"},
		{"409 when taking another record's email", scriptlock.Customer{FirstName: "A", LastName: "B", Email: "Taken@example.com"}, "", false, scriptlock.IsConflict, "PUT /api/customer/{id} 409"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := startSim(t)
			rec := s.Put(testKey, example)
			s.Put(testKey, scriptlock.Customer{FirstName: "T", LastName: "K", Email: "taken@example.com"})
			id := tt.id
			if id == "" {
				id = rec.ID
			}
			got, err := newClient(t, ts.URL, testKey).Update(ctx(t), id, tt.in)
			if got != tt.wantChanged || !tt.check(err) {
				t.Fatalf("got (%v, %v)", got, err)
			}
			if s.Calls()[tt.answer] != 1 {
				t.Fatalf("calls %v, want %q", s.Calls(), tt.answer)
			}
			if err == nil {
				if now, _ := s.Record(testKey, rec.ID); !scriptlock.SameFields(now, tt.in) {
					t.Fatalf("simulator holds %+v, want %+v", now, tt.in)
				}
			}
		})
	}
}

func TestList(t *testing.T) {
	t.Run("204 is an empty list", func(t *testing.T) {
		s, ts := startSim(t)
		got, err := newClient(t, ts.URL, testKey).List(ctx(t))
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("got %#v, %v", got, err)
		}
		if s.Calls()["GET /api/customers 204"] != 1 {
			t.Fatalf("calls %v", s.Calls())
		}
	})
	t.Run("200 is every record of the account and no other account's", func(t *testing.T) {
		s, ts := startSim(t, sim.WithAccount("other-key"))
		a := s.Put(testKey, example)
		b := s.Put(testKey, scriptlock.Customer{FirstName: "B", LastName: "B", Email: "b@example.com"})
		s.Put("other-key", scriptlock.Customer{FirstName: "C", LastName: "C", Email: "c@example.com"})
		got, err := newClient(t, ts.URL, testKey).List(ctx(t))
		if err != nil || len(got) != 2 || got[0] != a || got[1] != b {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(s *sim.Server, id string)
		wantGone  bool
		check     func(t *testing.T, err error)
		remaining int
	}{
		{"410 deletes the record", func(*sim.Server, string) {}, false, noError, 0},
		{"404 is already gone and a success", func(s *sim.Server, id string) { s.DeleteOutOfBand(testKey, id) }, true, noError, 0},
		{"409 is a refusal carrying ScriptLock's message", func(s *sim.Server, id string) {
			s.RefuseDelete(testKey, id, "customer has 3 active licenses")
		}, false, func(t *testing.T, err error) {
			if !scriptlock.IsConflict(err) || asErr(t, err).Message != "customer has 3 active licenses" {
				t.Fatalf("got %v", err)
			}
		}, 1},
		{"allowed again after a refusal is lifted", func(s *sim.Server, id string) {
			s.RefuseDelete(testKey, id, "no")
			s.AllowDelete(testKey, id)
		}, false, noError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := startSim(t)
			id := s.Put(testKey, example).ID
			tt.setup(s, id)
			gone, err := newClient(t, ts.URL, testKey).Delete(ctx(t), id)
			tt.check(t, err)
			if gone != tt.wantGone || len(s.Records(testKey)) != tt.remaining {
				t.Fatalf("alreadyGone=%v records=%+v", gone, s.Records(testKey))
			}
		})
	}
}

func noError(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestAuthentication(t *testing.T) {
	tests := []struct {
		name string
		key  string
	}{
		{"wrong key is Unauthorized", "not-the-key"},
		{"another account's key is Unauthorized here", "wrong-account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := startSim(t)
			_, err := newClient(t, ts.URL, tt.key).List(ctx(t))
			if !scriptlock.IsUnauthorized(err) || scriptlock.IsRetryable(err) {
				t.Fatalf("got %v", err)
			}
			if s.Calls()["GET /api/customers 401"] != 1 {
				t.Fatalf("calls %v", s.Calls())
			}
		})
	}
	t.Run("missing key answers 401 from the simulator", func(t *testing.T) {
		_, ts := startSim(t)
		resp, err := http.Get(ts.URL + "/api/customers")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

// TestInjectedFaults covers every status a fault can produce and how the
// client classifies it.
func TestInjectedFaults(t *testing.T) {
	tests := []struct {
		name           string
		status         int
		retryAfter     time.Duration
		call           func(c *scriptlock.Client, ctx context.Context) error
		retryable      bool
		unauthorized   bool
		wantRetryAfter time.Duration
	}{
		{"503 with Retry-After 2 is retryable after 2s", 503, 2 * time.Second, list, true, false, 2 * time.Second},
		{"429 with Retry-After is retryable", 429, 3 * time.Second, list, true, false, 3 * time.Second},
		{"500 without Retry-After is retryable with no wait", 500, 0, list, true, false, 0},
		{"408 is retryable", 408, 0, list, true, false, 0},
		{"403 is Unauthorized", 403, 0, list, false, true, 0},
		{"400 is a permanent API error", 400, 0, list, false, false, 0},
		{"418 on get is an unexpected status", 418, 0, func(c *scriptlock.Client, ctx context.Context) error {
			_, err := c.Get(ctx, "1")
			return err
		}, false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := startSim(t)
			route := sim.RouteCustomers
			if tt.status == 418 {
				route = sim.RouteCustomerID
			}
			s.FailNext("GET", route, 1, tt.status, tt.retryAfter)
			err := tt.call(newClient(t, ts.URL, testKey), ctx(t))
			e := asErr(t, err)
			if e.StatusCode != tt.status || scriptlock.IsRetryable(err) != tt.retryable || scriptlock.IsUnauthorized(err) != tt.unauthorized {
				t.Fatalf("got %v (retryable=%v)", err, scriptlock.IsRetryable(err))
			}
			if d, ok := retryAfter(err); d != tt.wantRetryAfter || ok != (tt.wantRetryAfter > 0) {
				t.Fatalf("RetryAfter = %v, %v", d, ok)
			}
			if tt.status == 418 && !errors.Is(err, scriptlock.ErrUnexpectedStatus) {
				t.Fatalf("418 not reported as unexpected: %v", err)
			}
		})
	}
}

func list(c *scriptlock.Client, ctx context.Context) error {
	_, err := c.List(ctx)
	return err
}

func TestRetryAfterHoldsTheAccount(t *testing.T) {
	s, ts := startSim(t)
	s.FailNext("", "", 1, http.StatusServiceUnavailable, 2*time.Second)
	c := newClient(t, ts.URL, testKey)
	if _, err := c.List(ctx(t)); !scriptlock.IsRetryable(err) {
		t.Fatalf("first call: %v", err)
	}
	// Another caller of the same account is held back without a request
	// being sent (had it slept through the hold, the call would have gone
	// out: the count below says it did not).
	_, err := c.Get(ctx(t), "1")
	if !errors.Is(err, scriptlock.ErrThrottled) || !scriptlock.IsRetryable(err) {
		t.Fatalf("second call: %v", err)
	}
	if d, ok := retryAfter(err); !ok || d <= 0 || d > 2*time.Second {
		t.Fatalf("RetryAfter = %v", d)
	}
	if n := s.CallCount("GET", sim.RouteCustomerID); n != 0 {
		t.Fatalf("held call reached the server %d times", n)
	}
	// Another account is not held.
	s.AddAccount("second-key")
	if _, err := newClient(t, ts.URL, "second-key").List(ctx(t)); err != nil {
		t.Fatalf("other account: %v", err)
	}
}

func TestRateLimiterNeverWaitsPastTheDeadline(t *testing.T) {
	s, ts := startSim(t)
	c := newClient(t, ts.URL, testKey, func(o *scriptlock.Options) { o.QPS, o.Burst = 0.2, 1 })
	if _, err := c.List(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// The next token comes in 5 s; the deadline is sooner: the call gives
	// up instead of waiting for the token and sending after the deadline.
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.List(short)
	if !errors.Is(err, scriptlock.ErrThrottled) || scriptlock.IsMaybeCreated(err) {
		t.Fatalf("got %v", err)
	}
	if n := s.CallCount(http.MethodGet, sim.RouteCustomers); n != 1 {
		t.Fatalf("the server got %d listings, want only the first", n)
	}
}

func TestTimeouts(t *testing.T) {
	t.Run("simulator latency beyond the per-request timeout is a retryable timeout", func(t *testing.T) {
		// The answer comes after 2 s: a client that waited for it would
		// have no error, so the timeout itself shows it did not wait.
		s, ts := startSim(t, sim.WithLatency(2*time.Second))
		_, err := newClient(t, ts.URL, testKey, func(o *scriptlock.Options) { o.Timeout = 200 * time.Millisecond }).List(ctx(t))
		if !errors.Is(err, scriptlock.ErrTimeout) || !scriptlock.IsRetryable(err) || asErr(t, err).StatusCode != 0 {
			t.Fatalf("got %v", err)
		}
		s.SetLatency(0)
	})
	t.Run("a black-holed server times out within the per-request timeout", func(t *testing.T) {
		// It never answers: only the per-request timeout ends the call
		// (the caller's context has no deadline).
		url := blackHole(t)
		_, err := newClient(t, url, testKey, func(o *scriptlock.Options) { o.Timeout = 300 * time.Millisecond }).Create(context.Background(), example)
		if !errors.Is(err, scriptlock.ErrTimeout) || !scriptlock.IsRetryable(err) || !scriptlock.IsMaybeCreated(err) {
			t.Fatalf("got %v", err)
		}
	})
}

// retryAfter returns the wait an *Error carries, and whether it has one.
func retryAfter(err error) (time.Duration, bool) {
	var e *scriptlock.Error
	if !errors.As(err, &e) || e.RetryAfter <= 0 {
		return 0, false
	}
	return e.RetryAfter, true
}

// CreateAfter runs its prepare step only for a create that is about to be
// sent: not for one the client holds back, and an error from it sends
// nothing.
func TestCreateAfterPreparesOnlyACreateAboutToBeSent(t *testing.T) {
	s, ts := startSim(t)
	c := newClient(t, ts.URL, testKey, func(o *scriptlock.Options) { o.MaxInFlight = 1 })
	in := scriptlock.Customer{Company: "C", FirstName: "F", LastName: "L", Email: "after@example.com"}

	refused := errors.New("status write failed")
	if _, err := c.CreateAfter(ctx(t), in, func(context.Context) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("want the prepare step's error as it is, got %v", err)
	}
	if n := s.CallCount(http.MethodPost, sim.RouteCustomer); n != 0 {
		t.Fatalf("a create whose prepare step failed was sent (%d)", n)
	}

	// Hold the account's only slot with a listing that does not answer yet.
	s.SetLatency(2 * time.Second)
	go func() { _, _ = c.List(ctx(t)) }()
	time.Sleep(200 * time.Millisecond)
	prepared := false
	_, err := c.CreateAfter(ctx(t), in, func(context.Context) error { prepared = true; return nil })
	if !errors.Is(err, scriptlock.ErrThrottled) || prepared {
		t.Fatalf("a create held back by the in-flight cap must not prepare: prepared %v, err %v", prepared, err)
	}

	s.SetLatency(0)
	time.Sleep(2 * time.Second)
	rec, err := c.CreateAfter(ctx(t), in, func(context.Context) error { prepared = true; return nil })
	if err != nil || !prepared || rec.ID == "" {
		t.Fatalf("prepared %v, %+v, %v", prepared, rec, err)
	}
}

// TestReadOnlySendsNoWrite: a read-only client reads, and refuses every
// write before anything reaches ScriptLock (the simulator counts no POST,
// PUT or DELETE), with an error that is neither retryable nor a create
// that may have happened; its OnWrite (the change log) is never told of
// one, so a plan's client can log no change.
func TestReadOnlySendsNoWrite(t *testing.T) {
	s, ts := startSim(t)
	id := s.Put(testKey, example).ID
	var told []scriptlock.Write
	c := newClient(t, ts.URL, testKey, func(o *scriptlock.Options) {
		o.ReadOnly = true
		o.OnWrite = func(_ context.Context, w scriptlock.Write) { told = append(told, w) }
	})
	if _, err := c.Get(ctx(t), id); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if _, err := c.List(ctx(t)); err != nil {
		t.Fatalf("List: %v", err)
	}
	_, cerr := c.Create(ctx(t), scriptlock.Customer{Company: "C", FirstName: "F", LastName: "L", Email: "new@example.com"})
	_, uerr := c.Update(ctx(t), id, scriptlock.Customer{Company: "Other", FirstName: "F", LastName: "L", Email: example.Email})
	_, derr := c.Delete(ctx(t), id)
	for _, err := range []error{cerr, uerr, derr} {
		if !errors.Is(err, scriptlock.ErrReadOnly) || scriptlock.IsRetryable(err) || scriptlock.IsMaybeCreated(err) {
			t.Errorf("write on a read-only client: %v (retryable %v, maybe created %v)", err, scriptlock.IsRetryable(err), scriptlock.IsMaybeCreated(err))
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if n := s.CallCount(m, "/api/customer") + s.CallCount(m, "/api/customer/{id}"); n != 0 {
			t.Errorf("%d %s calls reached ScriptLock", n, m)
		}
	}
	if got := s.CallCount("GET", "/api/customer/{id}") + s.CallCount("GET", "/api/customers"); got != 2 {
		t.Errorf("GET calls = %d, want 2 (%v)", got, s.Calls())
	}
	if len(s.Records(testKey)) != 1 || s.Records(testKey)[0] != (scriptlock.Customer{ID: id, Company: example.Company, FirstName: example.FirstName, LastName: example.LastName, Email: example.Email}) {
		t.Errorf("records changed: %+v", s.Records(testKey))
	}
	if len(told) != 0 {
		t.Errorf("OnWrite was told of %d writes by a read-only client: %+v", len(told), told)
	}
}

// TestAnswerTimeAddsUpTheCallsSent: WithAnswerTime sums how long ScriptLock
// took to answer the calls made with its ctx (each at least the
// simulator's delay), and a call refused before it is sent adds nothing.
// The derived concurrency of the manager is computed from this sum.
func TestAnswerTimeAddsUpTheCallsSent(t *testing.T) {
	const delay = 25 * time.Millisecond
	s, ts := startSim(t, sim.WithLatency(delay))
	id := s.Put(testKey, example).ID
	c := newClient(t, ts.URL, testKey, func(o *scriptlock.Options) { o.ReadOnly = true })
	timed, answered := scriptlock.WithAnswerTime(ctx(t))
	if answered() != 0 {
		t.Fatalf("answer time %v before any call", answered())
	}
	if _, err := c.Get(timed, id); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if _, err := c.List(timed); err != nil {
		t.Fatalf("List: %v", err)
	}
	sent := answered()
	if sent < 2*delay {
		t.Fatalf("answer time of two calls delayed %v each: %v", delay, sent)
	}
	if _, err := c.Delete(timed, id); !errors.Is(err, scriptlock.ErrReadOnly) {
		t.Fatalf("Delete on a read-only client: %v", err)
	}
	if answered() != sent {
		t.Fatalf("a call refused before it was sent added %v", answered()-sent)
	}
	if _, err := c.Get(ctx(t), id); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if answered() != sent {
		t.Fatal("a call made with another ctx added to the sum")
	}
}
