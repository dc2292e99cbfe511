package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Client is the upstream client of plain-text HTTP/1.1 pools. It sends a
// request without a body on the calling goroutine — write the head, read the
// response — over a kept-alive connection, and hands everything else
// (bodies, upgrades, trailers) to an http.Transport.
//
// Why: http.Transport runs every exchange across three goroutines (the
// caller, a connection's writeLoop and its readLoop) joined by channels,
// plus a per-request cancel registry; on a proxy pinned to one core those
// handoffs cost more than the proxying itself. The wire format stays the
// standard library's (Request.Write, http.ReadResponse), and the
// Transport's rules are kept: connections are reused only after a body read
// to its end without "Connection: close"; a request that meets a kept-alive
// connection the upstream had closed is retried on another one when
// nothing was sent, or when it is replayable (GET, HEAD, OPTIONS, TRACE, or
// an idempotency key) and no response byte came back; 1xx responses reach
// the request's httptrace Got1xxResponse; response heads are capped at
// 10 MiB; idle connections are closed after idleTimeout; and an idle
// connection is checked (a non-blocking peek) for a close or stray bytes
// before it carries a request.
//
// Cancelling the request's context (client gone, route or per-try
// timeout) expires the connection's deadline, which ends any read or write
// in flight; the connection is then closed.
//
// Each pool has its own h1Client, and with its breaker (breaker.go) it
// counts every connection it opens until it is closed. A request that needs
// a new connection while the pool is at max_connections first closes an
// idle connection to another endpoint, if there is one (or the fallback's
// idle ones), and otherwise waits, pending, for a connection to its
// endpoint to finish its exchange (handed over at once, before it would go
// idle) or for a slot to free.
type h1Client struct {
	fallback    *http.Transport
	fbrt        http.RoundTripper // fallback, behind the breaker's dial limits
	dialer      *net.Dialer
	maxIdle     int
	idleTimeout time.Duration
	maxHead     int64    // response head cap
	brk         *breaker // the pool's limits; nil: none

	mu    sync.Mutex
	idle  map[string][]*h1Conn // by endpoint address, most recently used last
	sweep *time.Timer          // closes expired idle connections; nil when none wait
}

func newH1Client(fallback *http.Transport, d *net.Dialer, maxIdle int, idleTimeout time.Duration, maxHead int, brk *breaker) *h1Client {
	c := &h1Client{fallback: fallback, fbrt: limitTransport(fallback, brk), dialer: d, maxIdle: maxIdle, idleTimeout: idleTimeout, maxHead: int64(maxHead), idle: map[string][]*h1Conn{}, brk: brk}
	if brk != nil {
		brk.h1.Store(c)
	}
	return c
}

// takes reports whether the fast path sends req: plain HTTP, no body, no
// trailer, no protocol upgrade.
func (c *h1Client) takes(req *http.Request) bool {
	if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host == "" || req.Header == nil {
		return false
	}
	if (req.Body != nil && req.Body != http.NoBody) || len(req.Trailer) > 0 || len(req.TransferEncoding) > 0 {
		return false
	}
	_, up := req.Header["Upgrade"]
	return !up && req.Method != http.MethodConnect
}

// RoundTrip implements http.RoundTripper.
func (c *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	if !c.takes(req) {
		return c.fbrt.RoundTrip(req)
	}
	if err := validateRequest(req); err != nil {
		return nil, err
	}
	ctx := req.Context()
	addr := req.URL.Host
	for {
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		pc, err := c.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		res, err := pc.roundTrip(req)
		if err == nil {
			return res, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, context.Cause(ctx)
		}
		if !pc.reused || !retryable(req, err) {
			return nil, err
		}
		// A kept-alive connection the upstream had given up on: try
		// another (or a new) one, as http.Transport does.
	}
}

// validateRequest applies the checks http.Transport makes before sending.
func validateRequest(req *http.Request) error {
	if req.Method != "" && !httpguts.ValidHeaderFieldName(req.Method) {
		return fmt.Errorf("net/http: invalid method %q", req.Method)
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("net/http: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("net/http: invalid header field value for %q", k)
			}
		}
	}
	return nil
}

// Errors of an exchange on a connection, as http.Transport tells them
// apart to decide on a retry.
var (
	errNothingWritten = errors.New("proxy: upstream connection failed before the request was sent")
	errClosedIdle     = errors.New("proxy: upstream closed the kept-alive connection")
	errNoResponseByte = errors.New("proxy: upstream connection failed before the first response byte")
)

// retryable reports whether a request that failed on a reused connection
// may be sent again: always when nothing was written (it has no body),
// otherwise only when it is replayable and no response byte came back.
func retryable(req *http.Request, err error) bool {
	if errors.Is(err, errNothingWritten) {
		return true
	}
	if !errors.Is(err, errClosedIdle) && !errors.Is(err, errNoResponseByte) {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}

// get returns an idle connection to addr, or dials one; with a breaker,
// a new connection waits for the pool's max_connections (see h1Client).
func (c *h1Client) get(ctx context.Context, addr string) (*h1Conn, error) {
	now := time.Now()
	for {
		c.mu.Lock()
		l := c.idle[addr]
		if len(l) == 0 {
			if c.brk == nil {
				c.mu.Unlock()
				return c.dial(ctx, addr)
			}
			// Under mu, so a connection put back meanwhile is either
			// idle here or handed to the waiter.
			spare := c.spareLocked(addr)
			w, oe := c.brk.reserve(addr, true, spare)
			var victim *h1Conn
			if w != nil && spare {
				victim = c.evictLocked(addr)
			}
			c.mu.Unlock()
			switch {
			case oe != nil:
				return nil, oe
			case w == nil:
				return c.dial(ctx, addr)
			}
			switch {
			case victim != nil:
				victim.close() // its slot goes to the first waiter
			case c.brk.transportConns() > 0:
				// Requests with a body went through the fallback: its
				// idle connections make room.
				c.fallback.CloseIdleConnections()
			}
			pc, err := c.brk.wait(ctx, w)
			switch {
			case err != nil:
				return nil, c.brk.pendingErr(err)
			case pc == nil:
				return c.dial(ctx, addr)
			}
			// Handed over as its exchange ended: as fresh as idle gets.
			if !pc.usable() {
				pc.close()
				continue
			}
			pc.reused = true
			return pc, nil
		}
		pc := l[len(l)-1]
		l[len(l)-1] = nil
		c.idle[addr] = l[:len(l)-1]
		c.mu.Unlock()
		// An idle connection is checked before reuse, as http.Transport's
		// always-pending read would have: a close (an upstream keep-alive
		// timeout) or bytes sent unasked (a body longer than announced)
		// make it unusable, so no request goes where a stale or
		// desynchronised response waits.
		if now.Sub(pc.idleAt) >= c.idleTimeout || !pc.usable() {
			pc.close()
			continue
		}
		pc.reused = true
		return pc, nil
	}
}

// spareLocked reports whether an idle connection to an endpoint other
// than addr could be closed to make room. Caller holds mu.
func (c *h1Client) spareLocked(addr string) bool {
	for a, l := range c.idle {
		if a != addr && len(l) > 0 {
			return true
		}
	}
	return false
}

// evictLocked takes the oldest idle connection to an endpoint other than
// addr out of the idle lists, for the caller to close (after mu) so a
// connection to addr can open. Caller holds mu.
func (c *h1Client) evictLocked(addr string) *h1Conn {
	for a, l := range c.idle {
		if a == addr || len(l) == 0 {
			continue
		}
		pc := l[0]
		copy(l, l[1:])
		l[len(l)-1] = nil
		c.idle[a] = l[:len(l)-1]
		return pc
	}
	return nil
}

// evictIdle closes one idle connection not to addr ("": any), if there is
// one; a Transport dial of the same pool waiting at max_connections calls
// it.
func (c *h1Client) evictIdle(addr string) {
	c.mu.Lock()
	pc := c.evictLocked(addr)
	c.mu.Unlock()
	if pc != nil {
		pc.close()
	}
}

// dial opens a connection to addr; with a breaker, its slot is reserved
// already, and given back when the dial fails.
func (c *h1Client) dial(ctx context.Context, addr string) (*h1Conn, error) {
	nc, err := c.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		if c.brk != nil {
			c.brk.closed(addr)
		}
		return nil, err
	}
	pc := &h1Conn{cl: c, nc: nc, addr: addr}
	pc.lr.R = nc
	pc.cw.c = nc
	pc.br = bufio.NewReaderSize(&pc.lr, 16<<10)
	pc.bw = bufio.NewWriterSize(&pc.cw, 4<<10)
	pc.expire1 = pc.expireNow
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			pc.rc, pc.peek1 = rc, pc.peek
		}
	}
	return pc, nil
}

// put keeps a connection whose exchange ended cleanly for the next request
// to addr, or closes it when enough are idle already.
func (c *h1Client) put(pc *h1Conn) {
	pc.idleAt = time.Now()
	pc.reused = false
	c.mu.Lock()
	if b := c.brk; b != nil && b.nwait.Load() > 0 {
		switch b.handoff(pc) {
		case handedOff:
			c.mu.Unlock()
			return
		case closeIt:
			c.mu.Unlock()
			pc.close()
			return
		}
	}
	l := c.idle[pc.addr]
	if len(l) >= c.maxIdle {
		c.mu.Unlock()
		pc.close()
		return
	}
	c.idle[pc.addr] = append(l, pc)
	if c.sweep == nil {
		c.sweep = time.AfterFunc(c.idleTimeout, c.expire)
	}
	c.mu.Unlock()
}

// expire closes the connections idle for idleTimeout, and runs again while
// any are left.
func (c *h1Client) expire() {
	now := time.Now()
	var old []*h1Conn
	c.mu.Lock()
	next := time.Duration(0)
	for addr, l := range c.idle {
		keep := l[:0]
		for _, pc := range l {
			if age := now.Sub(pc.idleAt); age >= c.idleTimeout {
				old = append(old, pc)
			} else {
				keep = append(keep, pc)
				if left := c.idleTimeout - age; next == 0 || left < next {
					next = left
				}
			}
		}
		clear(l[len(keep):])
		if len(keep) == 0 {
			delete(c.idle, addr)
		} else {
			c.idle[addr] = keep
		}
	}
	if next > 0 {
		c.sweep = time.AfterFunc(next, c.expire)
	} else {
		c.sweep = nil
	}
	c.mu.Unlock()
	for _, pc := range old {
		pc.close()
	}
}

// CloseIdleConnections closes every idle connection, the fallback
// transport's too (a reload that drops the pool calls it).
func (c *h1Client) CloseIdleConnections() {
	c.mu.Lock()
	idle := c.idle
	c.idle = map[string][]*h1Conn{}
	if c.sweep != nil {
		c.sweep.Stop()
		c.sweep = nil
	}
	c.mu.Unlock()
	for _, l := range idle {
		for _, pc := range l {
			pc.close()
		}
	}
	c.fallback.CloseIdleConnections()
}

// h1Conn is one upstream connection; one exchange uses it at a time.
type h1Conn struct {
	cl      *h1Client
	nc      net.Conn
	addr    string
	lr      io.LimitedReader // caps response heads; bufio reads through it
	br      *bufio.Reader
	cw      countWriter
	bw      *bufio.Writer
	reused  bool // taken from the idle list: the upstream may have closed it
	idleAt  time.Time
	rc      syscall.RawConn    // for usable; nil when the conn has none
	peek1   func(uintptr) bool // pc.peek, bound once
	expire1 func()             // pc.expireNow, bound once
	alive   bool               // peek's finding
	keys    []string           // writeHead's header keys, reused
	clb     clBody             // the body readHead frames, reused
	closed  atomic.Bool        // close ran: the breaker counted it out
}

// countWriter counts the bytes a connection has sent, to tell whether a
// failed request left anything on the wire.
type countWriter struct {
	c net.Conn
	n int64
}

func (w *countWriter) Write(p []byte) (int, error) {
	n, err := w.c.Write(p)
	w.n += int64(n)
	return n, err
}

// close closes the connection; the first call uncounts it from the
// pool's breaker.
func (pc *h1Conn) close() {
	_ = pc.nc.Close()
	if pc.closed.CompareAndSwap(false, true) && pc.cl.brk != nil {
		pc.cl.brk.closed(pc.addr)
	}
}

// usable reports whether an idle connection can carry a request: nothing
// the upstream sent unasked is buffered, and a poll that does not wait
// finds the socket not readable (neither a close nor stray bytes).
func (pc *h1Conn) usable() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	if pc.rc == nil {
		return true
	}
	pc.alive = false
	if err := pc.rc.Read(pc.peek1); err != nil {
		return false
	}
	return pc.alive
}

// expireNow ends whatever read or write is in flight on the connection;
// it runs when the request's context ends.
func (pc *h1Conn) expireNow() { _ = pc.nc.SetDeadline(time.Unix(1, 0)) }

// peek is usable's raw read: it looks once and never waits for readiness.
func (pc *h1Conn) peek(fd uintptr) bool {
	pc.alive = peekIdle(fd)
	return true
}

// roundTrip sends req and reads its response head. On success the
// response body owns the connection; on error the connection is closed.
func (pc *h1Conn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	b := &h1Body{pc: pc}
	if lc := laneCtxOf(ctx); lc != nil && lc.hook(pc) {
		b.lc = lc
	} else {
		b.stop = context.AfterFunc(ctx, pc.expire1)
	}
	res, err := pc.exchange(req)
	if err != nil {
		b.unhook()
		pc.close()
		return nil, err
	}
	b.rc = res.Body
	b.reuse = !res.Close && !req.Close && res.StatusCode != http.StatusSwitchingProtocols
	if res.Body == http.NoBody {
		b.finish(true)
		return res, nil
	}
	res.Body = b
	return res, nil
}

// exchange writes the request head and reads the response head, relaying
// informational responses to the request's trace.
func (pc *h1Conn) exchange(req *http.Request) (*http.Response, error) {
	start := pc.cw.n
	done, err := pc.writeHead(req)
	if !done {
		err = req.Write(pc.bw)
	}
	if err == nil {
		err = pc.bw.Flush()
		if err != nil {
			return nil, pc.writeErr(err, start)
		}
	} else {
		return nil, pc.writeErr(err, start)
	}
	pc.lr.N = pc.cl.maxHead
	if _, err := pc.br.Peek(1); err != nil {
		if err == io.EOF {
			return nil, errClosedIdle
		}
		return nil, fmt.Errorf("%w: %w", errNoResponseByte, err)
	}
	trace := httptrace.ContextClientTrace(req.Context())
	for {
		if res, ok := pc.readHead(req); ok {
			pc.lr.N = math.MaxInt64
			return res, nil
		}
		res, err := http.ReadResponse(pc.br, req)
		if err != nil {
			if pc.lr.N <= 0 {
				return nil, fmt.Errorf("%w (%d bytes)", errHeadTooLarge, pc.cl.maxHead)
			}
			return nil, err
		}
		code := res.StatusCode
		if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
			pc.lr.N = math.MaxInt64
			return res, nil
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(res.Header)); err != nil {
				return nil, err
			}
			pc.lr.N = pc.cl.maxHead // the caller has seen it; the limit starts over
		}
	}
}

// writeErr classifies a failed write: with nothing sent, the request can
// go to another connection as it is.
func (pc *h1Conn) writeErr(err error, start int64) error {
	if pc.cw.n == start {
		return fmt.Errorf("%w: %w", errNothingWritten, err)
	}
	return err
}

// h1Body is a response body read off an h1Conn: at its end the connection
// goes back to the idle list, unless the exchange said it must close.
type h1Body struct {
	pc    *h1Conn
	rc    io.ReadCloser
	lc    *laneCtx    // the request's, pc hooked to it; or
	stop  func() bool // the context.AfterFunc's stop
	reuse bool
	mu    sync.Mutex // Close may race a Read of another goroutine
	done  bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(b.reuse)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

// Close ends the exchange. A body not read to its end takes its connection
// with it: draining an unknown remainder could take longer than a new
// connection.
func (b *h1Body) Close() error {
	if !b.mu.TryLock() {
		// A Read is blocked on the connection: closing it unblocks that
		// Read, which then finishes the body.
		b.pc.close()
		return nil
	}
	defer b.mu.Unlock()
	if !b.done {
		b.finish(false)
	}
	return nil
}

// finish hands the connection back or closes it. Caller holds mu (or owns
// b exclusively).
func (b *h1Body) finish(reuse bool) {
	b.done = true
	if !b.unhook() {
		// The context ended: the connection's deadline has expired.
		reuse = false
	}
	if reuse && b.pc.br.Buffered() == 0 {
		b.pc.cl.put(b.pc)
		return
	}
	b.pc.close()
}

// unhook stops the context's watch on the connection; false means the
// context ended first, and the connection's deadline has expired.
func (b *h1Body) unhook() bool {
	if b.lc != nil {
		return b.lc.unhook(b.pc)
	}
	return b.stop()
}
