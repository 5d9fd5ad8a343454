package scriptlock

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the client's Prometheus collectors. Labels are the method,
// the route template and the status, never an id, key or email, so that
// cardinality stays bounded and no secret or personal data leaks.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	skipped  prometheus.Counter
	writes   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scriptlock_requests_total",
			Help: "Requests sent to the ScriptLock API, by method, route template and status code (\"error\" when no answer was received).",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scriptlock_request_duration_seconds",
			Help:    "Time from sending a ScriptLock API request to reading its whole answer, by method and route template.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scriptlock_list_records_skipped_total",
			Help: "Records left out of ScriptLock listings because they carry no usable id (absent, null, empty, or unsafe in a URL), so the operator cannot address them; the rest of the listing is used.",
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scriptlock_writes_total",
			Help: "POST, PUT and DELETE calls sent to ScriptLock, by operation (create, update, delete) and result (created, updated, unchanged, deleted, alreadyGone, conflict, notFound, rateLimited, refused, serverError, noAnswer, invalidAnswer); each is one line of the change log.",
		}, []string{"operation", "result"}),
	}
	if reg != nil {
		m.requests = registerOrReuse(reg, m.requests)
		m.duration = registerOrReuse(reg, m.duration)
		m.skipped = registerOrReuse(reg, m.skipped)
		m.writes = registerOrReuse(reg, m.writes)
	}
	return m
}

// registerOrReuse registers c, or returns the collector already registered
// under the same description, so that building a second Pool on the same
// registry (tests, restarts of a component) neither panics nor splits the
// series. Any other registration error leaves c working but unexported,
// which is better than crashing the operator over a metric.
func registerOrReuse[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing
		}
	}
	return c
}

// observe records one request. A nil *metrics (a Client made by New rather
// than by a Pool) records nothing.
func (m *metrics) observe(method, route string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(method, route, statusLabel(code)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}

// skippedRecords counts listed records left out for want of a usable id. A
// nil *metrics records nothing.
func (m *metrics) skippedRecords(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.skipped.Add(float64(n))
}

// wrote counts one write sent. A nil *metrics records nothing.
func (m *metrics) wrote(op string, r WriteResult) {
	if m == nil {
		return
	}
	m.writes.WithLabelValues(op, string(r)).Inc()
}
