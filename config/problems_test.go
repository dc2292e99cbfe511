package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestSyntaxErrorPosition: a YAML syntax error is reported at the line and
// column where the file stops being YAML, not at the line (counted from 0)
// where the parser's enclosing block began, which is what the yaml package
// says.
func TestSyntaxErrorPosition(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"stray bracket", "listen: {http: 127.0.0.1:0}\nroutes: ]\n",
			"s.yaml:2:9: yaml: did not find expected node content"},
		{"unclosed flow mapping", "listen:\n  http: 127.0.0.1:0\npools:\n  p: {endpoints: [127.0.0.1:1]\nservices:\n  web: {pools: [p]}\n",
			"s.yaml:4:30: yaml: did not find expected ',' or '}'"},
		{"mapping value in a plain scalar", "listen: {http: 127.0.0.1:0}\nlog: level: debug\n",
			"s.yaml:2:11: yaml: mapping values are not allowed in this context"},
		{"item outdented below its block", "pools:\n  p:\n    endpoints:\n      - 127.0.0.1:1\n    - 127.0.0.1:2\n",
			"s.yaml:5:5: yaml: did not find expected key"},
		{"tab indentation", "listen:\n\thttp: 127.0.0.1:0\n",
			"s.yaml:2:1: yaml: found character that cannot start any token"},
		{"unterminated quote", "listen: {http: 127.0.0.1:0}\nlog: {level: \"debug}\n",
			"s.yaml:2:14: yaml: found unexpected end of stream"},
		{"column counts characters", "a: {é: 1, ]\n", "s.yaml:1:11: yaml: did not find expected node content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte(tt.text))
			if err == nil || err.Error() != tt.want {
				t.Errorf("error\n  %v\nwant\n  %s", err, tt.want)
			}
		})
	}
}

// TestEnumsDecode: every closed set of names takes its own names, leaves
// an unset value to the default, and refuses anything else at its line.
func TestEnumsDecode(t *testing.T) {
	base := "listen: {http: 127.0.0.1:0}\n"
	tests := []struct {
		name, yaml string
		want       string // "" when it decodes
		get        func(*Config) string
	}{
		{"balance", "pools: {p: {endpoints: [127.0.0.1:1], balance: maglev}}", "", func(c *Config) string { return string(c.Pools["p"].Balance) }},
		{"balance default", "pools: {p: {endpoints: [127.0.0.1:1]}}", "", func(c *Config) string { return string(c.Pools["p"].Balance) }},
		{"balance unknown", "pools: {p: {endpoints: [127.0.0.1:1], balance: fastest}}",
			`e.yaml:2: pools.p.balance: unknown balancer "fastest": want round_robin, least_request, random, ring_hash or maglev`, nil},
		{"balance not a scalar", "pools: {p: {endpoints: [127.0.0.1:1], balance: [maglev]}}",
			`e.yaml:2: pools.p.balance: expected a balancer name`, nil},
		{"policy", "pools: {p: {endpoints: [127.0.0.1:1]}}\nservices: {s: {policy: weighted, pools: [p], weights: [1]}}", "", func(c *Config) string { return string(c.Services["s"].Policy) }},
		{"policy unknown", "pools: {p: {endpoints: [127.0.0.1:1]}}\nservices: {s: {policy: Geo, pools: [p]}}",
			`e.yaml:3: services.s.policy: unknown policy "Geo": want failover, weighted or geo`, nil},
		{"protocol", "pools: {p: {endpoints: [127.0.0.1:1], protocol: h2c}}", "", func(c *Config) string { return string(c.Pools["p"].Protocol) }},
		{"protocol unknown", "pools: {p: {endpoints: [127.0.0.1:1], protocol: http2}}",
			`e.yaml:2: pools.p.protocol: unknown protocol "http2": want auto, http1, h2c or h2`, nil},
		{"pool on_all_down", "pools: {p: {endpoints: [127.0.0.1:1], on_all_down: fail}}", "", func(c *Config) string { return string(c.Pools["p"].OnAllDown) }},
		{"pool on_all_down of a record", "pools: {p: {endpoints: [127.0.0.1:1], on_all_down: nodata}}",
			`e.yaml:2: pools.p.on_all_down: unknown on_all_down "nodata": want fail_open, fail or forward`, nil},
		{"record on_all_down", "zones: [{origin: example.com., records: [{name: w, type: A, service: s, on_all_down: nodata}]}]", "",
			func(c *Config) string { return string(c.Zones[0].Records[0].OnAllDown) }},
		{"record on_all_down unknown", "zones: [{origin: example.com., records: [{name: w, type: A, service: s, on_all_down: fail}]}]",
			`e.yaml:2: zones[0].records[0].on_all_down: unknown on_all_down "fail": want fail_open, nodata or fallback`, nil},
		{"check type", "checks: {c: {type: tcp}}", "", func(c *Config) string { return string(c.Checks["c"].Type) }},
		{"check type unknown", "checks: {c: {type: icmp}}",
			`e.yaml:2: checks.c.type: unknown check type "icmp": want http, https, tcp or dns`, nil},
		{"check type missing", "checks: {c: {interval: 5s}}",
			`e.yaml:2: checks.c.type: missing check type: want http, https, tcp or dns`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *Config
			var err error
			if tt.want == "" {
				// Zones and services are only decoded here, not compiled.
				c, err = parse("e.yaml", []byte(base+tt.yaml+"\n"), 1, splitMinBytes)
			} else {
				_, err = Parse("e.yaml", []byte(base+tt.yaml+"\n"))
			}
			switch {
			case tt.want != "":
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %v, want %s", err, tt.want)
				}
			case err != nil:
				t.Fatal(err)
			default:
				got := tt.get(c)
				if want := wantEnum(tt.name, tt.yaml); got != want {
					t.Errorf("decoded %q, want %q", got, want)
				}
			}
		})
	}
}

// wantEnum is the value a decoding case expects: the default for the
// default case, else the value written in yaml.
func wantEnum(name, yaml string) string {
	if strings.HasSuffix(name, "default") {
		return string(BalanceRoundRobin)
	}
	for _, v := range []string{"maglev", "weighted", "h2c", "fail}", "nodata", "tcp"} {
		if strings.Contains(yaml, v) {
			return strings.TrimSuffix(v, "}")
		}
	}
	return ""
}

// TestLocate: problems found after Parse, by config path, get their file
// and line from the file the config came from.
func TestLocate(t *testing.T) {
	const text = `listen: {http: 127.0.0.1:0}
geo:
  nets:
    10.0.0.0/8: eu
pools:
  web:
    endpoints: [127.0.0.1:1]
`
	cfg, err := Parse("l.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	found := errors.Join(
		Problem{Path: "pools.web.endpoints[0]", Msg: "refused"},
		Problem{Path: "geo.nets.10.0.0.0/8", Msg: "conflict"},
		errors.Join(Problem{Path: "pools.web.tls.ca", Msg: "unreadable"}), // defaulted: the pool's line
		Problem{Msg: "nothing here"},                                      // no path: the document's start
		fmt.Errorf("pools.web.tls.ca: something"),                         // not a Problem: no line
	)
	err = cfg.Locate(found)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Locate = %T %v, want an *Error", err, err)
	}
	want := `l.yaml: pools.web.tls.ca: something
l.yaml:1: nothing here
l.yaml:4: geo.nets.10.0.0.0/8: conflict
l.yaml:6: pools.web.tls.ca: unreadable
l.yaml:7: pools.web.endpoints[0]: refused`
	if err.Error() != want {
		t.Errorf("Locate:\n%v\nwant\n%s", err, want)
	}
	if cfg.Locate(nil) != nil {
		t.Error("Locate(nil) is not nil")
	}
	hand := &Config{}
	if got := hand.Locate(Problem{Path: "pools.p", Msg: "x"}).Error(); got != "pools.p: x" {
		t.Errorf("a Config built by hand: %q, want the path and no line", got)
	}
}

// TestParseExtraChecks: checks from other packages run on the decoded
// config even when its own rules failed, and their problems are listed,
// located and sorted with the rest.
func TestParseExtraChecks(t *testing.T) {
	text := "listen: {http: 127.0.0.1:0}\npools:\n  p: {endpoints: [127.0.0.1:1], check: none}\nzones:\n  - origin: example.com.\n"
	zoneCheck := func(c *Config) error {
		if len(c.Zones) != 1 {
			return errors.New("zones not decoded")
		}
		return Problem{Path: "zones[0].origin", Msg: "checked"}
	}
	_, err := Parse("x.yaml", []byte(text), zoneCheck)
	want := "x.yaml:3: pools.p.check: unknown check \"none\"\nx.yaml:5: zones[0].origin: checked"
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
	if _, err := Parse("x.yaml", []byte("listen: {http: 127.0.0.1:0}\n"), func(*Config) error { return nil }); err != nil {
		t.Errorf("a check that finds nothing: %v", err)
	}
}

func TestIsDomainName(t *testing.T) {
	long := strings.Repeat("a", 63)
	for s, want := range map[string]bool{
		"www.example.com":                   true,
		"www.example.com.":                  true,
		"localhost":                         true,
		".":                                 true,
		"":                                  false,
		"a..b":                              false,
		".a":                                false,
		long + ".com":                       true,
		long + "a.com":                      false,
		strings.Repeat(long+".", 4) + "com": false, // over 255 octets
		"under_score.example":               true,  // syntax only, as DNS carries names
	} {
		if got := isDomainName(s); got != want {
			t.Errorf("isDomainName(%q) = %t, want %t", s, got, want)
		}
	}
}
