package config

import (
	"strings"
	"testing"
)

// TestParseCompilesEachRegexpOnce checks the expressions Parse keeps for
// routing, and that a bad expression is reported at every use although it
// is compiled once.
func TestParseCompilesEachRegexpOnce(t *testing.T) {
	const base = "pools: {p: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [p]}}\nroutes:\n"
	cfg, err := Parse("ok.yaml", []byte(base+
		"  - {match: {path_regex: \"^/v[0-9]+/\", headers: {X-A: {regex: \"^a\"}}}, service: s}\n"+
		"  - {match: {cookies: {c: {regex: \"^a\"}}}, split: [{when: {query: {q: {regex: \"b$\"}}}, service: s}, {service: s}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, expr := range []string{"^/v[0-9]+/", "^a", "b$"} {
		if re := cfg.Regexp(expr); re == nil || re.String() != expr {
			t.Errorf("Regexp(%q) = %v", expr, re)
		}
	}
	if cfg.Regexp("^c") != nil {
		t.Error("Regexp of an expression the config does not use is not nil")
	}

	_, err = Parse("bad.yaml", []byte(base+
		"  - {match: {headers: {X-A: {regex: \"(a\"}}}, service: s}\n"+
		"  - {match: {path_regex: \"(a\"}, service: s}\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"bad.yaml:4: routes[0].match.headers.X-A.regex: error parsing regexp: missing closing ): `(a`",
		"bad.yaml:5: routes[1].match.path_regex: error parsing regexp: missing closing ): `(a`",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
}
