package sim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

const key = "sim-test-key"

func start(t *testing.T, opts ...sim.Option) (*sim.Server, string) {
	t.Helper()
	s := sim.New(append([]sim.Option{sim.WithAccount(key)}, opts...)...)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

// call sends a raw request, so the simulator's wire answers are checked
// independently of the client.
func call(t *testing.T, method, u, auth, form string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != "" {
		body = strings.NewReader(form)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Basic "+auth)
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const form = "company=Example+Company+Inc.&firstname=Example&lastname=Customer&email=customer%40example.com"

func TestWireAnswers(t *testing.T) {
	s, u := start(t)
	tests := []struct {
		name           string
		method, path   string
		auth, form     string
		status         int
		location, body string // expected Location, substring of body
	}{
		{"empty list answers 204", "GET", "/api/customers", key, "", 204, "", ""},
		{"create answers 201 with body and Location", "POST", "/api/customer", key, form, 201, "/api/customer/1", `"id":1,"company":"Example Company Inc."`},
		{"create with a used email answers 409", "POST", "/api/customer", key, strings.Replace(form, "customer%40", "CUSTOMER%40", 1), 409, "", "email already used by customer 1"},
		{"get answers 302 with body and Location", "GET", "/api/customer/1", key, "", 302, "/api/customer/1", `"email":"customer@example.com"`},
		{"get of a missing id answers 404", "GET", "/api/customer/2", key, "", 404, "", ""},
		{"list answers 200 with an array", "GET", "/api/customers", key, "", 200, "", `[{"id":1,`},
		{"put without change answers 304", "PUT", "/api/customer/1", key, form, 304, "", ""},
		{"put with a change answers 200", "PUT", "/api/customer/1", key, strings.Replace(form, "Example+Company", "Other", 1), 200, "", `"company":"Other Inc."`},
		{"put of a missing id answers 404", "PUT", "/api/customer/9", key, form, 404, "", ""},
		{"form without email answers 400", "POST", "/api/customer", key, "firstname=A", 400, "", "email is required"},
		{"wrong key answers 401", "GET", "/api/customers", "wrong", "", 401, "", ""},
		{"missing key answers 401", "GET", "/api/customers", "", "", 401, "", ""},
		{"unknown method answers 405", "PATCH", "/api/customer/1", key, "", 405, "", ""},
		{"unknown path answers 404", "GET", "/api/other", key, "", 404, "", ""},
		{"delete answers 410", "DELETE", "/api/customer/1", key, "", 410, "", ""},
		{"delete again answers 404", "DELETE", "/api/customer/1", key, "", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := call(t, tt.method, u+tt.path, tt.auth, tt.form)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("Location"); got != tt.location {
				t.Errorf("Location %q, want %q", got, tt.location)
			}
			if !strings.Contains(body, tt.body) {
				t.Errorf("body %q does not contain %q", body, tt.body)
			}
		})
	}
	want := map[string]int{"GET /api/customers 204": 1, "POST /api/customer 201": 1, "DELETE /api/customer/{id} 410": 1, "GET /api/customers 401": 2, "PATCH /api/customer/{id} 405": 1, "GET unknown 404": 1}
	calls := s.Calls()
	for k, v := range want {
		if calls[k] != v {
			t.Errorf("Calls()[%q] = %d, want %d (all %v)", k, calls[k], v, calls)
		}
	}
	if n := s.CallCount("PUT", sim.RouteCustomerID); n != 3 {
		t.Errorf("CallCount(PUT) = %d, want 3", n)
	}
	s.ResetCalls()
	if len(s.Calls()) != 0 {
		t.Error("ResetCalls left counters")
	}
}

func TestPutTakingAnotherRecordsEmailIsAConflict(t *testing.T) {
	s, u := start(t)
	a := s.Put(key, scriptlock.Customer{FirstName: "A", LastName: "A", Email: "a@example.com"})
	s.Put(key, scriptlock.Customer{FirstName: "B", LastName: "B", Email: "b@example.com"})
	resp, _ := call(t, "PUT", u+"/api/customer/"+a.ID, key, "firstname=A&lastname=A&email=B%40EXAMPLE.com")
	if resp.StatusCode != 409 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Changing only the case of one's own email is a change, not a conflict.
	resp, _ = call(t, "PUT", u+"/api/customer/"+a.ID, key, "firstname=A&lastname=A&email=A%40EXAMPLE.com")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestAccountsAreSeparate(t *testing.T) {
	s, u := start(t, sim.WithAccount("second"))
	resp, _ := call(t, "POST", u+"/api/customer", key, form)
	if resp.StatusCode != 201 {
		t.Fatal(resp.Status)
	}
	// The same email is free in the other account, and its list is empty.
	if resp, _ := call(t, "GET", u+"/api/customers", "second", ""); resp.StatusCode != 204 {
		t.Fatalf("second account list: %s", resp.Status)
	}
	if resp, _ := call(t, "POST", u+"/api/customer", "second", form); resp.StatusCode != 201 {
		t.Fatalf("second account create: %s", resp.Status)
	}
	if resp, _ := call(t, "GET", u+"/api/customer/1", "second", ""); resp.StatusCode != 404 {
		t.Fatalf("second account sees the first one's record: %s", resp.Status)
	}
	if len(s.Records(key)) != 1 || len(s.Records("second")) != 1 {
		t.Fatal("records mixed between accounts")
	}
}

func TestConcurrentCreatesKeepEmailsUniqueAndIDsDistinct(t *testing.T) {
	s, u := start(t)
	var wg sync.WaitGroup
	statuses := make(chan int, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := fmt.Sprintf("u%d%%40example.com", i%10) // 10 emails, 4 tries each
			// No t.Fatal off the test goroutine: a failed call counts as 0.
			req, _ := http.NewRequest("POST", u+"/api/customer", strings.NewReader("firstname=A&lastname=B&email="+email))
			req.Header.Set("Authorization", "Basic "+key)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			_ = resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[201] != 10 || count[409] != 30 {
		t.Fatalf("statuses %v", count)
	}
	ids := map[string]bool{}
	for _, c := range s.Records(key) {
		ids[c.ID] = true
	}
	if len(ids) != 10 {
		t.Fatalf("%d distinct ids", len(ids))
	}
}

func TestFaults(t *testing.T) {
	t.Run("FailNext answers the next n matching calls only", func(t *testing.T) {
		s, u := start(t)
		s.FailNext("GET", sim.RouteCustomers, 2, 503, 1500*time.Millisecond)
		for i, want := range []int{503, 503, 204} {
			resp, _ := call(t, "GET", u+"/api/customers", key, "")
			if resp.StatusCode != want {
				t.Fatalf("call %d: %d, want %d", i, resp.StatusCode, want)
			}
			if want == 503 && resp.Header.Get("Retry-After") != "2" {
				t.Fatalf("Retry-After %q, want rounded up to 2", resp.Header.Get("Retry-After"))
			}
		}
	})
	t.Run("FailNext does not match other routes", func(t *testing.T) {
		s, u := start(t)
		s.FailNext("POST", sim.RouteCustomer, 1, 500, 0)
		if resp, _ := call(t, "GET", u+"/api/customers", key, ""); resp.StatusCode != 204 {
			t.Fatal(resp.Status)
		}
	})
	t.Run("latency delays answers", func(t *testing.T) {
		s, u := start(t)
		s.SetLatency(150 * time.Millisecond)
		t0 := time.Now()
		call(t, "GET", u+"/api/customers", key, "")
		if time.Since(t0) < 150*time.Millisecond {
			t.Fatal("no latency")
		}
	})
	t.Run("a lost create by 500 stores the record", func(t *testing.T) {
		s, u := start(t)
		s.LoseNextCreate(sim.LoseWith500)
		if resp, _ := call(t, "POST", u+"/api/customer", key, form); resp.StatusCode != 500 {
			t.Fatal(resp.Status)
		}
		if len(s.Records(key)) != 1 {
			t.Fatal("record not stored")
		}
	})
	t.Run("a lost create by dropped connection stores the record and counts as dropped", func(t *testing.T) {
		s, u := start(t)
		s.LoseNextCreate(sim.LoseByDroppingConnection)
		req, _ := http.NewRequest("POST", u+"/api/customer", strings.NewReader(form))
		req.Header.Set("Authorization", "Basic "+key)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil {
			_ = resp.Body.Close()
			t.Fatalf("got an answer: %s", resp.Status)
		}
		if len(s.Records(key)) != 1 || s.Calls()["POST /api/customer dropped"] != 1 {
			t.Fatalf("records %v calls %v", s.Records(key), s.Calls())
		}
	})
}

func admin(t *testing.T, method, u, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminAPI(t *testing.T) {
	s, u := start(t)
	q := "?key=" + url.QueryEscape(key)
	steps := []struct {
		name, method, path, body string
		status                   int
		check                    func(t *testing.T, body string)
	}{
		{"seed a record", "POST", "/_sim/records" + q, `{"id":"41","firstname":"A","lastname":"B","email":"a@example.com"}`, 201, nil},
		{"seeded ids keep increasing", "POST", "/_sim/records", `{"firstname":"C","lastname":"D","email":"c@example.com"}`, 201, func(t *testing.T, b string) {
			if !strings.Contains(b, `"id":"42"`) {
				t.Fatalf("body %s", b)
			}
		}},
		{"list records", "GET", "/_sim/records" + q, "", 200, func(t *testing.T, b string) {
			var recs []scriptlock.Customer
			if err := json.Unmarshal([]byte(b), &recs); err != nil || len(recs) != 2 {
				t.Fatalf("body %s: %v", b, err)
			}
		}},
		{"edit out of band", "PUT", "/_sim/records/41" + q, `{"company":"Drifted"}`, 200, func(t *testing.T, b string) {
			if c, _ := s.Record(key, "41"); c.Company != "Drifted" || c.Email != "a@example.com" {
				t.Fatalf("record %+v", c)
			}
		}},
		{"edit of a missing record is 404", "PUT", "/_sim/records/9" + q, `{"company":"x"}`, 404, nil},
		{"unknown fields are refused", "PUT", "/_sim/records/41" + q, `{"compnay":"x"}`, 400, nil},
		{"delete out of band", "DELETE", "/_sim/records/42" + q, "", 204, func(t *testing.T, _ string) {
			if _, ok := s.Record(key, "42"); ok {
				t.Fatal("still there")
			}
		}},
		{"refuse a delete", "POST", "/_sim/refuse-delete", `{"id":"41","message":"has licenses"}`, 204, func(t *testing.T, _ string) {
			resp, body := call(t, "DELETE", u+"/api/customer/41", key, "")
			if resp.StatusCode != 409 || !strings.Contains(body, "has licenses") {
				t.Fatalf("%s %s", resp.Status, body)
			}
		}},
		{"allow the delete again", "DELETE", "/_sim/refuse-delete?id=41", "", 204, func(t *testing.T, _ string) {
			if resp, _ := call(t, "DELETE", u+"/api/customer/41", key, ""); resp.StatusCode != 410 {
				t.Fatal(resp.Status)
			}
		}},
		{"inject a failure", "POST", "/_sim/fail", `{"method":"GET","route":"/api/customers","status":429,"retryAfterSeconds":3}`, 204, func(t *testing.T, _ string) {
			resp, _ := call(t, "GET", u+"/api/customers", key, "")
			if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
				t.Fatalf("%s %q", resp.Status, resp.Header.Get("Retry-After"))
			}
		}},
		{"clear failures", "DELETE", "/_sim/fail", "", 204, nil},
		{"lose the next create by a 500", "POST", "/_sim/lose-create", `{"mode":"500"}`, 204, func(t *testing.T, _ string) {
			if resp, _ := call(t, "POST", u+"/api/customer", key, form); resp.StatusCode != 500 {
				t.Fatal(resp.Status)
			}
		}},
		{"an unknown lose mode is refused", "POST", "/_sim/lose-create", `{"mode":"later"}`, 400, nil},
		{"set latency", "POST", "/_sim/latency", `{"latency":"1ms"}`, 204, nil},
		{"bad latency is refused", "POST", "/_sim/latency", `{"latency":"soon"}`, 400, nil},
		{"read call counters", "GET", "/_sim/calls", "", 200, func(t *testing.T, b string) {
			var m map[string]int
			if err := json.Unmarshal([]byte(b), &m); err != nil || m["GET /api/customers 429"] != 1 || m["DELETE /api/customer/{id} 409"] != 1 {
				t.Fatalf("calls %s", b)
			}
		}},
		{"reset call counters", "DELETE", "/_sim/calls", "", 204, func(t *testing.T, _ string) {
			if len(s.Calls()) != 0 {
				t.Fatal("not reset")
			}
		}},
		{"add an account", "POST", "/_sim/accounts", `{"key":"added"}`, 204, func(t *testing.T, _ string) {
			if resp, _ := call(t, "GET", u+"/api/customers", "added", ""); resp.StatusCode != 204 {
				t.Fatal(resp.Status)
			}
		}},
		{"rotate a key: the account's records answer to the new key, the old one is refused", "POST", "/_sim/rotate-key", `{"old":"added","new":"added-rotated"}`, 204, func(t *testing.T, _ string) {
			if resp, _ := call(t, "GET", u+"/api/customers", "added-rotated", ""); resp.StatusCode != 204 {
				t.Fatal(resp.Status)
			}
			if resp, _ := call(t, "GET", u+"/api/customers", "added", ""); resp.StatusCode != 401 {
				t.Fatalf("the old key: %s, want 401", resp.Status)
			}
		}},
		{"rotating a key no account has is 404", "POST", "/_sim/rotate-key", `{"old":"nobody","new":"x"}`, 404, nil},
		{"with two accounts the key is required", "GET", "/_sim/records", "", 404, nil},
		{"unknown admin path is 404", "GET", "/_sim/nothing", "", 404, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			status, body := admin(t, st.method, u+st.path, st.body)
			if status != st.status {
				t.Fatalf("status %d, want %d (%s)", status, st.status, body)
			}
			if st.check != nil {
				st.check(t, body)
			}
		})
	}
}

func TestAdminAPIRefusesRemoteClients(t *testing.T) {
	s := sim.New(sim.WithAccount(key))
	for _, remote := range []string{"192.0.2.10:40000", "[2001:db8::1]:40000", "garbage"} {
		req := httptest.NewRequest("DELETE", "/_sim/calls", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("remote %s: status %d", remote, rec.Code)
		}
	}
	req := httptest.NewRequest("GET", "/_sim/calls", nil)
	req.RemoteAddr = "[::1]:40000"
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("IPv6 loopback refused: %d", rec.Code)
	}
}

// post sends form to POST /api/customer.
func post(t *testing.T, u, form string) (*http.Response, string) {
	t.Helper()
	return call(t, "POST", u+"/api/customer", key, form)
}

func TestAnswerNextCreate(t *testing.T) {
	tests := []struct {
		status   int
		location string
		body     bool
	}{
		{200, "", true},
		{202, "/api/customer/1", false},
		{204, "/api/customer/1", false},
		{302, "/api/customer/1", true},
		{201, "/api/customer/1", false}, // any other status: Location, no body
		{418, "/api/customer/1", false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			s, u := start(t)
			s.AnswerNextCreate(tt.status)
			resp, body := post(t, u, form)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Location"); got != tt.location {
				t.Errorf("Location %q, want %q", got, tt.location)
			}
			if hasBody := strings.Contains(body, `"id":1,"company":"Example Company Inc."`); hasBody != tt.body {
				t.Errorf("body %q, want a record body: %v", body, tt.body)
			}
			if recs := s.Records(key); len(recs) != 1 || recs[0].Email != "customer@example.com" {
				t.Fatalf("records %+v", recs)
			}
			if n := s.Calls()[fmt.Sprintf("POST /api/customer %d", tt.status)]; n != 1 {
				t.Errorf("counted %d", n)
			}
			// Only the next create is affected.
			if resp, _ := post(t, u, "firstname=B&lastname=B&email=b%40example.com"); resp.StatusCode != 201 {
				t.Fatalf("second create: %s", resp.Status)
			}
		})
	}
	t.Run("a refused create does not use it up", func(t *testing.T) {
		s, u := start(t)
		s.Put(key, scriptlock.Customer{Email: "customer@example.com"})
		s.AnswerNextCreate(202)
		if resp, _ := post(t, u, form); resp.StatusCode != 409 {
			t.Fatal(resp.Status)
		}
		if resp, _ := post(t, u, "email=b%40example.com"); resp.StatusCode != 202 {
			t.Fatal(resp.Status)
		}
	})
}

// fakeClock is a settable time source for WithClock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestCommitNextCreateLate(t *testing.T) {
	t.Run("the answer is lost, the record hidden from GETs but taking its email", func(t *testing.T) {
		clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
		s, u := start(t, sim.WithClock(clock.Now))
		s.CommitNextCreateLate(1500*time.Millisecond, sim.LoseWith504)
		if resp, _ := post(t, u, form); resp.StatusCode != 504 {
			t.Fatalf("create: %s", resp.Status)
		}
		if recs := s.Records(key); len(recs) != 1 || recs[0].ID != "1" {
			t.Fatalf("Records shows %+v, want the stored record", recs)
		}
		if _, ok := s.Record(key, "1"); !ok {
			t.Fatal("Record does not show it")
		}
		if resp, _ := call(t, "GET", u+"/api/customer/1", key, ""); resp.StatusCode != 404 {
			t.Fatalf("get while hidden: %s", resp.Status)
		}
		if resp, _ := call(t, "GET", u+"/api/customers", key, ""); resp.StatusCode != 204 {
			t.Fatalf("list while hidden: %s", resp.Status)
		}
		resp, body := post(t, u, strings.Replace(form, "customer%40", "Customer%40", 1))
		if resp.StatusCode != 409 || !strings.Contains(body, "customer 1") {
			t.Fatalf("retry while hidden: %s %s", resp.Status, body)
		}
		clock.Advance(1499 * time.Millisecond)
		if resp, _ := call(t, "GET", u+"/api/customers", key, ""); resp.StatusCode != 204 {
			t.Fatalf("list just before the time: %s", resp.Status)
		}
		clock.Advance(time.Millisecond)
		if resp, _ := call(t, "GET", u+"/api/customer/1", key, ""); resp.StatusCode != 302 {
			t.Fatalf("get after the time: %s", resp.Status)
		}
		if resp, body := call(t, "GET", u+"/api/customers", key, ""); resp.StatusCode != 200 || !strings.Contains(body, `"id":1,`) {
			t.Fatalf("list after the time: %s %s", resp.Status, body)
		}
		if len(s.Records(key)) != 1 {
			t.Fatal("duplicate")
		}
	})
	t.Run("other records stay visible; the default clock works with a short hide", func(t *testing.T) {
		s, u := start(t)
		s.Put(key, scriptlock.Customer{FirstName: "Old", Email: "old@example.com"})
		s.CommitNextCreateLate(300*time.Millisecond, 0) // 0 = LoseWith504
		if resp, _ := post(t, u, form); resp.StatusCode != 504 {
			t.Fatalf("create: %s", resp.Status)
		}
		if resp, body := call(t, "GET", u+"/api/customers", key, ""); resp.StatusCode != 200 || strings.Contains(body, "customer@example.com") || !strings.Contains(body, "old@example.com") {
			t.Fatalf("list while hidden: %s %s", resp.Status, body)
		}
		time.Sleep(350 * time.Millisecond)
		if resp, body := call(t, "GET", u+"/api/customers", key, ""); !strings.Contains(body, "customer@example.com") {
			t.Fatalf("list after the time: %s %s", resp.Status, body)
		}
	})
	t.Run("LoseWith504 alone answers 504 and shows the record at once", func(t *testing.T) {
		s, u := start(t)
		s.LoseNextCreate(sim.LoseWith504)
		if resp, _ := post(t, u, form); resp.StatusCode != 504 {
			t.Fatal(resp.Status)
		}
		if resp, _ := call(t, "GET", u+"/api/customer/1", key, ""); resp.StatusCode != 302 {
			t.Fatal(resp.Status)
		}
		if s.Calls()["POST /api/customer 504"] != 1 {
			t.Fatalf("calls %v", s.Calls())
		}
	})
}

func TestCollapseSpaces(t *testing.T) {
	for in, want := range map[string]string{
		"Two  Spaces":      "Two Spaces",
		"a   b  c d":       "a b c d",
		"  lead  and  ":    "  lead and  ",
		"plain":            "plain",
		"":                 "",
		"   ":              "   ",
		"tab\t\tkept  ünï": "tab\t\tkept ünï",
	} {
		if got := sim.CollapseSpaces(in); got != want {
			t.Errorf("CollapseSpaces(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTidy(t *testing.T) {
	s, u := start(t)
	s.SetTidy(sim.CollapseSpaces)
	spaced := "company=Two++Spaces&firstname=A++B&lastname=C&email=customer%40example.com"
	resp, body := post(t, u, spaced)
	if resp.StatusCode != 201 || !strings.Contains(body, `"company":"Two Spaces","firstname":"A B"`) {
		t.Fatalf("create: %s %s", resp.Status, body)
	}
	if c, _ := s.Record(key, "1"); c.Company != "Two Spaces" || c.FirstName != "A B" {
		t.Fatalf("stored %+v", c)
	}
	// Writing the same untidy values again changes nothing once tidied.
	if resp, _ := call(t, "PUT", u+"/api/customer/1", key, spaced); resp.StatusCode != 304 {
		t.Fatalf("same values: %s", resp.Status)
	}
	if resp, body := call(t, "PUT", u+"/api/customer/1", key, strings.Replace(spaced, "lastname=C", "lastname=D++E", 1)); resp.StatusCode != 200 || !strings.Contains(body, `"lastname":"D E"`) {
		t.Fatalf("changed value: %s %s", resp.Status, body)
	}
	s.SetTidy(nil)
	if resp, _ := call(t, "PUT", u+"/api/customer/1", key, spaced); resp.StatusCode != 200 {
		t.Fatalf("tidy off: %s", resp.Status)
	}
	if c, _ := s.Record(key, "1"); c.Company != "Two  Spaces" {
		t.Fatalf("tidy off stored %+v", c)
	}
}

func TestRawListItem(t *testing.T) {
	s, u := start(t, sim.WithAccount("second"))
	s.AddRawListItem(key, json.RawMessage(`{"company":"x","email":"noid@example.com"}`))
	if resp, body := call(t, "GET", u+"/api/customers", key, ""); resp.StatusCode != 200 || body != `[{"company":"x","email":"noid@example.com"}]` {
		t.Fatalf("list with only a raw item: %s %s", resp.Status, body)
	}
	if resp, _ := post(t, u, form); resp.StatusCode != 201 {
		t.Fatal(resp.Status)
	}
	resp, body := call(t, "GET", u+"/api/customers", key, "")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, `[{"id":1,`) || !strings.HasSuffix(body, `},{"company":"x","email":"noid@example.com"}]`) {
		t.Fatalf("list: %s %s", resp.Status, body)
	}
	if len(s.Records(key)) != 1 {
		t.Fatalf("Records shows the raw item: %+v", s.Records(key))
	}
	// The raw item's email is not taken, and no id finds it.
	if resp, _ := post(t, u, "email=noid%40example.com"); resp.StatusCode != 201 {
		t.Fatalf("create with the raw item's email: %s", resp.Status)
	}
	if resp, _ := call(t, "GET", u+"/api/customer/", key, ""); resp.StatusCode != 404 {
		t.Fatalf("get with an empty id: %s", resp.Status)
	}
	if resp, _ := call(t, "GET", u+"/api/customers", "second", ""); resp.StatusCode != 204 {
		t.Fatalf("other account: %s", resp.Status)
	}
	s.ClearRawListItems(key)
	if _, body := call(t, "GET", u+"/api/customers", key, ""); strings.Contains(body, `"company":"x"`) {
		t.Fatalf("cleared, still listed: %s", body)
	}
}

func TestCallLog(t *testing.T) {
	s, u := start(t)
	post(t, u, form)
	post(t, u, strings.Replace(form, "customer%40", "CUSTOMER%40", 1))
	call(t, "GET", u+"/api/customer/1", key, "")
	call(t, "PUT", u+"/api/customer/1", key, form)
	call(t, "GET", u+"/api/customers", "wrong", "")
	s.LoseNextCreate(sim.LoseByDroppingConnection)
	req, _ := http.NewRequest("POST", u+"/api/customer", strings.NewReader("email=d%40example.com"))
	req.Header.Set("Authorization", "Basic "+key)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := http.DefaultTransport.RoundTrip(req); err == nil {
		_ = resp.Body.Close()
		t.Fatal("not dropped")
	}
	want := []sim.Call{
		{Method: "POST", Route: sim.RouteCustomer, Status: 201, ID: "1", Email: "customer@example.com"},
		{Method: "POST", Route: sim.RouteCustomer, Status: 409, Email: "CUSTOMER@example.com"},
		{Method: "GET", Route: sim.RouteCustomerID, Status: 302, ID: "1"},
		{Method: "PUT", Route: sim.RouteCustomerID, Status: 304, ID: "1", Email: "customer@example.com"},
		{Method: "GET", Route: sim.RouteCustomers, Status: 401},
		{Method: "POST", Route: sim.RouteCustomer, Status: 0, ID: "2", Email: "d@example.com"},
	}
	got := s.CallLog()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("log\n got %+v\nwant %+v", got, want)
	}
	s.ResetCalls()
	if len(s.CallLog()) != 0 {
		t.Fatal("ResetCalls left the log")
	}
}

func TestIDs(t *testing.T) {
	// Each instance numbers from 1, so a second instance models another
	// ScriptLock where id 1 is someone else.
	a, ua := start(t)
	b, ub := start(t)
	for _, u := range []string{ua, ub} {
		if resp, body := post(t, u, form); resp.Header.Get("Location") != "/api/customer/1" || !strings.Contains(body, `"id":1,`) {
			t.Fatalf("first id: %s %q", resp.Header.Get("Location"), body)
		}
	}
	// Within one instance ids are global across accounts.
	a.AddAccount("second")
	if resp, _ := call(t, "POST", ua+"/api/customer", "second", form); resp.Header.Get("Location") != "/api/customer/2" {
		t.Fatalf("second account id: %s", resp.Header.Get("Location"))
	}
	if recs := b.Records(key); len(recs) != 1 || recs[0].ID != "1" {
		t.Fatalf("instances share state: %+v", recs)
	}
}

func TestAdminAPINewFaults(t *testing.T) {
	s, u := start(t)
	steps := []struct {
		name, method, path, body string
		status                   int
		check                    func(t *testing.T, body string)
	}{
		{"answer the next create oddly", "POST", "/_sim/answer-create", `{"status":202}`, 204, func(t *testing.T, _ string) {
			if resp, body := post(t, u, form); resp.StatusCode != 202 || body != "" || resp.Header.Get("Location") != "/api/customer/1" {
				t.Fatalf("%s %q", resp.Status, body)
			}
		}},
		{"a bad answer status is refused", "POST", "/_sim/answer-create", `{"status":99}`, 400, nil},
		{"lose the next create by a 504", "POST", "/_sim/lose-create", `{"mode":"504"}`, 204, func(t *testing.T, _ string) {
			if resp, _ := post(t, u, "email=b%40example.com"); resp.StatusCode != 504 {
				t.Fatal(resp.Status)
			}
		}},
		{"commit the next create late", "POST", "/_sim/late-create", `{"hide":"1h"}`, 204, func(t *testing.T, _ string) {
			if resp, _ := post(t, u, "email=c%40example.com"); resp.StatusCode != 504 {
				t.Fatal(resp.Status)
			}
			if resp, _ := call(t, "GET", u+"/api/customer/3", key, ""); resp.StatusCode != 404 {
				t.Fatal(resp.Status)
			}
			if resp, _ := post(t, u, "email=c%40example.com"); resp.StatusCode != 409 {
				t.Fatal(resp.Status)
			}
		}},
		{"a bad hide is refused", "POST", "/_sim/late-create", `{"hide":"later"}`, 400, nil},
		{"a bad late mode is refused", "POST", "/_sim/late-create", `{"hide":"1s","mode":"201"}`, 400, nil},
		{"turn tidying on", "POST", "/_sim/tidy", `{"tidy":"collapse-spaces"}`, 204, func(t *testing.T, _ string) {
			if resp, body := call(t, "PUT", u+"/api/customer/1", key, "company=Two++Spaces&email=customer%40example.com"); resp.StatusCode != 200 || !strings.Contains(body, `"company":"Two Spaces"`) {
				t.Fatalf("%s %s", resp.Status, body)
			}
		}},
		{"turn tidying off", "POST", "/_sim/tidy", `{"tidy":"off"}`, 204, func(t *testing.T, _ string) {
			if resp, _ := call(t, "PUT", u+"/api/customer/1", key, "company=Two++Spaces&email=customer%40example.com"); resp.StatusCode != 200 {
				t.Fatal(resp.Status)
			}
		}},
		{"an unknown tidy is refused", "POST", "/_sim/tidy", `{"tidy":"upper"}`, 400, nil},
		{"add a raw list item", "POST", "/_sim/raw-list-items", `{"company":"x","email":"noid@example.com"}`, 204, func(t *testing.T, _ string) {
			if _, body := call(t, "GET", u+"/api/customers", key, ""); !strings.HasSuffix(body, `,{"company":"x","email":"noid@example.com"}]`) {
				t.Fatal(body)
			}
		}},
		{"a malformed raw item is refused", "POST", "/_sim/raw-list-items", `{"company":`, 400, nil},
		{"clear raw list items", "DELETE", "/_sim/raw-list-items", "", 204, func(t *testing.T, _ string) {
			if _, body := call(t, "GET", u+"/api/customers", key, ""); strings.Contains(body, "noid") {
				t.Fatal(body)
			}
		}},
		{"read the call log", "GET", "/_sim/call-log", "", 200, func(t *testing.T, b string) {
			var log []sim.Call
			if err := json.Unmarshal([]byte(b), &log); err != nil || len(log) == 0 {
				t.Fatalf("log %s: %v", b, err)
			}
			if first := log[0]; first.Method != "POST" || first.Status != 202 || first.ID != "1" || first.Email != "customer@example.com" {
				t.Fatalf("first entry %+v", first)
			}
			if len(log) != len(s.CallLog()) {
				t.Fatal("admin log differs from CallLog")
			}
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			status, body := admin(t, st.method, u+st.path, st.body)
			if status != st.status {
				t.Fatalf("status %d, want %d (%s)", status, st.status, body)
			}
			if st.check != nil {
				st.check(t, body)
			}
		})
	}
}

func TestRotateKeyKeepsTheRecordsUnderTheNewKeyOnly(t *testing.T) {
	s := sim.New(sim.WithAccount("old"))
	rec := s.Seed("old", scriptlock.Customer{FirstName: "A", LastName: "B", Email: "a@example.com"})
	if !s.RotateKey("old", "new") {
		t.Fatal("RotateKey of an existing key reported false")
	}
	if got, ok := s.Record("new", rec.ID); !ok || got != rec {
		t.Fatalf("record under the new key: %+v %v", got, ok)
	}
	if recs := s.Records("old"); len(recs) != 0 {
		t.Fatalf("the old key still sees records: %+v", recs)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/customers", nil)
	req.Header.Set("Authorization", "Basic old")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the revoked key got %d, want 401", resp.StatusCode)
	}
	if s.RotateKey("missing", "x") {
		t.Fatal("RotateKey of an unknown key reported true")
	}
}

func TestLoseWithConflictStoresTheRecordAndNamesIt(t *testing.T) {
	s, u := start(t)
	s.LoseNextCreate(sim.LoseWithConflict)
	resp, body := post(t, u, form)
	if resp.StatusCode != 409 || !strings.Contains(body, "email already used by customer 1") {
		t.Fatalf("%s %q", resp.Status, body)
	}
	if recs := s.Records(key); len(recs) != 1 || recs[0].Email != "customer@example.com" {
		t.Fatalf("records %+v", recs)
	}
	if resp, _ := post(t, u, form); resp.StatusCode != 409 {
		t.Fatalf("a real retry: %s", resp.Status)
	}
}

func TestVanishNextHidesRecordsFromReadsOnly(t *testing.T) {
	s, u := start(t)
	s.Put(key, scriptlock.Customer{ID: "1", FirstName: "A", LastName: "B", Email: "customer@example.com"})
	s.VanishNext(2)
	if resp, _ := call(t, "GET", u+"/api/customers", key, ""); resp.StatusCode != 204 {
		t.Fatalf("listing during a vanish: %s", resp.Status)
	}
	if resp, _ := call(t, "GET", u+"/api/customer/1", key, ""); resp.StatusCode != 404 {
		t.Fatalf("GET during a vanish: %s", resp.Status)
	}
	if resp, _ := call(t, "GET", u+"/api/customer/1", key, ""); resp.StatusCode != 302 {
		t.Fatalf("GET after the vanish: %s", resp.Status)
	}
	s.SetVanished(true)
	if resp, _ := post(t, u, form); resp.StatusCode != 409 {
		t.Fatalf("create during a failover: %s, want 409 (the record is still there)", resp.Status)
	}
	for range 3 {
		if resp, _ := call(t, "GET", u+"/api/customers", key, ""); resp.StatusCode != 204 {
			t.Fatalf("listing during a failover: %s", resp.Status)
		}
	}
	s.ClearFaults()
	if resp, _ := call(t, "GET", u+"/api/customers", key, ""); resp.StatusCode != 200 {
		t.Fatalf("listing after ClearFaults: %s", resp.Status)
	}
}

func TestIDsPerAccount(t *testing.T) {
	s, u := start(t, sim.WithIDsPerAccount())
	s.AddAccount("second")
	for _, k := range []string{key, "second"} {
		if resp, _ := call(t, "POST", u+"/api/customer", k, form); resp.Header.Get("Location") != "/api/customer/1" {
			t.Fatalf("account %s: first id at %s", k, resp.Header.Get("Location"))
		}
	}
	if resp, _ := call(t, "POST", u+"/api/customer", "second", strings.Replace(form, "customer%40", "other%40", 1)); resp.Header.Get("Location") != "/api/customer/2" {
		t.Fatalf("second record of an account at %s", resp.Header.Get("Location"))
	}
}

func TestCloneHasTheSameRecordsAndGoesItsOwnWay(t *testing.T) {
	s, _ := start(t)
	rec := s.Put(key, scriptlock.Customer{FirstName: "A", LastName: "B", Email: "customer@example.com"})
	c := s.Clone()
	if got, ok := c.Record(key, rec.ID); !ok || got != rec {
		t.Fatalf("clone holds %+v %v, want %+v", got, ok, rec)
	}
	c.DeleteOutOfBand(key, rec.ID)
	if _, ok := s.Record(key, rec.ID); !ok {
		t.Fatal("deleting in the clone deleted in the original")
	}
	if got := c.Put(key, scriptlock.Customer{Email: "x@example.com"}); got.ID != "2" {
		t.Fatalf("the clone's next id is %s, want 2 (it continues the original's numbering)", got.ID)
	}
}
