package routing

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestGolden compiles each testdata/*.yaml and compares Table.String with
// the .golden file beside it. Run `go test ./routing -update` after an
// intended change and review the diff.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range files {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			tbl := compileFile(t, in)
			got := tbl.String()
			golden := strings.TrimSuffix(in, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Table.String() differs from %s (run with -update and review the diff):\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
			again := compileFile(t, in)
			if again.Version != tbl.Version || again.String() != got {
				t.Error("Compile is not deterministic")
			}
		})
	}
}

func compileFile(t *testing.T, path string) *Table {
	t.Helper()
	cfg, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := Compile(cfg, Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// fakeCatalog serves fixed endpoints per Consul service name.
type fakeCatalog map[string][]CatalogEndpoint

func (f fakeCatalog) Endpoints(sel config.ConsulSelect) ([]CatalogEndpoint, bool) {
	eps, ok := f[sel.Service]
	return eps, ok
}

func TestCatalogEndpoints(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`
consul: {address: 127.0.0.1:8500}
pools:
  web: {endpoints: [127.0.0.1:1], consul: {service: web}}
  api: {consul: {service: api}}
`))
	if err != nil {
		t.Fatal(err)
	}
	cat := fakeCatalog{"web": {{Address: "10.0.0.2:80", Weight: 5, Region: "us"}, {Address: "10.0.0.1:80"}, {Address: "127.0.0.1:1"}}}
	tbl, err := Compile(cfg, Inputs{Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range tbl.Pools["web"].Endpoints {
		got = append(got, e.Address+"/"+e.Source+"/"+e.Region)
	}
	want := "127.0.0.1:1/static/ 10.0.0.1:80/consul/ 10.0.0.2:80/consul/us"
	if strings.Join(got, " ") != want {
		t.Errorf("endpoints = %v, want %s", got, want)
	}
	if tbl.Pools["web"].Endpoints[2].Weight != 5 || tbl.Pools["web"].Endpoints[1].Weight != 1 {
		t.Error("catalog weights not kept (missing weight must become 1)")
	}
	if len(tbl.Pending) != 1 || !strings.Contains(tbl.Pending[0], `"api"`) {
		t.Errorf("pending = %v, want the api pool waiting", tbl.Pending)
	}
	before := tbl.Version
	cat["web"] = cat["web"][:1]
	tbl2, _ := Compile(cfg, Inputs{Catalog: cat})
	if tbl2.Version == before {
		t.Error("a catalog change did not change the version")
	}
}
