package routing

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
)

// bigConfig is a config with n routes over n/10 pools and services, the
// shape of a large edge: the reload budget is stated for 2,000 routes.
func bigConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("checks: {ready: {type: http, path: /healthz, interval: 2s, timeout: 1s}}\npools:\n")
	for i := range n / 10 {
		fmt.Fprintf(&b, "  p%d: {endpoints: [127.0.0.1:%d, 127.0.0.1:%d], check: ready, balance: maglev}\n", i, 10000+2*i, 10001+2*i)
	}
	b.WriteString("services:\n")
	for i := range n / 10 {
		fmt.Fprintf(&b, "  s%d: {pools: [p%d]}\n", i, i)
	}
	b.WriteString("routes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: r%d, match: {host: h%d.example.com, path_prefix: /api/%d, headers: {X-T: {regex: \"^t[0-9]+$\"}}}, service: s%d}\n", i, i%50, i, i%(n/10))
	}
	return []byte(b.String())
}

// BenchmarkReload2000Routes measures what a reload costs before the new
// table is served: parse, validate and compile 2,000 routes.
func BenchmarkReload2000Routes(b *testing.B) {
	data := bigConfig(2000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		cfg, err := config.Parse("big.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Compile(cfg, Inputs{}); err != nil {
			b.Fatal(err)
		}
	}
}
