package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"go.yaml.in/yaml/v3"

	"github.com/meridian-lb/meridian/internal/configtest"
)

// checkFast is the property the fast parser keeps: whatever it accepts,
// whole or in pieces, the yaml package parses to the same tree.
func checkFast(t *testing.T, data string) (accepted bool) {
	t.Helper()
	if got, ok := parseFast(data); ok {
		accepted = true
		var want yaml.Node
		if err := yaml.Unmarshal([]byte(data), &want); err != nil {
			t.Fatalf("accepted what the yaml package refuses (%v):\n%s", err, data)
		}
		if d := sameTree(got.document(), &want, ""); d != "" {
			t.Fatalf("tree differs: %s\n%s", d, data)
		}
	}
	for _, parts := range []int{2, 3, 5} {
		for _, p := range cutPieces([]byte(data), parts, 0) {
			got, ok := parseFastPiece(data, p)
			if !ok {
				continue
			}
			var want yaml.Node
			if err := yaml.Unmarshal(p.text([]byte(data)), &want); err != nil {
				t.Fatalf("accepted a piece the yaml package refuses (%v):\n%s", err, p.text([]byte(data)))
			}
			if d := sameTree(got.document(), &want, ""); d != "" {
				t.Fatalf("piece %+v: tree differs: %s\n%s", p, d, p.text([]byte(data)))
			}
		}
	}
	return accepted
}

// fastAccepts are files the fast parser must read itself: the shapes
// config files have.
var fastAccepts = []string{
	good,
	configtest.Big(40, 0, "listen: {admin: 127.0.0.1:0}\nlog: {level: warn}\n"),
	"a: 1\n",
	"a: b\n",
	"a: b",
	"a:\n  b: c\n  d: e\nf: g\n",
	"a:\n- 1\n- 2\nb: [x, y]\n",
	"a:\n  - x\n  - y: 1\n    z: 2\n  - {p: q}\n  - [1, 2]\n",
	"a:   # comment\n  # another\n  b: c   # trailing\n\n\n# at 0\n  d: e\n",
	"a: 'it''s'\nb: \"x\\ny\\\\z\\\"\"\nc: 'a: b'\nd: \"# not a comment\"\n",
	"\"quoted key\": 1\n'single': 2\n\"k\" : 3\n",
	"a: http://x.example/p?q=1#frag\nb: a#b\nc: a b  c\nd: 1.5\ne: -3\nf: true\ng: null\nh: ~\ni: 0x1F\nj: 2001-12-14\nk: .inf\n",
	"a: {b: {c: [d, {e: f}]}, g: []}\nh: {}\n",
	"a: [127.0.0.1:80, '[::1]:80', \"x\"]\n",
	"a:\nb: 1\n",
	"a:\n  b:\n  c: 1\nd:\n",
	"a:\n  - b:\n      c: d\n    e:\n    - f\n    - g\n  - h\n",
	"# head\n\n\na: 1 # c\n# tail\n",
	"a: x,y[0]{}\nb: it's \"q\"\n",
	"a: {b: c d, e: f}\n",
	"a:\n  -   b: 1\n      c: 2\n",
	"a: b\n# é ünïcødé in a comment\nc: d\n",
	"x-y_z.w/v: 1\n-a: 2\n",
	"a: 1\n\n\n",
}

// fastRefuses are files it must leave to the yaml package.
var fastRefuses = []string{
	"",
	"# only a comment\n",
	"a: b\nc\n",
	"a: b\n  c\n",
	"a: [b,\n  c]\n",
	"a: &x 1\nb: *x\n",
	"a: !!str 1\n",
	"a: |\n  x\n",
	"a: >\n  x\n",
	"- a\n- b\n",
	"  a: 1\n",
	"{a: 1}\n",
	"a: b: c\n",
	"a:\n  b\n",
	"a: \"x\\u0041\"\n",
	"a: 'b\n  c'\n",
	"a:\n-\n  b: 1\n",
	"a:\n- - b\n",
	"a: [b, ]\n",
	"a: {b}\n",
	"a: {b: }\n",
	"a: [b: c]\n",
	"a: {? b: c}\n",
	"a: x\n---\nb: y\n",
	"%YAML 1.2\n---\na: 1\n",
	"a: 1\n...\n",
	"a:\tb\n",
	"a: b\r\nc: d\r\n",
	"a: café\n",
	"\ufeffa: 1\n",
	"a: b #\u2028c\n",
	"a: \"b\"#c\n",
	"a: [b]#c\n",
	"a: b\n   c: d\n",
	"a:\n    b: 1\n  c: 2\n",
	"<<: {a: 1}\n",
	"a: [b?c]\n",
	"a: [b:]\n",
	"a: @x\n",
	"a: `x`\n",
	"? a\n: b\n",
	"a:\n  - b\n   - c\n",
	"a:\n  - b\n  c: d\n",
	"a: b\n- c\n",
	strings.Repeat("k", 1100) + ": v\n",
}

func TestFastYAMLAccepts(t *testing.T) {
	for i, s := range fastAccepts {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if !checkFast(t, s) {
				t.Fatalf("refused:\n%s", s)
			}
		})
	}
}

func TestFastYAMLRefuses(t *testing.T) {
	for i, s := range fastRefuses {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if checkFast(t, s) {
				t.Fatalf("accepted:\n%s", s)
			}
		})
	}
}

// TestFastYAMLFiles runs the property on the examples, the test inputs and
// the piece seeds, and requires the fast parser to read the examples.
func TestFastYAMLFiles(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	more, _ := filepath.Glob("../routing/testdata/*.yaml")
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			if !checkFast(t, string(b)) && strings.HasPrefix(f, "../examples") {
				t.Errorf("the fast parser refuses an example")
			}
		})
	}
	for i, s := range pieceSeeds {
		t.Run(fmt.Sprint("seed", i), func(t *testing.T) { checkFast(t, s) })
	}
}

func FuzzFastYAML(f *testing.F) {
	for _, s := range append(append(append([]string{}, fastAccepts...), fastRefuses...), pieceSeeds...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 16<<10 {
			return
		}
		checkFast(t, s)
	})
}

// checkFastDecode is the property the fast decoder keeps: whatever it
// decodes, the walk for unknown keys finds none and Node.Decode gives the
// same value without error. And Parse gives the same config, or the same
// error, by the fast way (whole and in pieces) as by the yaml package's.
func checkFastDecode(t *testing.T, data string) (accepted bool) {
	t.Helper()
	defer checkParseWays(t, data)
	tree, ok := parseFast(data)
	if !ok {
		return false
	}
	var got Config
	d := fastDecoder{t: tree}
	if !d.decode(tree.root, reflect.ValueOf(&got).Elem()) {
		return false
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(data), &root); err != nil {
		t.Fatalf("parsed what the yaml package refuses (%v):\n%s", err, data)
	}
	doc := root.Content[0]
	var unknown []string
	w := keyWalker{types: schema{}, report: func(path string, _ *yaml.Node) { unknown = append(unknown, path) }}
	w.walk(doc, configType)
	if len(unknown) > 0 {
		t.Fatalf("decoded despite unknown keys %v:\n%s", unknown, data)
	}
	var want Config
	if err := doc.Decode(&want); err != nil {
		t.Fatalf("decoded what Node.Decode refuses (%v):\n%s", err, data)
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := yaml.Marshal(got)
		w, _ := yaml.Marshal(want)
		t.Fatalf("decoded differently:\n%s\nwant\n%s\nfrom\n%s", g, w, data)
	}
	return true
}

// checkParseWays compares parse by the fast way with the yaml package's.
func checkParseWays(t *testing.T, data string) {
	t.Helper()
	slowParseOnly = true
	want, wantErr := parse("f.yaml", []byte(data), 1, 0)
	slowParseOnly = false
	for _, parts := range []int{1, 2, 3} {
		got, gotErr := parse("f.yaml", []byte(data), parts, 0)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("%d pieces: error\n%v\nwant\n%v\nfrom\n%s", parts, gotErr, wantErr, data)
		}
		if wantErr != nil {
			continue
		}
		g, err1 := yaml.Marshal(got)
		w, err2 := yaml.Marshal(want)
		if err1 != nil || err2 != nil || string(g) != string(w) {
			t.Fatalf("%d pieces: config differs (%v, %v):\n%s\nwant\n%s", parts, err1, err2, g, w)
		}
		if !reflect.DeepEqual(sortedKeys(got.regexps), sortedKeys(want.regexps)) {
			t.Fatalf("%d pieces: compiled %v, want %v", parts, sortedKeys(got.regexps), sortedKeys(want.regexps))
		}
	}
}

// decodeSeeds are configs with every kind of field, and mistakes.
var decodeSeeds = []string{
	"pools: {a: {endpoints: [127.0.0.1:1, {address: 127.0.0.1:2, weight: 3}], check: c, balance: maglev, on_all_down: fail}}\nchecks: {c: {type: http, path: /h, interval: 2s}}\n",
	"routes:\n- name: r\n  service: s\n  timeout: 1s\n  retry: {attempts: 2}\n  match: {host: [a, b], headers: {X: {prefix: p}}}\n",
	"routes:\n- name: r\n  timeout: -1s\n",
	"routes:\n- name: r\n  bogus: 1\n",
	"routes:\n- name: r\n  name: s\n",
	"pools: {a: null, b: ~}\n",
	"routes: [null]\n",
	"dns: {query_log: .5}\nhealth: {max_in_flight: 0x10}\n",
	"dns: {query_log: yes}\n",
	"log: {level: 123}\n",
	"pools: {a: {endpoints: 127.0.0.1:1}}\n",
	"pools: [a]\n",
	"routes: {a: b}\n",
	"<<: {log: {level: info}}\n",
	"log: &l {level: info}\nhttp: *l\n",
	"log: !!map {level: info}\n",
	"'routes': [{'name': \"r\"}]\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}, a: {endpoints: [127.0.0.1:2]}}\n",
	"pools: {~: {endpoints: [127.0.0.1:1]}}\n",
	"routes:\n- name: r\n  max_body: 1MiB\n  redirect_https: true\n  sticky: {cookie: c}\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [b]}}\nroutes:\n- {service: t}\n- name: x\n  service: s\n  match: {headers: {X: {regex: \"(\"}}}\n",
	"pools:\n  a:\n    endpoints: [127.0.0.1:1]\n    balance: bogus\n",
}

func TestFastDecode(t *testing.T) {
	inputs := append([]string{good, configtest.Big(40, 0, "")}, decodeSeeds...)
	inputs = append(inputs, pieceSeeds...)
	inputs = append(inputs, fastAccepts...)
	files, _ := filepath.Glob("../examples/*.yaml")
	more, _ := filepath.Glob("../routing/testdata/*.yaml")
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	n := 0
	for i, s := range inputs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if checkFastDecode(t, s) {
				n++
			}
		})
	}
	// The examples, good and the generated config are decoded fast.
	if n < len(files)+2 {
		t.Errorf("only %d of %d inputs decoded fast", n, len(inputs))
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if !checkFastDecode(t, string(b)) {
			t.Errorf("%s is not decoded fast", f)
		}
	}
}

func FuzzFastDecode(f *testing.F) {
	for _, s := range append(append([]string{good}, decodeSeeds...), pieceSeeds...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 16<<10 {
			return
		}
		checkFastDecode(t, s)
	})
}

// TestResolvesShortcut: a plain scalar whose first byte resolves says no
// to is a string to the yaml package, as the fast parser tags it without
// asking.
func TestResolvesShortcut(t *testing.T) {
	for c := byte(0x21); c < 0x7f; c++ {
		if resolves(c) {
			continue
		}
		for _, rest := range []string{"", "1", "0", ".5", "e3", "true", "ull", ":00", "-12-14", "_1"} {
			v := string(c) + rest
			if tag := (&yaml.Node{Kind: yaml.ScalarNode, Value: v}).ShortTag(); tag != "!!str" {
				t.Errorf("%q resolves to %s", v, tag)
			}
		}
	}
}

// TestFastDecodeCopiesStrings: the config's strings are not slices of the
// file's text, which a long-lived name (a metric label) would keep whole.
func TestFastDecodeCopiesStrings(t *testing.T) {
	data := configtest.Big(40, 0, "")
	text := data
	tree, ok := parseFast(text)
	if !ok {
		t.Fatal("not read fast")
	}
	var cfg Config
	d := fastDecoder{t: tree}
	if !d.decode(tree.root, reflect.ValueOf(&cfg).Elem()) {
		t.Fatal("not decoded fast")
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(text)))
	inText := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return len(s) > 0 && p >= start && p < start+uintptr(len(text))
	}
	for name, p := range cfg.Pools {
		if inText(name) || inText(p.Check) {
			t.Fatalf("pool %q keeps the text", name)
		}
	}
	for _, r := range cfg.Routes {
		if inText(r.Name) || inText(r.Service) || inText(r.Match.PathPrefix) {
			t.Fatalf("route %q keeps the text", r.Name)
		}
		for k, h := range r.Match.Headers {
			if inText(k) || inText(h.Regex) {
				t.Fatalf("route %q's header %q keeps the text", r.Name, k)
			}
		}
	}
}
