package telemetry

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the live cells at scrape time. It keeps no series of
// its own: an endpoint, pool or record that left the table is simply not
// collected any more, so cardinality follows the live table however many
// endpoints came and went (Consul churn, reloads).
type collector struct {
	t *Telemetry

	epRequests, epFailures, epInFlight, epBytes *prometheus.Desc
	upstream                                    *prometheus.Desc
	recQueries, recAnswers                      *prometheus.Desc
}

// Collector returns the Prometheus collector over t, for the caller to
// register once.
func (t *Telemetry) Collector() prometheus.Collector {
	return &collector{
		t: t,
		epRequests: prometheus.NewDesc("meridian_http_endpoint_requests_total",
			"Attempts on each endpoint of the live table that got a response, by the upstream's status class (1xx..5xx); a retried request counts once per endpoint tried.",
			[]string{"pool", "endpoint", "class"}, nil),
		epFailures: prometheus.NewDesc("meridian_http_endpoint_upstream_errors_total",
			"Upstream failures on each endpoint of the live table, by kind: connect_failure, reset, timeout, bad_response (before the response head or while relaying the body).",
			[]string{"pool", "endpoint", "kind"}, nil),
		epInFlight: prometheus.NewDesc("meridian_http_endpoint_in_flight_requests",
			"Requests in flight on each endpoint of the live table.",
			[]string{"pool", "endpoint"}, nil),
		epBytes: prometheus.NewDesc("meridian_http_endpoint_bytes_total",
			"Body bytes of the requests each endpoint of the live table served, by direction: request (from the client), response (to the client).",
			[]string{"pool", "endpoint", "direction"}, nil),
		upstream: prometheus.NewDesc("meridian_http_upstream_duration_seconds",
			"Upstream-only latency by pool: from sending an attempt to its response head, every attempt that got one.",
			[]string{"pool"}, nil),
		recQueries: prometheus.NewDesc("meridian_dns_record_queries_total",
			"DNS queries answered by zone, owner name (\"(none)\" for names the zone does not have) and response code.",
			[]string{"zone", "record", "rcode"}, nil),
		recAnswers: prometheus.NewDesc("meridian_dns_record_answers_total",
			"Steered DNS answers by zone, owner name and the pool that answered (\"(fallback)\" when the record's fallback did).",
			[]string{"zone", "record", "pool"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.epRequests, c.epFailures, c.epInFlight, c.epBytes, c.upstream, c.recQueries, c.recAnswers} {
		ch <- d
	}
}

// promBounds are the upstream histogram's bucket bounds in seconds: every
// power of two of the telemetry buckets, so each exported bucket is an
// exact sum of ours.
var promBounds = func() []float64 {
	var b []float64
	for e := minExp; e <= maxExp; e++ {
		b = append(b, math.Ldexp(1, e)/1e9)
	}
	return b
}()

// promBuckets turns our bucket counts into Prometheus's cumulative ones.
func promBuckets(h *histVals) (map[float64]uint64, uint64) {
	out := make(map[float64]uint64, len(promBounds))
	var cum uint64
	i := 0
	for k, bound := range promBounds {
		// Our buckets below 2^(minExp+k) ns: bucket 0, then subs per octave.
		upTo := 1 + k*subs
		for ; i < upTo && i < NumBuckets; i++ {
			cum += h.c[i]
		}
		out[bound] = cum
	}
	for ; i < NumBuckets; i++ {
		cum += h.c[i]
	}
	return out, cum
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	t := c.t
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flushHTTP()
	t.flushDNS()
	if s := t.active; s != nil {
		for _, p := range s.pools {
			for _, e := range p.eps {
				v := e.vals()
				for i, n := range v.class {
					ch <- prometheus.MustNewConstMetric(c.epRequests, prometheus.CounterValue, float64(n), p.name, e.address, classNames[i])
				}
				for i, n := range v.kinds[:UpstreamKinds] {
					ch <- prometheus.MustNewConstMetric(c.epFailures, prometheus.CounterValue, float64(n), p.name, e.address, kindNames[i])
				}
				var inf int64
				if e.load != nil {
					inf = e.load.InFlight()
				}
				ch <- prometheus.MustNewConstMetric(c.epInFlight, prometheus.GaugeValue, float64(inf), p.name, e.address)
				ch <- prometheus.MustNewConstMetric(c.epBytes, prometheus.CounterValue, float64(v.bytesIn), p.name, e.address, "request")
				ch <- prometheus.MustNewConstMetric(c.epBytes, prometheus.CounterValue, float64(v.bytes), p.name, e.address, "response")
			}
			if a := t.pools[p.name]; a != nil {
				v := a.vals()
				buckets, count := promBuckets(&v.up)
				ch <- prometheus.MustNewConstHistogram(c.upstream, count, float64(v.up.sumNS)/1e9, buckets, p.name)
			}
		}
	}
	if s := t.dnsActive; s != nil {
		for _, zs := range s.order {
			for _, e := range zs.order {
				var v dnsVals
				e.cell.load(&v)
				for i, n := range v.rcodes {
					if n > 0 || i == 0 {
						ch <- prometheus.MustNewConstMetric(c.recQueries, prometheus.CounterValue, float64(n), zs.name, e.name, rcodeNames[i])
					}
				}
				for _, p := range e.cell.poolFor {
					ch <- prometheus.MustNewConstMetric(c.recAnswers, prometheus.CounterValue, float64(v.pools[p]), zs.name, e.name, p)
				}
			}
		}
	}
}
