package routing

import (
	"cmp"
	"fmt"
	"math/bits"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/policy"
)

// DefaultExplainRoutes bounds the routes one explanation lists, so a table
// of ten thousand routes answers in a page, not a megabyte. Routes that
// failed on their host alone are dropped first: they are the least
// interesting and the most numerous.
const DefaultExplainRoutes = 200

// ExplainOptions tune ExplainHTTP.
type ExplainOptions struct {
	// Status returns an endpoint's full health status, for the reason
	// behind its state; the table's health members only know the state.
	// Nil leaves reasons out.
	Status func(pool, address string) (health.Status, bool)
	// MaxRoutes bounds the routes listed; 0 means DefaultExplainRoutes.
	MaxRoutes int
}

// HTTPExplanation is what the proxy would do with one request, and why:
// every route tried in order and the condition that failed, the route that
// matched, the split arm, the service's pool order for the client, the
// endpoint, and every candidate endpoint's health. The admin API serves it
// as JSON so an operator can see where a request goes without sending it.
//
// It is computed by the matching code the proxy runs (Table.Match decides
// the route; the per-route reasons come from the same matchers), and it
// changes no state: no round-robin slot, weighted draw or mirror sample is
// taken. Where the proxy's next choice depends on a counter, the explanation
// reads the counter's current value: the answer is what the next request
// would get if no other request came first.
type HTTPExplanation struct {
	Method string `json:"method"`
	// Host is the request's host as routes match it: lower case, without
	// port or trailing dot.
	Host string `json:"host"`
	// Path is the cleaned path the routes match and the upstream receives.
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`
	Client string `json:"client"`

	TableVersion string `json:"table_version"`
	// Status is the status Meridian would answer itself (400, 404, 405,
	// 503); 0 when the request goes upstream.
	Status int `json:"status,omitempty"`
	// Outcome says in one line what happens to the request.
	Outcome string `json:"outcome"`

	// Routes are the routes tried, in config order, up to the one that
	// matched. RoutesOmitted counts those left out to keep the answer
	// short (see DefaultExplainRoutes).
	Routes        []RouteTrial `json:"routes"`
	RoutesOmitted int          `json:"routes_omitted,omitempty"`
	Route         string       `json:"route,omitempty"`

	Split   *SplitExplanation   `json:"split,omitempty"`
	Service *ServiceExplanation `json:"service,omitempty"`
	Mirror  *MirrorExplanation  `json:"mirror,omitempty"`

	// Pool and Endpoint are where the request would go. Endpoint is empty
	// when the pool's balancer chooses at random (see the pool's pick).
	Pool     string `json:"pool,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`

	// Policies are the route's edge policies in the order they run
	// (package policy); any of them may answer the request itself.
	Policies []policy.Described `json:"policies,omitempty"`

	Notes []string `json:"notes,omitempty"`
}

// RouteTrial is one route tried for the request.
type RouteTrial struct {
	Index   int    `json:"index"`
	Name    string `json:"name"`
	Matched bool   `json:"matched"`
	// Failed lists every condition of the route that the request does not
	// meet; empty when it matched.
	Failed []Mismatch `json:"failed,omitempty"`
}

// Mismatch is one condition a request does not meet.
type Mismatch struct {
	// Condition is host, path, method, client_cidr, "header NAME",
	// "cookie NAME" or "query NAME".
	Condition string `json:"condition"`
	Want      string `json:"want"`
	Got       string `json:"got"`
}

func (m Mismatch) String() string {
	return fmt.Sprintf("%s: want %s, got %s", m.Condition, m.Want, m.Got)
}

// SplitExplanation is how a route's split chose an arm.
type SplitExplanation struct {
	// Rules are the split's when: rules tried in order, up to the first
	// that matched.
	Rules []RuleTrial `json:"rules,omitempty"`
	// Weights are the weighted entries as declared, with each one's share
	// of the hash range [0, total) that sticky keys are mapped into.
	Weights []SplitWeight      `json:"weights"`
	Sticky  *StickyExplanation `json:"sticky,omitempty"`
	// By is what decided: "rule", "sticky", "draw" (the next slot of the
	// weighted schedule), or "new_sticky_key": the request has no sticky
	// cookie, the proxy sets a fresh random one, and the arm is that key's,
	// known only by chance (each arm's share of the weights).
	By string `json:"by"`
	// Entry is the chosen entry's index in the route's split list; -1
	// when By is new_sticky_key.
	Entry   int    `json:"entry"`
	Service string `json:"service,omitempty"`
	Reason  string `json:"reason"`
	// Draw is the weighted schedule's slot that a draw takes next.
	Draw *Draw `json:"draw,omitempty"`
}

// RuleTrial is one split rule tried.
type RuleTrial struct {
	Entry   int        `json:"entry"`
	Service string     `json:"service"`
	Matched bool       `json:"matched"`
	Failed  []Mismatch `json:"failed,omitempty"`
}

// SplitWeight is one weighted split entry.
type SplitWeight struct {
	Entry   int     `json:"entry"`
	Service string  `json:"service"`
	Weight  int     `json:"weight"`
	Percent float64 `json:"percent"`
	// From and To bound the entry's range [From, To) of the points that
	// sticky keys hash to.
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// StickyExplanation is the sticky key of a split and where it hashes.
type StickyExplanation struct {
	// From is "cookie NAME" or "header NAME".
	From    string `json:"from"`
	Present bool   `json:"present"`
	Key     string `json:"key,omitempty"`
	// Hash is the key's 64-bit hash in hex (stable across instances);
	// Point is the hash scaled into [0, Of), the sum of the weights.
	Hash  string `json:"hash,omitempty"`
	Point uint64 `json:"point"`
	Of    uint64 `json:"of"`
	// Set says the proxy sets the cookie when the request has none.
	Set bool `json:"set,omitempty"`
}

// Draw is the slot of a weighted schedule that the next draw takes. The
// schedule is exact over time: each arm or pool has as many slots of Of as
// its weight says.
type Draw struct {
	Slot uint64 `json:"slot"`
	Of   int    `json:"of"`
}

// ServiceExplanation is how a service ordered its pools for the client and
// which pool and endpoint the request would get.
type ServiceExplanation struct {
	Name   string `json:"name"`
	Policy string `json:"policy"`
	// Location is where the client was placed; only geo services use it.
	Location *LocationExplanation `json:"location,omitempty"`
	Weights  []int                `json:"weights,omitempty"`
	// Draw is the weighted schedule's slot that decides the first pool.
	Draw   *Draw             `json:"draw,omitempty"`
	Order  []string          `json:"order"`
	Reason string            `json:"reason"`
	Pools  []PoolExplanation `json:"pools"`
	// Guard is the service's failover guard as last evaluated (guard.go);
	// nil without one.
	Guard *GuardStatus `json:"guard,omitempty"`
}

// LocationExplanation is the geo locator's placement of the client.
type LocationExplanation struct {
	Address string `json:"address"`
	Region  string `json:"region"`
	// Source is nets, mmdb or default; Network is the block that decided
	// (the address masked to Prefix bits).
	Source    string `json:"source"`
	Prefix    int    `json:"prefix"`
	Network   string `json:"network"`
	Country   string `json:"country,omitempty"`
	Continent string `json:"continent,omitempty"`
}

// PoolExplanation is one pool of the service, in policy order.
type PoolExplanation struct {
	Name     string `json:"name"`
	Region   string `json:"region,omitempty"`
	Balance  string `json:"balance"`
	FailOpen bool   `json:"fail_open"`
	// Available counts the endpoints that may get traffic now.
	Available int `json:"available"`
	// Result is "picked" (this pool serves), "none available", "not
	// reached" (an earlier pool served), or "panic: picked" (no pool had an
	// available endpoint and this one fails open).
	Result    string                `json:"result"`
	Pick      *PickExplanation      `json:"pick,omitempty"`
	Endpoints []EndpointExplanation `json:"endpoints"`
	// HeldBy names the services whose failover guards hold the pool in
	// service on endpoints failing health checks (guard.go); its
	// endpoints not drained or forced down then count as available.
	HeldBy []string `json:"held_by,omitempty"`
}

// PickExplanation is how a pool's balancer chose an endpoint.
type PickExplanation struct {
	Balance string `json:"balance"`
	// Endpoint is the endpoint picked; empty when the balancer chooses at
	// random, and Chances then gives each eligible endpoint's chance.
	Endpoint string `json:"endpoint,omitempty"`
	Panic    bool   `json:"panic,omitempty"`
	Reason   string `json:"reason"`
	// HashKey, Hash, Position, Positions and Home are for ring_hash and
	// maglev: the request's key, its hash, the ring point or table slot it
	// lands on (of Positions), and the endpoint owning that position
	// (Endpoint differs when Home is not eligible and the walk moved on).
	HashKey   string `json:"hash_key,omitempty"`
	Hash      string `json:"hash,omitempty"`
	Position  *int   `json:"position,omitempty"`
	Positions int    `json:"positions,omitempty"`
	Home      string `json:"home,omitempty"`
	// Draw is round robin's next schedule slot.
	Draw    *Draw    `json:"draw,omitempty"`
	Chances []Chance `json:"chances,omitempty"`
}

// Chance is one endpoint's chance of a random pick, in percent: its share
// of the eligible endpoints' weights. For least_request it is the share of
// the two draws, of which the less loaded wins.
type Chance struct {
	Endpoint string  `json:"endpoint"`
	Percent  float64 `json:"percent"`
}

// EndpointExplanation is one endpoint's health as the pick saw it.
type EndpointExplanation struct {
	Address   string `json:"address"`
	Weight    int    `json:"weight"`
	Available bool   `json:"available"`
	// Excluded is true when an operator drained it or forced it down:
	// even panic mode does not use it.
	Excluded bool   `json:"excluded,omitempty"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	InFlight int64  `json:"in_flight"`
}

// MirrorExplanation is the route's mirror and whether this request would
// be one of the mirrored share.
type MirrorExplanation struct {
	Service string  `json:"service"`
	Percent float64 `json:"percent"`
	// Sampled says whether the next request is mirrored: the share is
	// exact over time (every tenth request for 10%), not a coin.
	Sampled bool `json:"sampled"`
}

// ExplainHTTP explains what the proxy would do with r coming from client
// (the address routes and geo see: the trusted X-Forwarded-For hop when the
// peer is a trusted proxy). r is read as the proxy reads a request: r.Host
// (not a Host header), r.URL.Path cleaned, r.URL.RawQuery, r.Method and
// r.Header; r is not changed. See HTTPExplanation.
func (t *Table) ExplainHTTP(r *http.Request, client netip.Addr, opts ExplainOptions) *HTTPExplanation {
	ex := &HTTPExplanation{
		Method:       r.Method,
		Host:         NormalizeHost(r.Host),
		Client:       client.String(),
		TableVersion: t.Version,
		Routes:       []RouteTrial{},
	}
	if !client.IsValid() {
		ex.Client = ""
	}
	u := &url.URL{Path: "/"}
	if r.URL != nil {
		c := *r.URL
		u = &c
	}
	ex.Query = u.RawQuery
	ex.Path = u.Path
	// The proxy refuses these before routing (proxy checkRequest).
	if u.Path == "" && u.RawPath == "" {
		u.Path = "/"
	}
	switch {
	case r.Method == http.MethodConnect:
		ex.Status, ex.Outcome = http.StatusMethodNotAllowed, "refused: CONNECT is not supported"
		return ex
	case u.Path == "" || u.Path[0] != '/':
		ex.Status, ex.Outcome = http.StatusBadRequest, "refused: the path is not rooted"
		return ex
	case !(t.Config != nil && t.Config.HTTP.AllowAmbiguousPaths) && AmbiguousPath(u):
		ex.Status, ex.Outcome = http.StatusBadRequest, "refused: ambiguous path (an encoded dot, slash or backslash, a NUL or a raw backslash; see http.allow_ambiguous_paths)"
		return ex
	}
	if c := CleanPath(u.Path); c != u.Path {
		u.Path, u.RawPath = c, ""
		ex.Notes = append(ex.Notes, fmt.Sprintf("path %q is matched and forwarded as %q", ex.Path, c))
	}
	ex.Path = u.Path
	req := *r
	req.URL = u
	if req.Header == nil {
		req.Header = http.Header{}
	}

	route := t.Match(&req, client)
	t.explainRoutes(ex, route, &req, client, opts)
	if route == nil {
		ex.Status, ex.Outcome = http.StatusNotFound, "no route matches: the proxy answers 404"
		return ex
	}
	ex.Route = route.Name
	ex.Notes = append(ex.Notes, routeNotes(route)...)
	ex.Policies = route.Policy.Steps()
	if route.Policy.Redirects() {
		ex.Status = route.Config.Redirect.Code
		ex.Outcome = fmt.Sprintf("route %s: redirected (%d) to %s, after the policies before it", route.Name, route.Config.Redirect.Code, route.Config.Redirect.To)
		return ex
	}
	if m := route.Mirror; m != nil {
		ex.Mirror = &MirrorExplanation{Service: m.Name, Percent: route.Config.Mirror.Percent, Sampled: route.mirrorPeek()}
	}

	svc := route.Service
	if sp := route.Split; sp != nil {
		ex.Split, svc = sp.explain(&req)
	}
	if svc == nil {
		ex.Outcome = "the split arm is decided by the fresh sticky key the proxy sets; pass the cookie to see where a given key goes"
		return ex
	}
	ex.Service = t.explainService(svc, &req, client, opts)
	for _, p := range ex.Service.Pools {
		if strings.HasSuffix(p.Result, "picked") {
			ex.Pool = p.Name
			if p.Pick != nil {
				ex.Endpoint = p.Pick.Endpoint
			}
		}
	}
	switch {
	case ex.Pool == "":
		ex.Status, ex.Outcome = http.StatusServiceUnavailable, fmt.Sprintf("route %s, service %s: no endpoint available in any pool: the proxy answers 503", route.Name, svc.Name)
	case ex.Endpoint == "":
		ex.Outcome = fmt.Sprintf("route %s, service %s, pool %s: a random eligible endpoint (see chances)", route.Name, svc.Name, ex.Pool)
	default:
		ex.Outcome = fmt.Sprintf("route %s, service %s, pool %s, endpoint %s", route.Name, svc.Name, ex.Pool, ex.Endpoint)
	}
	return ex
}

// explainRoutes lists the routes tried before the match (all of them when
// none matched), each with every condition it failed, by the same matchers
// Match runs. Match, through the index, decides; a route the list finds
// matching ahead of it would be a bug in one of the two, and is reported.
func (t *Table) explainRoutes(ex *HTTPExplanation, route *Route, r *http.Request, client netip.Addr, opts ExplainOptions) {
	end := len(t.Routes)
	if route != nil {
		end = route.Index + 1
	}
	v := reqView{r: r, path: r.URL.Path, client: client}
	host := NormalizeHost(r.Host)
	trials := make([]RouteTrial, 0, min(end, 1024))
	for _, rt := range t.Routes[:end] {
		failed := rt.mismatches(host, &v)
		tr := RouteTrial{Index: rt.Index, Name: rt.Name, Matched: len(failed) == 0, Failed: failed}
		if tr.Matched != (rt == route) {
			ex.Notes = append(ex.Notes, fmt.Sprintf("internal: route %s: the explanation says matched=%t, Match disagrees; please report this", rt.Name, tr.Matched))
		}
		trials = append(trials, tr)
	}
	limit := opts.MaxRoutes
	if limit <= 0 {
		limit = DefaultExplainRoutes
	}
	if len(trials) > limit {
		kept := trials[:0]
		for _, tr := range trials {
			if len(tr.Failed) == 1 && tr.Failed[0].Condition == "host" {
				ex.RoutesOmitted++
				continue
			}
			kept = append(kept, tr)
		}
		trials = kept
		if len(trials) > limit {
			last := trials[len(trials)-1]
			ex.RoutesOmitted += len(trials) - limit
			trials = append(trials[:limit-1], last)
		}
		ex.Notes = append(ex.Notes, fmt.Sprintf("%d routes tried are not listed (routes failing on host alone first)", ex.RoutesOmitted))
	}
	ex.Routes = trials
}

// mismatches returns every condition of the route that the request (host
// normalised, v.path cleaned) does not meet, in the order the matcher
// checks them; none means the route matches.
func (rt *Route) mismatches(host string, v *reqView) []Mismatch {
	var out []Mismatch
	if !rt.matchHost(host) {
		hosts := slices.Clone(rt.host)
		for _, w := range rt.wildcards {
			hosts = append(hosts, "*"+w)
		}
		out = append(out, Mismatch{Condition: "host", Want: strings.Join(hosts, " or "), Got: cmp.Or(host, "(none)")})
	}
	if !rt.path.match(v.path) {
		out = append(out, Mismatch{Condition: "path", Want: rt.path.String(), Got: v.path})
	}
	c := rt.cond
	if c == nil {
		return out
	}
	if len(c.methods) > 0 && !slices.Contains(c.methods, v.r.Method) {
		out = append(out, Mismatch{Condition: "method", Want: strings.Join(c.methods, " or "), Got: v.r.Method})
	}
	if len(c.cidrs) > 0 {
		a := v.client.Unmap()
		if !slices.ContainsFunc(c.cidrs, func(p netip.Prefix) bool { return p.Contains(a) }) {
			nets := make([]string, len(c.cidrs))
			for i, p := range c.cidrs {
				nets[i] = p.String()
			}
			got := "unknown client"
			if v.client.IsValid() {
				got = v.client.String()
			}
			out = append(out, Mismatch{Condition: "client_cidr", Want: strings.Join(nets, " or "), Got: got})
		}
	}
	out = appendHeaderMismatches(out, c.headers(), v.r.Header)
	out = appendCookieMismatches(out, c.cookieNames(), v.r.Header)
	out = appendQueryMismatches(out, c.queryParams(), v)
	return out
}

// The three appenders below evaluate one matcher at a time with the calls
// matchHeaders, matchCookies and matchQuery make, so a reason is given
// exactly when the matcher fails.

func appendHeaderMismatches(out []Mismatch, ms []namedMatcher, h http.Header) []Mismatch {
	for i := range ms {
		if vals := h[ms[i].name]; !ms[i].matchAny(vals) {
			out = append(out, Mismatch{Condition: "header " + ms[i].name, Want: ms[i].valueMatcher.String(), Got: valuesOr(vals, "absent")})
		}
	}
	return out
}

func appendCookieMismatches(out []Mismatch, ms []namedMatcher, h http.Header) []Mismatch {
	for i := range ms {
		val, ok := CookieValue(h, ms[i].name)
		if !ms[i].matchOne(val, ok) {
			got := "absent"
			if ok {
				got = fmt.Sprintf("%q", val)
			}
			out = append(out, Mismatch{Condition: "cookie " + ms[i].name, Want: ms[i].valueMatcher.String(), Got: got})
		}
	}
	return out
}

func appendQueryMismatches(out []Mismatch, ms []namedMatcher, v *reqView) []Mismatch {
	if len(ms) == 0 {
		return out
	}
	q := v.queryValues()
	for i := range ms {
		if vals := q[ms[i].name]; !ms[i].matchAny(vals) {
			out = append(out, Mismatch{Condition: "query " + ms[i].name, Want: ms[i].valueMatcher.String(), Got: valuesOr(vals, "absent")})
		}
	}
	return out
}

func valuesOr(vals []string, none string) string {
	if len(vals) == 0 {
		return none
	}
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

func quoteOr(s, none string) string {
	if s == "" {
		return none
	}
	return fmt.Sprintf("%q", s)
}

func (m *pathMatcher) String() string {
	switch m.kind {
	case pathExact:
		return "exactly " + m.value
	case pathPrefix:
		return "prefix " + m.value
	case pathRegex:
		return fmt.Sprintf("regex %q", m.value)
	}
	return "any path"
}

// routeNotes are what the route does besides sending the request to a
// service, when that could surprise: the proxy may answer before the
// upstream is involved.
func routeNotes(rt *Route) []string {
	var out []string
	c := rt.Config
	if c == nil {
		return nil
	}
	if c.RedirectHTTPS {
		out = append(out, "redirect_https: on the plain HTTP listener the proxy redirects to HTTPS instead")
	}
	if c.TLS != nil && c.TLS.ClientAuth == "require" {
		out = append(out, "tls.client_auth require: only clients presenting a certificate from the route's CA reach it")
	}
	return out
}

// mirrorPeek reports whether the next request is one of the mirrored
// share (MirrorSample's decision for the next count), without counting.
func (r *Route) mirrorPeek() bool {
	m := r.mirror
	if m == nil {
		return false
	}
	n := m.seq.Load() + 1
	return n*m.per10k/10000 != (n-1)*m.per10k/10000
}

// peek returns the index the next pick returns and the slot it reads,
// without taking the slot; -1 when the schedule is empty.
func (s *wrrState) peek() (int, *Draw) {
	if len(s.schedule) == 0 {
		return -1, nil
	}
	slot := s.next.Load() % uint64(len(s.schedule))
	return int(s.schedule[slot]), &Draw{Slot: slot, Of: len(s.schedule)}
}

// explain decides like choose, in the same order (rules, sticky key,
// weighted schedule), but takes no slot and mints no key. The service is
// nil when the arm depends on a key the proxy has yet to mint.
func (sp *Split) explain(req *http.Request) (*SplitExplanation, *Service) {
	ex := &SplitExplanation{Entry: -1}
	for _, a := range sp.arms {
		ex.Weights = append(ex.Weights, SplitWeight{
			Entry: a.entry, Service: a.service.Name, Weight: a.weight,
			Percent: percent(uint64(a.weight), sp.total), From: a.upper - uint64(a.weight), To: a.upper,
		})
	}
	v := reqView{r: req}
	for i := range sp.rules {
		ru := &sp.rules[i]
		failed := appendHeaderMismatches(nil, ru.header, req.Header)
		failed = appendCookieMismatches(failed, ru.cookie, req.Header)
		failed = appendQueryMismatches(failed, ru.query, &v)
		ex.Rules = append(ex.Rules, RuleTrial{Entry: ru.entry, Service: ru.service.Name, Matched: len(failed) == 0, Failed: failed})
		if len(failed) == 0 {
			ex.By, ex.Entry, ex.Service = "rule", ru.entry, ru.service.Name
			ex.Reason = fmt.Sprintf("rule split[%d] matched: %s", ru.entry, ruleText(ru))
			return ex, ru.service
		}
	}
	if s := sp.sticky; s != nil {
		st := &StickyExplanation{Of: sp.total, Set: s.Set && sp.stCookie != ""}
		if sp.stHdr != "" {
			st.From = "header " + sp.stHdr
		} else {
			st.From = "cookie " + sp.stCookie
		}
		ex.Sticky = st
		key, ok := sp.stickyKey(req)
		switch {
		case ok:
			h := hashString(key)
			a := sp.armFor(h)
			st.Present, st.Key, st.Hash = true, key, fmt.Sprintf("%016x", h)
			st.Point, _ = bits.Mul64(h, sp.total)
			ex.By, ex.Entry, ex.Service = "sticky", a.entry, a.service.Name
			ex.Reason = fmt.Sprintf("sticky %s %q hashes to point %d of [0, %d), in split[%d]'s range [%d, %d)",
				st.From, key, st.Point, sp.total, a.entry, a.upper-uint64(a.weight), a.upper)
			return ex, a.service
		case st.Set:
			ex.By = "new_sticky_key"
			ex.Reason = fmt.Sprintf("no %s: the proxy sets a fresh random key, which lands in each arm with its weight's share (%s)", st.From, sharesText(ex.Weights))
			return ex, nil
		}
		ex.Reason = fmt.Sprintf("no %s, so a weighted draw: ", st.From)
	}
	i, d := sp.wrr.peek()
	a := &sp.arms[i]
	ex.By, ex.Entry, ex.Service, ex.Draw = "draw", a.entry, a.service.Name, d
	ex.Reason += fmt.Sprintf("the weighted schedule's next slot (%d of %d, weights %s) is split[%d]", d.Slot, d.Of, sharesText(ex.Weights), a.entry)
	return ex, a.service
}

func ruleText(ru *splitRule) string {
	var parts []string
	for _, g := range []struct {
		label string
		ms    []namedMatcher
	}{{"header", ru.header}, {"cookie", ru.cookie}, {"query", ru.query}} {
		for i := range g.ms {
			parts = append(parts, fmt.Sprintf("%s %s %s", g.label, g.ms[i].name, g.ms[i].valueMatcher.String()))
		}
	}
	if len(parts) == 0 {
		return "no conditions"
	}
	return strings.Join(parts, ", ")
}

func sharesText(ws []SplitWeight) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprintf("%s %d", w.Service, w.Weight)
	}
	return strings.Join(parts, ", ")
}

func percent(part, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return float64(int64(float64(part)*10000/float64(total)+0.5)) / 100
}

// explainService orders the service's pools as the proxy's pick does and
// runs its two passes (available endpoints first, then panic mode) with
// non-consuming picks.
func (t *Table) explainService(svc *Service, req *http.Request, client netip.Addr, opts ExplainOptions) *ServiceExplanation {
	ex := &ServiceExplanation{Name: svc.Name, Policy: string(svc.Policy), Order: []string{}, Pools: []PoolExplanation{}, Guard: svc.GuardStatus()}
	var order []*Pool
	switch svc.Policy {
	case config.PolicyGeo:
		region := ""
		if t.Geo != nil {
			res := t.Geo.Lookup(client)
			region = res.Region
			loc := &LocationExplanation{Address: client.String(), Region: res.Region, Source: res.Source, Prefix: res.Prefix, Country: res.Country, Continent: res.Continent}
			if client.IsValid() {
				if p, err := client.Unmap().Prefix(res.Prefix); err == nil {
					loc.Network = p.String()
				}
			} else {
				loc.Address = ""
			}
			ex.Location = loc
		}
		order = svc.Order(nil, region)
		ex.Reason = fmt.Sprintf("geo: the client's region %s first, then the other pools as listed", quoteOr(region, "(none)"))
		if l := ex.Location; l != nil {
			ex.Reason = fmt.Sprintf("geo: client %s is in region %s (%s, %s); its pools first, then the others as listed",
				quoteOr(l.Address, "(unknown)"), quoteOr(region, "(none)"), l.Source, cmp.Or(l.Network, "no network"))
		}
	case config.PolicyWeighted:
		ex.Weights = svc.Weights
		first, d := svc.wrr.peek()
		ex.Draw = d
		if first >= 0 {
			order = append(order, svc.Pools[first])
		}
		for i, p := range svc.Pools {
			if i != first {
				order = append(order, p)
			}
		}
		if first >= 0 {
			ex.Reason = fmt.Sprintf("weighted %v: the schedule's next slot (%d of %d) puts %s first, the others follow as listed", svc.Weights, d.Slot, d.Of, svc.Pools[first].Name)
		} else {
			ex.Reason = "weighted with no positive weight: the pools as listed"
		}
	default:
		order = svc.Order(nil, "")
		ex.Reason = "failover: the pools as listed"
	}
	pools := make([]PoolExplanation, len(order))
	chosen := -1
	for i, p := range order {
		ex.Order = append(ex.Order, p.Name)
		pools[i] = explainPool(p, opts)
		pools[i].Result = "not reached"
	}
	// Pass one: an available endpoint, pools in order (proxy exchange.pick).
	for i, p := range order {
		hash, hashed := p.HashKey(req, client)
		pk := peekPick(p, req, client, pickKey{hash: hash, hashed: hashed})
		pools[i].Pick = pk
		if pk != nil {
			pools[i].Result, chosen = "picked", i
			break
		}
		pools[i].Result = "none available"
	}
	// Pass two: panic mode, pools that fail open in order.
	for i, p := range order {
		if chosen >= 0 {
			break
		}
		if ok, panicMode := p.Usable(); ok && panicMode {
			hash, hashed := p.HashKey(req, client)
			if pk := peekPick(p, req, client, pickKey{hash: hash, hashed: hashed, all: true}); pk != nil {
				pk.Panic = true
				pools[i].Pick, pools[i].Result, chosen = pk, "panic: picked", i
			}
		}
	}
	ex.Pools = pools
	return ex
}

func explainPool(p *Pool, opts ExplainOptions) PoolExplanation {
	balance := string(p.Balance)
	if balance == "" {
		balance = string(config.BalanceRoundRobin)
	}
	pe := PoolExplanation{Name: p.Name, Region: p.Region, Balance: balance, FailOpen: p.FailOpen, Endpoints: []EndpointExplanation{}, HeldBy: p.HeldBy()}
	for _, e := range p.Endpoints {
		ee := EndpointExplanation{Address: e.Address, Weight: e.Weight, Available: e.Available(), Excluded: e.Excluded(), InFlight: e.InFlight(), State: string(health.StateUp)}
		if e.Health == nil {
			ee.Reason = "no health member: the table is not bound to the health engine"
		} else {
			ee.State = string(e.Health.State())
		}
		if opts.Status != nil {
			if st, ok := opts.Status(p.Name, e.Address); ok {
				ee.Reason = st.Reason
			}
		}
		if ee.Available && !e.healthy() {
			ee.Reason = strings.TrimPrefix(ee.Reason+"; ", "; ") + "held in service by the failover guard of " + cmp.Or(strings.Join(p.HeldBy(), ", "), "a service")
		}
		if ee.Available {
			pe.Available++
		}
		pe.Endpoints = append(pe.Endpoints, ee)
	}
	return pe
}

// peekPick is what Pool.Pick would return for k, without the state a pick
// changes: round robin reads its next slot instead of taking it, the
// random balancers report each eligible endpoint's chance. It returns nil
// when no endpoint is eligible, which is when Pick returns nil.
func peekPick(p *Pool, req *http.Request, client netip.Addr, k pickKey) *PickExplanation {
	if len(p.Endpoints) == 0 || !anyEligible(p, &k) {
		return nil
	}
	balance := string(p.Balance)
	if balance == "" {
		balance = string(config.BalanceRoundRobin)
	}
	pe := &PickExplanation{Balance: balance}
	eligible := func() string {
		if k.all {
			return "endpoints not drained or forced down (panic mode)"
		}
		return "available endpoints"
	}
	switch pk := p.picker.(type) {
	case *roundRobin:
		s := pk.wrr.schedule
		n := pk.wrr.next.Load()
		for i := range min(len(s), 2*len(p.Endpoints)+2) {
			slot := (n + uint64(i)) % uint64(len(s))
			if e := p.Endpoints[s[slot]]; k.eligible(e) {
				pe.Endpoint, pe.Draw = e.Address, &Draw{Slot: slot, Of: len(s)}
				pe.Reason = fmt.Sprintf("round robin: schedule slot %d of %d", slot, len(s))
				if i > 0 {
					pe.Reason += fmt.Sprintf(" (the %d slot(s) before it hold endpoints that are not eligible)", i)
				}
				return pe
			}
		}
		pe.Reason = "round robin: no eligible endpoint in the next slots, so a weighted random choice among the " + eligible()
	case *leastRequest:
		pe.Reason = "least request: the less loaded (in flight per weight) of two weighted random draws among the " + eligible()
	case *randomPicker:
		pe.Reason = "random: a weighted random choice among the " + eligible()
	case *ring:
		if pe.hashKey(&pk.hashOn, req, client, k) && len(pk.points) > 0 {
			i := sort.Search(len(pk.points), func(i int) bool { return pk.points[i] >= k.hash })
			pos := i % len(pk.points)
			pe.Position, pe.Positions = &pos, len(pk.points)
			pe.Home = p.Endpoints[pk.owner[pos]].Address
			return pe.hashed(pk.pick(p, k), "ring point")
		}
		pe.Reason = "ring_hash without a key: a weighted random choice among the " + eligible()
	case *maglev:
		if pe.hashKey(&pk.hashOn, req, client, k) && len(pk.table) > 0 {
			pos := int(k.hash % uint64(len(pk.table)))
			pe.Position, pe.Positions = &pos, len(pk.table)
			pe.Home = p.Endpoints[pk.table[pos]].Address
			return pe.hashed(pk.pick(p, k), "maglev table slot")
		}
		pe.Reason = "maglev without a key: a weighted random choice among the " + eligible()
	}
	pe.Chances = chances(p, &k)
	if len(pe.Chances) == 1 {
		pe.Endpoint = pe.Chances[0].Endpoint
		pe.Reason += ": only one is eligible"
	}
	return pe
}

// hashKey describes the request's hash key for the pool (hashOn.key's
// choice: header, cookie or client address) and reports whether it has one.
func (pe *PickExplanation) hashKey(h *hashOn, req *http.Request, client netip.Addr, k pickKey) bool {
	switch {
	case h.header != "":
		pe.HashKey = "header " + h.header
		if v := req.Header[h.header]; len(v) > 0 && v[0] != "" {
			pe.HashKey += fmt.Sprintf(" %q", v[0])
		} else {
			pe.HashKey += " (absent)"
		}
	case h.cookie != "":
		pe.HashKey = "cookie " + h.cookie
		if v, ok := CookieValue(req.Header, h.cookie); ok && v != "" {
			pe.HashKey += fmt.Sprintf(" %q", v)
		} else {
			pe.HashKey += " (absent)"
		}
	default:
		pe.HashKey = "client address"
		if client.IsValid() {
			pe.HashKey += " " + client.Unmap().String()
		} else {
			pe.HashKey += " (unknown)"
		}
	}
	if k.hashed {
		pe.Hash = fmt.Sprintf("%016x", k.hash)
	}
	return k.hashed
}

// hashed completes a ring or maglev explanation with the endpoint the
// balancer's own pick returned (a hashed pick changes no state).
func (pe *PickExplanation) hashed(e *Endpoint, what string) *PickExplanation {
	if e == nil {
		return nil
	}
	pe.Endpoint = e.Address
	pe.Reason = fmt.Sprintf("%s: %s hashes to %s %d of %d, owned by %s", pe.Balance, pe.HashKey, what, *pe.Position, pe.Positions, pe.Home)
	if pe.Home != e.Address {
		pe.Reason += fmt.Sprintf(", which is not eligible; the walk moves on to %s", e.Address)
	}
	return pe
}

// chances is each eligible endpoint's chance of eligibleRandom, the
// weighted random choice every balancer falls back to.
func chances(p *Pool, k *pickKey) []Chance {
	var sum uint64
	for _, e := range p.Endpoints {
		if k.eligible(e) {
			sum += uint64(max(e.Weight, 1))
		}
	}
	var out []Chance
	for _, e := range p.Endpoints {
		if k.eligible(e) {
			out = append(out, Chance{Endpoint: e.Address, Percent: percent(uint64(max(e.Weight, 1)), sum)})
		}
	}
	return out
}
