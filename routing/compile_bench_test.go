package routing

import (
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/configtest"
)

// BenchmarkReload2000Routes measures what a reload costs before the new
// table is served: parse, validate and compile 2,000 routes.
func BenchmarkReload2000Routes(b *testing.B) {
	data := []byte(configtest.Big(2000, 0, ""))
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
