package compress

import (
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// The encoder settings, chosen for on-the-fly compression of responses a
// client is waiting for, with a window small enough that an encoder (held
// by each compressing response, then pooled) costs little memory; doc.go
// has the measured figures, BenchmarkWrap the CPU per response.
const (
	// gzipLevel is klauspost/compress's level 5, the level its
	// DefaultCompression maps to and what Caddy's encode and Traefik's
	// Compress use. Its window is deflate's fixed 32 KiB.
	gzipLevel = 5
	// brotliQuality 4 is the fastest quality with brotli's ratio on text:
	// 5 makes JSON and HTML 6–8% smaller for about 1.6 times the CPU, and
	// 6, the library default Traefik uses, costs more again. In pure Go
	// even 4 takes about four times gzip level 5's CPU per byte.
	brotliQuality = 4
	// brotliLGWin is a 256 KiB window (2^18) instead of the 4 MiB the
	// library picks by default: a live response rarely repeats text from
	// further back, and the window is most of a brotli encoder's memory.
	brotliLGWin = 18
	// zstdWindow is 256 KiB, far under the 8 MiB a browser may refuse to
	// exceed (RFC 9659), for the same reason as brotliLGWin. zstd encodes
	// at SpeedDefault (about zstd level 3) with its lower-memory tables,
	// which cost no measurable speed at this window.
	zstdWindow = 256 << 10
)

// encoder is what the three libraries' stream writers have in common.
type encoder interface {
	io.Writer
	Flush() error
	Close() error
	Reset(io.Writer)
}

// coding is one content coding the policy offers, with its own pool of idle
// encoders: creating an encoder allocates its tables and window (hundreds of
// KiB), so each is reused with Reset for later responses. The pool belongs
// to the Policy, so a route's idle encoders go when its policy does.
type coding struct {
	name string // the content-coding token: zstd, br or gzip
	id   codingID
	pool sync.Pool
}

func newCoding(id codingID) *coding {
	c := &coding{name: id.String(), id: id}
	switch id {
	case codingGzip:
		c.pool.New = func() any {
			w, err := gzip.NewWriterLevel(nil, gzipLevel)
			if err != nil {
				panic(err) // gzipLevel is a valid level
			}
			return w
		}
	case codingBr:
		c.pool.New = func() any {
			return brotli.NewWriterOptions(nil, brotli.WriterOptions{Quality: brotliQuality, LGWin: brotliLGWin})
		}
	case codingZstd:
		c.pool.New = func() any {
			w, err := zstd.NewWriter(nil,
				zstd.WithEncoderLevel(zstd.SpeedDefault),
				// One goroutine-free encoder per response: concurrency 1
				// makes Write and Flush synchronous, so Flush has sent the
				// block when it returns and an idle pooled encoder holds no
				// goroutine.
				zstd.WithEncoderConcurrency(1),
				zstd.WithWindowSize(zstdWindow),
				zstd.WithLowerEncoderMem(true),
				// An empty body still makes a valid (empty) frame.
				zstd.WithZeroFrames(true),
			)
			if err != nil {
				panic(err) // the options are constants and valid
			}
			return w
		}
	}
	return c
}

// get returns an idle encoder writing to dst.
func (c *coding) get(dst io.Writer) encoder {
	e := c.pool.Get().(encoder)
	e.Reset(dst)
	return e
}

// put returns an encoder to the pool, detached from its writer so the pool
// does not keep a finished response alive.
func (c *coding) put(e encoder) {
	e.Reset(nil)
	c.pool.Put(e)
}
