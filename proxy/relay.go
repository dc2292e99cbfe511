package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/meridian-lb/meridian/config"
)

// relay is one request's trip upstream and back, outside any protocol
// upgrade: what httputil.ReverseProxy.ServeHTTP does for such a request,
// with the same header rules and response handling, minus its generic
// costs. ReverseProxy clones the request and its header map, deletes a
// dozen absent headers one by one, wraps the context twice, builds a
// ProxyRequest, copies every response header value and parses the
// Content-Type with mime.ParseMediaType; here the outbound header is
// built in one pass over the inbound one, the response header values are
// moved rather than copied, and the request's context, URL, trace and
// scratch values share one allocation. Upgrade requests (WebSocket) still
// go through Handler.rp, which owns the tunnel logic.
//
// A relay is never reused: transport goroutines may hold its context, URL
// and body wrapper after the handler returns.
type relay struct {
	xctx // the outbound request's context; finds the exchange

	url   url.URL
	trace httptrace.ClientTrace
	rw    http.ResponseWriter

	mu   sync.Mutex // orders 1xx relays against the end of the round trip
	done bool       // the round trip returned: no more 1xx is relayed
	n1xx int        // 1xx responses relayed

	body noCloseBody
	vals [4]string // X-Forwarded-For, -Host, -Proto, X-Request-Id
	ua   [1]string // an empty User-Agent, so the transport adds none
	te   [1]string // "trailers"
}

// isUpgrade reports whether a request asks for a protocol upgrade; those go
// through ReverseProxy (see relay).
func isUpgrade(r *http.Request) bool {
	_, ok := r.Header["Upgrade"]
	return ok
}

// relay proxies x's request upstream and writes the response. The request
// has been routed and checked (prepare).
func (h *Handler) relay(x *exchange) {
	r, rw := x.req, &x.rw
	f := &relay{xctx: xctx{Context: x.ctx, x: x}, rw: rw}
	f.trace.Got1xxResponse = f.got1xx
	out := r.WithContext(httptrace.WithClientTrace(&f.xctx, &f.trace))
	f.url = *r.URL
	out.URL = &f.url
	if r.ContentLength == 0 {
		out.Body = nil // golang/go#16036: a nil body lets the transport retry
	}
	if out.Body != nil {
		// The transport closes the body it was given, possibly while a
		// 100-continue client has not sent it; closing this wrapper never
		// touches the client's body (golang/go#46866 for why it is closed
		// at the end).
		f.body.rc = out.Body
		out.Body = &f.body
		defer f.body.Close()
	}
	out.Close = false
	out.URL.RawQuery = cleanQueryParams(out.URL.RawQuery)
	out.Header = outboundHeader(r, x, f)
	rs := x.rs
	out.URL.Scheme, out.URL.Host = "http", "upstream.invalid" // the transport sets the endpoint per attempt
	if rs.hostRewrite != "" {
		out.Host = rs.hostRewrite
	}
	if rs.stripPrefix != "" {
		stripPrefix(out.URL, rs.stripPrefix)
	}

	res, err := x.roundTrip(out)
	f.mu.Lock()
	f.done = true
	f.mu.Unlock()
	if err != nil {
		h.errorHandler(rw, out, err)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		// The client asked for no upgrade (those take ReverseProxy's path),
		// so the upstream must not switch.
		err := x.editResponse(res)
		if err == nil {
			err = fmt.Errorf("%w: to %q when none was requested", errBadUpgrade, strings.TrimSpace(res.Header.Get("Upgrade")))
		}
		res.Body.Close()
		h.errorHandler(rw, out, err)
		return
	}
	removeHopByHop(res.Header)
	if err := x.editResponse(res); err != nil {
		res.Body.Close()
		h.errorHandler(rw, out, err)
		return
	}
	dst := rw.Header()
	for k, vv := range res.Header {
		// The response and its header are not used after this; moving
		// the value slices saves a copy of each.
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vv...)
		} else {
			dst[k] = vv
		}
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		dst.Add("Trailer", strings.Join(keys, ", "))
	}
	rw.WriteHeader(res.StatusCode)
	if err := h.copyBody(rw, res.Body, flushImmediately(res)); err != nil {
		defer res.Body.Close()
		if r.Context().Value(http.ServerContextKey) != nil {
			// As ReverseProxy does: abort the response, so the client sees
			// it cut rather than complete (golang/go#23643).
			panic(http.ErrAbortHandler)
		}
		return
	}
	res.Body.Close() // now, so res.Trailer is filled in
	if len(res.Trailer) > 0 {
		// Force chunking, so the trailers can follow the body.
		_ = rw.FlushError()
	}
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			dst[k] = append(dst[k], vv...)
		}
		return
	}
	for k, vv := range res.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}

// got1xx relays an informational response (103 Early Hints and the like)
// while the round trip is in flight. An upstream that sends more than
// config.MaxInformationalResponses fails the exchange as a bad response:
// with a trace hook set, neither the Transport nor h1Client stops it.
func (f *relay) got1xx(code int, header textproto.MIMEHeader) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		// The round trip has returned: the header map is the final
		// response's now.
		return nil
	}
	if f.n1xx++; f.n1xx > config.MaxInformationalResponses {
		return errTooMany1xx
	}
	h := f.rw.Header()
	for k, vv := range header {
		h[k] = append(h[k], vv...)
	}
	f.rw.WriteHeader(code)
	clear(h) // WriteHeader does not clear it for 1xx responses
	return nil
}

// outboundHeader builds the upstream request's header in one pass over the
// inbound one. It drops what ReverseProxy and forwardHeaders drop — the
// hop-by-hop headers and those named in Connection, Forwarded and
// X-Forwarded-For/-Host/-Proto, an h2c upgrade's settings, the mirror
// marker, and from untrusted peers every X-Forwarded-* and X-Real-Ip —
// then sets the forwarding headers and the route's header edits. Values
// are shared with the inbound header, which nothing changes.
func outboundHeader(r *http.Request, x *exchange, f *relay) http.Header {
	in := r.Header
	out := make(http.Header, len(in)+5)
	conn := in["Connection"]
	for k, vv := range in {
		if dropOutbound(k, x.trusted) || (len(conn) > 0 && namedIn(conn, k)) {
			continue
		}
		out[k] = vv
	}
	if httpguts.HeaderValuesContainsToken(in["Te"], "trailers") {
		// Tell the upstream the client takes trailers (golang/go#21096).
		f.te[0] = "trailers"
		out["Te"] = f.te[:]
	}
	setForwarded(out, r, x, f.vals[:])
	if _, ok := out["User-Agent"]; !ok {
		out["User-Agent"] = f.ua[:]
	}
	return out
}

// dropOutbound reports whether an inbound header never reaches the upstream
// as it came.
func dropOutbound(k string, trusted bool) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"Http2-Settings", mirrorHeader:
		return true
	}
	return !trusted && (k == "X-Real-Ip" || strings.HasPrefix(k, "X-Forwarded-"))
}

// namedIn reports whether the Connection header values name header k.
func namedIn(conn []string, k string) bool {
	for _, v := range conn {
		for sf := range strings.SplitSeq(v, ",") {
			if sf = textproto.TrimString(sf); sf != "" && textproto.CanonicalMIMEHeaderKey(sf) == k {
				return true
			}
		}
	}
	return false
}

// flushImmediately reports whether a response is relayed with a flush after
// every write, as ReverseProxy does: server-sent events, and bodies of
// unknown length (streams such as gRPC).
func flushImmediately(res *http.Response) bool {
	if res.ContentLength == -1 {
		return true
	}
	ct := res.Header["Content-Type"]
	if len(ct) == 0 || !containsFold(ct[0], "event-stream") {
		return false
	}
	base, _, _ := mime.ParseMediaType(ct[0])
	return base == "text/event-stream"
}

// containsFold is a case-insensitive strings.Contains for an ASCII,
// lower-case sub.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for j < len(sub) {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
			j++
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}

// copyBody copies the upstream body to the client with a pooled buffer,
// flushing after every write when flush is set (and once before the first,
// so a stream's header is not held back while its first message is
// awaited). It returns a read error other than EOF, or a write error.
func (h *Handler) copyBody(rw *respWriter, src io.Reader, flush bool) error {
	if flush {
		_ = rw.FlushError()
	}
	bp := h.bufs.get()
	defer h.bufs.put(bp)
	buf := *bp
	for {
		nr, rerr := src.Read(buf)
		if rerr != nil && rerr != io.EOF && rerr != context.Canceled {
			h.log.Debug("upstream body read failed", zap.Error(rerr))
		}
		if nr > 0 {
			nw, werr := rw.Write(buf[:nr])
			if werr != nil {
				return werr
			}
			if nw != nr {
				return io.ErrShortWrite
			}
			if flush {
				_ = rw.FlushError()
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
	}
}

// noCloseBody lends the client's request body to the transport without
// letting it close it; after Close, reads fail (a transport goroutine may
// outlive the handler).
type noCloseBody struct {
	rc     io.ReadCloser
	closed atomic.Bool
}

var errBodyClosed = errors.New("proxy: read of a request body after the handler returned")

func (b *noCloseBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errBodyClosed
	}
	return b.rc.Read(p)
}

func (b *noCloseBody) Close() error {
	b.closed.Store(true)
	return nil
}

// cleanQueryParams drops the unparsable parameters of a raw query the way
// ReverseProxy does (net/http/httputil, same rule): a query with a
// semicolon or a bad percent escape is re-encoded from what url.ParseQuery
// keeps; any other query passes untouched. Route matching parses queries
// the same way, so a route never matches a parameter the upstream won't
// see.
func cleanQueryParams(s string) string {
	reencode := func(s string) string {
		v, _ := url.ParseQuery(s)
		return v.Encode()
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencode(s)
		case '%':
			if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
				return reencode(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
