package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/internal/certtest"
)

func batchPool() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}
}

// gatedConn holds every Write until the gate opens, and counts them.
type gatedConn struct {
	net.Conn
	gate   chan struct{}
	writes atomic.Int32
	out    bytes.Buffer
	mu     sync.Mutex
	fail   error
}

func (g *gatedConn) Write(p []byte) (int, error) {
	<-g.gate
	g.writes.Add(1)
	if g.fail != nil {
		return 0, g.fail
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.out.Write(p)
}
func (g *gatedConn) SetWriteDeadline(time.Time) error { return nil }
func (g *gatedConn) Close() error                     { return nil }

// taken waits until b's writer has taken the pending bytes.
func taken(t *testing.T, b *batchConn) {
	waitFor(t, "the writer to take the bytes", func() bool {
		b.st.mu.Lock()
		defer b.st.mu.Unlock()
		return b.st.buf == nil
	})
}

func TestBatchConnCoalesces(t *testing.T) {
	g := &gatedConn{gate: make(chan struct{})}
	b := newBatchConn(g, batchPool())
	var want bytes.Buffer
	for i := range 100 {
		p := bytes.Repeat([]byte{byte('a' + i%26)}, 1+i)
		want.Write(p)
		if n, err := b.Write(p); n != len(p) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
		if i == 0 {
			taken(t, b)
		}
	}
	close(g.gate)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.out.Bytes(), want.Bytes()) {
		t.Fatal("bytes out differ from bytes in")
	}
	// The first write went alone; the 99 written while it was held, in one.
	if n := g.writes.Load(); n != 2 {
		t.Fatalf("%d network writes, want 2", n)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, errBatchClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestBatchConnBackpressure(t *testing.T) {
	g := &gatedConn{gate: make(chan struct{})}
	b := newBatchConn(g, batchPool())
	b.Write([]byte("first")) // held at the gate
	taken(t, b)
	big := make([]byte, batchMax)
	b.Write(big[:batchMax-10]) // pending, under the cap
	done := make(chan struct{})
	go func() {
		b.Write(big[:100]) // over the cap: waits for the writer
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("a write over batchMax pending did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	close(g.gate)
	<-done
	b.Close()
	if got := g.out.Len(); got != 5+batchMax-10+100 {
		t.Fatalf("%d bytes out", got)
	}
}

func TestBatchConnWriteError(t *testing.T) {
	g := &gatedConn{gate: make(chan struct{}), fail: io.ErrClosedPipe}
	close(g.gate)
	b := newBatchConn(g, batchPool())
	b.Write([]byte("lost"))
	waitFor(t, "the error seen", func() bool {
		_, err := b.Write([]byte("x"))
		return errors.Is(err, io.ErrClosedPipe)
	})
}

// TestBatchConnStalledPeer: with a peer that reads nothing, Writes block
// once batchMax waits, and Close cuts the write in flight at its grace
// instead of the 30 s write-progress timeout.
func TestBatchConnStalledPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	release := make(chan struct{})
	defer close(release)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			<-release // never reads
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := newBatchConn(c, batchPool())
	werr := make(chan error, 1)
	chunk := make([]byte, 32<<10)
	go func() {
		for range 4096 { // 128 MiB: far over the socket buffers
			if _, err := b.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	waitFor(t, "a Write held by the full buffer", func() bool {
		b.st.mu.Lock()
		defer b.st.mu.Unlock()
		return b.st.writing && b.st.buf != nil && len(*b.st.buf)+len(chunk) > batchMax
	})
	start := time.Now()
	b.Close()
	if d := time.Since(start); d > batchWriteTimeout/2 {
		t.Fatalf("Close took %v: not cut at its grace (%v)", d, batchCloseGrace)
	}
	if err := <-werr; err == nil {
		t.Fatal("128 MiB written to a peer that reads nothing")
	}
}

// TestBatchConnFailureKeepsNothing: after a failed write, the buffer the
// connection had pending goes back to the pool empty, so no byte of it
// reaches another connection.
func TestBatchConnFailureKeepsNothing(t *testing.T) {
	pool := batchPool()
	g := &gatedConn{gate: make(chan struct{}), fail: io.ErrClosedPipe}
	a := newBatchConn(g, pool)
	a.Write([]byte("first"))
	taken(t, a)
	a.Write([]byte("SECRET-OF-CONNECTION-A")) // pending when the write fails
	close(g.gate)
	waitFor(t, "the writer to stop", func() bool {
		a.st.mu.Lock()
		defer a.st.mu.Unlock()
		return !a.st.writing
	})
	for range 10 {
		h := &gatedConn{gate: make(chan struct{})}
		close(h.gate)
		bc := newBatchConn(h, pool)
		bc.Write([]byte("B"))
		bc.Close()
		if got := h.out.String(); got != "B" {
			t.Fatalf("connection B sent %q", got)
		}
	}
}

// TestBatchConnUnderTLS: through crypto/tls, what was written before
// Close reaches the peer, close_notify included, although tls.Conn.Close
// sets a past write deadline after queueing its alert.
func TestBatchConnUnderTLS(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	pair := ca.TLSPair(t, false, "localhost")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvDone := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			srvDone <- err
			return
		}
		bc := newPassthroughConn(raw, batchPool())
		tc := tls.Server(bc, &tls.Config{Certificates: []tls.Certificate{pair}})
		if err := tc.Handshake(); err != nil {
			srvDone <- err
			return
		}
		bc.batch()
		tc.Write([]byte("GOAWAY-frame"))
		srvDone <- tc.Close()
	}()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "localhost", RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c) // to the close_notify: io.EOF, reported as nil
	if err != nil || string(got) != "GOAWAY-frame" {
		t.Fatalf("read %q, %v; want the frame, then close_notify", got, err)
	}
	if err := <-srvDone; err != nil {
		t.Fatalf("server: %v", err)
	}
}

// TestBatchConnCloseFlushes: Close sends what is pending before closing.
func TestBatchConnCloseFlushes(t *testing.T) {
	a, z := net.Pipe()
	defer z.Close()
	b := newBatchConn(a, batchPool())
	got := make(chan []byte)
	go func() {
		p, _ := io.ReadAll(z)
		got <- p
	}()
	want := bytes.Repeat([]byte("goaway;"), 5000)
	b.Write(want)
	b.Close()
	if p := <-got; !bytes.Equal(p, want) {
		t.Fatalf("%d bytes read, want %d", len(p), len(want))
	}
}

// TestH2cManyStreamsBatched: many concurrent streams on one h2c
// connection, through the lane's handover and batchConn, each get their
// own whole answer, large ones (past batchMax) included.
func TestH2cManyStreamsBatched(t *testing.T) {
	up := newBackend(t, "up", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(bytes.Repeat([]byte(r.URL.Query().Get("c")), n))
	})
	e := newEnv(t, `
pools: {p: {endpoints: [{{UP}}]}}
services: {s: {pools: [p]}}
routes: [{name: r, service: s}]
`, map[string]string{"UP": up.addr})
	tr := h2cTransport()
	tr.MaxConnsPerHost = 1 // one connection: the streams share it
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := string(rune('a' + i%26))
			n := 1 + i*i*40 // up to about 160 KiB
			res, err := c.Get(e.url + "/?c=" + ch + "&n=" + strconv.Itoa(n))
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			if err != nil || res.ProtoMajor != 2 || string(b) != strings.Repeat(ch, n) {
				errs <- fmt.Errorf("stream %d: %s, %d bytes, %v", i, res.Proto, len(b), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
