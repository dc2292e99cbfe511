package routing

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/meridian-lb/meridian/config"
)

// valueMatcher is one compiled config.StringMatch. An all-empty StringMatch
// means "present", because a YAML `{X-Foo: ""}` cannot be told apart from an
// empty mapping and an empty exact value is never what the operator meant.
type valueMatcher struct {
	value  string
	re     *regexp.Regexp
	kind   matchKind
	absent bool // present: false
}

type matchKind uint8

const (
	matchPresent matchKind = iota
	matchExact
	matchPrefix
	matchRegex
)

func compileValue(cfg *config.Config, m config.StringMatch) (valueMatcher, error) {
	switch {
	case m.Regex != "":
		re, err := compileRegex(cfg, m.Regex)
		if err != nil {
			return valueMatcher{}, err
		}
		return valueMatcher{kind: matchRegex, value: m.Regex, re: re}, nil
	case m.Prefix != "":
		return valueMatcher{kind: matchPrefix, value: m.Prefix}, nil
	case m.Exact != "":
		return valueMatcher{kind: matchExact, value: m.Exact}, nil
	case m.Present != nil && !*m.Present:
		return valueMatcher{kind: matchPresent, absent: true}, nil
	}
	return valueMatcher{kind: matchPresent}, nil
}

// compileRegex compiles a route regular expression. Like nginx and Traefik,
// it matches anywhere in the value: anchor it (^...$) to match all of it.
// The config's own compiled copy is reused when Parse made one (compiling
// was the largest share of Compile on a big config); a config built by hand
// has none, and the expression is compiled here.
func compileRegex(cfg *config.Config, expr string) (*regexp.Regexp, error) {
	if re := cfg.Regexp(expr); re != nil {
		return re, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", expr, err)
	}
	return re, nil
}

// matchOne reports whether one value (present says whether there is one)
// satisfies the matcher.
func (m *valueMatcher) matchOne(v string, present bool) bool {
	if m.absent {
		return !present
	}
	if !present {
		return false
	}
	switch m.kind {
	case matchExact:
		return v == m.value
	case matchPrefix:
		return strings.HasPrefix(v, m.value)
	case matchRegex:
		return m.re.MatchString(v)
	}
	return true
}

// matchAny reports whether any of vals satisfies the matcher; multi-valued
// headers and repeated query parameters match when one value does.
func (m *valueMatcher) matchAny(vals []string) bool {
	if len(vals) == 0 {
		return m.matchOne("", false)
	}
	if m.absent {
		return false
	}
	for _, v := range vals {
		if m.matchOne(v, true) {
			return true
		}
	}
	return false
}

func (m *valueMatcher) String() string {
	switch {
	case m.absent:
		return "absent"
	case m.kind == matchExact:
		return fmt.Sprintf("exact=%q", m.value)
	case m.kind == matchPrefix:
		return fmt.Sprintf("prefix=%q", m.value)
	case m.kind == matchRegex:
		return fmt.Sprintf("regex=%q", m.value)
	}
	return "present"
}

// namedMatcher matches the values under one name (header, cookie or query
// parameter).
type namedMatcher struct {
	name string // canonical header key, cookie or parameter name
	valueMatcher
}

// compileNamed compiles a name → StringMatch map in sorted name order, so
// evaluation and the text dump are deterministic.
func compileNamed(cfg *config.Config, ms map[string]config.StringMatch, header bool) ([]namedMatcher, error) {
	return appendNamed(make([]namedMatcher, 0, len(ms)), cfg, ms, header)
}

// appendNamed is compileNamed appending to out.
func appendNamed(out []namedMatcher, cfg *config.Config, ms map[string]config.StringMatch, header bool) ([]namedMatcher, error) {
	if len(ms) == 0 {
		return out, nil
	}
	names := make([]string, 0, len(ms))
	for k := range ms {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		vm, err := compileValue(cfg, ms[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		name := k
		if header {
			name = textproto.CanonicalMIMEHeaderKey(k)
		}
		out = append(out, namedMatcher{name: name, valueMatcher: vm})
	}
	return out, nil
}

// reqView is the part of a request matchers look at, with the query parsed
// at most once and only when a matcher needs it.
type reqView struct {
	r      *http.Request
	path   string
	client netip.Addr
	query  url.Values
	parsed bool
}

// queryValues parses the query exactly as httputil.ReverseProxy forwards it:
// url.ParseQuery keeps the well-formed pairs and drops the rest, and the
// proxy re-encodes those same pairs when the raw query is unparseable. So a
// route never matches on a parameter the upstream will not see.
func (v *reqView) queryValues() url.Values {
	if !v.parsed {
		v.parsed = true
		if v.r.URL != nil && v.r.URL.RawQuery != "" {
			v.query, _ = url.ParseQuery(v.r.URL.RawQuery)
		}
	}
	return v.query
}

// conditions are a route's matchers besides host and path. Most routes
// have none, and pay one nil pointer for them instead of five slices.
type conditions struct {
	methods []string
	cidrs   []netip.Prefix
	// named holds the header matchers, then the query parameters' from
	// query on, then the cookies' from cookies on: one slice, not three.
	named          []namedMatcher
	query, cookies int32
}

func (c *conditions) headers() []namedMatcher     { return c.named[:c.query] }
func (c *conditions) queryParams() []namedMatcher { return c.named[c.query:c.cookies] }
func (c *conditions) cookieNames() []namedMatcher { return c.named[c.cookies:] }

// match reports whether every condition holds; nil conditions always do.
func (c *conditions) match(v *reqView) bool {
	if c == nil {
		return true
	}
	if len(c.methods) > 0 && !slices.Contains(c.methods, v.r.Method) {
		return false
	}
	if len(c.cidrs) > 0 {
		a := v.client.Unmap()
		ok := false
		for _, p := range c.cidrs {
			if p.Contains(a) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return matchHeaders(c.headers(), v.r.Header) && matchCookies(c.cookieNames(), v.r.Header) && matchQuery(c.queryParams(), v)
}

func matchHeaders(ms []namedMatcher, h http.Header) bool {
	for i := range ms {
		if !ms[i].matchAny(h[ms[i].name]) {
			return false
		}
	}
	return true
}

func matchCookies(ms []namedMatcher, h http.Header) bool {
	for i := range ms {
		v, ok := CookieValue(h, ms[i].name)
		if !ms[i].matchOne(v, ok) {
			return false
		}
	}
	return true
}

func matchQuery(ms []namedMatcher, v *reqView) bool {
	if len(ms) == 0 {
		return true
	}
	q := v.queryValues()
	for i := range ms {
		if !ms[i].matchAny(q[ms[i].name]) {
			return false
		}
	}
	return true
}

// CookieValue returns the value of the first cookie called name in the
// request's Cookie headers, without allocating. Surrounding double quotes
// are removed, as net/http does.
func CookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for len(line) > 0 {
			var part string
			if i := strings.IndexByte(line, ';'); i >= 0 {
				part, line = line[:i], line[i+1:]
			} else {
				part, line = line, ""
			}
			part = textproto.TrimString(part)
			eq := strings.IndexByte(part, '=')
			if eq < 0 || part[:eq] != name {
				continue
			}
			val := part[eq+1:]
			if len(val) > 1 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val, true
		}
	}
	return "", false
}

// pathMatcher matches the cleaned path.
type pathMatcher struct {
	kind  uint8 // 0 any, 1 exact, 2 prefix, 3 regex
	value string
	re    *regexp.Regexp
}

const (
	pathAny uint8 = iota
	pathExact
	pathPrefix
	pathRegex
)

func (m *pathMatcher) match(p string) bool {
	switch m.kind {
	case pathExact:
		return p == m.value
	case pathPrefix:
		return hasPathPrefix(p, m.value)
	case pathRegex:
		return m.re.MatchString(p)
	}
	return true
}

// hasPathPrefix is segment-aware: /api matches /api, /api/ and /api/x but
// not /apiary. A prefix ending in / is a plain string prefix.
func hasPathPrefix(p, prefix string) bool {
	return strings.HasPrefix(p, prefix) && atSegmentEnd(p, len(prefix))
}

// atSegmentEnd reports whether p[:n], a prefix of p, ends where a path
// prefix may end: at the end of p, after a slash, or before one. The route
// index asks it of each tree node on the request path's way down.
func atSegmentEnd(p string, n int) bool {
	return n == len(p) || (n > 0 && p[n-1] == '/') || p[n] == '/'
}

// NormalizeHost turns a request's Host (r.Host, never a raw Host header)
// into the form routes match on: lower case, without port and trailing dot.
// It allocates only when the host has upper-case letters.
func NormalizeHost(h string) string {
	if h == "" {
		return ""
	}
	if h[0] == '[' {
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	return lower(h)
}

// lower is strings.ToLower for ASCII host names, returning h itself when it
// has nothing to change.
func lower(h string) string {
	for i := 0; i < len(h); i++ {
		if c := h[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// AmbiguousPath reports whether a request path has an encoding that two
// parsers could read differently: an encoded dot (%2e, which makes %2e%2e
// a hidden ..), an encoded slash or backslash, a NUL, or a raw backslash.
// The proxy rejects these with 400 unless http.allow_ambiguous_paths is set,
// so the route matcher and the upstream always agree on the path.
func AmbiguousPath(u *url.URL) bool {
	raw := u.RawPath
	if raw == "" {
		raw = u.Path
	}
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '\\', 0:
			return true
		case '%':
			if i+2 < len(raw) {
				a, b := raw[i+1], raw[i+2]|0x20
				if (a == '2' && (b == 'e' || b == 'f')) || (a == '5' && b == 'c') || (a == '0' && b == '0') {
					return true
				}
			}
		}
	}
	return strings.IndexByte(u.Path, '\\') >= 0 || strings.IndexByte(u.Path, 0) >= 0
}

// CleanPath returns the canonical form of a decoded request path: rooted,
// with repeated slashes collapsed and . and .. segments resolved (never
// above the root), keeping a trailing slash. It returns p itself, without
// allocating, when p is already clean. Routes match, and the upstream
// receives, this form.
func CleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if isCleanPath(p) {
		return p
	}
	trailing := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") || p == "." || p == ".."
	segs := make([]string, 0, strings.Count(p, "/")+1)
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	out := "/" + strings.Join(segs, "/")
	if trailing && out != "/" {
		out += "/"
	}
	return out
}

// isCleanPath reports whether p is rooted and has no empty, . or ..
// segment except a final empty one (a trailing slash).
func isCleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		seg := p[start:i]
		if (seg == "" && i < len(p)) || seg == "." || seg == ".." {
			return false
		}
		start = i + 1
	}
	return true
}
