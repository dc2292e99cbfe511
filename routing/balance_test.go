package routing

import (
	"fmt"
	"math"
	"net/netip"
	"testing"

	"github.com/meridian-lb/meridian/health"
)

// poolTable compiles one pool "p" with the given balancer and endpoints and
// binds a health engine with no checks (every endpoint up).
func poolTable(t testing.TB, balance, extra string, endpoints ...string) (*Table, *Pool, *health.Engine) {
	t.Helper()
	y := "pools:\n  p:\n    balance: " + balance + "\n    endpoints:\n"
	for _, e := range endpoints {
		y += "      - " + e + "\n"
	}
	y += extra + "services:\n  s: {pools: [p]}\n"
	tb := compileYAML(t, y)
	eng := health.New(health.Options{})
	eng.Sync(tb.HealthSpecs())
	tb.BindHealth(eng)
	return tb, tb.Pools["p"], eng
}

func down(t testing.TB, eng *health.Engine, addr string) {
	t.Helper()
	if err := eng.Override("p", addr, health.ActionDown); err != nil {
		t.Fatal(err)
	}
}

func distribution(p *Pool, n int, key func(i int) (uint64, bool)) map[string]int {
	out := map[string]int{}
	for i := range n {
		h, ok := key(i)
		e := p.Pick(h, ok, nil, false)
		if e == nil {
			out["<nil>"]++
			continue
		}
		out[e.Address]++
	}
	return out
}

func noKey(int) (uint64, bool) { return 0, false }

func TestBalancerDistribution(t *testing.T) {
	eps := []string{"{address: 127.0.0.1:1, weight: 1}", "{address: 127.0.0.1:2, weight: 2}", "{address: 127.0.0.1:3, weight: 7}"}
	want := map[string]float64{"127.0.0.1:1": 0.1, "127.0.0.1:2": 0.2, "127.0.0.1:3": 0.7}
	tests := []struct {
		balance string
		tol     float64 // allowed deviation of a share
		key     func(i int) (uint64, bool)
	}{
		{"round_robin", 0.001, noKey},
		{"random", 0.02, noKey},
		{"least_request", 0.02, noKey},
		{"ring_hash", 0.04, func(i int) (uint64, bool) { return hashString(fmt.Sprint("user", i)), true }},
		{"maglev", 0.02, func(i int) (uint64, bool) { return hashString(fmt.Sprint("user", i)), true }},
	}
	for _, tc := range tests {
		t.Run(tc.balance, func(t *testing.T) {
			_, p, _ := poolTable(t, tc.balance, "", eps...)
			const n = 20000
			got := distribution(p, n, tc.key)
			for addr, share := range want {
				if d := math.Abs(float64(got[addr])/n - share); d > tc.tol {
					t.Errorf("%s got %.3f, want %.2f ±%.3f (%v)", addr, float64(got[addr])/n, share, tc.tol, got)
				}
			}
		})
	}
}

func TestRoundRobinIsSmooth(t *testing.T) {
	_, p, _ := poolTable(t, "round_robin", "", "{address: 127.0.0.1:1, weight: 5}", "127.0.0.1:2")
	// Smooth WRR spreads the light endpoint out: never two picks of it in a
	// row, and the heavy one never more than 5 in a row.
	run := 0
	var last *Endpoint
	for range 60 {
		e := p.Pick(0, false, nil, false)
		if e == last {
			run++
		} else {
			run = 1
		}
		if e.Address == "127.0.0.1:2" && run > 1 || run > 5 {
			t.Fatalf("%s picked %d times in a row", e.Address, run)
		}
		last = e
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	_, p, _ := poolTable(t, "least_request", "", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
	busy := p.Endpoints[0]
	for range 100 {
		busy.Acquire()
	}
	got := distribution(p, 3000, noKey)
	// The busy endpoint loses every comparison; it is only picked when every
	// sample drew it (under 2%).
	if got[busy.Address] > 90 {
		t.Errorf("busy endpoint got %d of 3000 picks: %v", got[busy.Address], got)
	}
	for range 100 {
		busy.Release()
	}
	if busy.InFlight() != 0 {
		t.Errorf("in flight %d after release", busy.InFlight())
	}
}

func TestOnlyAvailableAndTried(t *testing.T) {
	for _, balance := range []string{"round_robin", "random", "least_request", "ring_hash", "maglev"} {
		t.Run(balance, func(t *testing.T) {
			_, p, eng := poolTable(t, balance, "    outlier: {consecutive_failures: 1, max_ejected_percent: 100}\n", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
			down(t, eng, "127.0.0.1:2")
			for i := range 500 {
				h := hashString(fmt.Sprint(i))
				e := p.Pick(h, true, nil, false)
				if e == nil || e.Address == "127.0.0.1:2" {
					t.Fatalf("picked %v with 127.0.0.1:2 down", e)
				}
				tried := []*Endpoint{e}
				e2 := p.Pick(h, true, tried, false)
				if e2 == nil || e2 == e || e2.Address == "127.0.0.1:2" {
					t.Fatalf("retry picked %v after %v", e2, e)
				}
				if e3 := p.Pick(h, true, []*Endpoint{e, e2}, false); e3 != nil {
					t.Fatalf("picked %v with every available endpoint tried", e3)
				}
			}
			// Panic mode: nothing available, the caller asks for all but
			// what the operator took out: 1 and 3 are ejected (a health
			// verdict, which panic mode overrides), 2 stays forced down.
			for _, addr := range []string{"127.0.0.1:1", "127.0.0.1:3"} {
				m := eng.Member("p", addr)
				if m.Report(health.ConnectFailure); m.State() != health.StateEjected {
					t.Fatalf("%s: %s, want ejected", addr, m.State())
				}
			}
			if e := p.Pick(1, true, nil, false); e != nil {
				t.Fatalf("picked %v with all down", e)
			}
			if ok, panicMode := p.Usable(); !ok || !panicMode {
				t.Fatalf("Usable = %t, %t, want panic mode", ok, panicMode)
			}
			seen := map[string]bool{}
			for i := range 300 {
				e := p.Pick(hashString(fmt.Sprint(i)), true, nil, true)
				if e == nil {
					t.Fatal("panic mode picked nothing")
				}
				seen[e.Address] = true
			}
			if len(seen) != 2 || seen["127.0.0.1:2"] {
				t.Errorf("panic mode used %v, want 1 and 3, never the forced-down 2", seen)
			}
			// Once the operator takes out the rest, the pool is unusable.
			down(t, eng, "127.0.0.1:1")
			if err := eng.Override("p", "127.0.0.1:3", health.ActionDrain); err != nil {
				t.Fatal(err)
			}
			if ok, panicMode := p.Usable(); ok || panicMode {
				t.Fatalf("all drained or forced down: Usable = %t, %t, want neither", ok, panicMode)
			}
			for i := range 100 {
				if e := p.Pick(hashString(fmt.Sprint(i)), true, nil, true); e != nil {
					t.Fatalf("panic mode picked %v with every endpoint drained or forced down", e)
				}
			}
		})
	}
}

// TestPanicPassKeepsRotation asks as the proxy does, a normal pass that
// finds nothing and then a panic-mode pass, and checks that round robin
// still alternates: a failed pass must not spend a slot of the schedule.
func TestPanicPassKeepsRotation(t *testing.T) {
	_, p, eng := poolTable(t, "round_robin", "    outlier: {consecutive_failures: 1, max_ejected_percent: 100}\n", "127.0.0.1:1", "127.0.0.1:2")
	for _, addr := range []string{"127.0.0.1:1", "127.0.0.1:2"} {
		eng.Member("p", addr).Report(health.ConnectFailure)
	}
	seen := map[string]int{}
	for range 10 {
		if e := p.Pick(0, false, nil, false); e != nil {
			t.Fatalf("normal pass picked %v with every endpoint ejected", e)
		}
		e := p.Pick(0, false, nil, true)
		if e == nil {
			t.Fatal("panic pass picked nothing")
		}
		seen[e.Address]++
	}
	if seen["127.0.0.1:1"] != 5 || seen["127.0.0.1:2"] != 5 {
		t.Fatalf("panic mode picks %v, want 5 each", seen)
	}
}

func TestConsistentHashMinimalReshuffle(t *testing.T) {
	for _, balance := range []string{"ring_hash", "maglev"} {
		t.Run(balance, func(t *testing.T) {
			eps := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5"}
			_, p, eng := poolTable(t, balance, "", eps...)
			_, again, _ := poolTable(t, balance, "", eps...)
			const n = 5000
			before := make([]*Endpoint, n)
			for i := range n {
				h := hashString(fmt.Sprint("k", i))
				before[i] = p.Pick(h, true, nil, false)
				if e := again.Pick(h, true, nil, false); e.Address != before[i].Address {
					t.Fatalf("key %d maps to %s and %s in two compiles", i, before[i].Address, e.Address)
				}
			}
			down(t, eng, "127.0.0.1:3")
			moved, spread := 0, map[string]int{}
			for i := range n {
				e := p.Pick(hashString(fmt.Sprint("k", i)), true, nil, false)
				if e != before[i] {
					if before[i].Address != "127.0.0.1:3" {
						t.Fatalf("key %d moved from %s, which is still up", i, before[i].Address)
					}
					moved++
					spread[e.Address]++
				}
			}
			if moved < n/10 || moved > n/3 {
				t.Errorf("%d keys moved, want about %d", moved, n/5)
			}
			if balance == "maglev" && len(spread) < 4 {
				t.Errorf("the down endpoint's keys went to %v, want all four others", spread)
			}
		})
	}
}

func TestHashKey(t *testing.T) {
	client := netip.MustParseAddr("192.0.2.7")
	tests := []struct {
		name, balance, hashOn string
		hdr                   []string
		wantKey               bool
		same                  []string // a request with these headers must get the same key
	}{
		{"header", "ring_hash", "    hash_on: {header: x-user}\n", []string{"X-User", "alice"}, true, []string{"x-user", "alice"}},
		{"header missing", "ring_hash", "    hash_on: {header: X-User}\n", nil, false, nil},
		{"cookie", "maglev", "    hash_on: {cookie: sid}\n", []string{"Cookie", "a=1; sid=xyz"}, true, []string{"Cookie", "sid=xyz"}},
		{"client ip", "maglev", "    hash_on: {client_ip: true}\n", nil, true, []string{"X-Other", "1"}},
		{"default client ip", "ring_hash", "", nil, true, nil},
		{"round robin does not hash", "round_robin", "", nil, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, p, _ := poolTable(t, tc.balance, tc.hashOn, "127.0.0.1:1")
			k, ok := p.HashKey(req("GET", "/", tc.hdr...), client)
			if ok != tc.wantKey {
				t.Fatalf("key present = %t, want %t", ok, tc.wantKey)
			}
			if tc.same != nil {
				k2, _ := p.HashKey(req("GET", "/", tc.same...), client)
				if k2 != k {
					t.Errorf("keys differ: %x vs %x", k, k2)
				}
			}
		})
	}
}

func BenchmarkPick(b *testing.B) {
	eps := make([]string, 16)
	for i := range eps {
		eps[i] = fmt.Sprintf("{address: 127.0.0.1:%d, weight: %d}", 1000+i, 1+i%3)
	}
	for _, balance := range []string{"round_robin", "random", "least_request", "ring_hash", "maglev"} {
		b.Run(balance, func(b *testing.B) {
			_, p, _ := poolTable(b, balance, "", eps...)
			b.ReportAllocs()
			var i uint64
			for b.Loop() {
				i++
				if p.Pick(mix64(i), true, nil, false) == nil {
					b.Fatal("no endpoint")
				}
			}
		})
	}
}

// maglevReference builds the lookup table straight from the definition,
// (offset + j·skip) mod size for endpoint i's j-th preference, as the
// table was built before newMaglev walked the lists incrementally.
func maglevReference(p *Pool) []uint32 {
	n := len(p.Endpoints)
	size := maglevSize(n)
	offset, skip := make([]uint64, n), make([]uint64, n)
	next, filled := make([]uint64, n), make([]uint64, n)
	var maxW uint64
	for i, e := range p.Endpoints {
		offset[i] = hashString(e.Address) % size
		skip[i] = hashString(e.Address+"\x00skip")%(size-1) + 1
		maxW = max(maxW, uint64(max(e.Weight, 1)))
	}
	const empty = ^uint32(0)
	table := make([]uint32, size)
	for i := range table {
		table[i] = empty
	}
	placed := 0
	for round := uint64(1); uint64(placed) < size; round++ {
		for i, e := range p.Endpoints {
			if round*uint64(max(e.Weight, 1)) < maxW*filled[i] {
				continue
			}
			for {
				c := (offset[i] + next[i]*skip[i]) % size
				next[i]++
				if table[c] == empty {
					table[c] = uint32(i)
					filled[i]++
					placed++
					break
				}
			}
			if uint64(placed) == size {
				break
			}
		}
	}
	return table
}

// TestMaglevTableMatchesDefinition pins the table to the definition, so an
// optimisation of the build cannot move keys between endpoints (every
// instance of a fleet, old and new, must map a key to the same endpoint).
func TestMaglevTableMatchesDefinition(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		weights func(i int) int
	}{
		{"one", 1, func(int) int { return 1 }},
		{"two", 2, func(int) int { return 1 }},
		{"weighted", 7, func(i int) int { return 1 + i%4 }},
		{"skewed", 5, func(i int) int { return []int{100, 1, 1, 3, 50}[i] }},
		{"large", 300, func(i int) int { return 1 + i%3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Pool{Name: "p"}
			for i := range tt.n {
				p.Endpoints = append(p.Endpoints, &Endpoint{Address: fmt.Sprintf("10.0.%d.%d:80", i/250, i%250), Weight: tt.weights(i)})
			}
			got := newMaglev(p, weighted{}).table
			want := maglevReference(p)
			if len(got) != len(want) {
				t.Fatalf("table size %d, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("entry %d = endpoint %d, want %d", i, got[i], want[i])
				}
			}
		})
	}
}
