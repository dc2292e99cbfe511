package proxy

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/meridian-lb/meridian/config"
)

// Blame: every failure on the request path is charged once, to the client
// or to the upstream (or to nobody, when no endpoint was available or a
// pool's circuit breaker refused the request: kindOverflow), and only
// upstream failures reach health and the upstream error metrics. A
// client's own broken body fails the upstream write too, and net/http
// cancels the request context when a body read fails, so the evidence of
// the client's fault is recorded where it happens — in reqBody, which sees
// every read of the client's body — and blame looks there first.

// bodyFault is what went wrong with a client's request body.
type bodyFault uint32

const (
	faultNone    bodyFault = iota
	faultBad               // malformed framing or a body shorter than announced
	faultTimeout           // no byte for body_timeout, or read_timeout passed
	faultSlow              // below min_body_rate after the grace
	faultLarge             // over max_body_bytes
	faultGone              // the client reset or closed the connection
)

// kind is the failure kind of a body fault.
func (f bodyFault) kind() string {
	switch f {
	case faultBad:
		return kindClientBody
	case faultTimeout:
		return kindClientTimeout
	case faultSlow:
		return kindClientSlow
	case faultLarge:
		return kindClientLarge
	}
	return kindCanceled
}

var (
	errBodyTooSlow  = errors.New("proxy: request body slower than min_body_rate")
	errBodyTooLarge = errors.New("proxy: request body larger than max_body_bytes")
)

// faultOf classifies an error reading the client's body. A body that ends
// early (io.ErrUnexpectedEOF) counts as malformed: the client may still be
// waiting for an answer behind a half-close, and 400 is the right one.
func faultOf(err error) bodyFault {
	var ne net.Error
	switch {
	case errors.Is(err, errBodyClosed):
		// The transport read after the handler returned; nothing to blame.
		return faultNone
	case errors.As(err, &ne) && ne.Timeout():
		return faultTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed),
		// HTTP/2's server reports a client's RST_STREAM with an unexported
		// error of this text.
		strings.Contains(err.Error(), "client disconnected"):
		return faultGone
	}
	return faultBad
}

// reqBody wraps the client's request body: it enforces the body limits
// (body_timeout between bytes, or read_timeout for the whole body;
// min_body_rate after body_rate_grace; max_body_bytes), records the first
// failure as the client's fault, counts the bytes sent, and feeds the
// mirror copy. It is allocated apart from the exchange because the
// transport may read it after the handler returned.
//
// Read runs on the transport's goroutine; fault, reading and n are read by
// the handler's.
type reqBody struct {
	rc      io.ReadCloser
	n       atomic.Int64
	setRead func(time.Time) error
	stall   time.Duration
	lastExt time.Time
	tee     *mirrorTee

	minRate float64       // bytes per second of waiting on the client; 0: none
	grace   time.Duration // waiting allowed before minRate applies
	waited  time.Duration // time spent inside reads of the client's body
	max     int64         // 0: none

	fault   atomic.Uint32 // a bodyFault, set once
	reading atomic.Bool   // a read of the client's body is in flight
}

func newReqBody(rc io.ReadCloser, x *exchange, s config.HTTP) *reqBody {
	b := &reqBody{rc: rc, minRate: float64(s.MinBodyRate), grace: s.BodyRateGrace.D(), max: int64(s.MaxBodyBytes)}
	d, ok := x.rw.w.(interface{ SetReadDeadline(time.Time) error })
	if !ok {
		return b
	}
	if rt := s.ReadTimeout.D(); rt > 0 {
		_ = d.SetReadDeadline(x.start.Add(rt))
		return b
	}
	if s.BodyTimeout > 0 {
		b.setRead, b.stall = d.SetReadDeadline, s.BodyTimeout.D()
	}
	return b
}

func (b *reqBody) Read(p []byte) (int, error) {
	if f := bodyFault(b.fault.Load()); f != faultNone {
		return 0, errors.New("proxy: request body failed: " + f.kind())
	}
	var t0 time.Time
	if b.setRead != nil || b.minRate > 0 {
		t0 = time.Now()
	}
	if b.setRead != nil && t0.Sub(b.lastExt) >= b.stall/4 {
		b.lastExt = t0
		_ = b.setRead(t0.Add(b.stall))
	}
	b.reading.Store(true)
	n, err := b.rc.Read(p)
	b.reading.Store(false)
	total := b.n.Load()
	if n > 0 {
		if b.max > 0 && total+int64(n) > b.max {
			// Never pass the upstream a byte past the limit: the
			// truncated body then fails there too, rather than arriving
			// looking complete.
			n = int(max(0, b.max-total))
			err = errBodyTooLarge
		}
		total = b.n.Add(int64(n))
		if b.tee != nil {
			b.tee.write(p[:n])
		}
	}
	switch {
	case err == errBodyTooLarge:
		b.fail(faultLarge)
	case err == io.EOF:
		if b.tee != nil {
			b.tee.done()
		}
	case err != nil:
		b.fail(faultOf(err))
	case b.minRate > 0:
		b.waited += time.Since(t0)
		if b.waited > b.grace && float64(total) < b.minRate*b.waited.Seconds() {
			b.fail(faultSlow)
			return n, errBodyTooSlow
		}
	}
	return n, err
}

// fail records the body's first fault.
func (b *reqBody) fail(f bodyFault) {
	if f != faultNone {
		b.fault.CompareAndSwap(uint32(faultNone), uint32(f))
	}
}

func (b *reqBody) Close() error { return b.rc.Close() }

// blame names what ended an attempt (err; actx is the attempt's context
// when it has a per-try timeout) or an exchange, charging it to one side:
// the client (its body failed, it went away, or the deadline passed while
// its body was still awaited) or the upstream; or to nobody, when no
// endpoint was available or a limit of the pool stopped it (overflow:
// refused, or waiting for a connection when the deadline came).
func blame(err error, x *exchange, actx context.Context) string {
	if errors.Is(err, errNoEndpoint) {
		return kindNoEndpoint
	}
	var oe *overflowError
	if errors.As(err, &oe) {
		return kindOverflow
	}
	if x.body != nil {
		if f := bodyFault(x.body.fault.Load()); f != faultNone {
			return f.kind()
		}
	}
	timedOut := false
	if x.err() != nil {
		cause := context.Cause(x.ctx)
		if !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, errHeadTimeout) && !errors.Is(cause, errUpstreamIdle) {
			return kindCanceled
		}
		timedOut = true
	} else if actx != nil && errors.Is(context.Cause(actx), errPerTryTimeout) {
		timedOut = true
	}
	if timedOut {
		if x.body != nil && x.body.reading.Load() {
			// The deadline found Meridian waiting on the client's body,
			// not on the upstream.
			return kindClientTimeout
		}
		return kindTimeout
	}
	if badResponse(err) {
		return kindBadResponse
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return kindConnect
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return kindTimeout
	}
	return kindReset
}

// badResponse reports whether an upstream answered with something that is
// not an acceptable HTTP response: a head over max_response_header_bytes
// (h1Client's error, or the Transport's and HTTP/2's, which have no
// sentinel), too many 1xx responses, or a protocol switch nobody asked for.
func badResponse(err error) bool {
	if errors.Is(err, errHeadTooLarge) || errors.Is(err, errTooMany1xx) || errors.Is(err, errBadUpgrade) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "server response headers exceeded") || strings.Contains(s, "header list larger than")
}

var (
	errHeadTimeout  = errors.New("proxy: no response head within the route timeout")
	errUpstreamIdle = errors.New("proxy: upstream body idle for upstream_idle_timeout")
	errHeadTooLarge = errors.New("proxy: upstream response head over max_response_header_bytes")
	errTooMany1xx   = errors.New("proxy: upstream sent too many 1xx responses")
)

// upstreamGuard bounds the waits on the upstream that no explicit route
// timeout covers: the response head must arrive within the default route
// timeout (all attempts together, as Envoy's route timeout), and once it
// has, the upstream must not keep a read of its body waiting longer than
// upstream_idle_timeout. Time spent writing to a slow client is not the
// upstream's and never counts. A 101 ends the guard: tunnels have their own
// idle rules. It cancels the exchange's context with a cause blame reads.
//
// One timer per request: it fires at the head deadline, then every idle
// period after the head, and looks at the state rather than being reset on
// every read. It is allocated apart from the exchange because the timer
// may fire after the exchange went back to the pool.
type upstreamGuard struct {
	timer  *time.Timer
	cancel context.CancelCauseFunc // nil when lc is set
	lc     *laneCtx                // the fast lane's request context, cancelled in place
	idle   time.Duration
	head   atomic.Bool  // the response head arrived
	done   atomic.Bool  // a tunnel, or the exchange ended
	inRead atomic.Bool  // a read of the upstream body is in flight
	since  atomic.Int64 // when that read began, unix nanoseconds
}

// newGuard wraps ctx in a context the guard cancels, arming the head
// deadline when head > 0. A fast lane request's own context is cancelled
// in place instead (see laneCtx): the guard's cause is the first, and
// blame reads it the same way.
func newGuard(ctx context.Context, head, idle time.Duration) (*upstreamGuard, context.Context) {
	g := &upstreamGuard{idle: idle}
	if g.lc = laneCtxOf(ctx); g.lc == nil {
		ctx, g.cancel = context.WithCancelCause(ctx)
	}
	// Made unarmed, so fire never runs before g.timer is set.
	g.timer = time.AfterFunc(math.MaxInt64, g.fire)
	if head > 0 {
		g.timer.Reset(head)
	} else {
		g.timer.Stop()
	}
	return g, ctx
}

func (g *upstreamGuard) fire() {
	if g.done.Load() {
		return
	}
	if !g.head.Load() {
		g.end(errHeadTimeout)
		return
	}
	wait := g.idle
	if g.inRead.Load() {
		waited := time.Duration(time.Now().UnixNano() - g.since.Load())
		if waited >= g.idle {
			g.end(errUpstreamIdle)
			return
		}
		wait = g.idle - waited
	}
	g.timer.Reset(wait)
}

// gotHead moves the guard from the head deadline to the body's idle
// watch, or ends it for a tunnel. A nil guard does nothing.
func (g *upstreamGuard) gotHead(upgrade bool) {
	if g == nil {
		return
	}
	g.head.Store(true)
	if upgrade || g.idle <= 0 {
		g.done.Store(true)
		g.timer.Stop()
		return
	}
	g.timer.Reset(g.idle)
}

// reading marks the start and end of a read of the upstream body.
func (g *upstreamGuard) reading(on bool) {
	if g == nil {
		return
	}
	if on {
		g.since.Store(time.Now().UnixNano())
	}
	g.inRead.Store(on)
}

// stop ends the guard when the exchange ends.
func (g *upstreamGuard) stop() {
	if g == nil {
		return
	}
	g.done.Store(true)
	g.timer.Stop()
	if g.cancel != nil {
		g.cancel(nil)
	}
}

// end cancels the exchange with cause.
func (g *upstreamGuard) end(cause error) {
	if g.lc != nil {
		g.lc.cancel(cause)
		return
	}
	g.cancel(cause)
}
