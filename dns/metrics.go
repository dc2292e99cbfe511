package dns

import (
	"strconv"
	"sync"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/dns/dnssec"
	"github.com/meridian-lb/meridian/internal/promutil"
)

// metrics are the DNS server's Prometheus collectors.
type metrics struct {
	queries   *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	truncated prometheus.Counter
	rrl       *prometheus.CounterVec
	malformed prometheus.Counter
	panics    prometheus.Counter
	tcpRefuse prometheus.Counter
	notify    *prometheus.CounterVec
	xfr       *prometheus.CounterVec
	serial    *prometheus.GaugeVec

	// counters caches queries children: WithLabelValues hashes three
	// strings per call, a sync.Map hit is cheaper on the hot path.
	counters sync.Map // queryKey → prometheus.Counter
	udpHist  prometheus.Observer
	tcpHist  prometheus.Observer
}

type queryKey struct {
	zone  string
	qtype uint16
	rcode int
}

func newMetrics(reg prometheus.Registerer, log *zap.Logger) *metrics {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_dns_queries_total",
			Help: "DNS queries answered, by zone (\"none\" when outside every zone), query type and response code.",
		}, []string{"zone", "qtype", "rcode"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meridian_dns_request_duration_seconds",
			Help:    "Time from a decoded query to its response written, by transport.",
			Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 2.5e-2, 0.1},
		}, []string{"proto"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_dns_truncated_total",
			Help: "UDP responses truncated (TC=1) because they exceeded the client's buffer.",
		}),
		rrl: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_dns_rrl_total",
			Help: "Responses withheld by response rate limiting: dropped, or slipped (sent truncated so the client retries over TCP).",
		}, []string{"action"}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_dns_malformed_total",
			Help: "Packets that could not be decoded as DNS messages.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_dns_panics_total",
			Help: "Queries whose answering panicked; each was dropped and logged with its stack.",
		}),
		tcpRefuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_dns_tcp_refused_total",
			Help: "TCP connections closed at accept because dns.tcp_max_conns were open.",
		}),
		notify: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_dns_notify_total",
			Help: "NOTIFY messages sent to secondaries, by zone and result (ok, error).",
		}, []string{"zone", "result"}),
		xfr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_dns_transfers_total",
			Help: "Zone transfers (AXFR) served, by zone and result (ok, refused, error).",
		}, []string{"zone", "result"}),
		serial: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_dns_zone_serial",
			Help: "The current SOA serial of each zone.",
		}, []string{"zone"}),
	}
	if reg != nil {
		m.queries = promutil.Logged(reg, m.queries, log)
		m.latency = promutil.Logged(reg, m.latency, log)
		m.truncated = promutil.Logged(reg, m.truncated, log)
		m.rrl = promutil.Logged(reg, m.rrl, log)
		m.malformed = promutil.Logged(reg, m.malformed, log)
		m.panics = promutil.Logged(reg, m.panics, log)
		m.tcpRefuse = promutil.Logged(reg, m.tcpRefuse, log)
		m.notify = promutil.Logged(reg, m.notify, log)
		m.xfr = promutil.Logged(reg, m.xfr, log)
		m.serial = promutil.Logged(reg, m.serial, log)
	}
	m.udpHist = m.latency.WithLabelValues("udp")
	m.tcpHist = m.latency.WithLabelValues("tcp")
	return m
}

// query counts one answered query.
func (m *metrics) query(zone string, qtype uint16, rcode int) {
	m.counter(zone, qtype, rcode).Inc()
}

// counter is the queries child for one zone, type and rcode; the answer
// cache keeps it with each answer.
func (m *metrics) counter(zone string, qtype uint16, rcode int) prometheus.Counter {
	k := queryKey{zone, qtype, rcode}
	if c, ok := m.counters.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c := m.queries.WithLabelValues(zoneLabel(zone), qtypeLabel(qtype), rcodeLabel(rcode))
	m.counters.Store(k, c)
	return c
}

func zoneLabel(z string) string {
	if z == "" {
		return "none"
	}
	return z
}

// qtypeLabel bounds the label's values: types miekg knows by name, and
// "other" for the rest of the 65536.
func qtypeLabel(t uint16) string {
	if s, ok := mdns.TypeToString[t]; ok {
		return s
	}
	return "other"
}

func rcodeLabel(r int) string {
	if s, ok := mdns.RcodeToString[r]; ok {
		return s
	}
	return strconv.Itoa(r)
}

// signatureCache exports what the signature cache of signed zones does:
// the RRsets whose signatures were found in it and those signed anew, and
// how many it holds. (On a registry two servers share, the first one's.)
func (m *metrics) signatureCache(reg prometheus.Registerer, log *zap.Logger, c *dnssec.Cache) {
	if reg == nil {
		return
	}
	for _, result := range []string{"cached", "signed"} {
		promutil.Logged(reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "meridian_dns_signatures_total",
			Help:        "RRsets of signed zones answered with DO, by whether their signatures came from the cache or were made.",
			ConstLabels: prometheus.Labels{"result": result},
		}, func() float64 {
			hits, misses := c.Stats()
			if result == "cached" {
				return float64(hits)
			}
			return float64(misses)
		}), log)
	}
	promutil.Logged(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meridian_dns_signature_cache_entries",
		Help: "RRsets whose signatures the DNS server holds for signed zones.",
	}, func() float64 { return float64(c.Len()) }), log)
}
