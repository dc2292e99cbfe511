package compress

import (
	"net/http"
	"strconv"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing but the count of
// bytes written, so a benchmark measures compression and not a network.
type discardWriter struct {
	h http.Header
	n int64
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(int)     {}
func (d *discardWriter) Write(b []byte) (int, error) {
	d.n += int64(len(b))
	return len(b), nil
}

// BenchmarkWrap is the CPU of one compressed response: Wrap, the header,
// the body written in 32 KiB pieces (as the proxy relays it), and finish,
// with pooled encoders. "ratio" is compressed size over original size.
func BenchmarkWrap(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		body := jsonBody(size)
		for _, enc := range append(allEncodings, "identity") {
			b.Run(enc+"/"+strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
				p := newPolicy(b, Spec{MinSize: 1024})
				r, _ := http.NewRequest("GET", "/", nil)
				r.Header.Set("Accept-Encoding", enc)
				dw := &discardWriter{h: http.Header{}}
				respond := func() {
					clear(dw.h)
					dw.n = 0
					w, finish := p.Wrap(dw, r)
					w.Header()["Content-Type"] = []string{"application/json"}
					w.WriteHeader(http.StatusOK)
					for rest := body; len(rest) > 0; {
						n := min(len(rest), 32<<10)
						w.Write(rest[:n])
						rest = rest[n:]
					}
					if err := finish(); err != nil {
						b.Fatal(err)
					}
				}
				respond()
				if got := dw.h.Get("Content-Encoding"); got != enc && enc != "identity" {
					b.Fatalf("Content-Encoding %q", got)
				}
				ratio := float64(dw.n) / float64(size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					respond()
				}
				b.ReportMetric(ratio, "ratio")
			})
		}
	}
}
