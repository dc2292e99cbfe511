package routing

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
)

// compileYAML parses and compiles a config for tests.
func compileYAML(t testing.TB, y string) *Table {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	tb, err := Compile(cfg, Inputs{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return tb
}

const poolsYAML = `
pools:
  a: {region: eu, endpoints: [127.0.0.1:1001]}
  b: {region: us, endpoints: [127.0.0.1:1002]}
  c: {region: eu, endpoints: [127.0.0.1:1003]}
services:
  sa: {pools: [a]}
  sb: {pools: [b]}
  sc: {pools: [c]}
`

func req(method, target string, hdr ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			r.Host = hdr[i+1]
			continue
		}
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

func matchName(t *Table, r *http.Request, client string) string {
	var c netip.Addr
	if client != "" {
		c = netip.MustParseAddr(client)
	}
	rt := t.Match(r, c)
	lin := t.matchLinear(r, c)
	if rt != lin {
		panic(fmt.Sprintf("index and linear matching disagree: %v vs %v", rt, lin))
	}
	if rt == nil {
		return ""
	}
	return rt.Name
}

func TestMatchers(t *testing.T) {
	tb := compileYAML(t, poolsYAML+`
routes:
  - {name: exact-host, match: {host: www.example.com, path: /exact}, service: sa}
  - {name: wild-host, match: {host: "*.example.com", path_prefix: /wild}, service: sa}
  - {name: multi-host, match: {host: [a.test, B.Test]}, service: sb}
  - {name: prefix, match: {path_prefix: /api}, service: sa}
  - {name: prefix-slash, match: {path_prefix: /static/}, service: sa}
  - {name: regex, match: {path_regex: "^/v[0-9]+/items$"}, service: sa}
  - {name: regex-search, match: {path_regex: "/search/"}, service: sa}
  - {name: method, match: {path: /m, method: [POST, PUT]}, service: sa}
  - name: headers
    match:
      path: /h
      headers:
        X-Exact: "yes"
        X-Prefix: {prefix: "pre"}
        X-Regex: {regex: "^[0-9]+$"}
        X-Present: {present: true}
        X-Absent: {present: false}
    service: sa
  - {name: query, match: {path: /q, query: {debug: "1", v: {regex: "[ab]"}}}, service: sa}
  - {name: cookie, match: {path: /c, cookies: {session: {prefix: "s-"}}}, service: sa}
  - {name: cidr, match: {path: /cidr, client_cidr: [10.0.0.0/8, "2001:db8::/32"]}, service: sa}
  - {name: fallback, match: {path_prefix: /}, service: sc}
`)
	tests := []struct {
		name   string
		r      *http.Request
		client string
		want   string
	}{
		{"exact host", req("GET", "/exact", "Host", "www.example.com"), "", "exact-host"},
		{"exact host upper case and port", req("GET", "/exact", "Host", "WWW.Example.COM:8080"), "", "exact-host"},
		{"exact host trailing dot", req("GET", "/exact", "Host", "www.example.com."), "", "exact-host"},
		{"exact host other path", req("GET", "/exact/x", "Host", "www.example.com"), "", "fallback"},
		{"wildcard", req("GET", "/wild/x", "Host", "shop.example.com"), "", "wild-host"},
		{"wildcard deep", req("GET", "/wild", "Host", "a.b.example.com"), "", "wild-host"},
		{"wildcard not apex", req("GET", "/wild", "Host", "example.com"), "", "fallback"},
		{"wildcard not suffix trick", req("GET", "/wild", "Host", "evilexample.com"), "", "fallback"},
		{"exact host is also wildcard", req("GET", "/wild", "Host", "www.example.com"), "", "wild-host"},
		{"multi host", req("GET", "/", "Host", "b.test"), "", "multi-host"},
		{"prefix exact", req("GET", "/api", "Host", "x"), "", "prefix"},
		{"prefix sub", req("GET", "/api/v1", "Host", "x"), "", "prefix"},
		{"prefix not partial segment", req("GET", "/apiary", "Host", "x"), "", "fallback"},
		{"prefix with slash is plain", req("GET", "/static/x.css", "Host", "x"), "", "prefix-slash"},
		{"prefix cleaned path", req("GET", "/x/../api/y", "Host", "x"), "", "prefix"},
		{"regex whole", req("GET", "/v12/items", "Host", "x"), "", "regex"},
		{"regex anchored", req("GET", "/x/v12/items", "Host", "x"), "", "fallback"},
		{"regex anywhere", req("GET", "/a/search/b", "Host", "x"), "", "regex-search"},
		{"method yes", req("PUT", "/m", "Host", "x"), "", "method"},
		{"method no", req("GET", "/m", "Host", "x"), "", "fallback"},
		{"headers all", req("GET", "/h", "Host", "x", "X-Exact", "yes", "X-Prefix", "prefix", "X-Regex", "42", "X-Present", ""), "", "headers"},
		{"headers multi value", req("GET", "/h", "Host", "x", "X-Exact", "no", "X-Exact", "yes", "X-Prefix", "pre", "X-Regex", "1", "X-Present", "1"), "", "headers"},
		{"header absent violated", req("GET", "/h", "Host", "x", "X-Exact", "yes", "X-Prefix", "pre", "X-Regex", "1", "X-Present", "1", "X-Absent", "1"), "", "fallback"},
		{"header regex partial", req("GET", "/h", "Host", "x", "X-Exact", "yes", "X-Prefix", "pre", "X-Regex", "a1", "X-Present", "1"), "", "fallback"},
		{"header case of name", req("GET", "/h", "Host", "x", "x-exact", "yes", "x-prefix", "pre", "x-regex", "1", "x-present", "1"), "", "headers"},
		{"query", req("GET", "/q?debug=1&v=a", "Host", "x"), "", "query"},
		{"query repeated", req("GET", "/q?debug=0&debug=1&v=b", "Host", "x"), "", "query"},
		{"query missing", req("GET", "/q?v=a", "Host", "x"), "", "fallback"},
		{"query unparseable pair dropped as forwarded", req("GET", "/q?debug=1;v=a", "Host", "x"), "", "fallback"},
		{"cookie", req("GET", "/c", "Host", "x", "Cookie", "a=1; session=s-123"), "", "cookie"},
		{"cookie quoted", req("GET", "/c", "Host", "x", "Cookie", `session="s-1"`), "", "cookie"},
		{"cookie wrong", req("GET", "/c", "Host", "x", "Cookie", "session=x-1"), "", "fallback"},
		{"cidr v4", req("GET", "/cidr", "Host", "x"), "10.1.2.3", "cidr"},
		{"cidr v4 mapped", req("GET", "/cidr", "Host", "x"), "::ffff:10.1.2.3", "cidr"},
		{"cidr v6", req("GET", "/cidr", "Host", "x"), "2001:db8::1", "cidr"},
		{"cidr outside", req("GET", "/cidr", "Host", "x"), "192.0.2.1", "fallback"},
		{"cidr no client", req("GET", "/cidr", "Host", "x"), "", "fallback"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := matchName(tb, tc.r, tc.client); got != tc.want {
				t.Errorf("matched %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNoRoute(t *testing.T) {
	tb := compileYAML(t, poolsYAML+`
routes:
  - {name: only, match: {host: a.test}, service: sa}
`)
	if got := matchName(tb, req("GET", "/", "Host", "b.test"), ""); got != "" {
		t.Errorf("matched %q, want none", got)
	}
	empty := compileYAML(t, poolsYAML)
	if got := matchName(empty, req("GET", "/", "Host", "b.test"), ""); got != "" {
		t.Errorf("table without routes matched %q", got)
	}
}

func TestRouteOrderWithHostIndex(t *testing.T) {
	tb := compileYAML(t, poolsYAML+`
routes:
  - {name: any-admin, match: {path_prefix: /admin}, service: sa}
  - {name: wild-deep, match: {host: "*.b.example.com"}, service: sa}
  - {name: wild, match: {host: "*.example.com"}, service: sb}
  - {name: exact, match: {host: x.b.example.com}, service: sc}
  - {name: rest, service: sc}
`)
	tests := []struct{ host, path, want string }{
		{"x.b.example.com", "/admin", "any-admin"},
		{"x.b.example.com", "/", "wild-deep"},
		{"y.b.example.com", "/", "wild-deep"},
		{"b.example.com", "/", "wild"},
		{"c.example.com", "/", "wild"},
		{"example.com", "/", "rest"},
		{"other.test", "/", "rest"},
	}
	for _, tc := range tests {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			if got := matchName(tb, req("GET", tc.path, "Host", tc.host), ""); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/a/b", "/a/b"},
		{"/a/b/", "/a/b/"},
		{"//a//b", "/a/b"},
		{"/a/./b", "/a/b"},
		{"/a/../b", "/b"},
		{"/../../a", "/a"},
		{"/a/b/..", "/a/"},
		{"/a/b/.", "/a/b/"},
		{"/a/..", "/"},
		{"/...", "/..."},
		{"/a.b/c..d", "/a.b/c..d"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := CleanPath(tc.in); got != tc.want {
				t.Errorf("CleanPath(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := CleanPath(CleanPath(tc.in)); got != tc.want {
				t.Errorf("CleanPath not idempotent on %q: %q", tc.in, got)
			}
		})
	}
}

func TestAmbiguousPath(t *testing.T) {
	tests := []struct {
		raw  string
		want bool
	}{
		{"/a/b", false},
		{"/a%20b", false},
		{"/a/%2e%2e/admin", true},
		{"/a/%2E%2E/admin", true},
		{"/a%2fb", true},
		{"/a%2Fb", true},
		{"/a%5cb", true},
		{"/a%00b", true},
		{`/a\b`, true},
		{"/a/../b", false},
		{"/%41", false},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			u, err := url.ParseRequestURI(tc.raw)
			if err != nil {
				t.Fatalf("parse %q: %v", tc.raw, err)
			}
			if got := AmbiguousPath(u); got != tc.want {
				t.Errorf("AmbiguousPath(%q) = %t, want %t", tc.raw, got, tc.want)
			}
		})
	}
}

func TestNormalizeHost(t *testing.T) {
	tests := map[string]string{
		"Example.COM":        "example.com",
		"example.com:8080":   "example.com",
		"example.com.":       "example.com",
		"EXAMPLE.com.:443":   "example.com",
		"[2001:DB8::1]:8080": "2001:db8::1",
		"":                   "",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			if got := NormalizeHost(in); got != want {
				t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

const splitYAML = poolsYAML + `
routes:
  - name: www
    split:
      - {when: {header: {X-Canary: "1"}}, service: sc}
      - {when: {cookie: {beta: {present: true}}}, service: sb}
      - {when: {query: {preview: "yes"}}, service: sb}
      - {service: sc, weight: 10}
      - {service: sa, weight: 90}
`

func TestSplitWeights(t *testing.T) {
	tests := []struct {
		name    string
		weights [3]int
	}{
		{"90-10", [3]int{90, 10, 0}},
		{"50-30-20", [3]int{50, 30, 20}},
		{"1-1-98", [3]int{1, 1, 98}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := compileYAML(t, poolsYAML+fmt.Sprintf(`
routes:
  - name: www
    split:
      - {service: sa, weight: %d}
      - {service: sb, weight: %d}
      - {service: sc, weight: %d}
`, tc.weights[0], tc.weights[1], tc.weights[2]))
			rt := tb.Routes[0]
			const n = 10000
			counts := map[string]int{}
			for range n {
				counts[rt.Choose(req("GET", "/")).Service.Name]++
			}
			total := tc.weights[0] + tc.weights[1] + tc.weights[2]
			for i, name := range []string{"sa", "sb", "sc"} {
				want := float64(n) * float64(tc.weights[i]) / float64(total)
				if math.Abs(float64(counts[name])-want) > 0.02*n {
					t.Errorf("%s got %d of %d, want %.0f ±2%%", name, counts[name], n, want)
				}
			}
		})
	}
}

func TestSplitRules(t *testing.T) {
	tb := compileYAML(t, splitYAML)
	rt := tb.Routes[0]
	tests := []struct {
		name string
		r    *http.Request
		want string
		rule bool
	}{
		{"header rule", req("GET", "/", "X-Canary", "1"), "sc", true},
		{"header rule wrong value", req("GET", "/", "X-Canary", "0"), "", false},
		{"cookie rule", req("GET", "/", "Cookie", "beta=1"), "sb", true},
		{"query rule", req("GET", "/?preview=yes"), "sb", true},
		{"first rule wins", req("GET", "/?preview=yes", "X-Canary", "1"), "sc", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := rt.Choose(tc.r)
			if c.Rule != tc.rule {
				t.Errorf("rule = %t, want %t", c.Rule, tc.rule)
			}
			if tc.want != "" && c.Service.Name != tc.want {
				t.Errorf("service %s, want %s", c.Service.Name, tc.want)
			}
		})
	}
}

func TestStickySplit(t *testing.T) {
	y := func(w1, w2 int) string {
		return poolsYAML + fmt.Sprintf(`
routes:
  - name: www
    split:
      - {service: sa, weight: %d}
      - {service: sb, weight: %d}
    sticky: {cookie: uid, set: true}
`, w1, w2)
	}
	a := compileYAML(t, y(70, 30))
	b := compileYAML(t, y(70, 30)) // a reload that does not change the weights
	c := compileYAML(t, y(60, 40)) // one that does
	counts := map[string]int{}
	moved := 0
	for i := range 2000 {
		r := req("GET", "/", "Cookie", fmt.Sprintf("uid=user-%d", i))
		first := a.Routes[0].Choose(r).Service.Name
		for range 3 {
			if got := a.Routes[0].Choose(r).Service.Name; got != first {
				t.Fatalf("user-%d moved from %s to %s", i, first, got)
			}
		}
		if got := b.Routes[0].Choose(r).Service.Name; got != first {
			t.Fatalf("user-%d moved from %s to %s across a reload", i, first, got)
		}
		if got := c.Routes[0].Choose(r).Service.Name; got != first {
			moved++
			if first != "sa" {
				t.Errorf("user-%d moved from %s to %s when only sa's share shrank", i, first, got)
			}
		}
		counts[first]++
	}
	if math.Abs(float64(counts["sa"])-1400) > 100 {
		t.Errorf("sticky shares: %v, want about 1400/600", counts)
	}
	if moved < 100 || moved > 320 {
		t.Errorf("%d of 2000 users moved for a 10%% weight change, want about 200", moved)
	}
	t.Run("set when missing", func(t *testing.T) {
		ch := a.Routes[0].Choose(req("GET", "/"))
		if ch.SetCookie == "" {
			t.Fatal("no cookie to set")
		}
		again := a.Routes[0].Choose(req("GET", "/", "Cookie", "uid="+ch.SetCookie))
		if again.Service != ch.Service || again.SetCookie != "" {
			t.Errorf("the set cookie led to %s (set %q), want %s", again.Service.Name, again.SetCookie, ch.Service.Name)
		}
		if a.Routes[0].StickyCookie() != "uid" {
			t.Errorf("StickyCookie = %q", a.Routes[0].StickyCookie())
		}
	})
	t.Run("header key", func(t *testing.T) {
		h := compileYAML(t, poolsYAML+`
routes:
  - name: www
    split: [{service: sa, weight: 50}, {service: sb, weight: 50}]
    sticky: {header: X-User}
`)
		for i := range 100 {
			r := req("GET", "/", "X-User", fmt.Sprint(i))
			first := h.Routes[0].Choose(r).Service
			for range 3 {
				if h.Routes[0].Choose(r).Service != first {
					t.Fatalf("header key %d moved", i)
				}
			}
		}
	})
}

func TestMirrorSample(t *testing.T) {
	for _, pct := range []float64{0, 1, 10, 33.3, 100} {
		t.Run(fmt.Sprint(pct), func(t *testing.T) {
			tb := compileYAML(t, poolsYAML+fmt.Sprintf(`
routes:
  - {name: r, service: sa, mirror: {service: sb, percent: %g}}
`, pct))
			n := 0
			for range 10000 {
				if tb.Routes[0].MirrorSample() {
					n++
				}
			}
			if want := int(math.Round(pct * 100)); n != want {
				t.Errorf("mirrored %d of 10000, want %d", n, want)
			}
		})
	}
}

func TestRouteDump(t *testing.T) {
	tb := compileYAML(t, splitYAML+`
  - name: api
    match: {host: ["*.api.test", api.test], path_prefix: /v1, method: GET, headers: {X-A: {regex: "a+"}}}
    service: sa
    mirror: {service: sb, percent: 5}
    retry: {attempts: 2, on: [connect_failure, "503"]}
    timeout: 10s
    strip_prefix: /v1
    add_headers: {X-B: "1"}
`)
	s := tb.String()
	for _, want := range []string{
		"route www\n",
		`  split[0] rule -> sc`,
		`    header X-Canary exact="1"`,
		"  split[4] weight=90 -> sa",
		"route api host=api.test,*.api.test path_prefix=/v1 method=GET",
		`  header X-A regex="a+"`,
		"  mirror service=sb percent=5 max_body=65536 timeout=5s max_in_flight=64",
		"  retry attempts=2 on=connect_failure,503 budget=20% max_retry_body=65536",
		"  timeout=10s per_try_timeout=0s",
		`  rewrite host="" strip_prefix="/v1"`,
		`  add_header X-B="1"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("dump lacks %q:\n%s", want, s)
		}
	}
	if s != compileYAML(t, splitYAML+`
  - name: api
    match: {host: ["*.api.test", api.test], path_prefix: /v1, method: GET, headers: {X-A: {regex: "a+"}}}
    service: sa
    mirror: {service: sb, percent: 5}
    retry: {attempts: 2, on: [connect_failure, "503"]}
    timeout: 10s
    strip_prefix: /v1
    add_headers: {X-B: "1"}
`).String() {
		t.Error("dump is not deterministic")
	}
}

func FuzzMatch(f *testing.F) {
	tb := compileYAML(f, poolsYAML+`
routes:
  - {name: r0, match: {host: "*.example.com", path_prefix: /api}, service: sa}
  - {name: r1, match: {host: [www.example.com, example.com], path: /}, service: sb}
  - {name: r2, match: {host: "*.b.example.com", path_regex: "/v[0-9]+/.*"}, service: sa}
  - {name: r3, match: {path_prefix: /static/, method: [GET, HEAD]}, service: sc}
  - {name: r4, match: {headers: {X-A: {prefix: "a"}}, query: {q: {present: true}}, cookies: {c: "1"}}, service: sa}
  - {name: r5, match: {host: x.b.example.com}, service: sb}
  - {name: r6, match: {client_cidr: [10.0.0.0/8]}, service: sb}
`)
	seeds := []struct{ host, target, hdr, cookie, client string }{
		{"www.example.com", "/", "", "", "127.0.0.1"},
		{"WWW.EXAMPLE.COM.:80", "/api/x", "", "", ""},
		{"a.b.example.com", "/v1/x?q=1", "abc", "c=1", "10.0.0.1"},
		{"x.b.example.com", "/static/../api", "", "", "::1"},
		{"evil.test", "//static//a.css", "a", "c=1; d=2", ""},
		{"[::1]:8080", "/?q", "a", "c=1", "10.1.1.1"},
		{"example.com", "/%2e%2e/", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.host, s.target, s.hdr, s.cookie, s.client)
	}
	f.Fuzz(func(t *testing.T, host, target, hdr, cookie, client string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		r := &http.Request{Method: "GET", URL: u, Host: host, Header: http.Header{}}
		if hdr != "" {
			r.Header.Set("X-A", hdr)
		}
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		c, _ := netip.ParseAddr(client)
		got, want := tb.Match(r, c), tb.matchLinear(r, c)
		if got != want {
			t.Fatalf("host %q target %q: index matched %v, linear %v", host, target, got, want)
		}
		p := CleanPath(u.Path)
		if !isCleanPath(p) || CleanPath(p) != p {
			t.Fatalf("CleanPath(%q) = %q is not clean", u.Path, p)
		}
		if strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
			t.Fatalf("CleanPath(%q) = %q keeps a dot-dot segment", u.Path, p)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(poolsYAML + "routes:\n")
	for i := range 200 {
		fmt.Fprintf(&sb, "  - {name: r%d, match: {host: h%d.example.com, path_prefix: /api}, service: sa}\n", i, i)
	}
	sb.WriteString("  - {name: wild, match: {host: \"*.example.com\", path_prefix: /}, service: sb}\n")
	sb.WriteString("  - {name: hdr, match: {headers: {X-Canary: \"1\"}}, service: sb}\n")
	sb.WriteString("  - {name: last, match: {path_prefix: /}, service: sc}\n")
	tb := compileYAML(b, sb.String())
	cases := []struct{ name, host string }{
		{"exact-host", "h150.example.com"},
		{"wildcard-host", "zzz.example.com"},
		{"fallthrough", "other.test"},
	}
	client := netip.MustParseAddr("192.0.2.1")
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := req("GET", "/api/items/42", "Host", c.host, "User-Agent", "bench")
			b.ReportAllocs()
			for b.Loop() {
				if tb.Match(r, client) == nil {
					b.Fatal("no match")
				}
			}
		})
	}
	b.Run("split-choose", func(b *testing.B) {
		st := compileYAML(b, splitYAML)
		r := req("GET", "/", "Host", "x")
		b.ReportAllocs()
		for b.Loop() {
			st.Routes[0].Choose(r)
		}
	})
}
