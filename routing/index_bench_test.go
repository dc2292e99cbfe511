package routing

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// BenchmarkMatchScale matches a request against tables of 3, 2,000 and
// 10,000 routes, the request always matching the last route: the worst
// case for a scan in order, and what the target (10,000 path routes
// within 1.1x of 3) is stated for. "path" routes have only a path prefix;
// "host" routes only a host. Both shapes also get a "/" catch-all first in
// a variant with a header, which every request must look past.
func BenchmarkMatchScale(b *testing.B) {
	client := netip.MustParseAddr("192.0.2.1")
	for _, shape := range []string{"path", "host", "path-guarded"} {
		for _, n := range []int{3, 2000, 10000} {
			b.Run(fmt.Sprintf("%s/%d", shape, n), func(b *testing.B) {
				tb := compileYAML(b, scaleRoutesYAML(shape, n))
				last := n - 1
				r := req("GET", fmt.Sprintf("/api/%d/items/42", last), "Host", "www.example.com", "User-Agent", "bench")
				if shape == "host" {
					r = req("GET", "/items/42", "Host", fmt.Sprintf("h%d.example.com", last), "User-Agent", "bench")
				}
				want := fmt.Sprint("r", last)
				if rt := tb.Match(r, client); rt == nil || rt.Name != want {
					b.Fatalf("matched %v, want %s", rt, want)
				}
				b.ReportAllocs()
				for b.Loop() {
					tb.Match(r, client)
				}
			})
		}
	}
}

// scaleRoutesYAML writes n routes of one shape to one service.
func scaleRoutesYAML(shape string, n int) string {
	var sb strings.Builder
	sb.WriteString(poolsYAML + "routes:\n")
	if shape == "path-guarded" {
		sb.WriteString("  - {name: guard, match: {path_prefix: /, headers: {X-Canary: \"1\"}}, service: sb}\n")
	}
	for i := range n {
		switch shape {
		case "host":
			fmt.Fprintf(&sb, "  - {name: r%d, match: {host: h%d.example.com}, service: sa}\n", i, i)
		default:
			fmt.Fprintf(&sb, "  - {name: r%d, match: {path_prefix: /api/%d}, service: sa}\n", i, i)
		}
	}
	return sb.String()
}
