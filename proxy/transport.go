package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// upstreamTransport is ReverseProxy's transport (upgrade requests); relay
// calls exchange.roundTrip directly. Either way each attempt picks its
// endpoint, retries happen where the route allows, and every result is
// reported to the endpoint's health. Retries happen before anything is
// written to the client, so no retry follows response bytes.
type upstreamTransport struct{ h *Handler }

func (t upstreamTransport) RoundTrip(out *http.Request) (*http.Response, error) {
	x := exchangeFrom(out.Context())
	if x == nil {
		return nil, errors.New("proxy: request without an exchange")
	}
	return x.roundTrip(out)
}

// roundTrip sends out to the chosen endpoints, retrying as the route
// allows.
func (x *exchange) roundTrip(out *http.Request) (*http.Response, error) {
	// This frame sits under every upstream call, so it holds nearly
	// nothing: the attempt's state lives in the exchange, and the work is
	// done in helpers that return before the transport runs (HTTP/2
	// requests run on fresh goroutines with small stacks; see ServeHTTP).
	if err := x.firstPick(); err != nil {
		return nil, err
	}
	for {
		req, rt := x.beginAttempt(out)
		res, err := rt.RoundTrip(req)
		if res, done, err := x.endAttempt(out, res, err); done {
			return res, err
		}
	}
}

// attemptState is what one attempt needs after the transport returns.
type attemptState struct {
	pool   *routing.Pool
	ep     *routing.Endpoint
	up     *upstream // pool's, of the exchange's state
	cancel context.CancelCauseFunc
	timer  *time.Timer
	actx   context.Context
	t0     time.Time
	tel    *telemetry.HTTP // ep's telemetry cell
	brk    *breaker        // the pool's breaker, which counts the attempt; nil: none
	retry  bool            // the attempt is a retry: it counts in max_retries too
}

// release ends what the attempt counted in its pool's breaker.
func (c *attemptState) release() {
	if c.brk != nil {
		c.brk.done(c.retry)
		c.brk = nil
	}
}

// firstPick chooses the first endpoint and counts it in its pool's
// max_requests, or records that none is available or the pool is full.
//
//go:noinline
func (x *exchange) firstPick() error {
	pool, ep := x.pick()
	if ep == nil {
		x.errKind = kindNoEndpoint
		x.h.met.upstreamError(kindNoEndpoint)
		return errNoEndpoint
	}
	up := x.st.pools[pool]
	brk := up.brk
	if brk != nil {
		if oe := brk.admit(); oe != nil {
			x.errKind, x.pool = kindOverflow, pool
			return oe
		}
	}
	x.cur = attemptState{pool: pool, ep: ep, up: up, brk: brk}
	return nil
}

// beginAttempt readies the request for the chosen endpoint.
//
//go:noinline
func (x *exchange) beginAttempt(out *http.Request) (*http.Request, http.RoundTripper) {
	c := &x.cur
	up := c.up
	req, cancel, timer, actx := x.attemptRequest(out, up, c.ep)
	c.cancel, c.timer, c.actx = cancel, timer, actx
	x.attempts++
	x.pool, x.ep = c.pool, c.ep
	c.ep.Acquire()
	if x.st.timed {
		req = x.attemptStarted(req)
	}
	x.telBegin(up)
	return req, up.rt
}

// endAttempt reports the attempt's result to health and decides: done
// (return res or err to relay or ReverseProxy), or retry on the next
// endpoint.
//
//go:noinline
func (x *exchange) endAttempt(out *http.Request, res *http.Response, err error) (*http.Response, bool, error) {
	c := &x.cur
	ep, cancel := c.ep, c.cancel
	x.telEnd(res)
	kind, status := "", 0
	if x.st.timed {
		defer x.attemptEnded(c.t0, res, &kind) // once kind is settled
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if err != nil {
		ep.Release()
		c.release()
		if cancel != nil {
			cancel(nil)
			cancel = nil
		}
		kind = blame(err, x, c.actx)
		x.errKind = kind
		if upstreamKind(kind) {
			report(ep, outcomeOf(kind))
			x.h.met.upstreamError(kind)
			x.telFailed(kind)
		}
	} else {
		if res.StatusCode >= 500 {
			report(ep, health.Status5xx)
		} else {
			report(ep, health.Success)
		}
		if !x.rs.retry.onStatus(res.StatusCode) {
			x.guard.gotHead(res.StatusCode == http.StatusSwitchingProtocols)
			return x.wrapBody(res, c, cancel), true, nil
		}
		status = res.StatusCode
	}
	if !x.retryAllowed(kind, status, out) {
		res, err = x.giveUp(res, err, c, cancel)
		return res, true, err
	}
	x.tried = append(x.tried, ep)
	np, nep := x.pick()
	if nep == nil {
		res, err = x.giveUp(res, err, c, cancel)
		return res, true, err
	}
	nup := x.st.pools[np]
	nbrk := nup.brk
	if nbrk != nil && !nbrk.admitRetry(c) {
		// Over the pool's max_retries or max_requests: no retry.
		res, err = x.giveUp(res, err, c, cancel)
		return res, true, err
	}
	if !x.rs.shared.budget.allow(time.Now(), x.rs.retry.percent) {
		if nbrk != nil {
			nbrk.done(true)
		}
		x.rs.retriesRefused.Inc()
		res, err = x.giveUp(res, err, c, cancel)
		return res, true, err
	}
	if res != nil {
		discard(res.Body)
		ep.Release()
		c.release()
	}
	if cancel != nil {
		cancel(nil)
	}
	x.retries++
	x.rs.retriesSent.Inc()
	x.errKind = ""
	x.cur = attemptState{pool: np, ep: nep, up: nup, brk: nbrk, retry: nbrk != nil}
	return nil, false, nil
}

// clientRegion is the client's region, looked up once and only for geo
// services.
func (x *exchange) clientRegion() string {
	if !x.regionOK {
		x.regionOK = true
		if x.st.table.Geo != nil {
			x.region = x.st.table.Geo.Lookup(x.client).Region
		}
	}
	return x.region
}

// pick chooses the next endpoint: the service's pools in policy order, the
// first with an available endpoint not yet tried. Only when no pool has one
// do pools that fail open serve from all their endpoints but those an
// operator drained or forced down (panic mode), so a failover service moves
// to its next pool before panicking.
func (x *exchange) pick() (*routing.Pool, *routing.Endpoint) {
	svc := x.svc()
	if svc == nil {
		return nil, nil
	}
	if x.order == nil {
		region := ""
		if svc.Policy == "geo" {
			region = x.clientRegion()
		}
		x.order = svc.Order(x.poolBuf[:0], region)
		if x.h.fwd.Load() != nil {
			x.order = x.h.localPools(x, svc, x.order) // forwardregion.go
		}
		x.tried = x.triedBuf[:0]
	}
	for _, p := range x.order {
		hash, hashed := p.HashKey(x.req, x.client)
		if e := p.Pick(hash, hashed, x.tried, false); e != nil {
			return p, e
		}
	}
	for _, p := range x.order {
		if ok, panicMode := p.Usable(); ok && panicMode {
			hash, hashed := p.HashKey(x.req, x.client)
			if e := p.Pick(hash, hashed, x.tried, true); e != nil {
				return p, e
			}
		}
	}
	return nil, nil
}

// giveUp ends the retries: an error goes to the error handler, a response
// (a retryable status with no retry left) to the client as it is.
func (x *exchange) giveUp(res *http.Response, err error, c *attemptState, cancel context.CancelCauseFunc) (*http.Response, error) {
	if err != nil {
		return nil, err
	}
	x.guard.gotHead(res.StatusCode == http.StatusSwitchingProtocols)
	return x.wrapBody(res, c, cancel), nil
}

// attemptRequest prepares one attempt's request: a copy for retries, the
// endpoint, a fresh body reader when the body is buffered, and the per-try
// timeout.
//
//go:noinline // keeps attempt's frame small (see Handler.ServeHTTP)
func (x *exchange) attemptRequest(out *http.Request, up *upstream, ep *routing.Endpoint) (*http.Request, context.CancelCauseFunc, *time.Timer, context.Context) {
	req := out
	if x.attempts > 0 || x.bodyBuf != nil || x.rs.perTry > 0 {
		// The transport may still hold an earlier attempt's request, so
		// each retry gets its own copy to change.
		c := *out
		u := *out.URL
		c.URL = &u
		req = &c
	}
	req.URL.Scheme, req.URL.Host = up.scheme, ep.Address
	if x.bodyBuf != nil {
		b := x.bodyBuf
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		req.ContentLength = int64(len(b))
	} else if x.attempts > 0 && x.body != nil {
		// A retry after a connect failure: no byte was read, but the
		// first attempt closed relay's (or ReverseProxy's) wrapper of the
		// body.
		req.Body = io.NopCloser(x.body)
	}
	var cancel context.CancelCauseFunc
	var timer *time.Timer
	var actx context.Context
	if x.rs.perTry > 0 {
		actx, cancel = context.WithCancelCause(out.Context())
		timer = time.AfterFunc(x.rs.perTry, func() { cancel(errPerTryTimeout) })
		req = req.WithContext(actx)
	}
	return req, cancel, timer, actx
}

// retryAllowed applies the route's retry policy to a failed attempt (kind)
// or a retryable status. A connect failure may be retried for any method as
// long as no body byte was sent (or the body is buffered); anything else
// only for idempotent requests whose body, if any, is buffered.
//
//go:noinline // keeps roundTrip's frame small (see Handler.ServeHTTP)
func (x *exchange) retryAllowed(kind string, status int, out *http.Request) bool {
	pol := &x.rs.retry
	if x.retries >= pol.attempts || x.err() != nil || clientKind(kind) {
		return false
	}
	noBody := out.Body == nil || out.Body == http.NoBody
	if kind == kindConnect {
		return pol.on&onConnect != 0 && (noBody || x.bodyBuf != nil || x.body == nil || x.body.n.Load() == 0)
	}
	if kind != "" && !pol.onKind(kind) || kind == "" && !pol.onStatus(status) {
		return false
	}
	return idempotent(x.req) && (noBody || x.bodyBuf != nil)
}

// outcomeOf is what an upstream failure kind tells passive outlier
// detection. A bad response counts like a 5xx: only with on_5xx.
func outcomeOf(kind string) health.Outcome {
	switch kind {
	case kindConnect:
		return health.ConnectFailure
	case kindTimeout:
		return health.Timeout
	case kindBadResponse:
		return health.Status5xx
	}
	return health.Reset
}

// report feeds passive outlier detection; mirrors never call it.
func report(ep *routing.Endpoint, o health.Outcome) {
	if ep.Health != nil {
		ep.Health.Report(o)
	}
}

// discard drains a little of a body we will not relay, so its connection
// can be reused, and closes it.
func discard(b io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, b, 16<<10)
	_ = b.Close()
}

// wrapBody makes the response body release the endpoint, the attempt's
// breaker counts and its context when relay (or ReverseProxy) closes it,
// and report a mid-body failure.
//
//go:noinline // keeps roundTrip's frame small (see Handler.ServeHTTP)
func (x *exchange) wrapBody(res *http.Response, c *attemptState, cancel context.CancelCauseFunc) *http.Response {
	x.ub = upBody{ReadCloser: res.Body, x: x, ep: c.ep, brk: c.brk, retry: c.retry, cancel: cancel}
	c.brk = nil // upBody releases it now
	if res.StatusCode == http.StatusSwitchingProtocols {
		if rw, ok := res.Body.(io.ReadWriteCloser); ok {
			res.Body = &upRWBody{rwc: rw, ub: &x.ub}
			return res
		}
	}
	res.Body = &x.ub
	return res
}

// upBody is an upstream response body on its way to the client.
type upBody struct {
	io.ReadCloser
	x      *exchange
	ep     *routing.Endpoint
	brk    *breaker // counts the attempt until Close; nil: none
	retry  bool
	cancel context.CancelCauseFunc
	failed bool
	closed atomic.Bool
}

func (b *upBody) Read(p []byte) (int, error) {
	g := b.x.guard
	g.reading(true)
	n, err := b.ReadCloser.Read(p)
	g.reading(false)
	if err != nil && err != io.EOF && !b.failed {
		b.failed = true
		x := b.x
		kind := blame(err, x, nil)
		x.errKind = kind
		if upstreamKind(kind) {
			x.h.met.upstreamError(kind)
			report(b.ep, outcomeOf(kind))
			x.telBodyFailed(kind)
		}
	}
	return n, err
}

func (b *upBody) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := b.ReadCloser.Close()
	b.ep.Release()
	if b.brk != nil {
		b.brk.done(b.retry)
	}
	if b.cancel != nil {
		b.cancel(nil)
	}
	return err
}

// upRWBody is the body of a 101 response: the upgraded connection, which
// ReverseProxy reads and writes from two goroutines of its own. It keeps
// out of the exchange (which the handler reads when it ends) and only
// releases the endpoint on Close.
type upRWBody struct {
	rwc io.ReadWriteCloser
	ub  *upBody
}

func (b *upRWBody) Read(p []byte) (int, error)  { return b.rwc.Read(p) }
func (b *upRWBody) Write(p []byte) (int, error) { return b.rwc.Write(p) }
func (b *upRWBody) Close() error                { return b.ub.Close() }

// zap2 describes a failed exchange for the debug log.
func zap2(x *exchange, err error) []zap.Field {
	return []zap.Field{
		zap.String("route", x.route.Name),
		zap.String("endpoint", endpointName(x.ep)),
		zap.String("kind", x.errKind),
		zap.Int("attempts", x.attempts),
		zap.Error(err),
	}
}
