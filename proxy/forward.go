package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
)

// rewrite shapes the outbound request. ReverseProxy has already removed the
// hop-by-hop headers, including those the client named in Connection, and
// every inbound Forwarded and X-Forwarded-For/-Host/-Proto; what is set here
// cannot be removed by the client's Connection header.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	x := exchangeFrom(pr.In.Context())
	out := pr.Out
	// The transport sets the endpoint per attempt.
	out.URL.Scheme, out.URL.Host = "http", "upstream.invalid"
	rs := x.rs
	if rs.hostRewrite != "" {
		out.Host = rs.hostRewrite
	} else {
		out.Host = pr.In.Host
	}
	if rs.stripPrefix != "" {
		stripPrefix(out.URL, rs.stripPrefix)
	}
	forwardHeaders(out.Header, pr.In, x)
}

// stripPrefix removes a segment-aware prefix from a cleaned path, keeping
// it rooted; the result has no dot segments because the input had none.
func stripPrefix(u *url.URL, prefix string) {
	p := u.Path
	if !strings.HasPrefix(p, prefix) || (len(p) > len(prefix) && p[len(prefix)] != '/') {
		return
	}
	rest := p[len(prefix):]
	if rest == "" {
		rest = "/"
	}
	u.Path = rest
	if u.RawPath != "" {
		if r, ok := strings.CutPrefix(u.RawPath, prefix); ok && (r == "" || r[0] == '/') {
			if r == "" {
				r = "/"
			}
			u.RawPath = r
		} else {
			u.RawPath = ""
		}
	}
}

// forwardHeaders sets the forwarding headers and the route's header edits
// on an outbound header (ReverseProxy's for upgrade requests, or a mirror
// copy's). Inbound X-Forwarded-* headers are kept only from trusted
// proxies; from anyone else every X-Forwarded-* and X-Real-Ip header is
// dropped and rebuilt.
func forwardHeaders(hdr http.Header, in *http.Request, x *exchange) {
	// One pass drops what a client must not send: the mirror marker, an
	// h2c upgrade's settings, and from untrusted peers every X-Forwarded-*
	// and X-Real-Ip.
	for k := range hdr {
		switch {
		case k == "Http2-Settings" || k == mirrorHeader:
			delete(hdr, k)
		case !x.trusted && (k == "X-Real-Ip" || strings.HasPrefix(k, "X-Forwarded-")):
			delete(hdr, k)
		}
	}
	// Only WebSocket upgrades pass; an h2c (or any other) upgrade would let
	// the client tunnel past the proxy.
	if up := hdr["Upgrade"]; len(up) > 0 && !strings.EqualFold(up[0], "websocket") {
		delete(hdr, "Upgrade")
		delete(hdr, "Connection")
	}
	setForwarded(hdr, in, x, make([]string, 4))
}

// setForwarded sets X-Forwarded-For/-Host/-Proto, X-Request-Id and (with
// tracing on) traceparent and tracestate, then applies the route's header
// edits. vals (at least 4 long) holds the values, so a caller can lend
// storage it already has.
func setForwarded(hdr http.Header, in *http.Request, x *exchange, vals []string) {
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	vals[0], vals[1], vals[2], vals[3] = x.peerHost, in.Host, proto, x.requestID
	if x.trusted {
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
			vals[0] = strings.Join(prior, ", ") + ", " + x.peerHost
		}
		if v := in.Header["X-Forwarded-Host"]; len(v) > 0 {
			vals[1] = v[0]
		}
		if v := in.Header["X-Forwarded-Proto"]; len(v) > 0 {
			vals[2] = v[0]
		}
	}
	hdr["X-Forwarded-For"] = vals[0:1:1]
	hdr["X-Forwarded-Host"] = vals[1:2:2]
	hdr["X-Forwarded-Proto"] = vals[2:3:3]
	hdr["X-Request-Id"] = vals[3:4:4]
	x.traceHeaders(hdr)
	rs := x.rs
	for _, k := range rs.removeHeaders {
		delete(hdr, k)
	}
	if len(rs.addHeaders) > 0 {
		x.setHeaders(hdr, rs.addHeaders)
	}
}

// modifyResponse is ReverseProxy's ModifyResponse (upgrade requests).
func (h *Handler) modifyResponse(res *http.Response) error {
	x := exchangeFrom(res.Request.Context())
	if x == nil {
		return nil
	}
	return x.editResponse(res)
}

// editResponse applies the route's response header edits and the sticky
// cookie, and refuses a switch to any protocol but WebSocket. The
// hop-by-hop headers are gone already.
func (x *exchange) editResponse(res *http.Response) error {
	rs := x.rs
	for _, k := range rs.respRemove {
		res.Header.Del(k)
	}
	if len(rs.respAdd) > 0 {
		x.setHeaders(res.Header, rs.respAdd)
	}
	if x.route != nil && x.route.Policy != nil {
		x.route.Policy.Response(x.req, res.Header)
	}
	if x.choice.SetCookie != "" && rs.stickyCookie != "" {
		c := &http.Cookie{Name: rs.stickyCookie, Value: x.choice.SetCookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
		res.Header.Add("Set-Cookie", c.String())
	}
	if res.StatusCode == http.StatusSwitchingProtocols && !strings.EqualFold(res.Header.Get("Upgrade"), "websocket") {
		return errBadUpgrade
	}
	return nil
}

var (
	errNoEndpoint    = errors.New("no endpoint available")
	errBadUpgrade    = errors.New("upstream switched to a protocol other than websocket")
	errPerTryTimeout = errors.New("per-try timeout")
)

// errorHandler answers a request that got no upstream response: the
// client's faults as clientError does, 503 when no endpoint was available,
// 504 on timeout, 502 otherwise. The body names
// the route, never upstream details (those go to the access log and the
// debug log).
func (h *Handler) errorHandler(w http.ResponseWriter, req *http.Request, err error) {
	x := exchangeFrom(req.Context())
	if x == nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	kind := x.errKind
	if kind == "" {
		kind = blame(err, x, nil)
		if upstreamKind(kind) && x.ep != nil {
			// The attempt ended in a response that cannot be relayed (a
			// protocol switch nobody asked for): endAttempt counted a
			// success, so the upstream's fault is counted here, once.
			report(x.ep, outcomeOf(kind))
			h.met.upstreamError(kind)
		}
	}
	x.errKind = kind
	if clientKind(kind) {
		h.clientError(x)
		return
	}
	var oe *overflowError
	if kind == kindOverflow && errors.As(err, &oe) {
		overflowed(w, x, oe)
		return
	}
	code, what := http.StatusBadGateway, "bad gateway"
	switch kind {
	case kindNoEndpoint:
		code, what = http.StatusServiceUnavailable, "no endpoint available"
	case kindTimeout:
		code, what = http.StatusGatewayTimeout, "upstream timed out"
	case kindConnect:
		what = "upstream unreachable"
	case kindReset:
		what = "upstream connection failed"
	case kindBadResponse:
		what = "bad upstream response"
	}
	h.log.Debug("upstream request failed", zap2(x, err)...)
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Request-Id", x.requestID)
	w.WriteHeader(code)
	io.WriteString(w, "meridian: route "+x.route.Name+": "+what+"\n")
}

// respWriter records the status and size of the response, strips hop-by-hop
// headers from relayed 1xx responses, keeps stalled readers from holding a
// connection forever, and tracks hijacked (WebSocket) connections.
type respWriter struct {
	w       http.ResponseWriter
	x       *exchange
	status  int
	bytes   int64
	wrote   bool
	n1xx    int // 1xx responses relayed
	lastExt time.Time
}

func (w *respWriter) Header() http.Header { return w.w.Header() }

func (w *respWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// ReverseProxy relays upstream 1xx headers as they came; hop-by-hop
		// ones must not pass (golang/go#81319). Past the cap (which relay
		// enforces on the upstream too) they are not relayed.
		if w.n1xx++; w.n1xx > config.MaxInformationalResponses {
			clear(w.w.Header())
			return
		}
		removeHopByHop(w.w.Header())
		w.w.WriteHeader(code)
		return
	}
	if w.wrote {
		return
	}
	w.wrote, w.status = true, code
	if w.x.closeConn {
		w.w.Header().Set("Connection", "close")
	}
	w.w.WriteHeader(code)
}

func (w *respWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.bytes+int64(len(p)) > stallFree {
		w.extendWrite()
	}
	n, err := w.w.Write(p)
	w.bytes += int64(n)
	return n, err
}

// stallFree is how much of a response is written without a write deadline:
// that much always fits the socket buffers, so only larger responses can
// stall on a client that stops reading.
const stallFree = 64 << 10

// extendWrite pushes the write deadline idle_timeout ahead, at most every
// quarter of it: a client that stops reading is cut after idle_timeout
// without progress, while a slow but steady download is never cut. The
// server clears the deadline after each request.
func (w *respWriter) extendWrite() {
	idle := w.x.h.settings.IdleTimeout.D()
	if idle <= 0 {
		return
	}
	now := time.Now()
	if !w.lastExt.IsZero() && now.Sub(w.lastExt) < idle/4 {
		return
	}
	w.lastExt = now
	if d, ok := w.w.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(now.Add(idle))
	}
}

// Flush implements http.Flusher.
func (w *respWriter) Flush() { _ = w.FlushError() }

// FlushError flushes and reports the error, for http.ResponseController.
func (w *respWriter) FlushError() error {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.bytes > 0 {
		// A streamed response (SSE, gRPC) may wait on a slow client.
		w.extendWrite()
	}
	switch f := w.w.(type) {
	case interface{ FlushError() error }:
		return f.FlushError()
	case http.Flusher:
		f.Flush()
		return nil
	}
	return http.ErrNotSupported
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *respWriter) Unwrap() http.ResponseWriter { return w.w }

// removeHopByHop deletes the headers named in Connection and the standard
// hop-by-hop ones.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = strings.TrimSpace(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	// One look at each present key costs less than nine deletes of
	// mostly absent ones.
	for k := range h {
		if isHopByHop(k) {
			delete(h, k)
		}
	}
}

// isHopByHop reports whether k is one of the standard hop-by-hop headers.
func isHopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// cloneHeader copies a header for a request that outlives the handler.
func cloneHeader(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, v := range h {
		out[k] = slices.Clone(v)
	}
	return out
}

// endpointName is the access-log form of an endpoint.
func endpointName(e *routing.Endpoint) string {
	if e == nil {
		return ""
	}
	return e.Address
}
