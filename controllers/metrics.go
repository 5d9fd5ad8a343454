package controllers

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// Label values of scriptlock_customers for a Customer that has no Ready
// condition yet (created, not reconciled so far).
const (
	readyUnknown       = "Unknown"
	reasonNotObserved  = "NotObserved"
	customerListBudget = 10 * time.Second
)

// customerCollector reports how many Customers there are by Ready status and
// reason. It reads the manager's cache on every scrape instead of keeping
// counters up to date from the reconciler, so the numbers can never drift
// from what the API server holds, and a Customer that is never reconciled
// (paused, or not yet picked up) still counts.
type customerCollector struct {
	reader     client.Reader
	customers  *prometheus.Desc
	listErrors *prometheus.Desc
	failed     atomic.Uint64
}

// NewCustomerCollector returns the collector of the gauge
// scriptlock_customers{ready,reason}, which lists Customers from r on every
// scrape. Pass the manager's cache-backed client (mgr.GetClient() or
// mgr.GetCache()), not a direct API reader: a scrape then costs no API
// server request. With --selector or --watch-namespace the cache, and so
// the gauge, holds only the Customers this manager is responsible for.
//
// A failed listing does not fail the scrape (controller-runtime's metrics
// endpoint answers 500 for the whole page if any collector reports an
// error): the gauge is left out and scriptlock_customers_list_errors_total
// goes up instead.
func NewCustomerCollector(r client.Reader) prometheus.Collector {
	return &customerCollector{
		reader: r,
		customers: prometheus.NewDesc("scriptlock_customers",
			"Customers by the status and reason of their Ready condition (ready=\"Unknown\", reason=\"NotObserved\" before the first reconcile).",
			[]string{"ready", "reason"}, nil),
		listErrors: prometheus.NewDesc("scriptlock_customers_list_errors_total",
			"Scrapes at which the Customers could not be listed from the cache, so scriptlock_customers was left out.",
			nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *customerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.customers
	ch <- c.listErrors
}

// Collect implements prometheus.Collector.
func (c *customerCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.count()
	if err != nil {
		c.failed.Add(1)
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.customers, prometheus.GaugeValue, float64(n), k.ready, k.reason)
	}
	ch <- prometheus.MustNewConstMetric(c.listErrors, prometheus.CounterValue, float64(c.failed.Load()))
}

type readyKey struct{ ready, reason string }

// count lists the Customers and counts them by Ready status and reason.
func (c *customerCollector) count() (map[readyKey]int, error) {
	// Collect has no context; bound the wait for a cache that is not yet
	// synced so that a scrape never hangs.
	ctx, cancel := context.WithTimeout(context.Background(), customerListBudget)
	defer cancel()
	list := &v1alpha1.CustomerList{}
	// Read-only use: skip the cache's deep copy of every object.
	if err := c.reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	counts := map[readyKey]int{}
	for i := range list.Items {
		k := readyKey{ready: readyUnknown, reason: reasonNotObserved}
		if cond := meta.FindStatusCondition(list.Items[i].Status.Conditions, v1alpha1.ConditionReady); cond != nil {
			k = readyKey{ready: string(cond.Status), reason: cond.Reason}
		}
		counts[k]++
	}
	return counts, nil
}
