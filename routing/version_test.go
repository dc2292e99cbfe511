package routing

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/configtest"
)

// referenceVersion is Table.Version as first defined: SHA-256 over the
// config encoded by encoding/json in one piece (or the dump when that
// fails), each endpoint, and each pending selection. Compile must keep
// giving exactly this, so instances of a fleet running different builds
// agree on the version of the same inputs.
func referenceVersion(cfg *config.Config, t *Table) string {
	h := sha256.New()
	if err := json.NewEncoder(h).Encode(cfg); err != nil {
		h.Write([]byte(t.String()))
	}
	for _, name := range sortedKeys(t.Pools) {
		for _, e := range t.Pools[name].Endpoints {
			h.Write([]byte(name + "\x00" + e.Address + "\x00" + strconv.Itoa(e.Weight) + "\x00" + e.Region + "\n"))
		}
	}
	for _, p := range t.Pending {
		h.Write([]byte("pending\x00" + p + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// versionInputs are the configs the version tests compile: the golden
// inputs, a large generated one, and small ones with edge values.
func versionInputs(t *testing.T) map[string]*config.Config {
	t.Helper()
	out := map[string]*config.Config{}
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, f := range files {
		cfg, _, err := config.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = cfg
	}
	for name, y := range map[string]string{
		"big": configtest.Big(300, 0, ""),
		// NaN has no JSON form: the version hashes the dump instead.
		"nan":     "dns: {query_log: .nan}\npools: {p: {endpoints: [127.0.0.1:1]}}\n",
		"escapes": "pools: {\"p<&>\\u2028\": {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [\"p<&>\\u2028\"]}}\nroutes: [{name: \"r\\n\\\"x\", service: s, add_headers: {X-A: \"a\\nb<\"}}]\n",
		"empty":   "pools: {p: {endpoints: [127.0.0.1:1]}}\n",
	} {
		cfg, err := config.Parse(name+".yaml", []byte(y))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = cfg
	}
	// A config built by hand: empty but not nil lists, nil entries.
	hand := &config.Config{Routes: []*config.Route{}, Zones: []*config.Zone{}}
	hand.SetDefaults()
	out["hand"] = hand
	return out
}

func TestVersionMatchesReference(t *testing.T) {
	for name, cfg := range versionInputs(t) {
		t.Run(name, func(t *testing.T) {
			tbl, err := Compile(cfg, Inputs{})
			if err != nil {
				t.Fatal(err)
			}
			if want := referenceVersion(cfg, tbl); tbl.Version != want {
				t.Errorf("version %s, want %s", tbl.Version, want)
			}
		})
	}
}

func TestWriteConfigJSONMatchesEncoder(t *testing.T) {
	for name, cfg := range versionInputs(t) {
		t.Run(name, func(t *testing.T) {
			var got, want bytes.Buffer
			errGot := writeConfigJSON(&got, cfg)
			errWant := json.NewEncoder(&want).Encode(cfg)
			if (errGot == nil) != (errWant == nil) {
				t.Fatalf("error %v, encoding/json's %v", errGot, errWant)
			}
			if errWant == nil && !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("encoding differs from encoding/json's:\n%s\n%s", got.Bytes(), want.Bytes())
			}
		})
	}
}
