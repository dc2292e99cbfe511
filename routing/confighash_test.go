package routing

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/configtest"
)

// TestConfigPlan: today's config types are all of the kinds the compiled
// encoder handles, so the version hash takes the fast path.
func TestConfigPlan(t *testing.T) {
	if configEncoder() == nil {
		t.Fatal("config.Config has a type the JSON plans do not handle: the version hash falls back to encoding/json (slower, still correct); extend jsonFast/buildEnc")
	}
}

// encodeBoth returns what the compiled encoder and encoding/json write for
// cfg, and whether both failed.
func encodeBoth(t *testing.T, cfg *config.Config) (got, want []byte, failed bool) {
	t.Helper()
	var g, w bytes.Buffer
	errGot := writeConfigFast(&g, configEncoder(), cfg)
	errWant := json.NewEncoder(&w).Encode(cfg)
	if (errGot == nil) != (errWant == nil) {
		t.Fatalf("error %v, encoding/json's %v", errGot, errWant)
	}
	return g.Bytes(), w.Bytes(), errWant != nil
}

// TestConfigJSONExamples: every example config and test input encodes to
// encoding/json's bytes.
func TestConfigJSONExamples(t *testing.T) {
	var files []string
	for _, glob := range []string{"../examples/*.yaml", "../examples/*/*.yaml", "testdata/*.yaml"} {
		m, _ := filepath.Glob(glob)
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("only %d inputs", len(files))
	}
	inputs := map[string][]byte{"big": []byte(configtest.Big(500, 3, ""))}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[f] = b
	}
	for name, data := range inputs {
		cfg, err := config.Parse(name, data)
		if err != nil {
			continue // an example that needs files beside it; the others cover the types
		}
		if got, want, _ := encodeBoth(t, cfg); !bytes.Equal(got, want) {
			t.Errorf("%s: encoding differs from encoding/json's:\n%s\n%s", name, got, want)
		}
	}
}

// TestConfigJSONEveryField fills every field of a config, at every depth,
// with values that exercise the encoder (strings to escape, non-ASCII and
// invalid UTF-8, floats of every form, maps of several keys, empty and nil
// slices and maps), many times over with different draws, and compares
// the bytes with encoding/json's.
func TestConfigJSONEveryField(t *testing.T) {
	strs := []string{"", "plain", "a<b>&c", "R&D", "x>y", "del\x7f", "quote\"back\\slash", "ctl\x01\x1f\t\n\r\b\f", "é ü 漢字", "\u2028\u2029", "bad\xff\xfeutf8", "/api/v1", "127.0.0.1:80"}
	floats := []float64{0, 1, -1, 0.5, 1e-7, 1.5e-6, 1e20, 1e21, 123456789.125, -2.5e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, 3.0000001}
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 42))
		var fill func(v reflect.Value, depth int)
		fill = func(v reflect.Value, depth int) {
			switch v.Kind() {
			case reflect.Bool:
				v.SetBool(r.IntN(2) == 1)
			case reflect.String:
				v.SetString(strs[r.IntN(len(strs))])
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				v.SetInt(int64(r.Uint64()) >> (64 - v.Type().Bits()))
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
				v.SetUint(r.Uint64() >> (64 - v.Type().Bits()))
			case reflect.Float32, reflect.Float64:
				f := floats[r.IntN(len(floats))]
				if r.IntN(3) == 0 {
					f = math.Float64frombits(r.Uint64())
					if math.IsNaN(f) || math.IsInf(f, 0) {
						f = 0.1
					}
				}
				if v.Kind() == reflect.Float32 && math.Abs(f) > math.MaxFloat32 {
					f = 1.25e30
				}
				v.SetFloat(f)
			case reflect.Pointer:
				if depth > 6 || r.IntN(4) == 0 {
					return // nil
				}
				v.Set(reflect.New(v.Type().Elem()))
				fill(v.Elem(), depth+1)
			case reflect.Slice:
				switch r.IntN(4) {
				case 0: // nil
				case 1:
					v.Set(reflect.MakeSlice(v.Type(), 0, 0))
				default:
					n := 1 + r.IntN(3)
					if depth > 6 {
						n = 0
					}
					v.Set(reflect.MakeSlice(v.Type(), n, n))
					for i := range n {
						fill(v.Index(i), depth+1)
					}
				}
			case reflect.Array:
				for i := range v.Len() {
					fill(v.Index(i), depth+1)
				}
			case reflect.Map:
				switch r.IntN(4) {
				case 0: // nil
				case 1:
					v.Set(reflect.MakeMap(v.Type()))
				default:
					v.Set(reflect.MakeMap(v.Type()))
					for range 1 + r.IntN(4) {
						k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
						fill(k, depth+1)
						if depth <= 6 {
							fill(e, depth+1)
						}
						v.SetMapIndex(k, e)
					}
				}
			case reflect.Struct:
				for i := range v.NumField() {
					if v.Type().Field(i).IsExported() {
						fill(v.Field(i), depth+1)
					}
				}
			}
		}
		cfg := new(config.Config)
		fill(reflect.ValueOf(cfg).Elem(), 0)
		got, want, failed := encodeBoth(t, cfg)
		if !failed && !bytes.Equal(got, want) {
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			t.Fatalf("seed %d: encoding differs from encoding/json's at byte %d:\n got …%s\nwant …%s", seed, i, got[max(i-80, 0):min(i+80, len(got))], want[max(i-80, 0):min(i+80, len(want))])
		}
	}
}

// TestConfigJSONFloats: floats of every magnitude, both widths, as
// encoding/json writes them; NaN and infinities fail as there.
func TestConfigJSONFloats(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(f float64, bits int) {
		w := &jsonWriter{}
		w.appendFloat(f, bits)
		var want []byte
		var err error
		if bits == 32 {
			want, err = json.Marshal(float32(f))
		} else {
			want, err = json.Marshal(f)
		}
		if (err == nil) != (w.err == nil) || err == nil && !bytes.Equal(w.buf, want) {
			t.Fatalf("%v (%d bits): %s %v, encoding/json %s %v", f, bits, w.buf, w.err, want, err)
		}
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1e-6, 1e-7, 9.999999e-7, 1e21, 9.99999e20, 1e-9, 5e-324, math.MaxFloat64, math.NaN(), math.Inf(1), math.Inf(-1), 0.1, 100, 1e100} {
		check(f, 64)
		check(float64(float32(f)), 32)
	}
	for range 100000 {
		f := math.Float64frombits(r.Uint64())
		check(f, 64)
		check(float64(math.Float32frombits(r.Uint32())), 32)
	}
}

// BenchmarkConfigHash10000Routes is the config's share of the version
// hash of the 10,000-route benchmark config: the compiled encoder
// (writeConfigJSON) against encoding/json, both into SHA-256.
func BenchmarkConfigHash10000Routes(b *testing.B) {
	cfg, err := config.Parse("big.yaml", []byte(configtest.Big(10000, 1, "")))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("plans", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := writeConfigJSON(sha256.New(), cfg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := json.NewEncoder(sha256.New()).Encode(cfg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
