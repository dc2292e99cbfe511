package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/meridian-lb/meridian/internal/configtest"
)

// sameTree reports where two trees differ in anything but comments, or "".
func sameTree(a, b *yaml.Node, path string) string {
	switch {
	case a == nil || b == nil:
		if a != b {
			return path + ": one node is nil"
		}
		return ""
	case a.Kind != b.Kind || a.Style != b.Style || a.Tag != b.Tag || a.Value != b.Value ||
		a.Anchor != b.Anchor || a.Line != b.Line || a.Column != b.Column || len(a.Content) != len(b.Content):
		return fmt.Sprintf("%s: %+v differs from %+v", path, *a, *b)
	}
	if d := sameTree(a.Alias, b.Alias, path+"*"); a.Alias != nil && d != "" {
		return d
	}
	for i := range a.Content {
		if d := sameTree(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", path, i)); d != "" {
			return d
		}
	}
	return ""
}

// checkPieces is the property the cut must keep: whenever the pieces are
// trusted, the whole file parses to the same tree, and Parse gives the same
// config or the same error as without cutting.
func checkPieces(t *testing.T, data []byte) {
	t.Helper()
	for _, parts := range []int{2, 3, 5} {
		root, _, _, ok := parsePieces(data, parts, 0, nil)
		if !ok {
			continue
		}
		var whole yaml.Node
		if err := yaml.Unmarshal(data, &whole); err != nil {
			t.Fatalf("%d pieces parsed, the whole file does not: %v", parts, err)
		}
		if d := sameTree(root, &whole, ""); d != "" {
			t.Fatalf("%d pieces: tree differs: %s", parts, d)
		}
	}
	// The whole file the yaml package's way, against the fast way (whole
	// and in pieces) and the yaml package's in pieces.
	slowParseOnly = true
	want, wantErr := parse("f.yaml", data, 1, 0)
	slowParseOnly = false
	type way struct {
		parts int
		slow  bool
	}
	for _, w := range []way{{1, false}, {2, false}, {3, false}, {5, false}, {2, true}, {3, true}, {5, true}} {
		parts := w.parts
		slowParseOnly = w.slow
		got, gotErr := parse("f.yaml", data, parts, 0)
		slowParseOnly = false
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("%d pieces: error\n%v\nwant\n%v", parts, gotErr, wantErr)
		}
		if wantErr != nil {
			continue
		}
		g, err1 := yaml.Marshal(got)
		w, err2 := yaml.Marshal(want)
		if err1 != nil || err2 != nil || string(g) != string(w) {
			t.Fatalf("%d pieces: config differs (%v, %v):\n%s\nwant\n%s", parts, err1, err2, g, w)
		}
		if len(got.Routes) != cap(got.Routes) || len(want.Routes) != cap(want.Routes) {
			t.Fatalf("%d pieces: routes capacity %d for %d", parts, cap(got.Routes), len(got.Routes))
		}
		if !slices.Equal(sortedKeys(got.regexps), sortedKeys(want.regexps)) {
			t.Fatalf("%d pieces: compiled %v, want %v", parts, sortedKeys(got.regexps), sortedKeys(want.regexps))
		}
	}
}

// pieceSeeds are files that put each construct that could span a cut
// against one, and files the cut must refuse.
var pieceSeeds = []string{
	good,
	configtest.Big(40, 0, ""),
	aliasBomb,
	"pools:\n  a: {endpoints: [127.0.0.1:1]}\nservices:\n  s: {pools: [a]}\nroutes:\n- {service: s}\n- {service: s}\n- {service: s}\n",
	"pools:\n  a: {endpoints: [127.0.0.1:1]}\nservices:\n  s: {pools: [a]}\nroutes:   # the routes\n  # first\n  - service: s\n    name: x\n\n  - service: s\n  -\n    service: s\nzones: []\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\nroutes:\n  - name: \"a\nb: c\"\n    service: s\n  - service: s\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\nroutes: [{service: s},\n{service: s}]\nlog: {level: info}\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\nroutes:\n  - service: s\n    add_headers: {X: |+\n      keep\n\n\n  }\n  - service: s\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\nroutes:\n  - service: s\n    hsts: |\n      max-age=1\n  - service: s\nlog:\n  level: |\n    info\nshutdown: {grace: 1s}\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\n---\nservices: {s: {pools: [a]}}\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\n...\nservices: {s: {pools: [a]}}\n",
	"%YAML 1.2\n---\npools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\n",
	"pools: &p {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\nx: *p\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\r\nservices: {s: {pools: [a]}}\r\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\n\tservices: {s: {pools: [a]}}\n",
	"  pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\n",
	"{pools: {a: {endpoints: [127.0.0.1:1]}}}\nservices: {s: {pools: [a]}}\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\npools: {b: {endpoints: [127.0.0.1:2]}}\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\nroutes:\n  - service: s\n  - service: s\n    bogus: 1\n  - {service: s, timeout: soon}\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\nroutes:\n  - service: s\n  - service: s\nroutes:\n  - service: s\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\nroutes:\n  - service: s\n  - service: s\nroutes2:\n  - x\n",
	"pools:\n  a:\n    endpoints:\n    - 127.0.0.1:1\n    - 127.0.0.1:2\nservices:\n  s:\n    pools:\n    - a\nroutes:\n- service: s\n  match:\n    method:\n    - GET\n- service: s\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\nroutes:\n  - service: s\n  - service: s\n - service: s\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\nroutes:\n  - service: s\n  - plain\n  multi\n  - service: s\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\nroutes:\n  - service: 's\n  - service: s'\n",
	"pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\n? routes\n: - service: s\n  - service: s\n",
	"\ufeffpools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\n",
}

func TestParsePiecesMatchesWhole(t *testing.T) {
	for i, s := range pieceSeeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkPieces(t, []byte(s)) })
	}
}

// TestCutPieces checks where the cut goes, and that each piece, padded,
// keeps its lines.
func TestCutPieces(t *testing.T) {
	big := configtest.Big(2000, 0, "")
	tests := []struct {
		name  string
		data  string
		parts int
		want  int // pieces; 0 when the file must not be cut
	}{
		{"large config on two cores", big, 2, 2},
		{"large config on eight cores", big, 8, 8},
		{"one core", big, 1, 0},
		{"small file", good, 2, 0},
		{"document marker", "a: 1\n---\nb: 2\n" + big, 2, 0},
		{"directive", "%YAML 1.2\n" + big, 2, 0},
		{"carriage return", strings.ReplaceAll(big, "\n", "\r\n"), 2, 0},
		{"tab", big + "\tx: 1\n", 2, 0},
		{"utf-16", "\xff\xfe" + big, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pieces := cutPieces([]byte(tt.data), tt.parts, splitMinBytes)
			if len(pieces) != tt.want {
				t.Fatalf("%d pieces, want %d", len(pieces), tt.want)
			}
			for i, p := range pieces {
				if i > 0 && p.start != pieces[i-1].end {
					t.Fatalf("piece %d starts at %d, the one before ends at %d", i, p.start, pieces[i-1].end)
				}
				text := string(p.text([]byte(tt.data)))
				if !strings.HasSuffix(text, tt.data[p.start:p.end]) {
					t.Fatalf("piece %d does not end with its bytes", i)
				}
				if got := strings.Count(text[:len(text)-(p.end-p.start)], "\n"); got != p.line {
					t.Errorf("piece %d is preceded by %d lines, want %d", i, got, p.line)
				}
			}
		})
	}
}

// TestParseCutsLargeFiles guards the reload budget: a large config is
// parsed in pieces, and gives the config a whole parse gives.
func TestParseCutsLargeFiles(t *testing.T) {
	data := []byte(configtest.Big(2000, 0, ""))
	if _, _, pieces, ok := parsePieces(data, 2, splitMinBytes, nil); !ok || len(pieces) != 2 {
		t.Fatalf("not parsed in 2 pieces (ok %v, %d pieces)", ok, len(pieces))
	}
	checkPieces(t, data)
}

func FuzzParsePieces(f *testing.F) {
	for _, s := range pieceSeeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("../examples/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		checkPieces(t, data)
	})
}
