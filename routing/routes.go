package routing

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/meridian-lb/meridian/config"
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

	host      []string // exact hosts, normalised
	wildcards []string // "*.example.com" as ".example.com"
	path      pathMatcher
	methods   []string
	headers   []namedMatcher
	query     []namedMatcher
	cookies   []namedMatcher
	cidrs     []netip.Prefix

	// mirrorPer10k is the mirrored share in 1/10000; mirrorSeq counts
	// requests for the exact sampling in MirrorSample.
	mirrorPer10k uint64
	mirrorSeq    atomic.Uint64

	// index is shared by every route of a table (Table has no field for
	// it); Match reads it from the first route.
	index *routeIndex
}

// routeIndex narrows the routes a request's host can match, so matching
// costs a map lookup plus the routes that could apply, not every route. The
// candidate lists keep route order, so first-match-wins is unchanged.
type routeIndex struct {
	exact    map[string][]*Route // host → routes that can match it
	wildcard map[string][]*Route // ".suffix" → routes that can match a host whose longest wildcard match is it
	any      []*Route            // routes that can match a host matching neither
}

func compileRoutes(cfg *config.Config, services map[string]*Service) ([]*Route, error) {
	out := make([]*Route, 0, len(cfg.Routes))
	for i, r := range cfg.Routes {
		rt, err := compileRoute(cfg, r, services)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", r.Name, err)
		}
		rt.Index = i
		out = append(out, rt)
	}
	ix := buildRouteIndex(out)
	for _, rt := range out {
		rt.index = ix
	}
	return out, nil
}

func compileRoute(cfg *config.Config, r *config.Route, services map[string]*Service) (*Route, error) {
	rt := &Route{Name: r.Name, Config: r}
	if r.Service != "" {
		s, ok := services[r.Service]
		if !ok {
			return nil, fmt.Errorf("unknown service %q", r.Service)
		}
		rt.Service = s
	} else {
		sp, err := compileSplit(cfg, r, services)
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
		rt.mirrorPer10k = uint64(min(max(m.Percent, 0), 100)*100 + 0.5)
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
	rt.methods = slices.Clone(m.Method)
	var err error
	if rt.headers, err = compileNamed(cfg, m.Headers, true); err != nil {
		return nil, fmt.Errorf("match.headers.%w", err)
	}
	if rt.query, err = compileNamed(cfg, m.Query, false); err != nil {
		return nil, fmt.Errorf("match.query.%w", err)
	}
	if rt.cookies, err = compileNamed(cfg, m.Cookies, false); err != nil {
		return nil, fmt.Errorf("match.cookies.%w", err)
	}
	for _, c := range m.ClientCIDR {
		p, err := config.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("match.client_cidr: %w", err)
		}
		rt.cidrs = append(rt.cidrs, p)
	}
	return rt, nil
}

// matchHost reports whether the normalised host h satisfies the route's
// host condition. The index makes this unnecessary on the request path; it
// is the reference the index is built from and tested against.
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

// matchRest checks every condition but the host.
func (r *Route) matchRest(v *reqView) bool {
	if !r.path.match(v.path) {
		return false
	}
	if len(r.methods) > 0 && !slices.Contains(r.methods, v.r.Method) {
		return false
	}
	if len(r.cidrs) > 0 {
		c := v.client.Unmap()
		ok := false
		for _, p := range r.cidrs {
			if p.Contains(c) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return matchHeaders(r.headers, v.r.Header) && matchCookies(r.cookies, v.r.Header) && matchQuery(r.query, v)
}

// MirrorSample reports whether this request is one of the route's mirrored
// share. The choice is exact over time (a counter, not a coin), so 10% is
// every tenth request, and costs one atomic add.
func (r *Route) MirrorSample() bool {
	if r.Mirror == nil || r.mirrorPer10k == 0 {
		return false
	}
	n := r.mirrorSeq.Add(1)
	return n*r.mirrorPer10k/10000 != (n-1)*r.mirrorPer10k/10000
}

// buildRouteIndex fills each bucket with the routes that can match it, in
// route order. It goes through the routes once and puts each route only in
// the buckets it can match, so a large table with exact hosts costs about
// one append per host; a route with a wildcard or no host is checked
// against every bucket, as it may match any.
func buildRouteIndex(routes []*Route) *routeIndex {
	ix := &routeIndex{exact: map[string][]*Route{}, wildcard: map[string][]*Route{}}
	for _, r := range routes {
		for _, h := range r.host {
			ix.exact[h] = nil
		}
		for _, w := range r.wildcards {
			ix.wildcard[w] = nil
		}
	}
	// A host whose longest matching wildcard is w (and which is no route's
	// exact host) is matched by exactly the routes whose wildcards are
	// label suffixes of w, and the host-less ones. "x" + w stands for
	// every such host.
	reps := make(map[string]string, len(ix.wildcard))
	for w := range ix.wildcard {
		reps[w] = "x" + w
	}
	// add appends r to a bucket once, however many of its hosts match it.
	add := func(bucket []*Route, r *Route) []*Route {
		if n := len(bucket); n > 0 && bucket[n-1] == r {
			return bucket
		}
		return append(bucket, r)
	}
	for _, r := range routes {
		if len(r.wildcards) > 0 || len(r.host) == 0 {
			for h, bucket := range ix.exact {
				if r.matchHost(h) {
					ix.exact[h] = add(bucket, r)
				}
			}
		} else {
			for _, h := range r.host {
				ix.exact[h] = add(ix.exact[h], r)
			}
		}
		if len(r.wildcards) > 0 || len(r.host) == 0 {
			for w, bucket := range ix.wildcard {
				if r.matchHostWildcardOnly(reps[w]) {
					ix.wildcard[w] = add(bucket, r)
				}
			}
		}
		if len(r.host) == 0 && len(r.wildcards) == 0 {
			ix.any = append(ix.any, r)
		}
	}
	return ix
}

// matchHostWildcardOnly is matchHost without the exact hosts, for the
// representative host of a wildcard bucket.
func (r *Route) matchHostWildcardOnly(h string) bool {
	if len(r.host) == 0 && len(r.wildcards) == 0 {
		return true
	}
	for _, w := range r.wildcards {
		if len(h) > len(w) && strings.HasSuffix(h, w) {
			return true
		}
	}
	return false
}

// candidates returns the routes that can match the normalised host h, in
// route order.
func (ix *routeIndex) candidates(h string) []*Route {
	if rs, ok := ix.exact[h]; ok {
		return rs
	}
	// The longest wildcard suffix of h decides; try suffixes from the
	// longest ("." + everything after the first label) down.
	for i := strings.IndexByte(h, '.'); i >= 0; {
		if i > 0 {
			if rs, ok := ix.wildcard[h[i:]]; ok {
				return rs
			}
		}
		j := strings.IndexByte(h[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return ix.any
}

// Match returns the first route that matches r, or nil. It matches what the
// upstream will see: r.Host (never a raw Host header), the cleaned path
// (CleanPath of r.URL.Path; the proxy cleans it in place before matching),
// r.Method, r.Header, the query as forwarded, and client, the client
// address (the trusted X-Forwarded-For hop when the peer is a trusted
// proxy). Match does not allocate unless a route has query matchers.
func (t *Table) Match(r *http.Request, client netip.Addr) *Route {
	if len(t.Routes) == 0 || t.Routes[0].index == nil {
		return nil
	}
	p := "/"
	if r.URL != nil {
		p = CleanPath(r.URL.Path)
	}
	v := reqView{r: r, path: p, client: client}
	for _, rt := range t.Routes[0].index.candidates(NormalizeHost(r.Host)) {
		if rt.matchRest(&v) {
			return rt
		}
	}
	return nil
}

// matchLinear is Match without the host index: the reference the fuzz test
// compares Match against.
func (t *Table) matchLinear(r *http.Request, client netip.Addr) *Route {
	p := "/"
	if r.URL != nil {
		p = CleanPath(r.URL.Path)
	}
	v := reqView{r: r, path: p, client: client}
	h := NormalizeHost(r.Host)
	for _, rt := range t.Routes {
		if rt.matchHost(h) && rt.matchRest(&v) {
			return rt
		}
	}
	return nil
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
	if len(r.methods) > 0 {
		fmt.Fprintf(b, " method=%s", strings.Join(r.methods, ","))
	}
	for _, p := range r.cidrs {
		fmt.Fprintf(b, " client_cidr=%s", p)
	}
	b.WriteByte('\n')
	dumpNamed(b, "  header", r.headers)
	dumpNamed(b, "  query", r.query)
	dumpNamed(b, "  cookie", r.cookies)
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
