// Package observability holds the tests of what operators look at: the
// alerting rules of config/prometheus, their runbooks in docs/runbooks.md,
// and the Grafana dashboard of config/grafana. Every PromQL expression is
// parsed with Prometheus' own parser, and every metric and label it uses is
// checked against a real scrape of the manager's /metrics. It has no code
// of its own.
package observability
