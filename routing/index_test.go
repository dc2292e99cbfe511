package routing

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// referenceRouteIndex builds the host index from its definition: every
// bucket checked against every route, in route order.
func referenceRouteIndex(routes []*Route) *routeIndex {
	ix := &routeIndex{exact: map[string][]*Route{}, wildcard: map[string][]*Route{}}
	for _, r := range routes {
		for _, h := range r.host {
			ix.exact[h] = nil
		}
		for _, w := range r.wildcards {
			ix.wildcard[w] = nil
		}
	}
	for h := range ix.exact {
		for _, r := range routes {
			if r.matchHost(h) {
				ix.exact[h] = append(ix.exact[h], r)
			}
		}
	}
	for w := range ix.wildcard {
		for _, r := range routes {
			if r.matchHostWildcardOnly("x" + w) {
				ix.wildcard[w] = append(ix.wildcard[w], r)
			}
		}
	}
	for _, r := range routes {
		if len(r.host) == 0 && len(r.wildcards) == 0 {
			ix.any = append(ix.any, r)
		}
	}
	return ix
}

// TestRouteIndexMatchesDefinition compares the one-pass index with the
// definition on random route sets that mix exact hosts (repeated within a
// route too), wildcards at several depths, both, and no host.
func TestRouteIndexMatchesDefinition(t *testing.T) {
	hosts := []string{"a.example.com", "b.example.com", "x.b.example.com", "example.com", "other.test"}
	wilds := []string{".example.com", ".b.example.com", ".test", ".c.b.example.com"}
	for seed := range uint64(50) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			var routes []*Route
			for i := range 1 + rng.IntN(30) {
				r := &Route{Name: fmt.Sprint("r", i)}
				for range rng.IntN(3) {
					r.host = append(r.host, hosts[rng.IntN(len(hosts))])
				}
				for range rng.IntN(2) {
					r.wildcards = append(r.wildcards, wilds[rng.IntN(len(wilds))])
				}
				routes = append(routes, r)
			}
			got, want := buildRouteIndex(routes), referenceRouteIndex(routes)
			same := func(kind string, g, w map[string][]*Route) {
				if len(g) != len(w) {
					t.Fatalf("%s: %d buckets, want %d", kind, len(g), len(w))
				}
				for k, rs := range w {
					if !slices.Equal(g[k], rs) {
						t.Errorf("%s bucket %q: %v, want %v", kind, k, names(g[k]), names(rs))
					}
				}
			}
			same("exact", got.exact, want.exact)
			same("wildcard", got.wildcard, want.wildcard)
			if !slices.Equal(got.any, want.any) {
				t.Errorf("any: %v, want %v", names(got.any), names(want.any))
			}
		})
	}
}

func names(rs []*Route) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name
	}
	return out
}
