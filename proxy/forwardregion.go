package proxy

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
)

// Cross-region forwarding: services with on_all_down: forward.
//
// On an instance with a region (config region), such a service serves from
// the pools of that region and the pools with none ("local" pools). When
// none of them has an available endpoint by this instance's own health,
// the request is not failed open: it goes to a Meridian edge of the next
// region, the service's pools' regions in its policy order for this
// instance's region (geo: this region's pools first, then the others as
// listed; failover and weighted: as listed), skipping regions with no live
// edge. The edges come from the fleet registration in Consul (package
// fleet). The forwarded request carries the hop header with this
// instance's region, and an edge never forwards a request that has it:
// it serves it from its own local pools, failing open or answering 503 as
// they say, so a request crosses regions at most once and loops are
// impossible. A connect failure moves to the region's next edge (and the
// next region) while no byte of the body was sent.

// HopHeader marks a request one Meridian edge forwarded to another; its
// value is the forwarding instance's region.
const HopHeader = "Meridian-Forwarded-From"

// ForwardedToHeader is set on the response of a forwarded request: the
// region whose edge served it.
const ForwardedToHeader = "Meridian-Forwarded-To"

// RegionForwarderOptions configure a RegionForwarder.
type RegionForwarderOptions struct {
	// Edges returns the HTTP edges (host:port) of the live Meridian
	// instances in region, this one excepted, in a stable order.
	Edges      func(region string) []string
	Logger     *zap.Logger
	Registerer prometheus.Registerer
	// DialTimeout bounds connecting to an edge (default 2s).
	DialTimeout time.Duration
}

// RegionForwarder forwards requests of services with on_all_down: forward
// to the next region's edges. Install it with Handler.SetRegionForwarder.
type RegionForwarder struct {
	edges func(string) []string
	log   *zap.Logger
	rp    *httputil.ReverseProxy
	rr    atomic.Uint64

	plans atomic.Pointer[forwardPlans] // of the last table seen

	forwards *prometheus.CounterVec
	mu       sync.Mutex
	active   map[string]string    // service → region it is being forwarded to (for the log)
	nactive  atomic.Int32         // len(active), so settle skips mu when nothing forwards
	warned   map[string]time.Time // warning key → last warning, at most maxWarned
}

// maxWarned bounds RegionForwarder.warned (its keys include edge
// addresses, which churn with the fleet): at the bound, keys past their
// minute are dropped, and if none is, the whole map.
const maxWarned = 1024

// forwardPlans are one table's forwarding decisions, by service.
type forwardPlans struct {
	t     *routing.Table
	plans map[*routing.Service]*forwardPlan
}

// forwardPlan is one service's: its local pools and the regions to forward
// to, in order.
type forwardPlan struct {
	region  string
	local   []*routing.Pool
	regions []string
}

// NewRegionForwarder builds the forwarder; it registers
// meridian_fleet_forwards_total.
func NewRegionForwarder(o RegionForwarderOptions) (*RegionForwarder, error) {
	lg := o.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	f := &RegionForwarder{
		edges:  o.Edges,
		log:    lg.Named("forward"),
		active: map[string]string{},
		warned: map[string]time.Time{},
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_fleet_forwards_total",
			Help: "Requests of services with on_all_down: forward, by the region they were forwarded to and result: ok (an edge answered), error (no edge of any region could be reached), no_edge (no live edge in another region: served here), loop (a forwarded request whose local pools are down: served here, never forwarded again).",
		}, []string{"service", "region", "result"}),
	}
	if f.edges == nil {
		f.edges = func(string) []string { return nil }
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(f.forwards); err != nil {
			return nil, err
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.MaxIdleConnsPerHost = 64
	tr.Proxy = nil
	f.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// The edge is chosen by the transport. The next edge sees the
			// client chain with this peer appended (it believes it as far
			// as its http.trusted_proxies say), and the original Host.
			if xff := pr.In.Header["X-Forwarded-For"]; len(xff) > 0 {
				pr.Out.Header["X-Forwarded-For"] = slices.Clone(xff)
			}
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
		},
		Transport:     &edgeTransport{f: f, base: tr},
		FlushInterval: -1,
		ErrorHandler:  f.failed,
		ErrorLog:      log.New(&zapWriter{lg.Named("forward")}, "", 0),
		ModifyResponse: func(res *http.Response) error {
			// Counted before the client has the answer.
			if j := jobOf(res.Request.Context()); j != nil {
				res.Header.Set(ForwardedToHeader, j.region)
				f.forwards.WithLabelValues(j.service, j.region, "ok").Inc()
				f.note(j.service, j.region, "no pool of this region is available: forwarding to the next region's edges")
			}
			return nil
		},
	}
	return f, nil
}

// SetRegionForwarder installs (or, with nil, removes) the forwarder.
func (h *Handler) SetRegionForwarder(f *RegionForwarder) { h.fwd.Store(f) }

// plan returns the service's forwarding plan in t, nil when the service
// does not forward.
func (f *RegionForwarder) plan(t *routing.Table, svc *routing.Service) *forwardPlan {
	ps := f.plans.Load()
	if ps == nil || ps.t != t {
		ps = &forwardPlans{t: t, plans: buildPlans(t)}
		f.plans.Store(ps)
	}
	return ps.plans[svc]
}

// buildPlans computes every forwarding service's plan in t.
func buildPlans(t *routing.Table) map[*routing.Service]*forwardPlan {
	out := map[*routing.Service]*forwardPlan{}
	if t == nil || t.Config == nil || t.Config.Region == "" {
		return out
	}
	region := t.Config.Region
	for name, cs := range t.Config.Services {
		svc := t.Services[name]
		if cs == nil || svc == nil || cs.OnAllDown != config.OnAllDownForward {
			continue
		}
		p := &forwardPlan{region: region}
		for _, pool := range svc.Order(nil, region) {
			if pool.Region == region || pool.Region == "" {
				p.local = append(p.local, pool)
			} else if !slices.Contains(p.regions, pool.Region) {
				p.regions = append(p.regions, pool.Region)
			}
		}
		out[svc] = p
	}
	return out
}

// localPools keeps, for a service that forwards, only the pools of this
// instance's region in order (in place); other services' order is
// returned as it is. The proxy's pick calls it.
func (h *Handler) localPools(x *exchange, svc *routing.Service, order []*routing.Pool) []*routing.Pool {
	f := h.fwd.Load()
	if f == nil || x.st == nil {
		return order
	}
	p := f.plan(x.st.table, svc)
	if p == nil {
		return order
	}
	out := order[:0]
	for _, pool := range order {
		if pool.Region == p.region || pool.Region == "" {
			out = append(out, pool)
		}
	}
	return out
}

// forwardRegion forwards the request when its service forwards and none of
// its local pools has an available endpoint; it reports whether it
// answered the request.
func (h *Handler) forwardRegion(x *exchange) bool {
	f := h.fwd.Load()
	svc := x.svc()
	if f == nil || svc == nil || x.st == nil {
		return false
	}
	p := f.plan(x.st.table, svc)
	if p == nil || slices.ContainsFunc(p.local, (*routing.Pool).HasAvailable) {
		f.settle(svc.Name)
		return false
	}
	if from := x.req.Header.Get(HopHeader); from != "" {
		f.forwards.WithLabelValues(svc.Name, "", "loop").Inc()
		f.warnOnce("loop:"+svc.Name, "a forwarded request came in while this region's pools are down too: served here (failing open or 503), never forwarded again",
			zap.String("service", svc.Name), zap.String("from", from))
		return false
	}
	var regions []string
	for _, r := range p.regions {
		if len(f.edges(r)) > 0 {
			regions = append(regions, r)
		}
	}
	if len(regions) == 0 {
		f.forwards.WithLabelValues(svc.Name, "", "no_edge").Inc()
		f.note(svc.Name, "", "no pool of this region is available and no other region has a live edge: served here (fail open or 503)")
		return false
	}
	j := &forwardJob{f: f, service: svc.Name, from: p.region, regions: regions}
	r := x.req.WithContext(context.WithValue(x.ctx, forwardJobKey{}, j))
	r.Header.Set(HopHeader, p.region)
	f.rp.ServeHTTP(&x.rw, r)
	return true
}

// note logs a service's forwarding state when it changes.
func (f *RegionForwarder) note(service, region, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if prev, ok := f.active[service]; ok && prev == region {
		return
	}
	f.active[service] = region
	f.nactive.Store(int32(len(f.active)))
	f.log.Warn(msg, zap.String("service", service), zap.String("region", region))
}

// settle logs that a service serves from its own region again.
func (f *RegionForwarder) settle(service string) {
	if f.nactive.Load() == 0 {
		return // the request path's common case: no lock
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.active[service]; !ok {
		return
	}
	delete(f.active, service)
	f.nactive.Store(int32(len(f.active)))
	f.log.Info("a pool of this region is available again: serving here, no longer forwarding", zap.String("service", service))
}

// forwardJob is one forwarded request's state, carried in its context.
type forwardJob struct {
	f       *RegionForwarder
	service string
	from    string
	regions []string
	region  string // the region whose edge answered, or was tried last
}

type forwardJobKey struct{}

func jobOf(ctx context.Context) *forwardJob {
	j, _ := ctx.Value(forwardJobKey{}).(*forwardJob)
	return j
}

// edgeTransport sends a forwarded request to the first edge that accepts
// the connection: the regions in order, each region's edges in rotation.
// Only a connect failure moves on, and only while the body is unread.
type edgeTransport struct {
	f    *RegionForwarder
	base *http.Transport
}

func (t *edgeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	j := jobOf(r.Context())
	if j == nil {
		return nil, errors.New("proxy: forwarded request without its job")
	}
	rewind := r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
	var last error
	tried := 0
	for _, region := range j.regions {
		edges := t.f.edges(region)
		if len(edges) == 0 {
			continue
		}
		start := int(t.f.rr.Add(1))
		for i := range edges {
			edge := edges[(start+i)%len(edges)]
			if tried > 0 && !rewind {
				return nil, last
			}
			out := r.Clone(r.Context())
			out.URL.Scheme, out.URL.Host = "http", edge
			if tried > 0 && r.GetBody != nil {
				b, err := r.GetBody()
				if err != nil {
					return nil, err
				}
				out.Body = b
			}
			tried++
			j.region = region
			res, err := t.base.RoundTrip(out)
			if err == nil {
				return res, nil
			}
			last = err
			if !isDialError(err) || r.Context().Err() != nil {
				return nil, err
			}
			t.f.warnEdge(edge, region, err)
		}
	}
	if last == nil {
		last = errors.New("no live edge in the next regions")
	}
	return nil, last
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// warnEdge logs an unreachable edge at most once a minute.
func (f *RegionForwarder) warnEdge(edge, region string, err error) {
	f.warnOnce("edge:"+edge, "next region's edge unreachable; trying the next one", zap.String("edge", edge), zap.String("region", region), zap.Error(err))
}

// warnOnce logs msg at most once a minute per key.
func (f *RegionForwarder) warnOnce(key, msg string, fields ...zap.Field) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if now.Sub(f.warned[key]) < time.Minute {
		return
	}
	if len(f.warned) >= maxWarned {
		for k, t := range f.warned {
			if now.Sub(t) >= time.Minute {
				delete(f.warned, k)
			}
		}
		if len(f.warned) >= maxWarned {
			clear(f.warned)
		}
	}
	f.warned[key] = now
	f.log.Warn(msg, fields...)
}

// failed answers a forwarded request no edge took: 502.
func (f *RegionForwarder) failed(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client went away: nothing to answer, and not the next
		// region's failure.
		return
	}
	if j := jobOf(r.Context()); j != nil {
		f.forwards.WithLabelValues(j.service, j.region, "error").Inc()
		f.warnOnce("failed:"+j.service, "forwarding to the next region failed: answering 502", zap.String("service", j.service), zap.String("region", j.region), zap.Error(err))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadGateway)
	io.WriteString(w, "meridian: this region's pools are down and the next region's edges could not be reached\n")
}

// ForwardExplanation says, for explain, where a request of the service
// would go now: served here, or forwarded to a region's edges.
type ForwardExplanation struct {
	Service  string   `json:"service"`
	Region   string   `json:"region"`          // this instance's
	Local    []string `json:"local_pools"`     // the pools served from here
	Next     []string `json:"next_regions"`    // in order
	Forward  bool     `json:"forward"`         // no local pool is available: requests are forwarded
	To       string   `json:"to,omitempty"`    // the region they go to
	Edges    []string `json:"edges,omitempty"` // its live edges
	Decision string   `json:"decision"`
}

// Explain describes the service's forwarding in t now; nil when it does
// not forward.
func (f *RegionForwarder) Explain(t *routing.Table, service string) *ForwardExplanation {
	if f == nil || t == nil {
		return nil
	}
	svc := t.Services[service]
	if svc == nil {
		return nil
	}
	p := f.plan(t, svc)
	if p == nil {
		return nil
	}
	ex := &ForwardExplanation{Service: service, Region: p.region, Next: slices.Clone(p.regions)}
	for _, pool := range p.local {
		ex.Local = append(ex.Local, pool.Name)
	}
	if slices.ContainsFunc(p.local, (*routing.Pool).HasAvailable) {
		ex.Decision = "a pool of this region (" + p.region + ") is available: served here"
		return ex
	}
	ex.Forward = true
	for _, r := range p.regions {
		if e := f.edges(r); len(e) > 0 {
			ex.To, ex.Edges = r, e
			ex.Decision = "no pool of this region is available: forwarded to an edge of region " + r + " (a request already forwarded is served here instead)"
			return ex
		}
	}
	ex.Decision = "no pool of this region is available and no other region (" + strings.Join(p.regions, ", ") + ") has a live edge: served here, failing open or 503"
	return ex
}

// Forwarder returns the installed forwarder, nil when none.
func (h *Handler) Forwarder() *RegionForwarder { return h.fwd.Load() }
