package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// The fast lane over TLS (http.engine: fast on the TLS listener): the lane
// does the handshake itself, with the listener's tls.Config (certificates
// by SNI, client certificate requests: handshake.go), then serves
// HTTP/1.1 (ALPN "http/1.1" or none) in its own loop, with idle
// connections parked as on the plain listener (fastpark.go), and gives
// net/http, through the same handoffListener, what it does not serve: h2
// connections, as the bare *tls.Conn (net/http finds the negotiated
// protocol and serves HTTP/2 with the listener's limits), and HTTP/1.1
// connections the lane hands over, with the plaintext read so far
// replayed (tlsHandoffConn).
//
// Why: an idle keep-alive connection of net/http's TLS server keeps a
// goroutine whose stack the handshake grew, 4 KiB read and write buffers
// and crypto/tls's state: 24.7 KiB of live Go memory, 37 KiB of RSS
// (bench/idle.sh, docs/benchmarks.md). Here a parked connection keeps
// crypto/tls's state and the lane's connection alone: 8 KiB, of which
// crypto/tls holds about 6 (its input and handshake buffers, sized by the
// ClientHello, and the two AES-GCM states), which no API lets go.
//
// Waiting for a request: a parked connection's goroutine may only end
// when crypto/tls holds nothing that would never make the socket readable
// again, no plaintext and no complete record. The wait is a Read of one
// byte under the idle deadline (or parkAfter): when it times out,
// crypto/tls needed bytes from the socket, so the socket turning readable
// is what the parker waits for. A deadline's timeout is temporary in
// crypto/tls (readRecordOrCCS keeps only other errors), and a record read
// in part stays in its input buffer for the next Read. Reading one byte
// first keeps the lane's buffer in the pool during the wait; the rest of
// the record's plaintext comes with the next Read, without a system call.

// serveTLS serves one accepted connection of a TLS lane: the handshake,
// then HTTP/1.1 in the lane or h2 in net/http.
func (l *fastLane) serveTLS(nc net.Conn) {
	// Under crypto/tls, so that once ALPN says h2 the records of many
	// streams leave in one write (batchConn); HTTP/1.1 writes pass through.
	bc := newPassthroughConn(nc, &l.h2bufs)
	tc := tls.Server(bc, l.tlsConf)
	c := &fastConn{lane: l, conn: tc, raw: tc, tc: tc}
	c.resp.c = c
	inner := nc
	if cc, ok := nc.(*cappedConn); ok {
		inner = cc.Conn
	}
	// The socket, for the parker; none (a wrapper of another kind): idle
	// connections keep their goroutine.
	if s, ok := inner.(syscall.Conn); ok {
		if rc, err := s.SyscallConn(); err == nil {
			c.rc = rc
			_ = rc.Control(func(fd uintptr) { c.fd = int(fd) })
		}
	}
	c.remote = nc.RemoteAddr().String()
	c.ctx = context.WithValue(l.baseCtx, http.LocalAddrContextKey, nc.LocalAddr())
	if l.connCtx != nil {
		c.ctx = l.connCtx(c.ctx, tc)
	}
	c.since = time.Now().Unix()
	c.setState(stateNew)
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	if !c.handshake() {
		l.drop(c, true)
		return
	}
	switch c.tc.ConnectionState().NegotiatedProtocol {
	case "h2":
		l.drop(c, false)
		c.setState(stateGone)
		bc.batch()
		l.handoff.push(tc)
		return
	case "", "http/1.1":
	default:
		// Another protocol (acme-tls/1, whose handshake is all it is
		// for): net/http closes these too.
		l.drop(c, true)
		return
	}
	c.hdr, c.resp.hdr = http.Header{}, http.Header{}
	// The first request's head must come within read_header_timeout, as
	// net/http requires after its handshake.
	c.idleUntil = deadline(l.hdrWait)
	// A new goroutine serves the requests: this one's stack, which the
	// handshake grew, goes back to the runtime now, for the next handshake
	// to reuse, rather than when the connection parks a second later.
	go l.loop(c)
}

// handshake runs the TLS handshake under the listener's handshake timeout
// (net/http's: the smallest of its read header, read and write timeouts)
// and reports whether it succeeded. Failures are the client's: they are
// logged as net/http logs them, and a client that sent plain HTTP gets
// net/http's 400.
func (c *fastConn) handshake() bool {
	if d := c.lane.tlsWait; d > 0 {
		_ = c.tc.SetDeadline(time.Now().Add(d))
	}
	err := c.tc.Handshake()
	if err == nil {
		_ = c.tc.SetDeadline(time.Time{})
		return true
	}
	reason := err.Error()
	var re tls.RecordHeaderError
	if errors.As(err, &re) && re.Conn != nil && recordLooksLikeHTTP(re.RecordHeader) {
		_, _ = io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		reason = "client sent an HTTP request to an HTTPS server"
	}
	if c.lane.errLog != nil {
		c.lane.errLog.Printf("http: TLS handshake error from %s: %v", c.remote, reason)
	}
	return false
}

// recordLooksLikeHTTP is net/http's test of a failed handshake's first
// bytes: the start of a plain HTTP request.
func recordLooksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// fillTLS is fill over TLS (see the top of this file for the idle wait).
func (c *fastConn) fillTLS() error {
	if c.r < c.w {
		// A head in pieces: the rest, under read_header_timeout.
		return c.readMore()
	}
	c.putBuf()
	if c.markIdle() {
		_ = c.raw.SetReadDeadline(c.waitUntil())
	}
	n, err := c.raw.Read(c.wbyte[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && !c.noPark && c.fd > 0 && c.lane.parker != nil &&
			(c.idleUntil.IsZero() || time.Now().Before(c.idleUntil)) {
			// The short wait ended, not the idle deadline: crypto/tls
			// waits for the socket, and so can the parker.
			return errPark
		}
		return err
	}
	c.markActive()
	c.getBuf()
	(*c.buf)[0] = c.wbyte[0]
	c.r, c.w = 0, 1
	return nil
}

// connState is the TLS state requests carry (Request.TLS), nil on a plain
// connection. It is dropped when the connection parks and made again for
// the next request.
func (c *fastConn) connState() *tls.ConnectionState {
	if c.tc == nil {
		return nil
	}
	if c.tlsSt == nil {
		st := c.tc.ConnectionState()
		c.tlsSt = &st
	}
	return c.tlsSt
}

// tlsHandoffConn is a TLS connection the lane hands to net/http after it
// read from it: the plaintext read so far is replayed. net/http sets
// Request.TLS from its ConnectionState, and the cap finds its slot through
// NetConn, both of the embedded *tls.Conn.
type tlsHandoffConn struct {
	*tls.Conn
	replay []byte
}

func (c *tlsHandoffConn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
