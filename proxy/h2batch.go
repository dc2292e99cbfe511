package proxy

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// batchConn gathers the writes of an HTTP/2 server connection so that the
// frames of many streams leave in one system call.
//
// Why: Go's HTTP/2 server (net/http's bundled copy, the same in
// golang.org/x/net/http2) writes one stream's frames and flushes them
// before it looks at the next stream, and it waits for each write to end
// before it starts another, so a connection carrying 64 streams makes
// about three write calls per response (strace under h2load -c8 -m8,
// 2026-12-06: 59,417 writes for 20,000 requests, 20,000 of them to the
// upstream), where nginx sends the responses that are ready together. The
// server has no setting for it, so this wrapper makes the writes
// asynchronous: Write copies the bytes into a pending buffer and returns;
// one writer goroutine, started when bytes are pending and none runs,
// sends everything pending in one write, and whatever the server wrote
// meanwhile goes in the next (27,972 writes for the same 20,000 requests).
// On a busy connection the server gets on with the next stream while the
// writer is in the kernel; an idle one costs nothing (no goroutine, no
// buffer: both come and go with the bytes).
//
// Limits: at most batchMax bytes wait; Write blocks beyond that, until
// the writer makes room. The writer gives up when the network takes no
// byte for batchWriteTimeout (the HTTP/2 server's own write-progress
// timeout, which its writes to this wrapper no longer reach: they return
// at once), so a client that stops reading ends the connection while a
// slow one that keeps reading is served; the first write error is
// returned by every Write after it. Close sends what is pending first (a
// GOAWAY, crypto/tls's close_notify), for up to batchCloseGrace. Write
// deadlines set by the caller are ignored once batching: they would bound
// a copy into memory, and crypto/tls's Close sets a past one right after
// queueing its alert, which would drop the connection's last bytes.
type batchConn struct {
	net.Conn
	pool *sync.Pool // of *[]byte with len 0, shared by the listener's connections
	// st is the batching state; nil while passthrough: writes go straight
	// to Conn, as if unwrapped, until batch is called (under TLS, the
	// wrapper is put in place before the handshake tells whether the
	// connection will carry HTTP/2, and most never do: they keep only
	// these three words).
	st *batchState
}

type batchState struct {
	mu      sync.Mutex
	cond    sync.Cond // signalled when the writer took or sent bytes, or stopped
	buf     *[]byte   // pending bytes; nil when none
	writing bool      // the writer goroutine runs
	err     error     // the first write error, or errBatchClosed
	closeBy time.Time // set by Close: no network write goes past it
}

// Limits of a batchConn (see there).
const (
	batchMax          = 64 << 10
	batchWriteTimeout = h2WriteByteTimeout
	batchCloseGrace   = time.Second
)

var errBatchClosed = errors.New("proxy: write on a closed connection")

func newBatchConn(c net.Conn, pool *sync.Pool) *batchConn {
	b := &batchConn{Conn: c, pool: pool}
	b.batch()
	return b
}

// newPassthroughConn wraps c for batching that starts only with batch.
func newPassthroughConn(c net.Conn, pool *sync.Pool) *batchConn {
	return &batchConn{Conn: c, pool: pool}
}

// batch starts batching. The caller must be the connection's only user
// at that moment (between the handshake and the handover).
func (b *batchConn) batch() {
	b.st = &batchState{}
	b.st.cond.L = &b.st.mu
}

// NetConn returns the wrapped connection, as tls.Conn's does (innerConn
// looks through it).
func (b *batchConn) NetConn() net.Conn { return b.Conn }

func (b *batchConn) Write(p []byte) (int, error) {
	if b.st == nil {
		return b.Conn.Write(p)
	}
	b.st.mu.Lock()
	defer b.st.mu.Unlock()
	for b.st.err == nil && b.st.buf != nil && len(*b.st.buf)+len(p) > batchMax && len(*b.st.buf) > 0 {
		b.st.cond.Wait()
	}
	if b.st.err != nil {
		return 0, b.st.err
	}
	if b.st.buf == nil {
		b.st.buf = b.pool.Get().(*[]byte)
		*b.st.buf = (*b.st.buf)[:0]
	}
	*b.st.buf = append(*b.st.buf, p...)
	if !b.st.writing {
		b.st.writing = true
		go b.writer()
	}
	return len(p), nil
}

// writer sends what is pending until nothing is, or a write fails.
func (b *batchConn) writer() {
	b.st.mu.Lock()
	for b.st.buf != nil && b.st.err == nil {
		buf := b.st.buf
		b.st.buf = nil
		b.st.cond.Broadcast() // room for blocked Writes
		b.st.mu.Unlock()
		err := b.send(*buf)
		b.recycle(buf)
		b.st.mu.Lock()
		if err != nil && b.st.err == nil {
			b.st.err = err
		}
	}
	if b.st.buf != nil { // failed: drop what is left
		b.recycle(b.st.buf)
		b.st.buf = nil
	}
	b.st.writing = false
	b.st.cond.Broadcast()
	b.st.mu.Unlock()
}

// send writes p, giving up when the network takes no byte for
// batchWriteTimeout, or at the deadline Close set.
func (b *batchConn) send(p []byte) error {
	for {
		b.st.mu.Lock()
		dl := time.Now().Add(batchWriteTimeout)
		if !b.st.closeBy.IsZero() && b.st.closeBy.Before(dl) {
			dl = b.st.closeBy
		}
		// Under mu, so a Close that shortens the deadline comes after.
		err := b.Conn.SetWriteDeadline(dl)
		b.st.mu.Unlock()
		if err != nil {
			return err
		}
		n, err := b.Conn.Write(p)
		p = p[n:]
		if err == nil || len(p) == 0 {
			return nil
		}
		if n == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		// Progress, then the deadline: a slow reader, not a stalled one.
	}
}

// recycle gives a buffer back to the pool, emptied, unless a large write
// grew it past batchMax.
func (b *batchConn) recycle(buf *[]byte) {
	if cap(*buf) <= batchMax {
		*buf = (*buf)[:0]
		b.pool.Put(buf)
	}
}

// SetWriteDeadline passes t on before batching and ignores it after (see
// batchConn).
func (b *batchConn) SetWriteDeadline(t time.Time) error {
	if b.st == nil {
		return b.Conn.SetWriteDeadline(t)
	}
	return nil
}

func (b *batchConn) SetDeadline(t time.Time) error {
	_ = b.SetWriteDeadline(t)
	return b.Conn.SetReadDeadline(t)
}

// Close sends what is pending, for up to batchCloseGrace, then closes
// the connection.
func (b *batchConn) Close() error {
	if b.st == nil {
		return b.Conn.Close()
	}
	b.st.mu.Lock()
	if b.st.closeBy.IsZero() {
		b.st.closeBy = time.Now().Add(batchCloseGrace)
	}
	if b.st.writing {
		// The write in flight may have a later deadline.
		_ = b.Conn.SetWriteDeadline(b.st.closeBy)
		for b.st.writing {
			b.st.cond.Wait()
		}
	}
	if b.st.err == nil {
		b.st.err = errBatchClosed
	}
	b.st.mu.Unlock()
	return b.Conn.Close()
}
