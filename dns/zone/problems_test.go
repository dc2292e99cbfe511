package zone

import (
	"os"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
)

const problemsBase = `pools:
  p: {endpoints: [192.0.2.1:80]}
services:
  s: {pools: [p]}
zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
    records:
`

// TestCompileProblems: each thing wrong with a zone is reported at its
// config path, by the compiler that builds the zone (nothing else parses
// records).
func TestCompileProblems(t *testing.T) {
	tests := []struct{ name, records, want string }{
		{"bad value", `      - {name: mx, type: MX, values: ["ten mail.example.com."]}`,
			`zones[0].records[0].values[0]: invalid MX value "ten mail.example.com."`},
		{"name outside the zone", `      - {name: txt.example.org., type: TXT, values: [x]}`,
			`zones[0].records[0].name: name "txt.example.org." is outside the zone example.com.`},
		{"wildcard inside", `      - {name: "a.*.b", type: TXT, values: [x]}`,
			`zones[0].records[0].name: a wildcard is only allowed as the leftmost label: "a.*.b"`},
		{"unsupported type", `      - {name: x, type: SOA, values: [x]}`,
			`zones[0].records[0].type: unsupported type "SOA": want one of A AAAA CNAME MX TXT SRV CAA NS PTR DS`},
		{"static without values", `      - {name: x, type: A}`,
			`zones[0].records[0].values: a static record needs values (or a service to steer)`},
		{"CNAME at the apex", `      - {name: "@", type: CNAME, values: [x.example.net.]}`,
			`zones[0].records[0].name: a CNAME cannot be at the zone apex`},
		{"CNAME with two values", `      - {name: w, type: CNAME, values: [a.example.net., b.example.net.]}`,
			`zones[0].records[0].values: a CNAME takes exactly one value`},
		{"CNAME after other data", "      - {name: w, type: TXT, values: [x]}\n      - {name: w, type: CNAME, values: [a.example.net.]}",
			`zones[0].records[1]: CNAME at w.example.com., which has other records (zones[0].records[0])`},
		{"other data after a CNAME", "      - {name: w, type: CNAME, values: [a.example.net.]}\n      - {name: w, type: A, service: s}",
			`zones[0].records[1]: A record at w.example.com., which has a CNAME (zones[0].records[0])`},
		{"two CNAMEs", "      - {name: w, type: CNAME, values: [a.example.net.]}\n      - {name: W, type: CNAME, values: [b.example.net.]}",
			`zones[0].records[1]: a second CNAME at w.example.com. (zones[0].records[0])`},
		{"two steered of one type", "      - {name: www, type: A, service: s}\n      - {name: www, type: A, service: s}",
			`zones[0].records[1]: a second steered A record at www.example.com. (zones[0].records[0]): one name answers one service per type`},
		{"steered after static", "      - {name: w, type: A, values: [192.0.2.9]}\n      - {name: w, type: A, service: s}",
			`zones[0].records[1]: a steered A record at w.example.com., which has static A records (zones[0].records[0])`},
		{"static after steered", "      - {name: w, type: A, service: s}\n      - {name: w, type: A, values: [192.0.2.9]}",
			`zones[0].records[1]: static A records at w.example.com., which has a steered A record (zones[0].records[0])`},
		{"steered MX", `      - {name: w, type: MX, service: s}`,
			`zones[0].records[0].type: steered records are A or AAAA, not "MX"`},
		{"steered with values", `      - {name: w, type: A, service: s, values: [192.0.2.9]}`,
			`zones[0].records[0].values: a steered record takes service or values, not both`},
		{"unknown service", `      - {name: w, type: A, service: nope}`,
			`zones[0].records[0].service: unknown service "nope"`},
		{"fallback without records", `      - {name: w, type: A, service: s, on_all_down: fallback}`,
			`zones[0].records[0].fallback: on_all_down: fallback needs a fallback record`},
		{"bad fallback value", `      - {name: w, type: A, service: s, on_all_down: fallback, fallback: {type: A, values: [x]}}`,
			`zones[0].records[0].fallback.values[0]: invalid A value "x"`},
		{"fallback CNAME with two values", `      - {name: w, type: A, service: s, on_all_down: fallback, fallback: {type: CNAME, values: [a.example.net., b.example.net.]}}`,
			`zones[0].records[0].fallback.values: a CNAME takes exactly one value`},
		{"negative max_answers", `      - {name: w, type: A, service: s, max_answers: -1}`,
			`zones[0].records[0].max_answers: must be at least 1`},
		{"empty record", `      - ~`, `zones[0].records[0]: empty record`},
		{"DS away from a delegation", `      - {name: w, type: DS, values: ["1 13 2 00"]}`,
			`zones[0].records[0]: a DS record at w.example.com., which is not a delegation (no NS records there)`},
		{"DS at the apex", `      - {name: "@", type: DS, values: ["1 13 2 00"]}`,
			`zones[0].records[0]: a DS record at the zone apex belongs in the parent zone`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zones, probs := compile(t, problemsBase+tt.records+"\n", fakeServices{"s": services["web"]})
			if zones != nil {
				t.Error("zones compiled despite a problem")
			}
			if len(probs) != 1 || probs[0].String() != tt.want {
				t.Errorf("problems %q, want one: %s", probs, tt.want)
			}
		})
	}
}

// TestCompileZoneLevelProblems covers the zone's own keys.
func TestCompileZoneLevelProblems(t *testing.T) {
	text := `zones:
  - origin: "bad..name"
  - ~
  - origin: example.com.
    ns: ["a..b"]
    transfer: {allow: [10.0.0.0/33], notify: [192.0.2.1]}
  - origin: example.org.
    soa: {ns: ns1.example.org., mbox: hostmaster.example.org.}
    ns: [ns1.example.org.]
  - origin: Example.ORG
    soa: {ns: ns1.example.org., mbox: hostmaster.example.org.}
    ns: [ns1.example.org.]
`
	_, probs := compile(t, text, services)
	want := []string{
		`zones[0].origin: invalid zone name "bad..name"`,
		`zones[1]: empty zone`,
		`zones[2].soa.ns: missing primary name server`,
		`zones[2].soa.mbox: missing hostmaster mailbox`,
		`zones[2].transfer.allow[0]: invalid CIDR "10.0.0.0/33"`,
		`zones[2].transfer.notify[0]: want ip:port, not "192.0.2.1"`,
		`zones[2].ns[0]: invalid name "a..b"`,
		`zones[4].origin: duplicate zone "Example.ORG" (also zones[3])`,
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCheckListsEveryProblem: as a config.Parse check, the zone compiler
// reports every problem of every record, with its line, beside the
// problems of the config's own rules.
func TestCheckListsEveryProblem(t *testing.T) {
	text := problemsBase + `      - {name: www, type: A, service: s}
      - {name: www, type: A, service: s}
      - {name: mx, type: MX, values: ["ten mail.example.com."]}
      - {name: x, type: A, service: nope}
`
	text = strings.Replace(text, "p: {endpoints: [192.0.2.1:80]}", "p: {endpoints: [192.0.2.1:80], check: none}", 1)
	_, err := config.Parse("z.yaml", []byte(text), Check)
	want := `z.yaml:2: pools.p.check: unknown check "none"
z.yaml:11: zones[0].records[1]: a second steered A record at www.example.com. (zones[0].records[0]): one name answers one service per type
z.yaml:12: zones[0].records[2].values[0]: invalid MX value "ten mail.example.com."
z.yaml:13: zones[0].records[3].service: unknown service "nope"`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	if _, err := config.Parse("z.yaml", []byte(zonesYAML), Check); err != nil {
		t.Errorf("a good file: %v", err)
	}
}

// FuzzCheck: the zone compiler copes with any config that decodes, its
// other rules broken or not (meridian validate runs it on such), and its
// problems always carry a path.
func FuzzCheck(f *testing.F) {
	f.Add([]byte(zonesYAML))
	f.Add([]byte(problemsBase + "      - {name: www, type: A, service: s}\n      - {name: www, type: CNAME, values: [x.]}\n"))
	f.Add([]byte("zones: [~, {origin: ., records: [~, {name: '*', type: TXT, values: [x]}]}]\nservices: {s: ~}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := config.Parse("fuzz.yaml", data, func(c *config.Config) error {
			_, probs := Compile(c, configServices(c.Services))
			for _, p := range probs {
				if p.Path == "" {
					t.Fatalf("a problem without a path: %v", p)
				}
			}
			return nil
		})
		_ = err
	})
}

// TestDNSSECProblems: a signed zone's settings and key files are checked
// by compiling it, each problem at its path.
func TestDNSSECProblems(t *testing.T) {
	file := t.TempDir() + "/file"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, dnssec, want string }{
		{"algorithm", "{key_dir: " + t.TempDir() + ", algorithm: rsasha1}", `zones[0].dnssec.algorithm: unsupported algorithm "rsasha1": want ecdsap256sha256 or ed25519`},
		{"no key_dir", "{algorithm: ed25519}", `zones[0].dnssec.key_dir: a signed zone needs a key_dir (its keys are read from it, or generated there)`},
		{"key_dir a file", "{key_dir: " + file + "}", `zones[0].dnssec.key_dir: ` + file + `: cannot read it: not a directory`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(problemsBase, "    records:\n", "    dnssec: "+tt.dnssec+"\n    records:\n", 1)
			zones, probs := compile(t, text, fakeServices{})
			if zones != nil || len(probs) != 1 || probs[0].String() != tt.want {
				t.Errorf("problems %q, want one: %s", probs, tt.want)
			}
		})
	}
}
