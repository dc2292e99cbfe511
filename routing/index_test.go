package routing

import (
	"bytes"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
)

// matchLinear is the matcher the index replaced, kept as the oracle: every
// route in order, the first whose host, path and other conditions hold.
func (t *Table) matchLinear(r *http.Request, client netip.Addr) *Route {
	p := "/"
	if r.URL != nil {
		p = CleanPath(r.URL.Path)
	}
	v := reqView{r: r, path: p, client: client}
	h := NormalizeHost(r.Host)
	for _, rt := range t.Routes {
		if rt.matchHost(h) && rt.path.match(v.path) && rt.cond.match(&v) {
			return rt
		}
	}
	return nil
}

// TestIndexFirstMatchWins holds the index to config order where a tree
// would be tempted to prefer the longest or the exact match, and to the
// segment rules at every node on the way down.
func TestIndexFirstMatchWins(t *testing.T) {
	tb := compileYAML(t, poolsYAML+`
routes:
  - {name: short-first, match: {path_prefix: /a}, service: sa}
  - {name: longer-later, match: {path_prefix: /a/b}, service: sa}
  - {name: exact-later, match: {path: /a/b/c}, service: sa}
  - {name: hdr, match: {path: /x/y, headers: {X-A: "1"}}, service: sa}
  - {name: regex, match: {path_regex: "^/x"}, service: sa}
  - {name: exact-after-regex, match: {path: /x/y}, service: sa}
  - {name: slash, match: {path_prefix: /s/}, service: sa}
  - {name: no-slash, match: {path_prefix: /s}, service: sa}
  - {name: host-exact, match: {host: [h.test, H.test, "*.h.test"], path_prefix: /h}, service: sa}
  - {name: host-wild, match: {host: "*.h.test", path_prefix: /h}, service: sa}
  - {name: wild-deep, match: {host: "*.b.h.test", path: /w}, service: sa}
  - {name: wild-shallow, match: {host: "*.h.test", path: /w}, service: sa}
  - {name: root, match: {path_prefix: /}, service: sa}
`)
	tests := []struct{ host, path, hdr, want string }{
		{"x", "/a/b/c", "", "short-first"},
		{"x", "/ab", "", "root"},
		{"x", "/x/y", "1", "hdr"},
		{"x", "/x/y", "", "regex"},
		{"x", "/s/t", "", "slash"},
		{"x", "/s", "", "no-slash"},
		{"x", "/sx", "", "root"},
		{"h.test", "/h/1", "", "host-exact"},
		{"q.h.test", "/h", "", "host-exact"},
		{"q.h.test", "/hx", "", "root"},
		{"a.b.h.test", "/w", "", "wild-deep"},
		{"b.h.test", "/w", "", "wild-shallow"},
		{"h.test", "/w", "", "root"},
	}
	for _, tc := range tests {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			r := req("GET", tc.path, "Host", tc.host)
			if tc.hdr != "" {
				r.Header.Set("X-A", tc.hdr)
			}
			if got := matchName(tb, r, ""); got != tc.want {
				t.Errorf("matched %q, want %q", got, tc.want)
			}
		})
	}
}

// TestIndexDeepPath matches a path with a prefix route at every level, in
// reverse order, through more runs than match keeps on the stack.
func TestIndexDeepPath(t *testing.T) {
	var b strings.Builder
	b.WriteString(poolsYAML + "routes:\n")
	const depth = 40
	for i := depth; i > 0; i-- {
		p := strings.Repeat("/d", i)
		fmt.Fprintf(&b, "  - {name: p%d, match: {path_prefix: %q, headers: {X-Level: %q}}, service: sa}\n", i, p, fmt.Sprint(i))
		fmt.Fprintf(&b, "  - {name: s%d, match: {path_prefix: %q, headers: {X-Slash: %q}}, service: sa}\n", i, p+"/", fmt.Sprint(i))
	}
	tb := compileYAML(t, b.String())
	path := strings.Repeat("/d", depth) + "/x"
	for _, level := range []int{1, 17, depth} {
		r := req("GET", path, "Host", "x", "X-Level", fmt.Sprint(level))
		if got, want := matchName(tb, r, ""), fmt.Sprint("p", level); got != want {
			t.Errorf("level %d: matched %q, want %q", level, got, want)
		}
		r = req("GET", path, "Host", "x", "X-Slash", fmt.Sprint(level), "X-Level", "1")
		if got, want := matchName(tb, r, ""), fmt.Sprint("s", level); level > 1 && got != want {
			t.Errorf("slash level %d: matched %q, want %q", level, got, want)
		}
	}
	if got := matchName(tb, req("GET", path, "Host", "x"), ""); got != "" {
		t.Errorf("matched %q without a header", got)
	}
}

// TestIndexLayout checks the laid-out trees: children ordered by distinct
// first bytes, every run ascending, every route indexed once per host.
func TestIndexLayout(t *testing.T) {
	tb := compileYAML(t, scaleRoutesYAML("path", 500)+`
  - {name: h, match: {host: [a.test, a.test, "*.test"], path: /api/1/x}, service: sa}
  - {name: re, match: {path_regex: "^/r"}, service: sa}
`)
	ix := tb.Routes[0].index
	checkIndex(t, ix)
	if got, want := len(ix.ids), len(tb.Routes)+1; got != want {
		t.Errorf("%d route numbers indexed, want %d (h has two groups)", got, want)
	}
}

// TestFindByte holds the eight-at-a-time search to bytes.IndexByte at every
// length and position, with bytes that have the high bit set around it.
func TestFindByte(t *testing.T) {
	for n := range 40 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(0x80 + i)
		}
		for _, c := range []byte{0, 'a', 0x80, 0x81, 0xff} {
			for at := -1; at < n; at++ {
				var old byte
				if at >= 0 {
					old, b[at] = b[at], c
				}
				if got, want := findByte(b, c), bytes.IndexByte(b, c); got != want {
					t.Fatalf("findByte(%x, %#x) = %d, want %d", b, c, got, want)
				}
				if at >= 0 {
					b[at] = old
				}
			}
		}
	}
}

func checkIndex(t *testing.T, ix *routeIndex) {
	t.Helper()
	ascending := func(what string, r idRange) {
		for i := r.lo + 1; i < r.hi; i++ {
			if ix.ids[i-1] >= ix.ids[i] {
				t.Fatalf("%s: route numbers %v not ascending", what, ix.ids[r.lo:r.hi])
			}
		}
	}
	for i, n := range ix.nodes {
		ascending("prefix", n.prefix)
		ascending("exact", n.exact)
		if n.kids.lo == n.kids.hi {
			continue
		}
		for j := n.kids.lo; j < n.kids.hi; j++ {
			label := ix.labels[ix.nodes[j].label.lo:ix.nodes[j].label.hi]
			if label == "" || label[0] != ix.first[j] || j > n.kids.lo && ix.first[j-1] >= ix.first[j] {
				t.Fatalf("node %d: child %d (%q) empty or out of order", i, j, label)
			}
		}
	}
	for _, s := range ix.sets {
		ascending("other", s.other)
	}
	if got, want := len(ix.sets), 1+len(ix.exact)+len(ix.wildcard); got != want {
		t.Fatalf("%d groups, want %d", got, want)
	}
}

// fuzzInput reads a fuzz input as a stream of choices; past its end every
// choice is the first.
type fuzzInput struct{ b []byte }

func (in *fuzzInput) intn(n int) int {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return int(c) % n
}

func (in *fuzzInput) pick(xs ...string) string { return xs[in.intn(len(xs))] }

// path writes a path of up to four segments from a small alphabet, so
// routes and requests share prefixes; rooted unless unrooted (routes built
// by hand skip validation), with or without a trailing slash.
func (in *fuzzInput) path(unrooted bool) string {
	var b strings.Builder
	if !unrooted || in.intn(8) != 0 {
		b.WriteByte('/')
	}
	for i := range in.intn(5) {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(in.pick("a", "ab", "api", "v1", "", ".", "..", "x.css", "A", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "b", "c"))
	}
	if in.intn(3) == 0 {
		b.WriteByte('/')
	}
	return b.String()
}

var fuzzHosts = []string{"a.example.com", "example.com", "b.example.com", "x.b.example.com", "other.test", "WWW.Example.com.", "", "test"}
var fuzzWildcards = []string{"*.example.com", "*.b.example.com", "*.test", "*.com", "*.x.b.example.com"}

// fuzzRoutes builds up to 40 routes from in: hosts exact and wildcard,
// exact, prefix and regex paths, and the other conditions.
func fuzzRoutes(in *fuzzInput) []*config.Route {
	present := func(b bool) *bool { return &b }
	var routes []*config.Route
	for i := range in.intn(41) {
		r := &config.Route{Name: fmt.Sprint("r", i), Service: "s"}
		m := &r.Match
		for range in.intn(4) {
			if in.intn(3) == 0 {
				m.Host = append(m.Host, in.pick(fuzzWildcards...))
			} else {
				m.Host = append(m.Host, in.pick(fuzzHosts...))
			}
		}
		switch in.intn(5) {
		case 1:
			m.Path = in.path(true)
		case 2, 3:
			m.PathPrefix = in.path(true)
		case 4:
			m.PathRegex = in.pick("^/api", "v1$", "^/a/?$", `\.css$`, "/", "^/$")
		}
		if in.intn(4) == 0 {
			m.Method = append(m.Method, in.pick("GET", "POST"))
		}
		switch in.intn(8) {
		case 1:
			m.Headers = map[string]config.StringMatch{"X-A": {Exact: "1"}}
		case 2:
			m.Headers = map[string]config.StringMatch{"x-a": {Prefix: "a"}}
		case 3:
			m.Headers = map[string]config.StringMatch{"X-A": {Present: present(in.intn(2) == 0)}}
		case 4:
			m.Query = map[string]config.StringMatch{"q": {Exact: "1"}}
		case 5:
			m.Cookies = map[string]config.StringMatch{"c": {Exact: "1"}}
		case 6:
			m.ClientCIDR = append(m.ClientCIDR, "10.0.0.0/8")
		}
		routes = append(routes, r)
	}
	return routes
}

// fuzzRequest builds a request from in; a route's own host and path, when
// given, make matches likely instead of rare.
func fuzzRequest(in *fuzzInput, host, path string) (*http.Request, netip.Addr) {
	if host == "" || in.intn(4) == 0 {
		host = in.pick(append(fuzzHosts, "A.EXAMPLE.COM:8080", "y.x.b.example.com", "evilexample.com", "[::1]:80", "www.example.com.", ".example.com")...)
	} else if w, ok := strings.CutPrefix(host, "*"); ok {
		host = in.pick("q", "", "x.", "Q.b") + w
	}
	if path == "" || in.intn(4) == 0 {
		path = in.path(false)
	} else {
		path += in.pick("", "/", "/x", "x", "/..", "/../a", "//")
	}
	r := &http.Request{
		Method: in.pick("GET", "POST", "PUT"),
		Host:   host,
		URL:    &url.URL{Path: path, RawQuery: in.pick("", "q=1", "q=2")},
		Header: http.Header{},
	}
	if v := in.pick("", "1", "ab", "zz"); v != "" {
		r.Header.Set("X-A", v)
	}
	if c := in.pick("", "c=1", "c=2"); c != "" {
		r.Header.Set("Cookie", c)
	}
	client, _ := netip.ParseAddr(in.pick("", "10.1.2.3", "192.0.2.1", "::ffff:10.0.0.1"))
	return r, client
}

// FuzzMatchIndexed compares the index with the linear matcher on random
// route sets: for each route a request aimed at it, then requests read
// from the rest of the input.
func FuzzMatchIndexed(f *testing.F) {
	for _, seed := range []string{
		"",
		"\x05\x01\x00\x02\x02\x01\x02\x00\x00\x00\x01\x03\x02\x01\x00\x00\x00\x04\x00\x00",
		"\x10\x03\x00\x01\x02\x03\x04\x02\x02\x03\x01\x02\x00\x05\x01\x00\x03\x03\x03\x03\x01\x00\x02",
		strings.Repeat("\x07\x02\x01\x03\x00\x01\x02\x05", 12),
		strings.Repeat("\x28\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09", 30),
	} {
		f.Add([]byte(seed))
	}
	services := map[string]*Service{"s": {Name: "s"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		cfg := &config.Config{Routes: fuzzRoutes(in)}
		routes, err := compileRoutes(cfg, services, &rollouts{})
		if err != nil {
			t.Fatal(err)
		}
		tb := &Table{Routes: routes}
		if len(routes) > 0 {
			checkIndex(t, routes[0].index)
		}
		check := func(r *http.Request, client netip.Addr) {
			got, want := tb.Match(r, client), tb.matchLinear(r, client)
			if got != want {
				var b strings.Builder
				for _, rt := range routes {
					rt.dump(&b)
				}
				t.Fatalf("%s %s%s?%s X-A=%q Cookie=%q client %v: index matched %v, linear %v\nroutes:\n%s",
					r.Method, r.Host, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-A"), r.Header.Get("Cookie"), client,
					routeName(got), routeName(want), b.String())
			}
		}
		for _, rc := range cfg.Routes {
			host := ""
			if len(rc.Match.Host) > 0 {
				host = rc.Match.Host[in.intn(len(rc.Match.Host))]
			}
			check(fuzzRequest(in, host, rc.Match.Path+rc.Match.PathPrefix))
		}
		for i := 0; len(in.b) > 0 && i < 64; i++ {
			check(fuzzRequest(in, "", ""))
		}
	})
}

func routeName(r *Route) string {
	if r == nil {
		return "none"
	}
	return r.Name
}
