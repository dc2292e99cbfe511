package catalog

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// watcherMetrics are the watcher's Prometheus metrics. Gauges that describe
// freshness are computed at scrape time so they keep growing during an
// outage without any goroutine updating them.
type watcherMetrics struct {
	w           *Watcher
	up          prometheus.GaugeFunc
	lastSuccess prometheus.GaugeFunc
	requests    *prometheus.CounterVec
	selections  *selectionCollector
}

func newWatcherMetrics(w *Watcher) *watcherMetrics {
	return &watcherMetrics{
		w: w,
		up: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meridian_consul_up",
			Help: "1 when every watched Consul selection answered its last query, 0 during an outage (the last known data is served).",
		}, func() float64 {
			if w.Up() {
				return 1
			}
			return 0
		}),
		lastSuccess: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meridian_consul_last_success_timestamp_seconds",
			Help: "Unix time of the last successful Consul catalog answer (0 if none yet).",
		}, func() float64 {
			ns := w.lastSuccess.Load()
			if ns == 0 {
				return 0
			}
			return float64(ns) / 1e9
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_consul_requests_total",
			Help: "Consul catalog queries by result (ok includes blocking-query timeouts with no change).",
		}, []string{"result"}),
		selections: &selectionCollector{w: w},
	}
}

func (m *watcherMetrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.up, m.lastSuccess, m.requests, m.selections} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

var (
	selectionLabels = []string{"service", "selection"}
	ageDesc         = prometheus.NewDesc("meridian_consul_selection_age_seconds",
		"Seconds since Consul last answered for the selection (its data is at most this old); absent before the first answer.",
		selectionLabels, nil)
	readyDesc = prometheus.NewDesc("meridian_consul_selection_ready",
		"1 once the selection has received its first answer from Consul, 0 while pending.",
		selectionLabels, nil)
	instancesDesc = prometheus.NewDesc("meridian_consul_selection_instances",
		"Instances in the selection's last answer, before per-pool health and meta filters.",
		selectionLabels, nil)
	dcStaleDesc = prometheus.NewDesc("meridian_consul_datacenter_stale",
		"1 while a watched datacenter fails to answer and its selections serve their last known instances, else 0.",
		[]string{"datacenter"}, nil)
)

// selectionCollector reports per-selection freshness at scrape time. The
// selection label (Key.String) keeps two selections of one service apart.
type selectionCollector struct{ w *Watcher }

func (c *selectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ageDesc
	ch <- readyDesc
	ch <- instancesDesc
	ch <- dcStaleDesc
}

func (c *selectionCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	stale := map[string]bool{}
	defer func() {
		for dc, v := range stale {
			ch <- prometheus.MustNewConstMetric(dcStaleDesc, prometheus.GaugeValue, boolGauge(v), dc)
		}
	}()
	for _, s := range c.w.Status() {
		stale[s.Datacenter] = stale[s.Datacenter] || s.Stale
		labels := []string{s.Key.Service, s.Key.String()}
		ready := 0.0
		if s.Ready {
			ready = 1
			ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, now.Sub(s.LastSuccess).Seconds(), labels...)
			ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(s.Instances), labels...)
		}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, ready, labels...)
	}
}

func sortStatus(s []SelectionStatus) {
	slices.SortFunc(s, func(a, b SelectionStatus) int { return compareKeys(a.Key, b.Key) })
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
