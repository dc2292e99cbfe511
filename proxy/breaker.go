package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-lb/meridian/config"
)

// Circuit breakers: pools.NAME.limits, with the meaning of Envoy's cluster
// circuit_breakers thresholds. Each pool has one breaker, kept by pool name
// across tables (Compile finds it, Install applies the table's limits to
// it), so reloads keep its counts and a changed limit applies at once to
// everything already counted:
//
//   - max_requests: attempts in flight to the pool's endpoints, counted
//     from the pick to the end of the response body (a WebSocket tunnel
//     counts for its lifetime). A request over it is answered 503 at once.
//   - max_connections: upstream connections open to the pool's endpoints,
//     idle and busy, of every client the pool has (h1Client's, and the
//     http.Transport's through a dial wrapper; a connection counts until it
//     is closed). A request that needs a new connection while the pool is at
//     the cap waits for one: it is pending.
//   - max_pending: requests waiting for a connection. One over it is
//     answered 503 at once; one that waits past its route's deadline (or
//     per-try timeout) is answered 504.
//   - max_retries: retries in flight. A retry over it (or over
//     max_requests) is not made: the attempt it would have replaced
//     answers, as when the retry budget refuses one.
//
// Every refusal and pending timeout is Meridian's overload, not the
// upstream's fault: it is counted in meridian_pool_overflow_total{pool,
// limit}, answered with X-Meridian-Overflow naming the limit and a body
// naming the pool and the limit, and never reaches health, outlier
// detection or meridian_http_upstream_errors_total (blame classifies it
// as kindOverflow). Such a request is neither retried nor failed over.
//
// Where Meridian differs from Envoy:
//
//   - At the cap, a plain HTTP/1.1 pool first closes an idle connection to
//     another endpoint to make room, rather than let requests wait while
//     it expires. Otherwise Envoy's exception holds: a picked endpoint
//     without any connection may always open one, so a pool can have
//     max_connections plus one per endpoint.
//   - Pending requests are served first come, first served; a freed
//     connection goes to the first request waiting for its endpoint, a
//     freed connection slot to the first request waiting at all.
//   - On the http.Transport path (TLS and HTTP/2 pools, requests with a
//     body, upgrades) the wait happens in the Transport's dial: the request
//     is pending while its dial waits. If the Transport hands it a
//     connection another request freed, its place in the queue is given up
//     when the response head arrives, not before.
//   - A pending request that times out is answered 504 and counted as
//     overflow{limit="max_connections"}; Envoy answers its own route
//     timeout and counts upstream_rq_pending_overflow only for refusals.
//   - The defaults are 1024 for every limit, max_retries included (Envoy:
//     3); the route's retry budget bounds retries first.
//   - Mirrored copies use the pool's connections (and so wait, within the
//     mirror timeout, like any request) but are not counted in
//     max_requests: mirror.max_in_flight bounds them.
//   - Counts survive reloads by pool name; Envoy starts a changed cluster
//     with new counts.

// The limits, by index.
const (
	limitConnections = iota
	limitPending
	limitRequests
	limitRetries
	numLimits
)

// limitNames are the limits' config names, the values of the metric's
// limit label and of X-Meridian-Overflow.
var limitNames = [numLimits]string{"max_connections", "max_pending", "max_requests", "max_retries"}

// poolLimits are one table's limits of a pool.
type poolLimits [numLimits]int64

// limitsOf reads a pool's limits from its config. SetDefaults fills every
// limit; a Config built by hand without them gets the defaults too.
func limitsOf(cfg *config.Config, pool string) poolLimits {
	l := poolLimits{config.DefaultPoolMaxConnections, config.DefaultPoolMaxPending, config.DefaultPoolMaxRequests, config.DefaultPoolMaxRetries}
	if cfg == nil {
		return l
	}
	cp := cfg.Pools[pool]
	if cp == nil || cp.Limits == nil {
		return l
	}
	for i, v := range [numLimits]int{cp.Limits.MaxConnections, cp.Limits.MaxPending, cp.Limits.MaxRequests, cp.Limits.MaxRetries} {
		if v > 0 {
			l[i] = int64(v)
		}
	}
	return l
}

// breaker is one pool's circuit breakers. The request counts are atomics
// (the request path's whole cost is an add and a compare at the pick and
// an add at the end); connections are counted under mu, which is taken
// only to open or close one, or to wait.
type breaker struct {
	pool string
	max  [numLimits]atomic.Int64

	requests atomic.Int64 // attempts in flight
	retries  atomic.Int64 // retries in flight

	mu      sync.Mutex
	open    int            // connections open
	viaTr   int            // of them, the http.Transport's (countedConn)
	perHost map[string]int // connections open by endpoint address
	waiters []*connWaiter  // pending, first come first
	nwait   atomic.Int32   // len(waiters), for a look without mu

	h1       atomic.Pointer[h1Client]                      // the pool's h1Client: idle connections to close at the cap
	overflow atomic.Pointer[[numLimits]prometheus.Counter] // resolved by Install
}

func newBreaker(pool string) *breaker {
	b := &breaker{pool: pool, perHost: map[string]int{}}
	b.setLimits(limitsOf(nil, ""))
	return b
}

// setLimits applies a table's limits. Requests already counted stay
// counted; a raised max_connections serves waiting requests at once.
func (b *breaker) setLimits(l poolLimits) {
	for i, v := range l {
		b.max[i].Store(v)
	}
	b.mu.Lock()
	b.grantLocked()
	b.mu.Unlock()
}

// overflowError is a request refused (or timed out waiting) by a limit.
type overflowError struct {
	pool    string
	limit   int
	max     int64
	timeout bool // waited for a connection until its deadline
}

func (e *overflowError) Error() string {
	if e.timeout {
		return "pool " + strconv.Quote(e.pool) + " at " + limitNames[e.limit] + " (" + strconv.FormatInt(e.max, 10) + "): no connection before the deadline"
	}
	return "pool " + strconv.Quote(e.pool) + " over " + limitNames[e.limit] + " (" + strconv.FormatInt(e.max, 10) + ")"
}

// status is the answer's code: 504 for a pending timeout, else 503.
func (e *overflowError) status() int {
	if e.timeout {
		return http.StatusGatewayTimeout
	}
	return http.StatusServiceUnavailable
}

// over counts an overflow of limit and describes it.
func (b *breaker) over(limit int, timeout bool) *overflowError {
	if c := b.overflow.Load(); c != nil {
		c[limit].Inc()
	}
	return &overflowError{pool: b.pool, limit: limit, max: b.max[limit].Load(), timeout: timeout}
}

// admit counts a first attempt in flight, or refuses it over max_requests.
func (b *breaker) admit() *overflowError {
	if b.requests.Add(1) > b.max[limitRequests].Load() {
		b.requests.Add(-1)
		return b.over(limitRequests, false)
	}
	return nil
}

// admitRetry counts a retry in flight, or reports false (counting the
// overflow) when it would exceed max_retries or max_requests. prev is the
// attempt it replaces, which still counts (in b, or in another pool's
// breaker, or nowhere) and ends when the retry starts: what it holds in b
// passes to the retry.
func (b *breaker) admitRetry(prev *attemptState) bool {
	held := prev.brk == b
	limit := b.max[limitRetries].Load()
	if held && prev.retry {
		limit++
	}
	if b.retries.Add(1) > limit {
		b.retries.Add(-1)
		b.over(limitRetries, false)
		return false
	}
	limit = b.max[limitRequests].Load()
	if held {
		limit++
	}
	if b.requests.Add(1) > limit {
		b.requests.Add(-1)
		b.retries.Add(-1)
		b.over(limitRequests, false)
		return false
	}
	return true
}

// done ends what admit or admitRetry counted.
func (b *breaker) done(retry bool) {
	b.requests.Add(-1)
	if retry {
		b.retries.Add(-1)
	}
}

// connWaiter is a pending request: one waiting for a connection.
type connWaiter struct {
	addr  string        // the endpoint it needs a connection to
	h1    bool          // an h1Client request, which can take an idle connection
	ready chan struct{} // closed when served: a slot, a connection, or abandoned
	// Set under mu before ready is closed.
	slot bool    // may open a connection (counted already)
	conn *h1Conn // an idle connection to addr, handed over
	gone bool    // its request stopped waiting (dial waiters)
	used bool    // a dial waiter's slot is being dialed: no longer pending
}

// reserve counts a new connection to addr when the pool is under
// max_connections, else queues a waiter, or refuses over max_pending.
// Envoy's exception: an endpoint without any connection may open one over
// the cap, unless spare says the caller will close an idle connection to
// another endpoint to make room. Caller may hold the h1Client's mu.
func (b *breaker) reserve(addr string, h1, spare bool) (*connWaiter, *overflowError) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reserveLocked(addr, h1, spare)
}

func (b *breaker) reserveLocked(addr string, h1, spare bool) (*connWaiter, *overflowError) {
	if int64(b.open) < b.max[limitConnections].Load() || !spare && b.perHost[addr] == 0 {
		b.countLocked(addr)
		return nil, nil
	}
	if int64(len(b.waiters)) >= b.max[limitPending].Load() {
		return nil, b.over(limitPending, false)
	}
	w := &connWaiter{addr: addr, h1: h1, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.nwait.Store(int32(len(b.waiters)))
	return w, nil
}

func (b *breaker) countLocked(addr string) {
	b.open++
	b.perHost[addr]++
}

// closed uncounts a connection to addr (closed, or never opened) and
// passes its slot to the waiters.
func (b *breaker) closed(addr string) {
	b.mu.Lock()
	b.open--
	if n := b.perHost[addr] - 1; n > 0 {
		b.perHost[addr] = n
	} else {
		delete(b.perHost, addr)
	}
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked serves waiters while connection slots are free, first come
// first served, and any waiter whose endpoint has no connection at all.
func (b *breaker) grantLocked() {
	if len(b.waiters) == 0 {
		return
	}
	limit := b.max[limitConnections].Load()
	kept := b.waiters[:0]
	for _, w := range b.waiters {
		if int64(b.open) < limit || b.perHost[w.addr] == 0 {
			b.countLocked(w.addr)
			w.slot = true
			close(w.ready)
			continue
		}
		kept = append(kept, w)
	}
	clear(b.waiters[len(kept):])
	b.waiters = kept
	b.nwait.Store(int32(len(kept)))
}

// removeLocked takes w out of the queue; false when it was served already.
func (b *breaker) removeLocked(w *connWaiter) bool {
	for i, x := range b.waiters {
		if x == w {
			b.removeAtLocked(i)
			return true
		}
	}
	return false
}

// removeAtLocked takes the i-th waiter out of the queue.
func (b *breaker) removeAtLocked(i int) {
	b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
	b.waiters[len(b.waiters):cap(b.waiters)][0] = nil
	b.nwait.Store(int32(len(b.waiters)))
}

// Outcomes of handoff.
const (
	keepIdle  = iota // nobody waits: keep the connection idle
	handedOff        // a waiter for its endpoint took it
	closeIt          // requests wait for other endpoints: close it to free a slot
)

// handoff offers an h1Client connection that finished its exchange to the
// first request waiting for its endpoint. Caller holds the h1Client's mu.
func (b *breaker) handoff(pc *h1Conn) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) == 0 {
		return keepIdle
	}
	for i, w := range b.waiters {
		if w.h1 && w.addr == pc.addr {
			b.removeAtLocked(i)
			w.conn = pc
			close(w.ready)
			return handedOff
		}
	}
	return closeIt
}

// wait waits for w to be served, or for ctx to end. It returns the
// connection w was handed (nil when it got a slot and must dial), or an
// error: errDialAbandoned, or ctx's cause (see pendingErr).
func (b *breaker) wait(ctx context.Context, w *connWaiter) (*h1Conn, error) {
	select {
	case <-w.ready:
		if w.gone {
			return nil, errDialAbandoned
		}
		return w.conn, nil
	case <-ctx.Done():
	}
	b.abandon(w)
	return nil, context.Cause(ctx)
}

// abandon takes w out of the queue, or gives back what it was served
// meanwhile.
func (b *breaker) abandon(w *connWaiter) {
	b.mu.Lock()
	if b.removeLocked(w) {
		b.mu.Unlock()
		return
	}
	slot, pc := w.slot, w.conn
	w.slot, w.conn = false, nil
	b.mu.Unlock()
	switch {
	case pc != nil:
		pc.cl.put(pc)
	case slot:
		b.closed(w.addr)
	}
}

// pendingErr is the error of a request that stopped waiting for cause: the
// client's cancellation as it is, any deadline as the overflow timeout.
func (b *breaker) pendingErr(cause error) error {
	if cause == nil || errors.Is(cause, context.Canceled) {
		return cause
	}
	return b.over(limitConnections, true)
}

// errDialAbandoned fails a Transport dial whose request no longer waits.
var errDialAbandoned = errors.New("proxy: dial abandoned: its request no longer waits")

// dialWaitKey finds a dialWait in a dial's context.
type dialWaitKey struct{}

// dialWait is a request's context on its way through a pool's
// http.Transport: the Transport dials with a context that keeps its values
// but not its cancellation, so the dial wrapper finds the request here,
// waits no longer than it, and leaves a mark the round trip reads to tell
// a pending timeout from the upstream's. Never reused.
type dialWait struct {
	context.Context
	// under the breaker's mu
	w     *connWaiter    // the dial's place in the queue
	err   *overflowError // the dial was refused over max_pending
	ended bool           // the round trip returned
}

func (d *dialWait) Value(key any) any {
	if key == (dialWaitKey{}) {
		return d
	}
	return d.Context.Value(key)
}

// limitedTransport is a pool's http.Transport with its dials counted and
// bounded by the pool's breaker.
type limitedTransport struct {
	*http.Transport
	brk *breaker
}

// limitTransport fronts tr with brk; nil brk leaves tr as it is.
func limitTransport(tr *http.Transport, brk *breaker) upstreamClient {
	if brk == nil {
		return tr
	}
	return &limitedTransport{Transport: tr, brk: brk}
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	d := &dialWait{Context: req.Context()}
	res, err := t.Transport.RoundTrip(req.WithContext(d))
	if oe := t.brk.endDial(d, err != nil); oe != nil && err != nil {
		return nil, oe
	}
	return res, err
}

// endDial ends a round trip's part in the queue and, when the round trip
// failed while its dial was refused or still waiting, returns the overflow
// to report instead of the Transport's error.
func (b *breaker) endDial(d *dialWait, failed bool) error {
	b.mu.Lock()
	d.ended = true
	w, oe := d.w, d.err
	pending := w != nil && !w.used
	if w != nil && b.removeLocked(w) {
		w.gone = true
		close(w.ready)
	}
	b.mu.Unlock()
	switch {
	case !failed:
		return nil
	case oe != nil:
		return oe
	case pending:
		// Still waiting, or stopped waiting at the same deadline.
		return b.pendingErr(context.Cause(d.Context))
	}
	return nil
}

// dialer wraps d's DialContext for a pool's http.Transport: a dial waits
// for a connection slot as a pending request, and the connection counts
// until it is closed. Nil brk returns d's own.
func dialer(d *net.Dialer, brk *breaker) func(context.Context, string, string) (net.Conn, error) {
	if brk == nil {
		return d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		dw, _ := ctx.Value(dialWaitKey{}).(*dialWait)
		if err := brk.openDial(dw, addr); err != nil {
			return nil, err
		}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			brk.closed(addr)
			return nil, err
		}
		brk.mu.Lock()
		brk.viaTr++
		brk.mu.Unlock()
		return &countedConn{Conn: c, b: brk, addr: addr}, nil
	}
}

// openDial reserves a connection slot for a Transport dial, waiting as a
// pending request while the pool is at max_connections.
func (b *breaker) openDial(dw *dialWait, addr string) error {
	b.mu.Lock()
	if dw != nil && dw.ended {
		// The round trip returned before its dial started.
		b.mu.Unlock()
		return errDialAbandoned
	}
	w, oe := b.reserveLocked(addr, false, false)
	if dw != nil {
		dw.w, dw.err = w, oe
	}
	b.mu.Unlock()
	switch {
	case oe != nil:
		return oe
	case w == nil:
		return nil
	}
	if h := b.h1.Load(); h != nil {
		h.evictIdle("") // the pool's idle HTTP/1.1 connections make room first
	}
	var ctx context.Context = dw
	if dw == nil {
		// A dial without a request (none of ours makes one): wait no
		// longer than a dial may take.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), connectTimeout)
		defer cancel()
	}
	_, err := b.wait(ctx, w)
	switch {
	case err == nil:
		b.mu.Lock()
		w.used = true
		b.mu.Unlock()
	case dw == nil:
		err = b.pendingErr(err)
	}
	// Else the round trip reports (and counts) the pending timeout: see
	// endDial.
	return err
}

// countedConn is a Transport connection counted in its pool's breaker
// until it is closed.
type countedConn struct {
	net.Conn
	b      *breaker
	addr   string
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.b.mu.Lock()
		c.b.viaTr--
		c.b.mu.Unlock()
		c.b.closed(c.addr)
	}
	return err
}

// transportConns is how many of the pool's connections the http.Transport
// holds.
func (b *breaker) transportConns() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.viaTr
}

// CloseWrite passes a half-close on (upgraded connections).
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// breakerFor returns the pool's breaker, the one earlier tables used when
// there is one. Caller holds stateMu.
func (h *Handler) breakerFor(pool string) *breaker {
	if h.limitsOff {
		return nil
	}
	if h.breakers == nil {
		h.breakers = map[string]*breaker{}
	}
	b := h.breakers[pool]
	if b == nil {
		b = newBreaker(pool)
		h.breakers[pool] = b
	}
	return b
}

// installBreakers applies st's limits to its pools' breakers, resolves
// their overflow counters, and forgets the breakers (and series) of pools
// st does not have. Caller holds stateMu.
func (h *Handler) installBreakers(st *tableState) {
	used := make(map[string]bool, len(st.pools))
	for p, up := range st.pools {
		b := up.brk
		if b == nil {
			continue
		}
		used[p.Name] = true
		b.setLimits(up.limits)
		if b.overflow.Load() == nil {
			var c [numLimits]prometheus.Counter
			for i, n := range limitNames {
				c[i] = h.met.overflow.WithLabelValues(p.Name, n)
			}
			b.overflow.Store(&c)
		}
	}
	for name := range h.breakers {
		if !used[name] {
			delete(h.breakers, name)
			h.met.overflow.DeletePartialMatch(prometheus.Labels{"pool": name})
		}
	}
}

// overflowed answers a request a limit refused: 503 (504 for a pending
// timeout) naming the pool and the limit, with X-Meridian-Overflow.
func overflowed(w http.ResponseWriter, x *exchange, oe *overflowError) {
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Request-Id", x.requestID)
	hd.Set("X-Meridian-Overflow", limitNames[oe.limit])
	w.WriteHeader(oe.status())
	_, _ = w.Write([]byte("meridian: " + oe.Error() + "\n"))
}
