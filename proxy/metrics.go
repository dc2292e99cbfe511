package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/internal/promutil"
)

// metrics are the proxy's collectors, registered on the Registerer the
// caller passes in. Hot-path children are resolved once here or per table.
type metrics struct {
	requests       *prometheus.CounterVec   // route, service, pool, code
	duration       *prometheus.HistogramVec // route
	upstreamErrors *prometheus.CounterVec   // kind
	clientErrors   *prometheus.CounterVec   // kind
	retries        *prometheus.CounterVec   // route, result
	inFlight       prometheus.Gauge
	mirror         *prometheus.CounterVec // result
	overflow       *prometheus.CounterVec // pool, limit (breaker.go)
	policyAnswers  *prometheus.CounterVec // route, policy, code

	errConnect, errReset, errTimeout, errNoEndpoint, errBadResponse prometheus.Counter
	mirrorSent, mirrorDropped, mirrorFailed                         prometheus.Counter
}

// Failure kinds, the values of the access log's error field. Each failure
// is charged to one side, once (see blame): the upstream kinds are the
// values of meridian_http_upstream_errors_total's kind label and the only
// ones that reach the health engine; the client kinds are counted in
// meridian_http_client_errors_total and never touch an endpoint's health.
const (
	// The upstream's fault.
	kindConnect     = "connect_failure"
	kindReset       = "reset"
	kindTimeout     = "timeout"
	kindBadResponse = "bad_response" // head too large, too many 1xx, a switch nobody asked for
	kindNoEndpoint  = "no_endpoint"

	// Nobody's fault but the load's: a pool's circuit breaker refused the
	// request, or it waited for a connection past its deadline
	// (breaker.go). Counted in meridian_pool_overflow_total, never
	// against an upstream.
	kindOverflow = "overflow"

	// The client's fault.
	kindCanceled      = "client_canceled"     // went away before the response (499)
	kindClientBody    = "client_bad_body"     // malformed or truncated body (400)
	kindClientTimeout = "client_body_timeout" // body stalled (408)
	kindClientSlow    = "client_body_slow"    // body below min_body_rate (408)
	kindClientLarge   = "client_body_large"   // body over max_body_bytes (413)
)

// upstreamKind reports whether a failure kind is charged to the upstream
// that was tried: reported to its health and counted in
// meridian_http_upstream_errors_total.
func upstreamKind(kind string) bool {
	return kind != kindNoEndpoint && kind != kindOverflow && !clientKind(kind)
}

// clientKind reports whether a failure kind is the client's fault.
func clientKind(kind string) bool {
	switch kind {
	case kindCanceled, kindClientBody, kindClientTimeout, kindClientSlow, kindClientLarge:
		return true
	}
	return false
}

func newMetrics(reg prometheus.Registerer, log *zap.Logger) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_http_requests_total",
			Help: "HTTP requests served, by route, service, pool and status code.",
		}, []string{"route", "service", "pool", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meridian_http_request_duration_seconds",
			Help:    "Time from request start to the end of the response, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_http_upstream_errors_total",
			Help: "Failed upstream attempts by kind: connect_failure, reset, timeout, bad_response, no_endpoint.",
		}, []string{"kind"}),
		clientErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_http_client_errors_total",
			Help: "Requests that failed by the client's fault, by kind: client_canceled, client_bad_body, client_body_timeout, client_body_slow, client_body_large. They never count against an upstream.",
		}, []string{"kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_http_retries_total",
			Help: "Retries by route; result is sent, or budget_exhausted when the retry budget refused one.",
		}, []string{"route", "result"}),
		policyAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_http_policy_answers_total",
			Help: "Requests a route's edge policy answered itself, by route, policy (access, rate_limit, basic_auth, jwt, forward_auth, cors, redirect) and status code: refusals, CORS preflights and redirects. None reaches an upstream.",
		}, []string{"route", "policy", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_http_in_flight_requests",
			Help: "HTTP requests being served right now.",
		}),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_pool_overflow_total",
			Help: "Requests a pool's circuit breaker refused (503) or let wait for a connection past their deadline (504, limit max_connections), and retries it did not make (max_retries, max_requests), by pool and limit. Never counted against an upstream.",
		}, []string{"pool", "limit"}),
		mirror: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_http_mirror_total",
			Help: "Mirrored request copies: sent (a response came back), dropped (too big, too many in flight, or no endpoint), failed.",
		}, []string{"result"}),
	}
	if reg != nil {
		m.requests = promutil.Logged(reg, m.requests, log)
		m.duration = promutil.Logged(reg, m.duration, log)
		m.upstreamErrors = promutil.Logged(reg, m.upstreamErrors, log)
		m.clientErrors = promutil.Logged(reg, m.clientErrors, log)
		m.retries = promutil.Logged(reg, m.retries, log)
		m.inFlight = promutil.Logged(reg, m.inFlight, log)
		m.mirror = promutil.Logged(reg, m.mirror, log)
		m.overflow = promutil.Logged(reg, m.overflow, log)
		m.policyAnswers = promutil.Logged(reg, m.policyAnswers, log)
	}
	m.errConnect = m.upstreamErrors.WithLabelValues(kindConnect)
	m.errReset = m.upstreamErrors.WithLabelValues(kindReset)
	m.errTimeout = m.upstreamErrors.WithLabelValues(kindTimeout)
	m.errNoEndpoint = m.upstreamErrors.WithLabelValues(kindNoEndpoint)
	m.errBadResponse = m.upstreamErrors.WithLabelValues(kindBadResponse)
	m.mirrorSent = m.mirror.WithLabelValues("sent")
	m.mirrorDropped = m.mirror.WithLabelValues("dropped")
	m.mirrorFailed = m.mirror.WithLabelValues("failed")
	return m
}

func (m *metrics) upstreamError(kind string) {
	switch kind {
	case kindConnect:
		m.errConnect.Inc()
	case kindReset:
		m.errReset.Inc()
	case kindTimeout:
		m.errTimeout.Inc()
	case kindNoEndpoint:
		m.errNoEndpoint.Inc()
	case kindBadResponse:
		m.errBadResponse.Inc()
	}
}

// clientError counts a failure charged to the client.
func (m *metrics) clientError(kind string) { m.clientErrors.WithLabelValues(kind).Inc() }
