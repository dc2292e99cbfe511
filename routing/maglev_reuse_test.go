package routing

import (
	"slices"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/configtest"
)

// TestDeferredVersion: a table compiled with Defer gets, from Finish,
// exactly the version Compile gives without it, and the same balancers.
func TestDeferredVersion(t *testing.T) {
	for name, cfg := range versionInputs(t) {
		t.Run(name, func(t *testing.T) {
			want, err := Compile(cfg, Inputs{})
			if err != nil {
				t.Fatal(err)
			}
			tbl, err := Compile(cfg, Inputs{Defer: true})
			if err != nil {
				t.Fatal(err)
			}
			if v := tbl.Finish(); v != want.Version || tbl.Version != want.Version || tbl.Finish() != want.Version {
				t.Errorf("deferred version %s, want %s", v, want.Version)
			}
			for name, p := range tbl.Pools {
				if m, ok := p.picker.(*maglev); ok && !slices.Equal(m.table, want.Pools[name].picker.(*maglev).table) {
					t.Errorf("pool %s: deferred maglev table differs", name)
				}
			}
		})
	}
}

// TestMaglevReuse: a recompile whose maglev pool keeps its endpoints
// (addresses and weights, in order) reuses the live table's lookup
// table, which is what a build would give; any change builds anew.
func TestMaglevReuse(t *testing.T) {
	parse := func(y string) *config.Config {
		cfg, err := config.Parse("big.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	base := configtest.Big(100, 0, "")
	prev, err := Compile(parse(base), Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	// p1's second endpoint weighs 3, p2 gets a third endpoint, p3 hashes
	// on a header: the others keep their endpoints.
	y := strings.Replace(base, "p1: {endpoints: [127.0.0.1:10002, 127.0.0.1:10003]", "p1: {endpoints: [127.0.0.1:10002, {address: 127.0.0.1:10003, weight: 3}]", 1)
	y = strings.Replace(y, "p2: {endpoints: [127.0.0.1:10004, 127.0.0.1:10005]", "p2: {endpoints: [127.0.0.1:10004, 127.0.0.1:10005, 127.0.0.1:9]", 1)
	y = strings.Replace(y, "p3: {endpoints: [127.0.0.1:10006, 127.0.0.1:10007], check: ready, balance: maglev}", "p3: {endpoints: [127.0.0.1:10006, 127.0.0.1:10007], check: ready, balance: maglev, hash_on: {header: X-User}}", 1)
	if y == base {
		t.Fatal("the config did not change")
	}
	for _, deferred := range []bool{false, true} {
		next, err := Compile(parse(y), Inputs{Previous: prev, Defer: deferred})
		if err != nil {
			t.Fatal(err)
		}
		next.Finish()
		checkReuse(t, prev, next)
	}
}

func checkReuse(t *testing.T, prev, next *Table) {
	t.Helper()
	for name, p := range next.Pools {
		m, old := p.picker.(*maglev), prev.Pools[name].picker.(*maglev)
		fresh := newMaglev(p, m.w)
		if !slices.Equal(m.table, fresh.table) {
			t.Errorf("%s: table differs from a fresh build", name)
		}
		shared := &m.table[0] == &old.table[0]
		if want := name != "p1" && name != "p2"; shared != want {
			t.Errorf("%s: shares the live table's: %v, want %v", name, shared, want)
		}
		if name == "p3" && m.header != "X-User" {
			t.Errorf("p3 hashes on %+v: the reused table's pool's settings are the new ones", m.hashOn)
		}
	}
}
