package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
listen: {http: 127.0.0.1:8080, dns: 127.0.0.1:5353}
checks:
  ready: {type: http, path: /healthz, expect: [200, "300-302"], interval: 2s, timeout: 1s}
pools:
  web-eu:
    region: eu
    endpoints: [127.0.0.1:9101, {address: 127.0.0.1:9102, weight: 3}]
    check: ready
  web-us: {region: us, endpoints: [127.0.0.1:9103]}
services:
  web: {policy: geo, pools: [web-eu, web-us]}
routes:
  - name: www
    match: {host: www.example.com, path_prefix: /, headers: {X-A: "1", X-B: {present: true}, X-C: {regex: "^a+$"}}}
    service: web
    mirror: {service: web, percent: 10, max_body: 1MiB}
zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
    records:
      - {name: www, type: A, service: web, ttl: 30}
      - {name: "@", type: MX, values: ["10 mail.example.com."]}
      - {name: txt, type: TXT, values: [hello world]}
`

func TestParseGood(t *testing.T) {
	c, err := Parse("good.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Pools["web-eu"].Endpoints; len(got) != 2 || got[0].Weight != 1 || got[1].Weight != 3 {
		t.Errorf("endpoints = %+v, want weights 1 and 3", got)
	}
	if got := c.Checks["ready"].Expect; len(got) != 2 || got[1] != (StatusRange{300, 302}) {
		t.Errorf("expect = %+v", got)
	}
	if c.Checks["ready"].Interval.D() != 2*time.Second {
		t.Errorf("interval = %v", c.Checks["ready"].Interval.D())
	}
	if c.Routes[0].Mirror.MaxBody != 1<<20 {
		t.Errorf("max_body = %d", c.Routes[0].Mirror.MaxBody)
	}
	h := c.Routes[0].Match.Headers
	if h["X-A"].Exact != "1" || h["X-B"].Present == nil || !*h["X-B"].Present || h["X-C"].Regex != "^a+$" {
		t.Errorf("headers = %+v", h)
	}
	if c.Listen.Admin != DefaultAdminAddr || c.Zones[0].Records[0].MaxAnswers != DefaultMaxAnswers {
		t.Errorf("defaults not applied: admin %q max_answers %d", c.Listen.Admin, c.Zones[0].Records[0].MaxAnswers)
	}
}

// TestParseProblems checks that each mistake is reported with its line and
// path, and that all of them come out of one run.
func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
		want []string // substrings, each of which must appear
	}{
		{"unknown key", func(s string) string {
			return strings.Replace(s, "    check: ready\n", "    check: ready\n    chek: ready\n", 1)
		}, []string{`bad.yaml:10: pools.web-eu.chek: unknown key "chek"`}},
		{"bad duration", func(s string) string { return strings.Replace(s, "interval: 2s", "interval: 2 seconds", 1) },
			[]string{`bad.yaml:4: checks.ready.interval: invalid duration "2 seconds"`}},
		{"wrong type", func(s string) string { return strings.Replace(s, "weight: 3", "weight: heavy", 1) },
			[]string{`bad.yaml:8: pools.web-eu.endpoints[1].weight: cannot use str "heavy"`}},
		{"dangling service", func(s string) string { return strings.Replace(s, "    service: web\n", "    service: wbe\n", 1) },
			[]string{`bad.yaml:16: routes[0].service: unknown service "wbe"`}},
		{"dangling pool and check", func(s string) string {
			s = strings.Replace(s, "[web-eu, web-us]", "[web-eu, web-as]", 1)
			return strings.Replace(s, "check: ready", "check: redy", 1)
		}, []string{`pools.web-eu.check: unknown check "redy"`, `services.web.pools[1]: unknown pool "web-as"`}},
		{"negative and zero weights", func(s string) string {
			return strings.Replace(s, "{region: us, endpoints: [127.0.0.1:9103]}", "{region: us, endpoints: [{address: 127.0.0.1:9103, weight: -1}]}", 1)
		}, []string{`pools.web-us.endpoints[0].weight: weight must not be negative`, `pools.web-us.endpoints: all weights are zero`}},
		{"bad CIDR in match", func(s string) string {
			return strings.Replace(s, "path_prefix: /,", "path_prefix: /, client_cidr: [10.0.0.0/40],", 1)
		}, []string{`routes[0].match.client_cidr[0]: invalid CIDR "10.0.0.0/40"`}},
		{"unknown balancer", func(s string) string {
			return strings.Replace(s, "    check: ready\n", "    check: ready\n    balance: fastest\n", 1)
		},
			[]string{`bad.yaml:10: pools.web-eu.balance: unknown balancer "fastest": want round_robin, least_request, random, ring_hash or maglev`}},
		{"unknown policy", func(s string) string { return strings.Replace(s, "policy: geo", "policy: nearest", 1) },
			[]string{`bad.yaml:12: services.web.policy: unknown policy "nearest": want failover, weighted or geo`}},
		{"reuse_connection on a tcp check", func(s string) string {
			return strings.Replace(s, "type: http,", "type: tcp, reuse_connection: false,", 1)
		}, []string{`checks.ready.reuse_connection: applies to http checks only`}},
		{"unknown check type", func(s string) string { return strings.Replace(s, "type: http,", "type: icmp,", 1) },
			[]string{`bad.yaml:4: checks.ready.type: unknown check type "icmp": want http, https, tcp or dns`}},
		{"listener collision", func(s string) string { return strings.Replace(s, "dns: 127.0.0.1:5353", "dns: 127.0.0.1:8080", 1) },
			[]string{`bad.yaml:2: listen.dns: address 127.0.0.1:8080 collides with listen.http`}},
		{"duplicate key", func(s string) string { return strings.Replace(s, "  web-us: {", "  web-eu: {", 1) },
			[]string{`bad.yaml:10:`, `already defined`}},
		{"bad regex", func(s string) string { return strings.Replace(s, `^a+$`, `^(a+$`, 1) },
			[]string{`routes[0].match.headers.X-C.regex: error parsing regexp`}},
		{"syntax error", func(s string) string { return s + "\n  - : : [\n" }, []string{`bad.yaml:`}},
		{"empty file", func(string) string { return "" }, []string{`bad.yaml:1: config is empty`}},
		{"alias bomb", func(string) string { return aliasBomb }, []string{`bad.yaml:1: a: unknown key "a"`}},
		{"acme without https and with bad values", func(s string) string {
			return s + "tls:\n  acme:\n    directory: http://ca.example/dir\n    email: nobody\n    domains: [\"*.example.com\", www.example.com, WWW.example.com., localhost, 10.0.0.1, bücher.example.com, exa_mple.com, \"a.*.example.com\", \"www.example.com:443\", -bad-.example.com]\n    challenges: [dns-01]\n"
		}, []string{
			`tls.acme: ACME certificates are served on listen.https`,
			`bad.yaml:28: tls.acme.directory: want the CA's https:// directory URL`,
			`tls.acme.email: invalid address "nobody"`,
			`tls.acme.domains[0]: wildcard "*.example.com" needs the DNS-01 challenge`,
			`tls.acme.domains[2]: duplicate domain "WWW.example.com."`,
			`tls.acme.domains[3]: invalid domain "localhost"`,
			`tls.acme.domains[4]: "10.0.0.1" is an address`,
			`tls.acme.domains[5]: internationalized name "bücher.example.com": write its ASCII form "xn--bcher-kva.example.com"`,
			`tls.acme.domains[6]: invalid domain "exa_mple.com"`,
			`tls.acme.domains[7]: invalid domain "a.*.example.com"`,
			`tls.acme.domains[8]: invalid domain "www.example.com:443"`,
			`tls.acme.domains[9]: invalid domain "-bad-.example.com"`,
			`tls.acme.storage: missing storage directory`,
			`tls.acme.challenges[0]: want http-01 or tls-alpn-01, not "dns-01"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tt.edit(good)))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// aliasBomb expands to 9^7 nodes if aliases are followed naively.
const aliasBomb = `a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
`

func TestParseListsEveryProblem(t *testing.T) {
	s := strings.Replace(good, "interval: 2s", "interval: 2x", 1)
	s = strings.Replace(s, "    service: web\n", "    service: wbe\n", 1)
	s = strings.Replace(s, "    check: ready\n", "    check: ready\n    protocol: h3\n", 1)
	_, err := Parse("bad.yaml", []byte(s))
	var e *Error
	if err == nil || !asError(err, &e) {
		t.Fatalf("err = %v, want *Error", err)
	}
	if len(e.Problems) != 3 {
		t.Fatalf("got %d problems, want 3:\n%v", len(e.Problems), err)
	}
	for i := 1; i < len(e.Problems); i++ {
		if e.Problems[i].Line < e.Problems[i-1].Line {
			t.Errorf("problems not sorted by line:\n%v", err)
		}
	}
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	*target = e
	return ok
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(aliasBomb))
	f.Add([]byte("pools: {a: {endpoints: [x]}}"))
	f.Add([]byte("routes: [{match: {host: [a, b]}, split: [{weight: 0}]}]"))
	f.Add([]byte("zones: [{origin: ., records: [{name: '*', type: TXT, values: [x]}]}]"))
	files, _ := filepath.Glob("../examples/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		if err != nil && c != nil {
			t.Fatal("config returned with an error")
		}
		// Every problem has a line, a syntax error its column too.
		var e *Error
		if err != nil && asError(err, &e) {
			for _, p := range e.Problems {
				if p.Line < 1 || p.Line > bytes.Count(data, []byte("\n"))+1 || strings.HasPrefix(p.Msg, "yaml: ") && p.Column < 1 {
					t.Fatalf("problem without its place: %+v", p)
				}
			}
		}
	})
}
