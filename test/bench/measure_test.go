package main

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestParseMetricsReadsCountersGaugesAndLabels(t *testing.T) {
	page := `# HELP rest_client_requests_total Number of HTTP requests.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 12
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 3
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 40
workqueue_depth{controller="customer",name="customer"} 0
go_memstats_heap_inuse_bytes 1.2345e+07
weird{msg="a \"quoted\", comma\n",x="y"} 7
request_duration_seconds_bucket{le="+Inf"} 5
`
	m, err := parseMetrics(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		keep func(map[string]string) bool
		want float64
	}{
		{"rest_client_requests_total", func(l map[string]string) bool { return isWriteVerb(l["method"]) }, 15},
		{"rest_client_requests_total", nil, 55},
		{"go_memstats_heap_inuse_bytes", nil, 12345000},
		{"weird", func(l map[string]string) bool { return l["msg"] == "a \"quoted\", comma\n" && l["x"] == "y" }, 7},
		{"request_duration_seconds_bucket", func(l map[string]string) bool { return l["le"] == "+Inf" }, 5},
		{"absent", nil, 0},
	} {
		if got := m.sum(c.name, c.keep); got != c.want {
			t.Errorf("sum(%s) = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseMetricsRefusesBrokenLabels(t *testing.T) {
	if _, err := parseMetrics(strings.NewReader(`x{a=b} 1` + "\n")); err == nil {
		t.Error("an unquoted label value was accepted")
	}
}

func TestCountWritesSplitsByResourceAndLeavesOutTheBenchmarksCreates(t *testing.T) {
	mgr := metrics{
		{name: "rest_client_requests_total", labels: map[string]string{"method": "PATCH"}, value: 6},
		{name: "rest_client_requests_total", labels: map[string]string{"method": "POST"}, value: 2},
		{name: "rest_client_requests_total", labels: map[string]string{"method": "GET"}, value: 100},
	}
	api := metrics{
		{name: "apiserver_request_total", labels: map[string]string{"resource": "customers", "subresource": "", "verb": "PATCH"}, value: 2},
		{name: "apiserver_request_total", labels: map[string]string{"resource": "customers", "subresource": "", "verb": "POST"}, value: 2},
		{name: "apiserver_request_total", labels: map[string]string{"resource": "customers", "subresource": "status", "verb": "PATCH"}, value: 4},
		{name: "apiserver_request_total", labels: map[string]string{"resource": "events", "subresource": "", "verb": "POST"}, value: 2},
		{name: "apiserver_request_total", labels: map[string]string{"resource": "customers", "subresource": "", "verb": "LIST"}, value: 9},
	}
	got := countWrites(mgr, api)
	want := writes{client: 8, customers: 2, status: 4, events: 2, customerPosts: 2}
	if got != want {
		t.Errorf("countWrites = %+v, want %+v", got, want)
	}
	if d := got.minus(writes{client: 3, status: 1}); d.client != 5 || d.status != 3 || d.events != 2 {
		t.Errorf("minus = %+v", d)
	}
}

func TestGroupCallsAddsStatusesPerRoute(t *testing.T) {
	c := groupCalls(map[string]int{
		"GET /api/customers 200":      3,
		"GET /api/customers 429":      1,
		"POST /api/customer 201":      5,
		"malformed":                   9,
		"GET /api/customer/{id} 404 ": 2,
	})
	if c.byRoute[routeList] != 4 || c.detail[routeList]["429"] != 1 || c.byRoute["POST /api/customer"] != 5 {
		t.Errorf("groupCalls = %+v", c)
	}
	if c.total() != 11 {
		t.Errorf("total = %d, want 11 (the malformed key left out)", c.total())
	}
}

func TestReadProcReadsThisProcess(t *testing.T) {
	ps, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ps.rssKiB <= 0 || ps.hwmKiB < ps.rssKiB || ps.cpuSeconds < 0 {
		t.Errorf("readProc(self) = %+v: want a resident set, a peak at least as high, and CPU time", ps)
	}
}

func TestParallelCallsEachIndexOnceAndStopsAtTheFirstError(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]int{}
	if err := parallel(context.Background(), 100, 8, func(_ context.Context, i int) error {
		mu.Lock()
		defer mu.Unlock()
		seen[i]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 100; i++ {
		if seen[i] != 1 {
			t.Errorf("f(%d) called %d times, want once", i, seen[i])
		}
	}
	if len(seen) != 100 {
		t.Errorf("f called for %d indexes, want 100", len(seen))
	}

	boom := errors.New("boom")
	var calls []int
	err := parallel(context.Background(), 10, 1, func(_ context.Context, i int) error {
		calls = append(calls, i)
		if i == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || !slices.Equal(calls, []int{1, 2, 3}) {
		t.Errorf("one worker, f(3) fails: err %v, calls %v; want boom after 1, 2, 3", err, calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := parallel(ctx, 10, 2, func(context.Context, int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("an ended context: %v, want context.Canceled", err)
	}
}
