package routing

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/policy"
)

// Route is a compiled HTTP route: its matcher, where it sends requests (a
// service or a split), and the compiled mirror. The proxy reads the rest of
// the route's behaviour (timeouts, retries, header edits) from Config.
type Route struct {
	Name   string
	Config *config.Route
	// Service is where the route sends requests; nil when the route has a
	// split (see Split).
	Service *Service
	// Split is the compiled split; nil when the route names a service.
	Split *Split
	// Mirror is the service mirrored requests go to; nil without mirror.
	Mirror *Service
	// Index is the route's position in Table.Routes, which the proxy uses
	// to keep per-route state in a slice.
	Index int
	// Policy is the route's compiled edge policies (package policy); nil
	// when it has none. A route with a redirect may have neither service
	// nor split: the redirect answers every request.
	Policy *policy.Route
	// AddHeaders and ResponseAdd are add_headers and
	// response_headers.add, compiled (values may be templates).
	AddHeaders, ResponseAdd []policy.HeaderValue

	host      []string // exact hosts, normalised
	wildcards []string // "*.example.com" as ".example.com"
	path      pathMatcher
	cond      *conditions // nil when host and path are all the route matches on
	mirror    *mirrorShare

	// index is shared by every route of a table (Table has no field for
	// it); Match reads it from the first route.
	index *routeIndex
}

// mirrorShare samples a route's mirrored requests: per10k is the share in
// 1/10000, seq counts requests for the exact sampling in MirrorSample. Only
// mirroring routes have one.
type mirrorShare struct {
	per10k uint64
	seq    atomic.Uint64
}

func compileRoutes(cfg *config.Config, services map[string]*Service, ro *rollouts) ([]*Route, error) {
	out := make([]*Route, 0, len(cfg.Routes))
	var errs []error
	for i, r := range cfg.Routes {
		var canary *splitCanary
		if r.Rollout != nil {
			var perrs []error
			if canary, perrs = ro.route(i, r); len(perrs) > 0 {
				errs = append(errs, perrs...)
				continue
			}
		}
		rt, err := compileRoute(cfg, r, services, canary)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", r.Name, err)
		}
		rt.Index = i
		out = append(out, rt)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	ix := buildRouteIndex(out)
	for _, rt := range out {
		rt.index = ix
	}
	return out, nil
}

func compileRoute(cfg *config.Config, r *config.Route, services map[string]*Service, canary *splitCanary) (*Route, error) {
	rt := &Route{Name: r.Name, Config: r}
	if r.Service != "" {
		s, ok := services[r.Service]
		if !ok {
			return nil, fmt.Errorf("unknown service %q", r.Service)
		}
		rt.Service = s
	} else if len(r.Split) > 0 {
		sp, err := compileSplit(cfg, r, services, canary)
		if err != nil {
			return nil, err
		}
		rt.Split = sp
	}
	if m := r.Mirror; m != nil {
		s, ok := services[m.Service]
		if !ok {
			return nil, fmt.Errorf("mirror: unknown service %q", m.Service)
		}
		rt.Mirror = s
		if per10k := uint64(min(max(m.Percent, 0), 100)*100 + 0.5); per10k > 0 {
			rt.mirror = &mirrorShare{per10k: per10k}
		}
	}
	m := &r.Match
	for _, h := range m.Host {
		h = lower(strings.TrimSuffix(h, "."))
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			rt.wildcards = append(rt.wildcards, "."+rest)
		} else {
			rt.host = append(rt.host, h)
		}
	}
	switch {
	case m.Path != "":
		rt.path = pathMatcher{kind: pathExact, value: m.Path}
	case m.PathPrefix != "":
		rt.path = pathMatcher{kind: pathPrefix, value: m.PathPrefix}
	case m.PathRegex != "":
		re, err := compileRegex(cfg, m.PathRegex)
		if err != nil {
			return nil, fmt.Errorf("match.path_regex: %w", err)
		}
		rt.path = pathMatcher{kind: pathRegex, value: m.PathRegex, re: re}
	}
	if len(m.Method) == 0 && len(m.Headers) == 0 && len(m.Query) == 0 && len(m.Cookies) == 0 && len(m.ClientCIDR) == 0 {
		return rt, nil
	}
	c := &conditions{
		methods: slices.Clone(m.Method),
		named:   make([]namedMatcher, 0, len(m.Headers)+len(m.Query)+len(m.Cookies)),
	}
	var err error
	if c.named, err = appendNamed(c.named, cfg, m.Headers, true); err != nil {
		return nil, fmt.Errorf("match.headers.%w", err)
	}
	c.query = int32(len(c.named))
	if c.named, err = appendNamed(c.named, cfg, m.Query, false); err != nil {
		return nil, fmt.Errorf("match.query.%w", err)
	}
	c.cookies = int32(len(c.named))
	if c.named, err = appendNamed(c.named, cfg, m.Cookies, false); err != nil {
		return nil, fmt.Errorf("match.cookies.%w", err)
	}
	for _, cidr := range m.ClientCIDR {
		p, err := config.ParsePrefix(cidr)
		if err != nil {
			return nil, fmt.Errorf("match.client_cidr: %w", err)
		}
		c.cidrs = append(c.cidrs, p)
	}
	rt.cond = c
	return rt, nil
}

// matchHost reports whether the normalised host h satisfies the route's
// host condition. The index makes this unnecessary on the request path; it
// is the definition the index is tested against.
func (r *Route) matchHost(h string) bool {
	if len(r.host) == 0 && len(r.wildcards) == 0 {
		return true
	}
	if slices.Contains(r.host, h) {
		return true
	}
	for _, w := range r.wildcards {
		if len(h) > len(w) && strings.HasSuffix(h, w) {
			return true
		}
	}
	return false
}

// MirrorSample reports whether this request is one of the route's mirrored
// share. The choice is exact over time (a counter, not a coin), so 10% is
// every tenth request, and costs one atomic add.
func (r *Route) MirrorSample() bool {
	m := r.mirror
	if r.Mirror == nil || m == nil {
		return false
	}
	n := m.seq.Add(1)
	return n*m.per10k/10000 != (n-1)*m.per10k/10000
}

// Match returns the first route that matches r, or nil. It matches what the
// upstream will see: r.Host (never a raw Host header), the cleaned path
// (CleanPath of r.URL.Path; the proxy cleans it in place before matching),
// r.Method, r.Header, the query as forwarded, and client, the client
// address (the trusted X-Forwarded-For hop when the peer is a trusted
// proxy). Match does not allocate unless a route has query matchers, and
// looks only at the routes whose host and path conditions can hold (see
// routeIndex), so its cost hardly grows with the number of routes.
func (t *Table) Match(r *http.Request, client netip.Addr) *Route {
	if len(t.Routes) == 0 || t.Routes[0].index == nil {
		return nil
	}
	p := "/"
	if r.URL != nil {
		p = CleanPath(r.URL.Path)
	}
	v := reqView{r: r, path: p, client: client}
	return t.Routes[0].index.match(NormalizeHost(r.Host), &v)
}

func (r *Route) dump(b *strings.Builder) {
	c := r.Config
	fmt.Fprintf(b, "route %s", r.Name)
	if len(r.host) > 0 || len(r.wildcards) > 0 {
		hosts := slices.Clone(r.host)
		for _, w := range r.wildcards {
			hosts = append(hosts, "*"+w)
		}
		fmt.Fprintf(b, " host=%s", strings.Join(hosts, ","))
	}
	switch r.path.kind {
	case pathExact:
		fmt.Fprintf(b, " path=%s", r.path.value)
	case pathPrefix:
		fmt.Fprintf(b, " path_prefix=%s", r.path.value)
	case pathRegex:
		fmt.Fprintf(b, " path_regex=%q", r.path.value)
	}
	cond := r.cond
	if cond == nil {
		cond = &conditions{}
	}
	if len(cond.methods) > 0 {
		fmt.Fprintf(b, " method=%s", strings.Join(cond.methods, ","))
	}
	for _, p := range cond.cidrs {
		fmt.Fprintf(b, " client_cidr=%s", p)
	}
	b.WriteByte('\n')
	dumpNamed(b, "  header", cond.headers())
	dumpNamed(b, "  query", cond.queryParams())
	dumpNamed(b, "  cookie", cond.cookieNames())
	if r.Service != nil {
		fmt.Fprintf(b, "  service %s\n", r.Service.Name)
	}
	if r.Split != nil {
		r.Split.dump(b)
	}
	if m := c.Mirror; m != nil {
		fmt.Fprintf(b, "  mirror service=%s percent=%g max_body=%d timeout=%s max_in_flight=%d\n",
			m.Service, m.Percent, int64(m.MaxBody), m.Timeout.D(), m.MaxInFlight)
	}
	if rt := c.Retry; rt != nil {
		fmt.Fprintf(b, "  retry attempts=%d on=%s budget=%g%% max_retry_body=%d\n",
			rt.Attempts, strings.Join(rt.On, ","), rt.BudgetPercent, int64(rt.MaxRetryBody))
	}
	if c.Timeout != nil || c.PerTryTimeout > 0 {
		timeout := "default"
		if c.Timeout != nil {
			timeout = c.Timeout.D().String()
		}
		fmt.Fprintf(b, "  timeout=%s per_try_timeout=%s\n", timeout, c.PerTryTimeout.D())
	}
	if c.HostRewrite != "" || c.StripPrefix != "" {
		fmt.Fprintf(b, "  rewrite host=%q strip_prefix=%q\n", c.HostRewrite, c.StripPrefix)
	}
	for _, d := range r.Policy.Steps() {
		fmt.Fprintf(b, "  policy %s: %s\n", d.Step, d.Detail)
	}
	for _, k := range sortedKeys(c.AddHeaders) {
		fmt.Fprintf(b, "  add_header %s=%q\n", k, c.AddHeaders[k])
	}
	for _, k := range c.RemoveHeaders {
		fmt.Fprintf(b, "  remove_header %s\n", k)
	}
	if rh := c.ResponseHeaders; rh != nil {
		for _, k := range sortedKeys(rh.Add) {
			fmt.Fprintf(b, "  response_add_header %s=%q\n", k, rh.Add[k])
		}
		for _, k := range rh.Remove {
			fmt.Fprintf(b, "  response_remove_header %s\n", k)
		}
	}
}

func dumpNamed(b *strings.Builder, label string, ms []namedMatcher) {
	for i := range ms {
		fmt.Fprintf(b, "%s %s %s\n", label, ms[i].name, ms[i].valueMatcher.String())
	}
}
