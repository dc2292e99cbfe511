package health

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/internal/promutil"
)

// metrics are the engine's Prometheus collectors, registered on the
// Registerer the caller passes in (never a global one).
type metrics struct {
	up              *prometheus.GaugeVec   // pool, endpoint
	probes          *prometheus.CounterVec // check, result
	transitions     *prometheus.CounterVec // pool
	ejections       *prometheus.CounterVec // pool
	stateFileErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, log *zap.Logger) *metrics {
	m := &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_endpoint_up",
			Help: "Whether the endpoint is available to the proxy and DNS (1) or not (0).",
		}, []string{"pool", "endpoint"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_health_probes_total",
			Help: "Active health probes by check and result (success or failure).",
		}, []string{"check", "result"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_health_transitions_total",
			Help: "Endpoint health state changes, by pool.",
		}, []string{"pool"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_health_ejections_total",
			Help: "Passive outlier ejections, by pool.",
		}, []string{"pool"}),
		stateFileErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_health_state_file_errors_total",
			Help: "Admin state file lines skipped as invalid, and failed reads of the file.",
		}),
	}
	if reg == nil {
		return m
	}
	// A second engine on the same registry shares the first one's
	// collectors instead of failing.
	m.up = promutil.Logged(reg, m.up, log)
	m.probes = promutil.Logged(reg, m.probes, log)
	m.transitions = promutil.Logged(reg, m.transitions, log)
	m.ejections = promutil.Logged(reg, m.ejections, log)
	m.stateFileErrors = promutil.Logged(reg, m.stateFileErrors, log)
	return m
}
