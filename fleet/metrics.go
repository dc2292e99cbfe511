package fleet

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the fleet's Prometheus metrics; gauges are computed at
// scrape time.
type metrics struct {
	f            *Fleet
	errors       *prometheus.CounterVec
	published    prometheus.Counter
	sessionsLost prometheus.Counter
	gauges       *gaugeCollector
}

func newMetrics(f *Fleet) *metrics {
	return &metrics{
		f: f,
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_fleet_consul_errors_total",
			Help: "Failed fleet calls to Consul by operation: session (create), renew, publish, watch, override.",
		}, []string{"op"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_fleet_reports_published_total",
			Help: "Health reports this instance wrote to Consul KV (one per change of its verdicts or session).",
		}),
		sessionsLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_fleet_sessions_lost_total",
			Help: "Times this instance's fleet session expired or was destroyed under it (its reports vanished until a new session republished them).",
		}),
		gauges: &gaugeCollector{f: f},
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.errors, m.published, m.sessionsLost, m.gauges} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

var (
	membersDesc   = prometheus.NewDesc("meridian_fleet_members", "Live Meridian instances in the fleet registration (passing in Consul), this one included.", nil, nil)
	reportersDesc = prometheus.NewDesc("meridian_fleet_reporters", "Live health reporters (reports held by a live session), this instance included.", nil, nil)
	sessionDesc   = prometheus.NewDesc("meridian_fleet_session_up", "1 while this instance holds a fleet session (its reports count), else 0.", nil, nil)
	staleDesc     = prometheus.NewDesc("meridian_fleet_view_stale", "1 while this instance's view of the fleet is stale (the watch has failed for longer than the session TTL): DNS answers by its own health.", nil, nil)
	overruledDesc = prometheus.NewDesc("meridian_fleet_quorum_overruled", "Endpoints whose DNS verdict, decided by the fleet's quorum, goes against this instance's own.", nil, nil)
	downDesc      = prometheus.NewDesc("meridian_fleet_endpoint_down_reports", "Live reporters that see the endpoint down.", []string{"pool", "endpoint"}, nil)
	overridesDesc = prometheus.NewDesc("meridian_fleet_shared_overrides", "Overrides shared through Consul KV.", nil, nil)
)

type gaugeCollector struct{ f *Fleet }

func (c *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{membersDesc, reportersDesc, sessionDesc, staleDesc, overruledDesc, downDesc, overridesDesc} {
		ch <- d
	}
}

func (c *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.f.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(membersDesc, float64(len(st.Members)))
	gauge(reportersDesc, float64(len(st.Reporters)))
	gauge(sessionDesc, b2f(st.Session != ""))
	gauge(staleDesc, b2f(st.Stale))
	over := 0
	for _, e := range st.Endpoints {
		if e.Overruled {
			over++
		}
		gauge(downDesc, float64(e.Down), e.Pool, e.Address)
	}
	gauge(overruledDesc, float64(over))
	gauge(overridesDesc, float64(len(st.Overrides)))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
