// Package observability holds the tests of what operators look at: the
// alerting rules of config/prometheus, their runbooks in docs/runbooks.md,
// and the Grafana dashboard of config/grafana. Every PromQL expression is
// parsed with Prometheus' own parser, and every metric and label it uses is
// checked against a real scrape of the manager's /metrics. And what they
// must never see: no spelling of an API key in the real manager's log,
// Events, status, /metrics or output at start, whatever URL or CA bundle
// carries it (package canary). It has no code of its own.
package observability
