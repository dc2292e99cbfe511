package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/policy"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// tableState is what the handler derives from one table, once: per-route
// state with resolved metric children, and each pool's upstream transport.
type tableState struct {
	table  *routing.Table
	routes []*routeState
	pools  map[*routing.Pool]*upstream
	tls    *tlsPolicy
	// transportKeys are the upstream clients this state uses.
	transportKeys map[string]bool
	// settings the table's config can change on reload
	allowAmbiguous bool
	accessLog      *accessLog // nil when off
	tracing        *tracing   // nil when off
	// timed is set when requests time their upstream attempts: the access
	// log shows the upstream duration, exported spans each attempt.
	timed bool
	tel   *telemetry.HTTPSet // the cells below, activated by Install (telemetry.go)
}

// routeState is one route's compiled proxy behaviour.
type routeState struct {
	route                       *routing.Route
	name                        string
	duration                    prometheus.Observer
	codes                       counterSet[codeKey]   // requests_total children; see counter
	policyCodes                 counterSet[policyKey] // policy_answers_total children; see policyCounter
	retriesSent, retriesRefused prometheus.Counter
	shared                      *routeShared
	tel                         []*telemetry.HTTP // telemetry cells by split entry; one without a split

	timeout, perTry time.Duration // timeout: the route's explicit one, whole exchange
	headTimeout     time.Duration // the default route timeout, to the response head
	retry           retryPolicy
	hostRewrite     string
	stripPrefix     string
	addHeaders      []policy.HeaderValue
	removeHeaders   []string
	respAdd         []policy.HeaderValue
	respRemove      []string
	stickyCookie    string

	mirrorMaxBody  int64
	mirrorTimeout  time.Duration
	mirrorInFlight int64

	// TLS policy (tlspolicy.go)
	requireCert bool              // tls.client_auth: require
	clientCA    *routing.ClientCA // its CA, loaded by routing.Compile
	hsts        string
	redirect    bool
}

// codeKey names a requests_total child within a route.
type codeKey struct {
	svc  *routing.Service
	pool *routing.Pool
	code int
}

// policyKey names a policy_answers_total child within a route.
type policyKey struct {
	step policy.Step
	code int
}

// routeShared is the state of a route that outlives a table: its retry
// budget and mirror concurrency, matched by route name across reloads, and
// its metric children.
type routeShared struct {
	budget         retryBudget
	mirrorInFlight atomic.Int64

	// The route's metric children, resolved by the first Install of a
	// state that has the route (never by Compile: a rejected table leaves
	// no series) and reused by the later ones, so a reload resolves only
	// the routes new to their name. nil while no installed state has the
	// route (its series were deleted). Under stateMu; the request path
	// reads the copies on routeState.
	duration                    prometheus.Observer
	retriesSent, retriesRefused prometheus.Counter
	installed                   *tableState // the last installed state that has the route

	// series are the label values of the requests_total children the route
	// resolved, so that they go with the route without a scan of every
	// route's children.
	seriesMu sync.Mutex
	series   []requestLabels
}

// requestLabels are a requests_total child's label values besides the
// route's name.
type requestLabels struct {
	service, pool string
	code          int
}

// retryPolicy is a route's compiled retry block.
type retryPolicy struct {
	attempts int // retries after the first try
	on       retryOn
	maxBody  int64
	percent  float64
}

type retryOn uint8

const (
	onConnect retryOn = 1 << iota
	onReset
	onTimeout
	on502
	on503
	on504
)

// defaultRetry applies to routes without a retry block: one retry on
// another endpoint when the connection could not be made, which is always
// safe because nothing reached the upstream.
var defaultRetry = retryPolicy{attempts: 1, on: onConnect, maxBody: config.DefaultMaxRetryBody, percent: config.DefaultRetryBudgetPercent}

func compileRetry(r *config.Retry) retryPolicy {
	if r == nil {
		return defaultRetry
	}
	p := retryPolicy{attempts: r.Attempts, maxBody: int64(r.MaxRetryBody), percent: r.BudgetPercent}
	for _, s := range r.On {
		switch s {
		case "connect_failure":
			p.on |= onConnect
		case "reset":
			p.on |= onReset
		case "timeout":
			p.on |= onTimeout
		case "502":
			p.on |= on502
		case "503":
			p.on |= on503
		case "504":
			p.on |= on504
		}
	}
	return p
}

func (p *retryPolicy) onStatus(code int) bool {
	switch code {
	case 502:
		return p.on&on502 != 0
	case 503:
		return p.on&on503 != 0
	case 504:
		return p.on&on504 != 0
	}
	return false
}

func (p *retryPolicy) onKind(kind string) bool {
	switch kind {
	case kindConnect:
		return p.on&onConnect != 0
	case kindReset:
		return p.on&onReset != 0
	case kindTimeout:
		return p.on&onTimeout != 0
	}
	return false
}

// counter returns the requests_total child for one outcome, resolving it
// once per table (counterSet).
func (rs *routeState) counter(m *metrics, svc *routing.Service, pool *routing.Pool, code int) prometheus.Counter {
	k := codeKey{svc, pool, code}
	if c, ok := rs.codes.lookup(k); ok {
		return c
	}
	return rs.codes.add(k, func() prometheus.Counter {
		sn, pn := "", ""
		if svc != nil {
			sn = svc.Name
		}
		if pool != nil {
			pn = pool.Name
		}
		c := m.requests.WithLabelValues(rs.name, sn, pn, strconv.Itoa(code))
		if sh := rs.shared; sh != nil {
			sh.seriesMu.Lock()
			if !slices.Contains(sh.series, requestLabels{sn, pn, code}) {
				sh.series = append(sh.series, requestLabels{sn, pn, code})
			}
			sh.seriesMu.Unlock()
		}
		return c
	})
}

// policyCounter returns the policy_answers_total child for an answer of
// one of the route's policies, resolving it once per table: a flood the
// rate limit refuses costs a slice scan per request, not a label lookup.
func (rs *routeState) policyCounter(m *metrics, step policy.Step, code int) prometheus.Counter {
	k := policyKey{step, code}
	if c, ok := rs.policyCodes.lookup(k); ok {
		return c
	}
	return rs.policyCodes.add(k, func() prometheus.Counter {
		return m.policyAnswers.WithLabelValues(rs.name, step.String(), strconv.Itoa(code))
	})
}

// upstream is how requests reach one pool's endpoints.
type upstream struct {
	rt     http.RoundTripper
	scheme string
	tel    []*telemetry.HTTP   // the endpoints' telemetry cells, by Endpoint.Index
	telEPs []*routing.Endpoint // the endpoints they count, to check the index
	brk    *breaker            // the pool's circuit breakers (breaker.go); nil: none
	limits poolLimits          // this table's limits, applied to brk by Install
}

// Compiled is everything the handler serves one table with: per-route
// policy and metric children, each pool's upstream client, and the routes'
// TLS policy. The rebuild loop builds it with Compile before the table goes
// live and hands it to Install with the table, so no request ever builds
// anything: compile, then swap, then serve.
type Compiled struct {
	st  *tableState
	err error // see Err
}

// Table is the table c was compiled from.
func (c *Compiled) Table() *routing.Table { return c.st.table }

// Compile derives the handler's state for t. It builds new upstream
// clients only for protocol and TLS settings no earlier table used, reuses
// route state (retry budgets, mirror concurrency) by route name, and
// changes nothing the live state uses: a table that is compiled and never
// installed costs at most an idle client, which the next Install closes.
// Everything that can fail (TLS files) was loaded by routing.Compile, whose
// error rejects the table first, except opening a new access log file:
// Compiled.Err reports that, and such a state must not be installed.
func (h *Handler) Compile(t *routing.Table) *Compiled {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	st := &tableState{table: t, pools: make(map[*routing.Pool]*upstream, len(t.Pools))}
	var err error
	if t.Config != nil {
		st.allowAmbiguous = t.Config.HTTP.AllowAmbiguousPaths
		st.accessLog, err = h.logs.compile(&t.Config.HTTP.AccessLog)
		if err == nil {
			st.tracing, err = h.traces.compile(t.Config.Tracing)
		}
		st.timed = st.accessLog != nil || st.tracing != nil && st.tracing.exp != nil
	}
	var routeTimeout time.Duration
	if t.Config != nil {
		routeTimeout = t.Config.HTTP.RouteTimeout.D()
	}
	// One allocation for every route's state: a reload of thousands of
	// routes makes one large object rather than thousands of small ones.
	states := make([]routeState, len(t.Routes))
	st.routes = make([]*routeState, len(t.Routes))
	// The installed state's routes are h.shared's: a table that keeps a
	// route in the same place finds its shared state there, unhashed.
	var installed []*routeState
	if cur := h.state.Load(); cur != nil {
		installed = cur.routes
	}
	for i, r := range t.Routes {
		rs := &states[i]
		h.initRouteState(rs, r, routeTimeout)
		if i < len(installed) && installed[i].name == r.Name {
			rs.shared = installed[i].shared
		} else if old := h.shared[r.Name]; old != nil {
			rs.shared = old
		} else {
			rs.shared = &routeShared{}
		}
		if r.Index < len(t.ClientCAs) {
			rs.clientCA = t.ClientCAs[r.Index]
		}
		st.routes[i] = rs
	}
	st.tls = compileTLSPolicy(st.routes)
	st.transportKeys = map[string]bool{}
	for _, name := range sortedPoolNames(t) {
		p := t.Pools[name]
		proto := "auto"
		if t.Config != nil {
			if cp := t.Config.Pools[name]; cp != nil && cp.Protocol != "" {
				proto = string(cp.Protocol)
			}
		}
		up, key := h.upstreamFor(name, proto, p.ClientTLS)
		up.limits = limitsOf(t.Config, name)
		st.transportKeys[key] = true
		st.pools[p] = up
	}
	h.compileTelemetry(st)
	return &Compiled{st: st, err: err}
}

// Install makes c the state new requests are served with. Routes gone from
// the table lose their metric series, and upstream clients no route uses
// any more close their idle connections; requests in flight keep the state
// they started with.
func (h *Handler) Install(c *Compiled) {
	st := c.st
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	if h.shared == nil {
		h.shared = make(map[string]*routeShared, len(st.routes))
	}
	for _, rs := range st.routes {
		sh := rs.shared
		if sh.duration == nil {
			// Resolved here, not in Compile: a table that is compiled
			// and then rejected must not leave series for routes that
			// never served. Once per route name: the tables after reuse
			// them. Nothing reads them before the state is stored below.
			sh.duration = h.met.duration.WithLabelValues(rs.name)
			sh.retriesSent = h.met.retries.WithLabelValues(rs.name, "sent")
			sh.retriesRefused = h.met.retries.WithLabelValues(rs.name, "budget_exhausted")
			if old := h.shared[rs.name]; old != nil {
				// Another state's route of that name, installed since
				// this state was compiled: one of the same name holds
				// the children at a time.
				old.seriesMu.Lock()
				sh.seriesMu.Lock()
				sh.series = append(sh.series, old.series...)
				sh.seriesMu.Unlock()
				old.series = nil
				old.seriesMu.Unlock()
				old.duration, old.retriesSent, old.retriesRefused, old.installed = nil, nil, nil, nil
			}
			h.shared[rs.name] = sh
		}
		sh.installed = st
		rs.duration, rs.retriesSent, rs.retriesRefused = sh.duration, sh.retriesSent, sh.retriesRefused
	}
	// The routes the state does not have lose their series.
	for name, sh := range h.shared {
		if sh.installed == st {
			continue
		}
		sh.seriesMu.Lock()
		for _, l := range sh.series {
			h.met.requests.DeleteLabelValues(name, l.service, l.pool, strconv.Itoa(l.code))
		}
		sh.series = nil
		sh.seriesMu.Unlock()
		h.met.policyAnswers.DeletePartialMatch(prometheus.Labels{"route": name})
		h.met.retries.DeleteLabelValues(name, "sent")
		h.met.retries.DeleteLabelValues(name, "budget_exhausted")
		h.met.duration.DeleteLabelValues(name)
		sh.duration, sh.retriesSent, sh.retriesRefused, sh.installed = nil, nil, nil, nil
		delete(h.shared, name)
	}
	for key, tr := range h.transports {
		if !st.transportKeys[key] {
			tr.CloseIdleConnections()
			delete(h.transports, key)
		}
	}
	if t := st.table; t.Config != nil {
		h.logs.install(st.accessLog, &t.Config.HTTP.AccessLog)
	} else {
		h.logs.install(nil, nil)
	}
	h.traces.install(st.tracing)
	h.installBreakers(st)
	h.tel.ActivateHTTP(st.tel)
	h.state.Store(st)
}

func sortedPoolNames(t *routing.Table) []string {
	names := make([]string, 0, len(t.Pools))
	for n := range t.Pools {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// initRouteState compiles a route into rs, a zero routeState;
// routeTimeout is http.route_timeout, for routes that set no timeout.
func (h *Handler) initRouteState(rs *routeState, r *routing.Route, routeTimeout time.Duration) {
	c := r.Config
	rs.route = r
	rs.name = r.Name
	rs.perTry = c.PerTryTimeout.D()
	rs.retry = compileRetry(c.Retry)
	rs.hostRewrite = c.HostRewrite
	rs.stripPrefix = strings.TrimSuffix(c.StripPrefix, "/")
	rs.stickyCookie = r.StickyCookie()
	if c.Timeout != nil {
		rs.timeout = c.Timeout.D()
	} else {
		rs.headTimeout = routeTimeout
	}
	rs.requireCert = c.TLS != nil && c.TLS.ClientAuth == "require"
	rs.hsts, rs.redirect = c.HSTS, c.RedirectHTTPS
	rs.addHeaders = r.AddHeaders
	for _, k := range c.RemoveHeaders {
		rs.removeHeaders = append(rs.removeHeaders, textproto.CanonicalMIMEHeaderKey(k))
	}
	if rh := c.ResponseHeaders; rh != nil {
		rs.respAdd = r.ResponseAdd
		for _, k := range rh.Remove {
			rs.respRemove = append(rs.respRemove, textproto.CanonicalMIMEHeaderKey(k))
		}
	}
	if m := c.Mirror; m != nil {
		rs.mirrorMaxBody = int64(m.MaxBody)
		rs.mirrorTimeout = m.Timeout.D()
		rs.mirrorInFlight = int64(m.MaxInFlight)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// upstreamFor returns the client for a pool's protocol and compiled TLS,
// reusing the one earlier tables built for the same pool, protocol and TLS
// fingerprint (settings and file contents), so reloads keep their idle
// connections and a rotated CA gets a new client. Each pool has clients of
// its own, so its breaker counts its connections. Caller holds stateMu.
func (h *Handler) upstreamFor(pool, proto string, ut *routing.UpstreamTLS) (*upstream, string) {
	scheme, key := "http", pool+"\x00"+proto+"|plain"
	var tlsConf *tls.Config
	if ut != nil {
		scheme, key = "https", pool+"\x00"+proto+"|tls:"+ut.Fingerprint
		tlsConf = ut.Config.Clone()
		if proto == "h2" {
			// The transport offers ALPN from its Protocols (h2 and
			// http/1.1 for auto); h2 alone is required for h2.
			tlsConf.NextProtos = []string{"h2"}
		}
	}
	brk := h.breakerFor(pool)
	tr := h.transports[key]
	if tr == nil {
		tr = h.newTransport(proto, tlsConf, brk)
		h.transports[key] = tr
	}
	return &upstream{rt: tr, scheme: scheme, brk: brk}, key
}

// connectTimeout bounds dialing an endpoint; a route's per_try_timeout or
// timeout cuts it shorter.
const connectTimeout = 5 * time.Second

// idleConnTimeout closes upstream connections idle this long.
const idleConnTimeout = 90 * time.Second

// upstreamClient sends a pool's requests; reloads close the idle
// connections of one no table uses any more.
type upstreamClient interface {
	http.RoundTripper
	CloseIdleConnections()
}

// newTransport builds the client for a pool protocol and TLS setting: an
// http.Transport, fronted for plain HTTP/1.1 by h1Client, which sends
// requests without a body on the caller's goroutine.
func (h *Handler) newTransport(proto string, tlsConf *tls.Config, brk *breaker) upstreamClient {
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:           dialer(d, brk),
		MaxIdleConnsPerHost:   h.settings.MaxIdleConnsPerHost,
		IdleConnTimeout:       idleConnTimeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// A proxy relays the client's encoding; it must not ask for gzip
		// and decompress on the client's behalf.
		DisableCompression: true,
		TLSClientConfig:    tlsConf,
		WriteBufferSize:    16 << 10,
		ReadBufferSize:     16 << 10,
		// An upstream head past the cap is a bad response (502), never
		// relayed in part.
		MaxResponseHeaderBytes: int64(int(h.settings.MaxResponseHeaderBytes)),
	}
	var p http.Protocols
	switch proto {
	case "h2c":
		p.SetUnencryptedHTTP2(true)
	case "h2":
		p.SetHTTP2(true)
	case "auto":
		// Plain text has no negotiation (h2c upgrade is deprecated), so
		// only TLS pools offer h2 in ALPN.
		p.SetHTTP1(true)
		p.SetHTTP2(tlsConf != nil)
	default:
		p.SetHTTP1(true)
	}
	tr.Protocols = &p
	if tlsConf == nil && (proto == "http1" || proto == "auto") {
		return newH1Client(tr, d, tr.MaxIdleConnsPerHost, idleConnTimeout, int(h.settings.MaxResponseHeaderBytes), brk)
	}
	return limitTransport(tr, brk)
}
