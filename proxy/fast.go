package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
)

// fastLane is the HTTP/1.1 server of the plain listener, and of the TLS
// listener (fasttls.go), when http.engine is fast: a connection loop of Meridian's own in front of the same Handler,
// which gets an ordinary *http.Request and an http.ResponseWriter
// (fastResponse) with the interfaces it uses (Flusher, FlushError, read and
// write deadlines for http.ResponseController).
//
// Why: with the proxying itself made cheap (relay.go, h1client.go), most
// of Meridian's user time per HTTP/1.1 request went to net/http's server
// side (docs/benchmarks.md): a Request built with a header map and a
// string per header value, a response struct, a header map and a clone of
// it per response, a background-read goroutine started and stopped around
// every request (with the deadline dance that stops it), the ConnState
// hooks, and the garbage of it all. Here, per request: one string for the
// whole head (keys and values are substrings of it), one array for the
// value slices, the URL, the Request and its context; the header maps,
// the response writer and the connection state are reused, and buffers are
// taken from a pool only while a request is being read or written, so an
// idle connection holds none. No goroutine is started per request: a
// client that goes away is noticed by a one-byte read that only a request
// still running after watchDelay starts (the work net/http's background
// read does for every request).
//
// Everything the lane does not take goes to net/http, which gets the
// connection, with the bytes read so far replayed, through a listener of
// its own (handoffListener) and serves it from then on, exactly as the std
// engine would: the h2c preface, upgrades (WebSocket), HTTP/1.0, chunked
// or Transfer-Encoding bodies (where the CL+TE check of sniff.go applies),
// Expect: 100-continue, heads over one 4 KiB buffer, and every head the
// lane's parser does not accept (fasthead.go) — so malformed requests get
// net/http's own answers. The response follows net/http's rules
// (fastresp.go): Content-Length for a body the handler finished within
// 2 KiB, else chunked; sniffed Content-Type; Date; Connection: close on
// the same conditions; trailers; 1xx; HEAD; unread request bodies up to
// 256 KiB drained, else the connection closed.
type fastLane struct {
	h       http.Handler
	s       config.HTTP
	log     *zap.Logger
	cap     *connCap
	handoff *handoffListener
	baseCtx context.Context // carries http.ServerContextKey: the handler aborts with ErrAbortHandler
	hdrWait time.Duration   // read_header_timeout
	idle    time.Duration   // idle_timeout

	parker *parker // nil: idle connections keep their goroutine

	// Over TLS (fasttls.go): the handshake's config (nil: a plain
	// listener), its timeout, net/http's error log for handshake failures,
	// and the server's ConnContext.
	tlsConf *tls.Config
	tlsWait time.Duration
	errLog  *log.Logger
	connCtx func(context.Context, net.Conn) context.Context

	h2bufs sync.Pool // batchConn buffers of the h2c connections handed over
	bufs   sync.Pool // of *[]byte of fastBufSize: heads read, responses written
	date   atomic.Pointer[dateStamp]

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*fastConn]struct{}
}

func newFastLane(h http.Handler, s config.HTTP, logger *zap.Logger, ll *connCap, std *http.Server, addr net.Addr) *fastLane {
	l := &fastLane{
		h: h, s: s, log: logger.Named("http"), cap: ll,
		handoff: newHandoffListener(addr),
		baseCtx: context.WithValue(context.Background(), http.ServerContextKey, std),
		hdrWait: s.ReadHeaderTimeout.D(),
		idle:    s.IdleTimeout.D(),
		conns:   map[*fastConn]struct{}{},
	}
	l.h2bufs.New = func() any { b := make([]byte, 0, 16<<10); return &b }
	l.bufs.New = func() any { b := make([]byte, fastBufSize); return &b }
	var err error
	if l.parker, err = newParker(l); err != nil {
		l.log.Warn("fast lane: no epoll set for idle connections; they keep a goroutine", zap.Error(err))
	}
	return l
}

// errPark ends fill when an idle connection's short wait is over (see
// parker).
var errPark = errors.New("proxy: idle connection to be parked")

// acceptLoop accepts connections from the capped listener until it is
// closed, backing off on errors as net/http does.
func (l *fastLane) acceptLoop() error {
	var delay time.Duration
	for {
		c, err := l.cap.Accept()
		if err != nil {
			if l.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("in", delay))
			time.Sleep(delay)
			continue
		}
		delay = 0
		if l.tlsConf != nil {
			go l.serveTLS(c)
			continue
		}
		sc, ok := c.(*serverConn)
		if !ok {
			// Not the wrapper this file expects: net/http serves it.
			l.handoff.push(c)
			continue
		}
		go l.serveConn(sc)
	}
}

// Connection states, for shutdown.
const (
	stateNew    int32 = iota // no request yet
	stateIdle                // waiting for the next request
	stateActive              // reading or serving a request
	stateGone                // handed off or closing
)

// fastConn is one connection of the lane. Only its goroutine touches it,
// except the client watch (watch*), guarded by wmu, the request body,
// guarded by its own mutex while a request runs, and state.
type fastConn struct {
	lane   *fastLane
	sc     *serverConn // the plain listener's connection; nil over TLS
	conn   net.Conn    // what the cap tracks and Close ends: sc, or the *tls.Conn
	raw    net.Conn    // what requests are read from: sc.Conn, or the *tls.Conn
	tc     *tls.Conn   // over TLS (fasttls.go); nil: plain
	tlsSt  *tls.ConnectionState
	rc     syscall.RawConn // nil when the connection has none: reads block with the buffer held
	remote string
	ctx    context.Context // the connection's: the server's values
	state  atomic.Int32
	since  int64 // when the connection was accepted, unix seconds

	buf        *[]byte // the read buffer, nil while idle; bytes buf[r:w] are unread
	r, w       int
	lastPOST   bool
	hdrTimeSet bool // the current head's read_header_timeout deadline is set

	// fill's raw read: the callback (bound once) and its results.
	readFn    func(uintptr) bool
	rn        int
	rerr      error
	parked    bool
	fd        int       // the socket, for the parker's epoll set; 0: none
	idleUntil time.Time // when an idle wait ends the connection; zero: never
	noPark    bool      // the parker refused it: wait here
	epollReg  bool      // registered in the parker's epoll set

	hdr  http.Header // the request header, reused
	head fastHead
	resp fastResponse
	werr error // the first write error

	wmu      sync.Mutex
	wstate   int
	wtimer   *time.Timer
	wcancel  *laneCtx // the current request's: the watch and a forced close cancel it
	wdone    chan struct{}
	wabort   bool
	wbyte    [1]byte
	stash    bool // wbyte holds the next request's first byte
	peerGone bool
}

// Buffers: one size for reading heads and writing responses; a
// connection holds one of each only while a request is in progress.
const fastBufSize = 4 << 10

// watchDelay is how long a request runs before the lane starts watching
// its connection for the client going away (see fastLane).
const watchDelay = 100 * time.Millisecond

// maxPostHandlerRead is how much of an unread request body is drained
// after the handler so the connection can be kept (net/http's 256 KiB).
const maxPostHandlerRead = 256 << 10

func (l *fastLane) serveConn(sc *serverConn) {
	c := &fastConn{lane: l, sc: sc, conn: sc, raw: sc.Conn}
	c.resp.c = c
	if s, ok := sc.Conn.(syscall.Conn); ok {
		c.rc, _ = s.SyscallConn()
		c.readFn = c.onReadable
		_ = c.rc.Control(func(fd uintptr) { c.fd = int(fd) })
	}
	c.remote = sc.RemoteAddr().String()
	c.ctx = context.WithValue(l.baseCtx, http.LocalAddrContextKey, sc.LocalAddr())
	c.since = time.Now().Unix()
	c.setState(stateNew)
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	// A new connection must send its first head within
	// read_header_timeout, as net/http requires.
	c.idleUntil = deadline(l.hdrWait)
	l.loop(c)
}

// loop serves c's requests until the connection closes, goes to net/http,
// or parks (parker.go): then the goroutine ends and the parker starts a
// new one when the client sends something.
func (l *fastLane) loop(c *fastConn) {
	if c.hdr == nil {
		// Back from the parker: per-request state anew, and no deadline
		// (the short wait's has passed; park sets the next one).
		c.hdr, c.resp.hdr = http.Header{}, http.Header{}
		_ = c.raw.SetReadDeadline(time.Time{})
	}
	for {
		end, st := c.nextHead()
		switch st {
		case headClose:
			l.drop(c, true)
			return
		case headPark:
			if l.parker.park(c) {
				return
			}
			// Not parked (shutting down, or the epoll set refused it):
			// wait here as before.
			c.noPark = true
			continue
		case headHandoff:
			l.drop(c, false)
			c.handOver()
			return
		}
		if !parseFastHead((*c.buf)[c.r:end], &c.head, c.hdr) {
			l.drop(c, false)
			c.handOver()
			return
		}
		c.r = end
		c.hdrTimeSet, c.noPark = false, false
		if !c.serveRequest() || l.closing.Load() {
			l.drop(c, true)
			return
		}
	}
}

// drop forgets a connection that closes (closeIt) or goes to net/http.
func (l *fastLane) drop(c *fastConn, closeIt bool) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	if c.wtimer != nil {
		c.wtimer.Stop()
	}
	c.putBuf()
	c.resp.putOut()
	if closeIt {
		c.setState(stateGone)
		_ = c.conn.Close()
	}
}

// setState records the connection's state, for shutdown.
func (c *fastConn) setState(s int32) { c.state.Store(s) }

// Results of nextHead.
const (
	headOK      = iota
	headHandoff // net/http takes the connection
	headClose   // the connection ends (closed, timed out, or reset)
	headPark    // idle past parkAfter: the parker takes it
)

// nextHead makes buf[r:end] a complete request head, reading as needed.
func (c *fastConn) nextHead() (end int, st int) {
	for {
		if c.r < c.w {
			b := (*c.buf)[c.r:c.w]
			if c.lastPOST && (b[0] == '\r' || b[0] == '\n') {
				// net/http's tolerance for clients that end a POST body
				// with an extra CRLF (RFC 7230 section 3.5).
				k := 0
				for k < len(b) && k < 4 && (b[k] == '\r' || b[k] == '\n') {
					k++
				}
				c.r += k
				continue
			}
			if e := crlfHeadEnd(b); e >= 0 {
				c.lastPOST = false
				return c.r + e, headOK
			}
			if c.w == len(*c.buf) {
				if c.r == 0 {
					return 0, headHandoff // a head over the lane's buffer
				}
				c.w = copy(*c.buf, (*c.buf)[c.r:c.w])
				c.r = 0
			}
			if !c.hdrTimeSet {
				// A head in pieces: the rest must come within
				// read_header_timeout of its first bytes.
				c.hdrTimeSet = true
				_ = c.raw.SetReadDeadline(deadline(c.lane.hdrWait))
			}
		}
		if err := c.fill(); err != nil {
			if err == errPark {
				return 0, headPark
			}
			return 0, headClose
		}
	}
}

// fill reads what the client sent into the buffer. With the buffer empty
// the connection is idle: it waits for the client to be readable with no
// buffer at all (the buffer goes back to the pool), under idle_timeout
// (read_header_timeout for a new connection), and tells the cap it may be
// reclaimed.
func (c *fastConn) fill() error {
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	if c.stash {
		c.stash = false
		c.getBuf()
		(*c.buf)[c.w] = c.wbyte[0]
		c.w++
		return nil
	}
	if c.tc != nil {
		return c.fillTLS()
	}
	if c.rc == nil {
		c.getBuf()
		return c.readMore()
	}
	c.rn, c.rerr, c.parked = 0, nil, false
	err := c.rc.Read(c.readFn)
	if err != nil && c.r == c.w && errors.Is(err, os.ErrDeadlineExceeded) &&
		!c.noPark && (c.idleUntil.IsZero() || time.Now().Before(c.idleUntil)) {
		// The short wait of an idle connection ended, not its idle
		// deadline: hand it to the parker.
		return errPark
	}
	c.markActive()
	n, rerr := c.rn, c.rerr
	c.rerr = nil
	switch {
	case err != nil:
		return err
	case rerr != nil:
		return rerr
	case n <= 0:
		return io.EOF
	}
	c.w += n
	return nil
}

// onReadable is fill's callback under the poller (syscall.RawConn.Read):
// it reads into the buffer, or reports false to have the poller wait for
// the client. (It cannot wait first and save the read that returns EAGAIN
// when the client has not sent its next request yet: the poller forgets
// earlier readiness when a read starts.) Before waiting with nothing
// buffered it parks the connection: the buffer goes back to the pool, the
// idle deadline is set, and the cap may reclaim it.
func (c *fastConn) onReadable(fd uintptr) bool {
	c.getBuf()
	for {
		c.rn, c.rerr = syscall.Read(int(fd), (*c.buf)[c.w:])
		if c.rerr != syscall.EINTR {
			break
		}
	}
	if c.rerr != syscall.EAGAIN {
		return true
	}
	c.rn, c.rerr = 0, nil
	if c.r == c.w {
		c.park()
	}
	return false
}

// park readies an idle connection for the wait: no buffer held, the cap
// told, and a deadline (waitUntil).
func (c *fastConn) park() {
	c.putBuf()
	if c.parked {
		return
	}
	c.parked = true
	if c.markIdle() {
		_ = c.raw.SetReadDeadline(c.waitUntil())
	}
}

// markIdle records that the connection waits for a request, and reports
// false when it is gone.
func (c *fastConn) markIdle() bool {
	switch c.state.Load() {
	case stateActive:
		c.setState(stateIdle)
		c.idleUntil = deadline(c.lane.idle)
		c.lane.cap.trackState(c.conn, http.StateIdle)
	case stateIdle, stateNew:
		// Back from the parker or refused by it; or new.
	default:
		return false
	}
	return true
}

// markActive records that the client sent something.
func (c *fastConn) markActive() {
	if c.state.Load() == stateIdle {
		c.lane.cap.trackState(c.conn, http.StateActive)
	}
	if c.state.Load() != stateGone {
		c.setState(stateActive)
	}
}

// waitUntil is the deadline of an idle wait: the idle deadline
// (read_header_timeout for a new connection), or parkAfter if that comes
// first, after which the parker waits instead of this goroutine.
func (c *fastConn) waitUntil() time.Time {
	d := c.idleUntil
	if c.lane.parker != nil && !c.noPark && c.fd > 0 {
		if p := time.Now().Add(parkAfter); d.IsZero() || p.Before(d) {
			d = p
		}
	}
	return d
}

func (c *fastConn) getBuf() {
	if c.buf == nil {
		c.buf = c.lane.bufs.Get().(*[]byte)
	}
}

// readMore reads once into the buffer after what it holds; a read that
// brings nothing and no error counts as io.ErrNoProgress.
func (c *fastConn) readMore() error {
	n, err := c.raw.Read((*c.buf)[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

func (c *fastConn) putBuf() {
	if c.buf != nil && c.r == c.w {
		c.lane.bufs.Put(c.buf)
		c.buf = nil
		c.r, c.w = 0, 0
	}
}

// handOver gives the connection to net/http, with what was read of it
// replayed.
func (c *fastConn) handOver() {
	var rest []byte
	if c.buf != nil && c.r < c.w {
		rest = append([]byte(nil), (*c.buf)[c.r:c.w]...)
		c.r = c.w
	}
	if c.stash {
		rest = append(rest, c.wbyte[0])
		c.stash = false
	}
	c.setState(stateGone)
	_ = c.raw.SetDeadline(time.Time{})
	if c.tc != nil {
		c.lane.handoff.push(&tlsHandoffConn{Conn: c.tc, replay: rest})
		return
	}
	c.sc.handOver(rest)
	if bytes.HasPrefix(rest, h2Preface) {
		// HTTP/2 with prior knowledge: its writes are batched (batchConn).
		c.lane.handoff.push(newBatchConn(c.sc, &c.lane.h2bufs))
		return
	}
	c.lane.handoff.push(c.sc)
}

// h2Preface opens every HTTP/2 connection (RFC 9113 3.4); the lane's
// parser stops after its first part.
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\n")

// serveRequest runs the handler for the parsed head and finishes the
// response; it reports whether the connection may carry another request.
func (c *fastConn) serveRequest() bool {
	h := &c.head
	lc := newLaneCtx(c.ctx)
	r := (&http.Request{
		Method:        h.method,
		URL:           h.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        c.hdr,
		Body:          http.NoBody,
		ContentLength: h.contentLength,
		Host:          h.host,
		RemoteAddr:    c.remote,
		RequestURI:    h.target,
		Close:         h.close,
		TLS:           c.connState(),
	}).WithContext(lc)
	var body *fastBody
	if h.contentLength > 0 {
		body = &fastBody{c: c, remain: h.contentLength, lc: lc}
		r.Body = body
		// A body is read under its own limits (body_timeout,
		// read_timeout): the idle wait's deadline must not apply.
		_ = c.raw.SetReadDeadline(time.Time{})
	}
	c.begin(lc, body == nil)
	c.lastPOST = h.method == "POST"
	w := &c.resp
	w.reset(r, body, h.close)

	ok := c.runHandler(w, r)
	c.stopWatch()
	lc.cancel(nil) // as net/http does once the handler returns
	if !ok {
		// A panic (http.ErrAbortHandler: a response cut on purpose): what
		// was committed goes out, then the connection closes.
		if w.committed {
			w.flushOut()
		}
		w.putOut()
		return false
	}
	w.finish()
	keep := w.reusable()
	if body != nil {
		drained, early := body.drain()
		if early {
			// Over maxPostHandlerRead left unread: as net/http, close
			// the write side and give the client time to read the
			// response before the close can turn into a reset.
			w.putOut()
			if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			time.Sleep(500 * time.Millisecond)
			return false
		}
		keep = keep && drained
	}
	if w.wroteWD {
		_ = c.raw.SetWriteDeadline(time.Time{})
	}
	w.putOut()
	return keep && c.werr == nil && !c.peerGone
}

// runHandler calls the handler, reporting false if it panicked; a panic
// other than http.ErrAbortHandler is logged as net/http logs it.
func (c *fastConn) runHandler(w *fastResponse, r *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			if p != http.ErrAbortHandler {
				const size = 64 << 10
				buf := make([]byte, size)
				buf = buf[:runtime.Stack(buf, false)]
				c.lane.log.Error(fmt.Sprintf("http: panic serving %v: %v\n%s", c.remote, p, buf))
			}
		}
	}()
	c.lane.h.ServeHTTP(w, r)
	return true
}

// Client watch states.
const (
	watchOff = iota
	watchArmed
	watchRunning
	watchDone
)

// errClientGone cancels a request whose client closed or reset the
// connection while the request ran.
var errClientGone = errors.New("proxy: client closed the connection")

// begin records a request's cancel function and, when it has no body to
// read, arms the watch (armWatch).
func (c *fastConn) begin(lc *laneCtx, watch bool) {
	c.wmu.Lock()
	c.wcancel = lc
	if watch {
		c.wstate = watchArmed
	}
	c.wmu.Unlock()
	if watch {
		c.startTimer()
	}
}

// armWatch starts the wait after which a still running request has its
// connection watched for the client going away. The request must have no
// body left to read.
func (c *fastConn) armWatch() {
	c.wmu.Lock()
	if c.wcancel == nil || c.wstate != watchOff {
		c.wmu.Unlock()
		return
	}
	c.wstate = watchArmed
	c.wmu.Unlock()
	c.startTimer()
}

func (c *fastConn) startTimer() {
	if c.wtimer == nil {
		c.wtimer = time.AfterFunc(watchDelay, c.watch)
	} else {
		c.wtimer.Reset(watchDelay)
	}
}

// deadline is now plus d, or no deadline when d is zero.
func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// watch reads one byte from the connection: an error other than the
// abort (stopWatch) means the client went away, and cancels the request;
// a byte is the next request's first, kept for it.
func (c *fastConn) watch() {
	c.wmu.Lock()
	if c.wstate != watchArmed {
		c.wmu.Unlock()
		return
	}
	c.wstate = watchRunning
	c.wdone = make(chan struct{})
	_ = c.raw.SetReadDeadline(time.Time{})
	c.wmu.Unlock()
	n, err := c.raw.Read(c.wbyte[:])
	c.wmu.Lock()
	if n == 1 {
		c.stash = true
	}
	if err != nil && !c.wabort {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			c.peerGone = true
			c.wcancel.cancel(errClientGone)
		}
	}
	c.wstate = watchDone
	close(c.wdone)
	c.wmu.Unlock()
}

// stopWatch ends the watch when the request ends, waiting for a running
// read to return.
func (c *fastConn) stopWatch() {
	c.wmu.Lock()
	st := c.wstate
	c.wstate, c.wcancel = watchOff, nil
	switch st {
	case watchOff:
		c.wmu.Unlock()
		return
	case watchArmed:
		c.wmu.Unlock()
		c.wtimer.Stop()
		return
	case watchRunning:
		c.wabort = true
		_ = c.raw.SetReadDeadline(aLongTimeAgo)
	}
	done := c.wdone
	c.wmu.Unlock()
	<-done
	c.wmu.Lock()
	c.wabort = false
	c.wmu.Unlock()
	_ = c.raw.SetReadDeadline(time.Time{})
}

var aLongTimeAgo = time.Unix(1, 0)

// fastBody is a request body of Content-Length bytes: the rest of the read
// buffer first, then the connection. Reads hold mu, so a drain after the
// handler waits for a read the transport has in flight.
type fastBody struct {
	c  *fastConn
	lc *laneCtx // the request's: a failed read cancels it

	mu     sync.Mutex
	remain int64
	sawEOF bool
	closed bool
	err    error
}

func (b *fastBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

func (b *fastBody) readLocked(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.remain == 0 {
		b.eof()
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	c := b.c
	var n int
	var err error
	if c.buf != nil && c.r < c.w {
		n = copy(p, (*c.buf)[c.r:c.w])
		c.r += n
	} else {
		n, err = c.raw.Read(p)
	}
	b.remain -= int64(n)
	if err == io.EOF && b.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		// As net/http: a failed read of the connection cancels the
		// request.
		b.err = err
		b.lc.cancel(err)
		return n, err
	}
	if b.remain == 0 {
		b.eof()
		return n, io.EOF
	}
	return n, nil
}

// eof marks the body read to its end: from now on the request's
// connection may be watched.
func (b *fastBody) eof() {
	if !b.sawEOF {
		b.sawEOF = true
		b.c.armWatch()
	}
}

func (b *fastBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// drain reads what the handler left of the body, up to
// maxPostHandlerRead: ok when the connection is back at a request
// boundary; early when more was left (the connection must close).
func (b *fastBody) drain() (ok, early bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.sawEOF {
		return true, false
	}
	if b.err != nil {
		return false, false
	}
	if b.remain > maxPostHandlerRead {
		return false, true
	}
	var scratch [512]byte
	for !b.sawEOF {
		if _, err := b.readLocked(scratch[:]); err != nil && err != io.EOF {
			return false, false
		}
	}
	return true, false
}

// discardEarly is net/http's drain when the response head is written
// while the body is unread: up to maxPostHandlerRead bytes are read and
// dropped, so a client that sends its whole request before reading cannot
// deadlock. It reports whether the connection must close after the
// response (tooBig: more was left).
func (b *fastBody) discardEarly() (closeAfter, tooBig bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return !b.sawEOF, false
	case b.sawEOF:
		return false, false
	case b.err != nil:
		return true, false
	case b.remain >= maxPostHandlerRead:
		return false, true
	}
	var scratch [512]byte
	for !b.sawEOF {
		if _, err := b.readLocked(scratch[:]); err != nil && err != io.EOF {
			return true, false
		}
	}
	b.closed = true // drained: the handler's later reads fail, as in net/http
	return false, false
}

// shutdown closes idle connections and waits, until ctx is done, for the
// busy ones to finish their request (their responses say Connection:
// close); then it closes the rest and cancels their requests.
func (l *fastLane) shutdown(ctx context.Context) error {
	l.closing.Store(true)
	defer l.parker.stop()
	l.parker.closeAll()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if l.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			l.closeAll()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeIdle closes the connections waiting for a request (new ones after
// 5 s, as net/http) and reports whether none is left.
func (l *fastLane) closeIdle() bool {
	now := time.Now().Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		st := c.state.Load()
		if st == stateIdle || st == stateNew && c.since < now-5 {
			c.abort()
		}
	}
	return len(l.conns) == 0
}

// abort closes the connection's socket for shutdown; its goroutine, if
// any, then ends it. Over TLS the socket is closed under crypto/tls, which
// would otherwise send close_notify first and wait up to 5 s for a client
// that does not read, under l.mu.
func (c *fastConn) abort() {
	if c.tc != nil {
		_ = c.tc.NetConn().Close()
		return
	}
	_ = c.raw.Close()
}

// closeAll closes every connection and cancels the requests in flight.
func (l *fastLane) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.abort()
		c.wmu.Lock()
		if c.wcancel != nil {
			c.wcancel.cancel(http.ErrServerClosed)
		}
		c.wmu.Unlock()
	}
}

// handoffListener hands connections from the lane to net/http's server.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// push gives c to net/http, or closes it once the server is shut down.
func (l *handoffListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}
