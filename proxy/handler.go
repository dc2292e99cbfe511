package proxy

import (
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// Options configure a Handler.
type Options struct {
	// Logger receives errors. Nil discards. (The access log has writers
	// of its own: see Stdout and accesslog.go.)
	Logger *zap.Logger
	// Registerer receives the proxy's metrics. Nil registers nothing.
	Registerer prometheus.Registerer
	// Settings are the listener-wide HTTP settings at start: the upstream
	// idle pool size, the body and idle limits. Settings a table's config
	// can change (access_log, allow_ambiguous_paths, trusted_proxies,
	// route_timeout) are compiled with each table instead.
	Settings config.HTTP
	// Stdout and Stderr are where http.access_log's stdout and stderr
	// destinations write; nil means the process's.
	Stdout, Stderr io.Writer
	// Telemetry receives the per-route, service, pool and endpoint
	// counts. Nil keeps them in a private one nobody reads: the request
	// path costs the same either way, so benchmarks measure it.
	Telemetry *telemetry.Telemetry
}

// Handler is the reverse proxy's http.Handler. It is safe for concurrent
// use, holds no lock on the request path but the upstream client's (to take
// and return an idle connection), and can serve any number of listeners
// (plain and TLS) at once.
type Handler struct {
	log      *zap.Logger
	met      *metrics
	settings config.HTTP
	rp       *httputil.ReverseProxy // upgrade requests only; see relay
	bufs     *bufferPool            // response copy buffers
	unrouted sync.Map               // status code → prometheus.Counter for requests no route took

	state      atomic.Pointer[tableState] // the installed state (Install); nil before the first
	stateMu    sync.Mutex                 // serialises Compile and Install
	shared     map[string]*routeShared    // by route name, of the installed state; guarded by stateMu
	transports map[string]upstreamClient  // by pool, protocol and TLS fingerprint; guarded by stateMu
	breakers   map[string]*breaker        // by pool name (breaker.go); guarded by stateMu

	upgrades  upgradeSet
	mirrors   sync.WaitGroup
	exchanges sync.Pool // *exchange, reused when nothing can touch it any more

	logs   logSinks       // access log destinations (accesslog.go)
	traces traceExporters // OTLP exporters (trace.go)
	tel    *telemetry.Telemetry

	fwd atomic.Pointer[RegionForwarder] // on_all_down: forward (forwardregion.go); nil: none
	// limitsOff, set by benchmarks and tests before the first Compile,
	// builds pools without breakers, to measure what the breakers cost.
	limitsOff bool
}

// NewHandler builds the proxy handler.
func NewHandler(o Options) *Handler {
	lg := o.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	h := &Handler{
		log:        lg,
		met:        newMetrics(o.Registerer, lg),
		settings:   o.Settings,
		transports: map[string]upstreamClient{},
		bufs:       newBufferPool(),
		tel:        o.Telemetry,
	}
	if h.tel == nil {
		h.tel = telemetry.New(telemetry.Options{})
	}
	h.upgrades.init()
	h.logs.init(o, lg)
	h.traces.init(o.Registerer, lg)
	h.rp = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      upstreamTransport{h},
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.errorHandler,
		BufferPool:     h.bufs,
		ErrorLog:       log.New(&zapWriter{lg.Named("reverseproxy")}, "", 0),
	}
	return h
}

// exchangeKey finds the exchange in a request context.
type exchangeKey struct{}

// xctx is a request's context: the parent, plus the exchange for the
// transport, the error handler and (upgrades) ReverseProxy's Rewrite, which
// find it with one Value call. It is never reused: goroutines of the
// transport may hold it after the request, while the exchange it points to
// goes back to a pool. relay embeds it in its per-request state.
type xctx struct {
	context.Context
	x *exchange
}

// Value returns the exchange for exchangeKey and defers everything else to
// the parent context.
func (c *xctx) Value(key any) any {
	if key == (exchangeKey{}) {
		return c.x
	}
	return c.Context.Value(key)
}

// exchange is one proxied request from start to finish. Exchanges are
// pooled: only the handler's goroutine touches one, and only until
// ServeHTTP returns, except after a hijack or a panic, when it is dropped.
type exchange struct {
	ctx    context.Context // the request's, with the route's timeout
	cancel context.CancelFunc
	h      *Handler
	st     *tableState
	req    *http.Request // the inbound request, path cleaned
	start  time.Time

	rs     *routeState // nil when no route took the request
	route  *routing.Route
	choice routing.Choice

	peerHost string // RemoteAddr's host, as X-Forwarded-For shows it
	client   netip.Addr
	trusted  bool // the peer is a trusted proxy
	regionOK bool
	region   string

	requestID string
	closeConn bool // close the client connection after responding

	order    []*routing.Pool
	poolBuf  [4]*routing.Pool
	tried    []*routing.Endpoint
	triedBuf [4]*routing.Endpoint
	pool     *routing.Pool
	ep       *routing.Endpoint
	cur      attemptState
	attempts int
	retries  int
	errKind  string
	upDur    time.Duration // summed over attempts, to the response head; only when the table logs or exports
	upStatus int           // the last attempt's response status, 0 when it failed; likewise
	tr       *traceState   // nil when tracing is off (trace.go)

	body    *reqBody       // nil without a request body
	guard   *upstreamGuard // nil when no wait on the upstream is bounded
	bodyBuf []byte         // the whole body, buffered so retries can resend it
	mirror  *mirrorJob

	rw respWriter
	ub upBody
	// respDone completes the route's response policies (compression)
	// once the response is written; nil when there are none.
	respDone func() error
}

// svc is the service the request goes to.
func (x *exchange) svc() *routing.Service { return x.choice.Service }

// err is the request context's error: the client went away, or the
// route's timeout passed.
func (x *exchange) err() error { return x.ctx.Err() }

func exchangeFrom(ctx context.Context) *exchange {
	if c, ok := ctx.(*xctx); ok {
		return c.x
	}
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// ServeHTTP routes and proxies one request: relay for everything but
// protocol upgrades, which ReverseProxy tunnels. It is kept small: HTTP/2
// runs each request on a fresh goroutine with a small stack, and every byte
// of frame under relay and the upstream client brings a stack copy closer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, h.state.Load())
}

// serve is ServeHTTP on a given installed state: the TLS edges check a
// route's policy on the state they loaded and serve the request on that
// same state, so a swap between the two can never put a request on a
// route whose policy was not checked.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, st *tableState) {
	if r.ProtoMajor == 2 {
		growStack(r.ProtoMinor)
	}
	x := h.begin(w, r)
	defer h.end(x)
	x.st = st
	if !h.prepare(x) {
		return
	}
	if h.fwd.Load() != nil && h.forwardRegion(x) { // forwardregion.go
		return
	}
	if isUpgrade(r) {
		h.rp.ServeHTTP(&x.rw, r.WithContext(&xctx{Context: x.ctx, x: x}))
		return
	}
	h.relay(x)
	if x.respDone != nil {
		// The response is complete: the encoder writes its last block.
		_ = x.respDone()
	}
}

// growStack grows a fresh HTTP/2 request goroutine's stack while it is
// shallow, to a size the whole request fits in. Left alone, it grows deep
// inside the upstream client, where copying the stack costs several times more
// (the cost grows with the number of frames to adjust).
//
//go:noinline
func growStack(i int) byte {
	var pad [6 << 10]byte
	pad[i&(len(pad)-1)] = 1
	return pad[(i+1)&(len(pad)-1)]
}

// begin takes an exchange from the pool for the request.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request) *exchange {
	x, _ := h.exchanges.Get().(*exchange)
	if x == nil {
		x = new(exchange)
	}
	x.h, x.req, x.start, x.ctx = h, r, time.Now(), r.Context()
	x.rw.w, x.rw.x = w, x
	h.met.inFlight.Inc()
	return x
}

// end records the request and returns the exchange to the pool, unless a
// hijacked tunnel or a panic may still reach it.
func (h *Handler) end(x *exchange) {
	p := recover()
	x.guard.stop()
	if x.cancel != nil {
		x.cancel()
	}
	h.finish(x, p)
	h.met.inFlight.Dec()
	if p != nil {
		panic(p)
	}
	if x.rw.status != http.StatusSwitchingProtocols {
		*x = exchange{}
		h.exchanges.Put(x)
	}
}

// prepare routes the request and readies its body, mirror and deadline. It
// returns false when it has answered the request itself.
func (h *Handler) prepare(x *exchange) bool {
	r := x.req
	if x.st == nil {
		h.localError(x, http.StatusServiceUnavailable, "meridian: no routing table loaded yet\n")
		return false
	}
	t := x.st.table
	if !h.checkRequest(x) {
		return false
	}
	x.peerHost, x.client, x.trusted = clientAddr(r, t.TrustedProxies)
	route := t.Match(r, x.client)
	if route == nil {
		h.localError(x, http.StatusNotFound, "meridian: no route for this request\n")
		return false
	}
	x.route, x.rs = route, x.st.routes[route.Index]
	x.choice = route.Choose(r)
	x.telStart()
	x.requestID = requestID(r.Header)
	if route.Policy != nil && !h.runPolicy(x, route.Policy) {
		return false
	}
	x.rs.shared.budget.request(x.start)
	if !h.prepareBody(x) {
		return false
	}
	if route.Policy != nil {
		x.wrapResponse(route.Policy)
	}
	if route.Mirror != nil && route.MirrorSample() {
		h.startMirror(x)
	}
	if x.rs.timeout > 0 {
		x.ctx, x.cancel = context.WithTimeout(x.ctx, x.rs.timeout)
	}
	if head, idle := x.rs.headTimeout, h.settings.UpstreamIdleTimeout.D(); head > 0 || idle > 0 {
		x.guard, x.ctx = newGuard(x.ctx, head, idle)
	}
	return true
}

// checkRequest refuses what must not be proxied: broken HTTP/1 framing,
// CONNECT, and paths that are not rooted or are ambiguous. It cleans the
// path in place, so routing and the upstream see the same one.
func (h *Handler) checkRequest(x *exchange) bool {
	r := x.req
	if r.ProtoMajor == 1 && (len(r.TransferEncoding) > 0 || r.ProtoMinor == 0) {
		// RFC 9112 6.1: Content-Length with Transfer-Encoding is a
		// smuggling attempt, and HTTP/1.0 with Transfer-Encoding is faulty
		// framing; both get 400 and a closed connection. Go's server drops
		// the Content-Length (and an HTTP/1.0 Transfer-Encoding) before the
		// handler runs, so the listener's sniffer tells. Where there is none
		// (a listener Server did not build), or the head was read ahead,
		// such requests close their connection after the response instead.
		sc, _ := r.Context().Value(connKey{}).(*serverConn)
		sawCL, sawTE, verified := false, false, false
		if sc != nil {
			sawCL, sawTE, verified = sc.framing(r)
		}
		chunked := len(r.TransferEncoding) > 0
		if verified && sawTE && (sawCL || r.ProtoMinor == 0) {
			x.closeConn = true
			h.localError(x, http.StatusBadRequest, "meridian: bad request framing\n")
			return false
		}
		if !verified && chunked {
			x.closeConn = true
		}
		if !verified && r.ProtoMinor == 0 {
			x.closeConn = true
		}
	}
	if r.Method == http.MethodConnect {
		h.localError(x, http.StatusMethodNotAllowed, "meridian: CONNECT is not supported\n")
		return false
	}
	u := r.URL
	if u.Path == "" && u.RawPath == "" {
		u.Path = "/"
	}
	if u.Path == "" || u.Path[0] != '/' {
		h.localError(x, http.StatusBadRequest, "meridian: bad request path\n")
		return false
	}
	if !x.st.allowAmbiguous && routing.AmbiguousPath(u) {
		h.localError(x, http.StatusBadRequest, "meridian: ambiguous request path\n")
		return false
	}
	if c := routing.CleanPath(u.Path); c != u.Path {
		u.Path, u.RawPath = c, ""
	}
	return true
}

// clientAddr returns the peer's host as X-Forwarded-For should show it, the
// client address (the rightmost X-Forwarded-For hop that is not a trusted
// proxy, when the peer is one; else the peer), and whether the peer is a
// trusted proxy.
func clientAddr(r *http.Request, trusted []netip.Prefix) (peerHost string, client netip.Addr, isTrusted bool) {
	peerHost = hostOf(r.RemoteAddr)
	peer, _ := netip.ParseAddr(peerHost)
	client = peer
	if len(trusted) == 0 || !containsAddr(trusted, peer) {
		return peerHost, client, false
	}
	vals := r.Header["X-Forwarded-For"]
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			part := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				part, v = v[j+1:], v[:j]
			} else {
				v = ""
			}
			a, err := netip.ParseAddr(textproto.TrimString(part))
			if err != nil {
				return peerHost, client, true
			}
			client = a
			if !containsAddr(trusted, a) {
				return peerHost, client, true
			}
		}
	}
	return peerHost, client, true
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// hostOf returns the host part of a host:port without allocating.
func hostOf(hostport string) string {
	if strings.HasPrefix(hostport, "[") {
		if i := strings.IndexByte(hostport, ']'); i > 0 {
			return hostport[1:i]
		}
	}
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		return hostport[:i]
	}
	return hostport
}

// requestID keeps a sane inbound X-Request-Id, else makes one.
func requestID(h http.Header) string {
	if v := h["X-Request-Id"]; len(v) > 0 && validRequestID(v[0]) {
		return v[0]
	}
	const hexd = "0123456789abcdef"
	var b [32]byte
	a, c := rand.Uint64(), rand.Uint64()
	for i := range 16 {
		b[i] = hexd[a&15]
		b[16+i] = hexd[c&15]
		a >>= 4
		c >>= 4
	}
	return string(b[:])
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// prepareBody wraps the request body so stalled uploads are cut and the
// transport can tell whether any byte was sent, and buffers it when a retry
// may need to resend it.
func (h *Handler) prepareBody(x *exchange) bool {
	r := x.req
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return true
	}
	limit := int64(h.settings.MaxBodyBytes)
	if m := x.route.Policy.MaxBody(); m > 0 && (limit == 0 || m < limit) {
		limit = m // the route's max_body
	}
	if limit > 0 && r.ContentLength > limit {
		x.errKind = kindClientLarge
		h.clientError(x)
		return false
	}
	x.body = newReqBody(r.Body, x, h.settings)
	x.body.max = limit
	r.Body = x.body
	pol := &x.rs.retry
	if pol.attempts > 0 && pol.on&^onConnect != 0 && idempotent(r) && r.ContentLength > 0 && r.ContentLength <= pol.maxBody {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(x.body, buf); err != nil {
			x.body.fail(faultBad) // io.ReadFull's short read: no earlier fault was recorded
			x.errKind = bodyFault(x.body.fault.Load()).kind()
			h.clientError(x)
			return false
		}
		x.bodyBuf = buf
	}
	return true
}

// clientError answers a request that failed by the client's fault
// (x.errKind): 400, 408 or 413, on a connection closed after it, since
// where the body stopped is unknown; or, when the client went away,
// nothing at all: the handler aborts, so net/http cannot send its default
// 200 on an empty answer.
func (h *Handler) clientError(x *exchange) {
	code, body := 0, ""
	switch x.errKind {
	case kindClientBody:
		code, body = http.StatusBadRequest, "meridian: malformed or incomplete request body\n"
	case kindClientTimeout:
		code, body = http.StatusRequestTimeout, "meridian: request body timed out\n"
	case kindClientSlow:
		code, body = http.StatusRequestTimeout, "meridian: request body too slow\n"
	case kindClientLarge:
		code, body = http.StatusRequestEntityTooLarge, "meridian: request body too large\n"
	}
	if code == 0 || x.rw.wrote {
		if !x.rw.wrote && x.req.Context().Value(http.ServerContextKey) != nil {
			panic(http.ErrAbortHandler)
		}
		return
	}
	x.closeConn = true
	// Read nothing more from this client: the server would otherwise try
	// to drain the rest of an announced body before closing.
	_ = http.NewResponseController(x.rw.w).SetReadDeadline(time.Now())
	h.localError(x, code, body)
}

// idempotent reports whether a request may be sent twice: the RFC 9110
// idempotent methods, or any method carrying an idempotency key.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, a := r.Header["Idempotency-Key"]
	_, b := r.Header["X-Idempotency-Key"]
	return a || b
}

// localError answers a request the proxy refuses itself.
func (h *Handler) localError(x *exchange, code int, body string) {
	hd := x.rw.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("X-Content-Type-Options", "nosniff")
	x.rw.WriteHeader(code)
	io.WriteString(&x.rw, body)
}

// finish records the request's metrics, trace spans and access log line.
func (h *Handler) finish(x *exchange, panicked any) {
	code := x.rw.status
	switch {
	case code == 0 && x.errKind == kindCanceled:
		code = 499
	case code == 0 && panicked != nil:
		code = 502
	case code == 0:
		code = http.StatusOK
	}
	if x.mirror != nil {
		x.mirror.abandon()
	}
	if clientKind(x.errKind) {
		h.met.clientError(x.errKind)
	}
	d := time.Since(x.start)
	if x.rs != nil {
		x.rs.counter(h.met, x.svc(), x.pool, code).Inc()
		x.rs.duration.Observe(d.Seconds())
	} else {
		h.unroutedCounter(code).Inc()
	}
	h.telDone(x, code, d)
	if st := x.st; st != nil && (st.accessLog != nil || st.tracing != nil) {
		h.observe(x, code, d)
	}
}

func (h *Handler) unroutedCounter(code int) prometheus.Counter {
	if c, ok := h.unrouted.Load(code); ok {
		return c.(prometheus.Counter)
	}
	c := h.met.requests.WithLabelValues("", "", "", fmt.Sprint(code))
	h.unrouted.Store(code, c)
	return c
}

// Drain sends a WebSocket close (1001, going away) on every upgraded
// connection, waits for them and for the mirror copies in flight to end
// until ctx is done, then closes the rest. Server.Serve calls it on
// shutdown, alongside http.Server.Shutdown, which does not wait for
// hijacked connections.
func (h *Handler) Drain(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { h.waitMirrors(ctx) })
	h.upgrades.drain(ctx)
	wg.Wait()
}

// zapWriter turns ReverseProxy's log lines into debug logs: they report
// client aborts and upstream errors the proxy already counts and logs.
type zapWriter struct{ l *zap.Logger }

func (w *zapWriter) Write(p []byte) (int, error) {
	w.l.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}

// bufferPool lends out 32 KiB copy buffers: to relay (get/put, which keep
// the pooled pointer, so returning a buffer allocates nothing) and to
// ReverseProxy (Get/Put, its BufferPool interface).
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) get() *[]byte  { return b.p.Get().(*[]byte) }
func (b *bufferPool) put(x *[]byte) { b.p.Put(x) }

// Get implements httputil.BufferPool.
func (b *bufferPool) Get() []byte { return *b.get() }

// Put implements httputil.BufferPool.
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }
