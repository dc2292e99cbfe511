package routing

import (
	"testing"

	"github.com/meridian-lb/meridian/config"
)

// TestCompileRegexps checks that Compile reuses the expressions Parse
// compiled, one value for every use of an expression, and still compiles
// them itself for a config built by hand.
func TestCompileRegexps(t *testing.T) {
	parsed := compileYAML(t, poolsYAML+`
routes:
  - {name: v, match: {path_regex: "^/v[0-9]+/", headers: {X-T: {regex: "^t[0-9]+$"}}}, service: sa}
  - {name: w, match: {headers: {X-T: {regex: "^t[0-9]+$"}}}, split: [{when: {query: {q: {regex: "^t[0-9]+$"}}}, service: sb}, {service: sc}]}
`)
	shared := parsed.Config.Regexp("^t[0-9]+$")
	if shared == nil || parsed.Config.Regexp("^/v[0-9]+/") == nil {
		t.Fatal("Parse kept no compiled expression")
	}
	if parsed.Routes[0].path.re != parsed.Config.Regexp("^/v[0-9]+/") {
		t.Error("path_regex compiled again")
	}
	for _, re := range []any{parsed.Routes[0].cond.headers()[0].re, parsed.Routes[1].cond.headers()[0].re, parsed.Routes[1].Split.rules[0].query[0].re} {
		if re != any(shared) {
			t.Error("a regex matcher compiled its expression again")
		}
	}

	cfg := &config.Config{
		Pools:    map[string]*config.Pool{"a": {Endpoints: []config.Endpoint{{Address: "127.0.0.1:1"}}}},
		Services: map[string]*config.Service{"s": {Pools: []string{"a"}}},
		Routes: []*config.Route{{Name: "v", Service: "s", Match: config.Match{
			PathRegex: "^/v[0-9]+/",
			Headers:   map[string]config.StringMatch{"X-T": {Regex: "^t[0-9]+$"}},
		}}},
	}
	cfg.SetDefaults()
	if cfg.Regexp("^/v[0-9]+/") != nil {
		t.Fatal("a config built by hand has compiled expressions")
	}
	hand, err := Compile(cfg, Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, hdr, want string
	}{
		{"both match", "/v1/x", "t12", "v"},
		{"path does not", "/x", "t12", ""},
		{"header does not", "/v1/x", "x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchName(hand, req("GET", tt.path, "X-T", tt.hdr), ""); got != tt.want {
				t.Errorf("matched %q, want %q", got, tt.want)
			}
		})
	}
}
