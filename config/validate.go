package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// validator collects problems; each check appends and moves on, so one run
// reports everything that is wrong.
type validator struct {
	c     *Config
	probs []Problem
	// regexps holds each distinct expression the config uses, compiled
	// once: configs repeat the same matcher on many routes.
	regexps map[string]compiledRegexp
}

// compiledRegexp is one expression's compile result, error included, so a
// bad expression repeated on several routes is reported at each of them.
type compiledRegexp struct {
	re  *regexp.Regexp
	err error
}

// regexp compiles expr, or returns the result of compiling it before.
func (v *validator) regexp(expr string) error {
	r, ok := v.regexps[expr]
	if !ok {
		re, err := regexp.Compile(expr)
		r = compiledRegexp{re: re, err: err}
		if v.regexps == nil {
			v.regexps = map[string]compiledRegexp{}
		}
		v.regexps[expr] = r
	}
	return r.err
}

func (v *validator) add(path, format string, args ...any) {
	v.probs = append(v.probs, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// validate returns the problems and, for Parse to keep on the config, every
// regular expression it compiled on the way (nil when there is none).
func (c *Config) validate() ([]Problem, map[string]*regexp.Regexp) {
	v := &validator{c: c}
	v.listen()
	v.logAndAdmin()
	v.tls()
	v.consul()
	v.fleet() // validate_fleet.go
	v.geo()
	v.http()
	v.dns()
	for _, name := range sortedKeys(c.Checks) {
		v.check("checks."+name, c.Checks[name])
	}
	for _, name := range sortedKeys(c.Pools) {
		v.pool("pools."+name, c.Pools[name])
	}
	for _, name := range sortedKeys(c.Services) {
		v.service("services."+name, c.Services[name])
	}
	names := map[string]int{}
	for i, r := range c.Routes {
		p := "routes[" + strconv.Itoa(i) + "]"
		if r == nil {
			v.add(p, "empty route")
			continue
		}
		if j, dup := names[r.Name]; dup {
			v.add(p+".name", "duplicate route name %q (also routes[%d])", r.Name, j)
		}
		names[r.Name] = i
		v.route(p, r)
	}
	// Zones are checked by compiling them (package dns/zone), the only
	// code that parses records: routing.Compile on every reload, and
	// Parse's extra checks for meridian validate.
	var res map[string]*regexp.Regexp
	if len(v.regexps) > 0 {
		res = make(map[string]*regexp.Regexp, len(v.regexps))
		for expr, r := range v.regexps {
			if r.err == nil {
				res[expr] = r.re
			}
		}
	}
	return v.probs, res
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (v *validator) listen() {
	l := v.c.Listen
	type bind struct{ path, addr string }
	seen := map[string]string{}
	for _, b := range []bind{{"listen.http", l.HTTP}, {"listen.https", l.HTTPS}, {"listen.dns", l.DNS}, {"listen.admin", l.Admin}} {
		if b.addr == "" {
			continue
		}
		host, port, err := net.SplitHostPort(b.addr)
		if err != nil {
			v.add(b.path, "invalid address %q: want host:port", b.addr)
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			v.add(b.path, "invalid port %q", port)
			continue
		}
		if port == "0" {
			continue // the kernel picks: never collides
		}
		key := canonicalHost(host) + ":" + port
		if other, dup := seen[key]; dup {
			v.add(b.path, "address %s collides with %s", b.addr, other)
		}
		seen[key] = b.path
	}
	if l.HTTPS != "" && len(v.c.TLS.Certificates) == 0 && v.c.TLS.ACME == nil {
		v.add("listen.https", "needs tls.certificates or tls.acme")
	}
}

// canonicalHost makes "localhost", "127.0.0.1" and "" comparable enough to
// catch the collisions operators actually write.
func canonicalHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		if a.IsUnspecified() {
			return ""
		}
		return a.Unmap().String()
	}
	if h == "localhost" {
		return "127.0.0.1"
	}
	return strings.ToLower(h)
}

func (v *validator) logAndAdmin() {
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, v.c.Log.Level) {
		v.add("log.level", "unknown level %q: want debug, info, warn or error", v.c.Log.Level)
	}
	if !slices.Contains([]string{"json", "console"}, v.c.Log.Format) {
		v.add("log.format", "unknown format %q: want json or console", v.c.Log.Format)
	}
}

func (v *validator) tls() {
	t := v.c.TLS
	for i, c := range t.Certificates {
		p := fmt.Sprintf("tls.certificates[%d]", i)
		if c.Cert == "" {
			v.add(p+".cert", "missing certificate file")
		}
		if c.Key == "" {
			v.add(p+".key", "missing key file")
		}
	}
	if t.MinVersion != "1.2" && t.MinVersion != "1.3" {
		v.add("tls.min_version", "unsupported version %q: want 1.2 or 1.3", t.MinVersion)
	}
	if t.UnknownSNI != "default" && t.UnknownSNI != "fail" {
		v.add("tls.unknown_sni", "want default or fail, not %q", t.UnknownSNI)
	}
	if a := t.ACME; a != nil {
		v.acme(a)
	}
}

func (v *validator) acme(a *ACME) {
	if v.c.Listen.HTTPS == "" {
		v.add("tls.acme", "ACME certificates are served on listen.https, which is not set")
	}
	if u, err := url.Parse(a.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
		v.add("tls.acme.directory", "want the CA's https:// directory URL, not %q", a.Directory)
	}
	if a.Email != "" && !strings.Contains(a.Email, "@") {
		v.add("tls.acme.email", "invalid address %q", a.Email)
	}
	if len(a.Domains) == 0 {
		v.add("tls.acme.domains", "at least one domain is needed")
	}
	seen := map[string]bool{}
	for i, d := range a.Domains {
		p := fmt.Sprintf("tls.acme.domains[%d]", i)
		name := strings.ToLower(strings.TrimSuffix(d, "."))
		if msg := acmeDomainProblem(d, name); msg != "" {
			v.add(p, "%s", msg)
		} else if seen[name] {
			v.add(p, "duplicate domain %q", d)
		}
		seen[name] = true
	}
	if a.Storage == "" {
		v.add("tls.acme.storage", "missing storage directory (it keeps the account and certificates across restarts)")
	}
	if len(a.Challenges) == 0 {
		v.add("tls.acme.challenges", "at least one challenge type is needed")
	}
	for i, c := range a.Challenges {
		if c != ChallengeHTTP01 && c != ChallengeTLSALPN01 {
			v.add(fmt.Sprintf("tls.acme.challenges[%d]", i), "want %s or %s, not %q", ChallengeHTTP01, ChallengeTLSALPN01, c)
		}
	}
}

// acmeDomainProblem says why a CA would refuse d (name is d normalised),
// or "" when it is a plain host name: letters, digits and hyphens in
// labels of at most 63 characters, two labels at least.
func acmeDomainProblem(d, name string) string {
	switch {
	case strings.HasPrefix(name, "*."):
		return fmt.Sprintf("wildcard %q needs the DNS-01 challenge, which Meridian does not run: list the names, or configure a wildcard certificate in tls.certificates", d)
	case net.ParseIP(name) != nil:
		return fmt.Sprintf("%q is an address: ACME certificates here are for names", d)
	}
	if a, err := idna.Lookup.ToASCII(name); err == nil && a != name {
		return fmt.Sprintf("internationalized name %q: write its ASCII form %q", d, a)
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 || len(name) > 253 {
		return fmt.Sprintf("invalid domain %q: want a fully qualified name", d)
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' || strings.IndexFunc(l, func(c rune) bool {
			return !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-')
		}) >= 0 {
			return fmt.Sprintf("invalid domain %q: labels are letters, digits and inner hyphens", d)
		}
	}
	return ""
}

func (v *validator) consul() {
	c := v.c.Consul
	if c == nil {
		return
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		v.add("consul.cert_file", "cert_file and key_file go together")
	}
	if c.Register != nil && v.c.Listen.HTTP == "" && v.c.Listen.HTTPS == "" {
		v.add("consul.register", "registering needs listen.http or listen.https to announce")
	}
}

var continents = []string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"}

func (v *validator) geo() {
	g := v.c.Geo
	for _, cidr := range sortedKeys(g.Nets) {
		p := "geo.nets." + cidr
		if _, err := ParsePrefix(cidr); err != nil {
			v.add(p, "invalid CIDR %q", cidr)
		}
		if g.Nets[cidr] == "" {
			v.add(p, "empty region")
		}
	}
	for _, name := range sortedKeys(g.Regions) {
		r := g.Regions[name]
		for i, c := range r.Continents {
			if !slices.Contains(continents, c) {
				v.add(fmt.Sprintf("geo.regions.%s.continents[%d]", name, i), "unknown continent code %q: want one of %s", c, strings.Join(continents, " "))
			}
		}
		for i, c := range r.Countries {
			if len(c) != 2 || strings.ToUpper(c) != c {
				v.add(fmt.Sprintf("geo.regions.%s.countries[%d]", name, i), "want an ISO 3166 two-letter code in capitals, not %q", c)
			}
		}
	}
}

func (v *validator) http() {
	for i, c := range v.c.HTTP.TrustedProxies {
		if _, err := ParsePrefix(c); err != nil {
			v.add(fmt.Sprintf("http.trusted_proxies[%d]", i), "invalid CIDR %q", c)
		}
	}
	if v.c.HTTP.MaxConns < 0 {
		v.add("http.max_conns", "must not be negative")
	}
	v.accessLog()
	v.tracing()
}

// minAccessLogBuffer is the smallest http.access_log.buffer: a line with a
// full request head must fit.
const minAccessLogBuffer = 64 << 10

// maxAccessLogBuffer bounds http.access_log.buffer: a larger queue only
// delays the drops a disk that cannot keep up makes certain.
const maxAccessLogBuffer = 1 << 30

func (v *validator) accessLog() {
	al := &v.c.HTTP.AccessLog
	if !al.Enabled() {
		return
	}
	if strings.TrimSpace(al.To) != al.To {
		v.add("http.access_log.to", "%q has surrounding spaces", al.To)
	}
	if s := al.Sample; s != nil && !(*s >= 0 && *s <= 1) {
		v.add("http.access_log.sample", "is a share between 0 and 1, not %g", *s)
	}
	for i, name := range al.RedactQuery {
		if name == "" {
			v.add(fmt.Sprintf("http.access_log.redact_query[%d]", i), "empty parameter name")
		}
	}
	if b := al.Buffer; b != 0 && (b < minAccessLogBuffer || b > maxAccessLogBuffer) {
		v.add("http.access_log.buffer", "must be between 64KiB and 1GiB, not %d bytes", int64(b))
	}
}

func (v *validator) tracing() {
	tr := v.c.Tracing
	if tr == nil {
		return
	}
	if tr.OTLP != "" {
		if u, err := url.Parse(tr.OTLP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			v.add("tracing.otlp", "want an http:// or https:// collector URL such as http://127.0.0.1:4318, not %q", tr.OTLP)
		}
	}
	if s := tr.Sample; s != nil && !(*s >= 0 && *s <= 1) {
		v.add("tracing.sample", "is a share between 0 and 1, not %g", *s)
	}
	if tr.ServiceName == "" {
		v.add("tracing.service_name", "empty service name")
	}
}

func (v *validator) dns() {
	d := v.c.DNS
	if d.UDPSize < 512 || d.UDPSize > 65535 {
		v.add("dns.udp_size", "must be between 512 and 65535, not %d", d.UDPSize)
	}
	if d.MaxAnswers < 1 {
		v.add("dns.max_answers", "must be at least 1")
	}
	if d.QueryLog < 0 || d.QueryLog > 1 {
		v.add("dns.query_log", "is a share between 0 and 1, not %g", d.QueryLog)
	}
	if r := d.RRL; r != nil {
		if r.ResponsesPerSecond < 1 {
			v.add("dns.rrl.responses_per_second", "must be at least 1")
		}
		if r.Slip < 0 {
			v.add("dns.rrl.slip", "must not be negative")
		}
		if r.IPv4Prefix < 1 || r.IPv4Prefix > 32 {
			v.add("dns.rrl.ipv4_prefix", "must be 1-32")
		}
		if r.IPv6Prefix < 1 || r.IPv6Prefix > 128 {
			v.add("dns.rrl.ipv6_prefix", "must be 1-128")
		}
	}
}

// Check types, balancers, policies, protocols and on_all_down values are
// typed names that decoding already checked (see enums.go).
var (
	retryOn = []string{"connect_failure", "reset", "timeout", "502", "503", "504"}
	tokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

func (v *validator) check(p string, c *Check) {
	if c == nil {
		v.add(p, "empty check")
		return
	}
	if c.Type == "" {
		v.add(p+".type", "missing check type: want http, https, tcp or dns")
	}
	if c.Timeout >= c.Interval {
		v.add(p+".timeout", "timeout %s must be below the interval %s", c.Timeout.D(), c.Interval.D())
	}
	if c.Rise < 1 {
		v.add(p+".rise", "must be at least 1")
	}
	if c.Fall < 1 {
		v.add(p+".fall", "must be at least 1")
	}
	if c.Jitter < 0 || c.Jitter > 1 {
		v.add(p+".jitter", "is a share of the interval between 0 and 1, not %g", c.Jitter)
	}
	if c.Initial != "up" && c.Initial != "down" {
		v.add(p+".initial", "want up or down, not %q", c.Initial)
	}
	switch c.Type {
	case CheckHTTP, CheckHTTPS:
		if !strings.HasPrefix(c.Path, "/") {
			v.add(p+".path", "must start with /")
		}
		if !tokenRE.MatchString(c.Method) {
			v.add(p+".method", "invalid method %q", c.Method)
		}
	}
	if c.ReuseConnection != nil && c.Type != CheckHTTP {
		v.add(p+".reuse_connection", "applies to http checks only (https checks and tcp connect per probe)")
	}
	switch c.Type {
	case CheckDNS:
		// qtype and rcode are DNS names, which package health (the DNS
		// probe) parses and routing.Compile checks.
		if c.QName == "" {
			v.add(p+".qname", "a dns check needs the name to query")
		}
	}
}

func (v *validator) pool(p string, pl *Pool) {
	if pl == nil {
		v.add(p, "empty pool")
		return
	}
	if len(pl.Endpoints) == 0 && pl.Consul == nil {
		v.add(p, "needs endpoints or a consul selection")
	}
	if l := pl.Limits; l != nil {
		for _, f := range []struct {
			key string
			n   int
		}{{"max_connections", l.MaxConnections}, {"max_pending", l.MaxPending}, {"max_requests", l.MaxRequests}, {"max_retries", l.MaxRetries}} {
			if f.n < 0 {
				v.add(p+".limits."+f.key, "must be at least 1 (leave it out for the default)")
			}
		}
	}
	seen := map[string]bool{}
	total := 0
	for i, e := range pl.Endpoints {
		ep := fmt.Sprintf("%s.endpoints[%d]", p, i)
		if err := checkHostPort(e.Address); err != nil {
			v.add(ep, "%v", err)
		}
		if seen[e.Address] {
			v.add(ep, "duplicate endpoint %s", e.Address)
		}
		seen[e.Address] = true
		if e.Weight < 0 {
			v.add(ep+".weight", "weight must not be negative")
		}
		total += max(e.Weight, 0)
	}
	if len(pl.Endpoints) > 0 && total == 0 {
		v.add(p+".endpoints", "all weights are zero")
	}
	if pl.Check != "" {
		if _, ok := v.c.Checks[pl.Check]; !ok {
			v.add(p+".check", "unknown check %q", pl.Check)
		}
	}
	if h := pl.HashOn; h != nil {
		n := 0
		for _, set := range []bool{h.Header != "", h.Cookie != "", h.ClientIP} {
			if set {
				n++
			}
		}
		if n != 1 {
			v.add(p+".hash_on", "set exactly one of header, cookie or client_ip")
		}
		if !pl.Balance.Hashes() {
			v.add(p+".hash_on", "only ring_hash and maglev hash; balance is %q", pl.Balance)
		}
	}
	if o := pl.Outlier; o != nil {
		if o.ConsecutiveFailures < 1 {
			v.add(p+".outlier.consecutive_failures", "must be at least 1")
		}
		if o.MaxEjectedPercent < 0 || o.MaxEjectedPercent > 100 {
			v.add(p+".outlier.max_ejected_percent", "must be 0-100")
		}
		if o.MaxEjection < o.Ejection {
			v.add(p+".outlier.max_ejection", "must not be below ejection")
		}
	}
	switch pl.Protocol {
	case ProtocolH2C:
		if pl.TLS != nil {
			v.add(p+".protocol", "h2c is HTTP/2 without TLS; with tls: use h2")
		}
	case ProtocolH2:
		if pl.TLS == nil {
			v.add(p+".protocol", "h2 needs tls:; without TLS use h2c")
		}
	}
	if cs := pl.Consul; cs != nil {
		if v.c.Consul == nil {
			v.add(p+".consul", "the pool selects from Consul but there is no top-level consul: section")
		}
		if cs.Service == "" {
			v.add(p+".consul.service", "missing service name")
		}
		if !slices.Contains([]string{"passing", "warning", "any"}, cs.Health) {
			v.add(p+".consul.health", "want passing, warning or any, not %q", cs.Health)
		}
	}
}

// checkHostPort accepts host:port where host is an IP or a DNS name.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q: want host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("invalid port in %q", addr)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !isDomainName(host) {
		return fmt.Errorf("invalid host in %q", addr)
	}
	return nil
}

func (v *validator) service(p string, s *Service) {
	if s == nil {
		v.add(p, "empty service")
		return
	}
	if len(s.Pools) == 0 {
		v.add(p+".pools", "needs at least one pool")
	}
	seen := map[string]bool{}
	for i, name := range s.Pools {
		pp := fmt.Sprintf("%s.pools[%d]", p, i)
		pl, ok := v.c.Pools[name]
		switch {
		case !ok:
			v.add(pp, "unknown pool %q", name)
		case seen[name]:
			v.add(pp, "pool %q listed twice", name)
		case s.Policy == PolicyGeo && pl != nil && pl.Region == "" && pl.Consul == nil:
			v.add(pp, "pool %q has no region, which a geo service needs", name)
		}
		seen[name] = true
	}
	if s.Policy == PolicyWeighted {
		if len(s.Weights) != len(s.Pools) {
			v.add(p+".weights", "%d weights for %d pools", len(s.Weights), len(s.Pools))
		}
		v.weights(p+".weights", s.Weights)
	} else if len(s.Weights) > 0 {
		v.add(p+".weights", "weights only apply to policy weighted")
	}
}

func (v *validator) weights(p string, ws []int) {
	total := 0
	for i, w := range ws {
		if w < 0 {
			v.add(fmt.Sprintf("%s[%d]", p, i), "weight must not be negative")
		}
		total += max(w, 0)
	}
	if len(ws) > 0 && total == 0 {
		v.add(p, "all weights are zero")
	}
}

// serviceRef checks that name (at p + "." + field) is a defined service.
// The path is only built for a problem: a large config has thousands of
// references, nearly all fine.
func (v *validator) serviceRef(p, field, name string) {
	if name == "" {
		v.add(p+"."+field, "missing service")
	} else if _, ok := v.c.Services[name]; !ok {
		v.add(p+"."+field, "unknown service %q", name)
	}
}

func (v *validator) route(p string, r *Route) {
	v.match(p+".match", &r.Match)
	switch {
	case r.Service != "" && len(r.Split) > 0:
		v.add(p, "set service or split, not both")
	case r.Service != "":
		v.serviceRef(p, "service", r.Service)
	case len(r.Split) == 0 && r.Redirect == nil:
		v.add(p, "needs a service, a split or a redirect")
	}
	weighted := 0
	for i, e := range r.Split {
		sp := fmt.Sprintf("%s.split[%d]", p, i)
		if e == nil {
			v.add(sp, "empty split entry")
			continue
		}
		v.serviceRef(sp, "service", e.Service)
		if e.When != nil {
			if e.Weight != nil {
				v.add(sp+".weight", "a rule with when: takes no weight")
			}
			v.matchers(sp, "when.header", e.When.Header)
			v.matchers(sp, "when.cookie", e.When.Cookie)
			v.matchers(sp, "when.query", e.When.Query)
			continue
		}
		if *e.Weight < 0 {
			v.add(sp+".weight", "weight must not be negative")
		}
		weighted += max(*e.Weight, 0)
	}
	if len(r.Split) > 0 && weighted == 0 {
		v.add(p+".split", "needs at least one entry with a positive weight (requests no rule matches go there)")
	}
	if s := r.Sticky; s != nil {
		if (s.Cookie == "") == (s.Header == "") {
			v.add(p+".sticky", "set exactly one of cookie or header")
		}
		if s.Set && s.Cookie == "" {
			v.add(p+".sticky.set", "only a cookie can be set")
		}
	}
	if rl := r.RateLimit; rl != nil && rl.Scope == ScopeFleet && (v.c.Consul == nil || v.c.Consul.Register == nil) {
		v.add(p+".rate_limit.scope", "scope fleet needs consul.register: the fleet is the instances registered under its name")
	}
	if r.Redirect != nil && (r.Service != "" || len(r.Split) > 0) {
		v.add(p+".redirect", "a redirect answers every request of the route: remove service or split")
	}
	if m := r.Mirror; m != nil {
		v.serviceRef(p, "mirror.service", m.Service)
		if m.Percent < 0 || m.Percent > 100 {
			v.add(p+".mirror.percent", "must be 0-100")
		}
	}
	if rt := r.Retry; rt != nil {
		if rt.Attempts < 0 {
			v.add(p+".retry.attempts", "must not be negative")
		}
		for i, on := range rt.On {
			if !slices.Contains(retryOn, on) {
				v.add(fmt.Sprintf("%s.retry.on[%d]", p, i), "unknown condition %q: want %s", on, strings.Join(retryOn, ", "))
			}
		}
		if rt.BudgetPercent < 0 || rt.BudgetPercent > 100 {
			v.add(p+".retry.budget_percent", "must be 0-100")
		}
	}
	if r.PerTryTimeout > 0 && r.Timeout != nil && *r.Timeout > 0 && r.PerTryTimeout > *r.Timeout {
		v.add(p+".per_try_timeout", "longer than the route timeout")
	}
	if r.StripPrefix != "" && !strings.HasPrefix(r.StripPrefix, "/") {
		v.add(p+".strip_prefix", "must start with /")
	}
	for name := range r.AddHeaders {
		if !tokenRE.MatchString(name) {
			v.add(p+".add_headers."+name, "invalid header name")
		}
	}
	if t := r.TLS; t != nil {
		switch t.ClientAuth {
		case "require":
			if t.ClientCA == "" {
				v.add(p+".tls.client_ca", "client_auth: require needs a client_ca file")
			}
		case "", "none":
		default:
			v.add(p+".tls.client_auth", "want require or none, not %q", t.ClientAuth)
		}
	}
}

func (v *validator) match(p string, m *Match) {
	for i, h := range m.Host {
		name := strings.TrimPrefix(h, "*.")
		if !isDomainName(name) || strings.Contains(name, "*") {
			hp := fmt.Sprintf("%s.host[%d]", p, i)
			if len(m.Host) == 1 {
				hp = p + ".host"
			}
			v.add(hp, "invalid host %q", h)
		}
	}
	n := 0
	for _, s := range []string{m.Path, m.PathPrefix, m.PathRegex} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		v.add(p, "set only one of path, path_prefix and path_regex")
	}
	if m.Path != "" && !strings.HasPrefix(m.Path, "/") {
		v.add(p+".path", "must start with /")
	}
	if m.PathPrefix != "" && !strings.HasPrefix(m.PathPrefix, "/") {
		v.add(p+".path_prefix", "must start with /")
	}
	if m.PathRegex != "" {
		if err := v.regexp(m.PathRegex); err != nil {
			v.add(p+".path_regex", "%v", err)
		}
	}
	for i, meth := range m.Method {
		if !tokenRE.MatchString(meth) || strings.ToUpper(meth) != meth {
			v.add(fmt.Sprintf("%s.method[%d]", p, i), "invalid method %q (methods are upper case)", meth)
		}
	}
	v.matchers(p, "headers", m.Headers)
	v.matchers(p, "query", m.Query)
	v.matchers(p, "cookies", m.Cookies)
	for i, c := range m.ClientCIDR {
		if _, err := ParsePrefix(c); err != nil {
			v.add(fmt.Sprintf("%s.client_cidr[%d]", p, i), "invalid CIDR %q", c)
		}
	}
}

// matchers checks the matchers at p + "." + field.
func (v *validator) matchers(p, field string, ms map[string]StringMatch) {
	if len(ms) == 0 {
		return
	}
	p += "." + field
	for _, k := range sortedKeys(ms) {
		m := ms[k]
		n := 0
		for _, set := range []bool{m.Exact != "", m.Prefix != "", m.Regex != "", m.Present != nil} {
			if set {
				n++
			}
		}
		if n > 1 {
			v.add(p+"."+k, "set only one of exact, prefix, regex and present")
		}
		if m.Regex != "" {
			if err := v.regexp(m.Regex); err != nil {
				v.add(p+"."+k+".regex", "%v", err)
			}
		}
	}
}

// isDomainName reports whether s is a domain name as DNS carries it: labels
// of 1 to 63 octets separated by dots, a trailing dot allowed, 255 octets at
// most in wire form. It checks syntax only, as route hosts and endpoint
// addresses need; zone names are checked by the zone compiler (dns/zone).
func isDomainName(s string) bool {
	if s == "" || s == "." {
		return s == "."
	}
	s = strings.TrimSuffix(s, ".")
	if len(s)+2 > 255 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 {
			return false
		}
	}
	return true
}

// Serves returns an *Error naming file name when c would serve nothing: no
// listener besides the admin API (listen.http, listen.https, listen.dns),
// no route and no zone. Such a file is a mistake (an empty template, "{}",
// a tool that wrote nothing), and applied it would replace a good table
// with one that answers every request 404 and every query REFUSED, while
// the reload reports success. Parse does not apply this check, since tests
// and tools parse fragments of a config; everything that serves one does:
// meridian validate, the start and every reload.
func (c *Config) Serves(name string) error {
	l := c.Listen
	if l.HTTP != "" || l.HTTPS != "" || l.DNS != "" || len(c.Routes) > 0 || len(c.Zones) > 0 {
		return nil
	}
	// At the document's first line: the whole file is the problem.
	err := c.Locate(Problem{Msg: "config defines nothing to serve: no listen.http, listen.https or listen.dns, no routes and no zones"})
	var e *Error
	if errors.As(err, &e) && len(e.Problems) == 1 && e.Problems[0].File == "" {
		e.Problems[0].File = name // a Config built by hand
	}
	return err
}
