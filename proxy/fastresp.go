package proxy

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"
)

// fastResponse is the fast lane's http.ResponseWriter, one per connection,
// reused. It follows net/http's HTTP/1.1 response rules (chunkWriter and
// response in net/http/server.go), for the HTTP/1.1 requests the lane
// takes:
//
//   - WriteHeader snapshots the header: the status line and header lines
//     are formatted into the output buffer at once, except Content-Length,
//     Transfer-Encoding and Connection, which the framing decides on;
//   - up to 2 KiB of body is held back; a handler that finishes within it
//     gets a Content-Length, a longer or flushed body is chunked unless the
//     handler set a Content-Length;
//   - a missing Content-Type is sniffed from the first bytes, a missing
//     Date is added, 1xx responses are written and flushed at once, HEAD
//     and bodiless statuses send no body, declared and TrailerPrefix
//     trailers follow a chunked body;
//   - an unread request body is drained (up to 256 KiB) before the head
//     goes out, and the connection closes after the response when the
//     client asked, the handler set Connection: close, the server is
//     shutting down, or the body written does not match Content-Length.
type fastResponse struct {
	c    *fastConn
	req  *http.Request
	body *fastBody
	hdr  http.Header // the handler's, reused
	out  []byte      // pending output: from the pool while a response is written
	outp *[]byte     // out's pool entry
	keys []string    // scratch for sorting header keys

	isHEAD     bool
	wantsClose bool

	status      int
	wroteHeader bool
	committed   bool // the head is formatted and final in out
	done        bool // the handler returned
	chunking    bool
	bodyOK      bool
	closeAfter  bool
	wroteWD     bool  // the handler set a write deadline
	cl          int64 // the Content-Length, -1 when none
	written     int64

	// The WriteHeader snapshot: out[:hdrEnd] is the status line and the
	// header lines; body bytes held back follow.
	hdrEnd   int
	clVals   []string
	teVals   []string
	connVals []string
	haveType bool
	hasCE    bool
	hasDate  bool
	trailer  bool     // a Trailer header or a TrailerPrefix key
	trailers []string // declared trailer names
}

// bufferBeforeChunking is how much body net/http holds back to give a
// short response a Content-Length.
const bufferBeforeChunking = 2048

func (w *fastResponse) reset(r *http.Request, body *fastBody, wantsClose bool) {
	hdr, out, outp, keys, trailers := w.hdr, w.out, w.outp, w.keys, w.trailers
	clear(hdr)
	*w = fastResponse{c: w.c, req: r, body: body, hdr: hdr, out: out[:0], outp: outp, keys: keys[:0], trailers: trailers[:0],
		isHEAD: r.Method == http.MethodHead, wantsClose: wantsClose, cl: -1}
}

func (w *fastResponse) getOut() {
	if w.out == nil {
		w.outp = w.c.lane.bufs.Get().(*[]byte)
		w.out = (*w.outp)[:0]
	}
}

// putOut returns the output buffer to the pool once the response is out.
func (w *fastResponse) putOut() {
	if w.outp != nil && cap(w.out) == fastBufSize {
		// Not a buffer append grew: the pool's own.
		w.c.lane.bufs.Put(w.outp)
	}
	w.out, w.outp = nil, nil
}

func (w *fastResponse) Header() http.Header { return w.hdr }

func (w *fastResponse) WriteHeader(code int) {
	if w.wroteHeader {
		w.c.lane.log.Debug("http: superfluous response.WriteHeader call", zap.Int("code", code))
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	w.getOut()
	if code < 200 && code != http.StatusSwitchingProtocols {
		// 1xx: at once, with the header as it is (RFC 8297), without
		// framing headers.
		w.out = appendStatusLine(w.out, code)
		w.out = w.appendHeader(w.out, w.hdr, func(k string) bool { return k == "Content-Length" || k == "Transfer-Encoding" })
		w.out = append(w.out, "\r\n"...)
		w.flushOut()
		return
	}
	w.wroteHeader, w.status = true, code
	w.bodyOK = bodyAllowed(code)
	if v := w.hdr["Content-Length"]; len(v) > 0 && v[0] != "" {
		// An invalid value stays in the snapshot, as in net/http (which
		// deletes it from the handler's map after cloning that): the
		// response is then chunked and the value dropped.
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			w.c.lane.log.Debug("http: invalid Content-Length", zap.String("value", v[0]))
		}
	}
	w.out = appendStatusLine(w.out, code)
	w.out = w.appendHeader(w.out, w.hdr, w.snapshotKey)
	w.hdrEnd = len(w.out)
}

// snapshotKey looks at one header key at WriteHeader: it records what the
// framing depends on and reports whether the key is left out of the lines
// written now.
func (w *fastResponse) snapshotKey(k string) bool {
	v := w.hdr[k]
	switch k {
	case "Content-Length":
		w.clVals = v
		return true
	case "Transfer-Encoding":
		w.teVals = v
		return true
	case "Connection":
		w.connVals = v
		return true
	case "Content-Type":
		w.haveType = true
		return w.status == http.StatusNotModified
	case "Content-Encoding":
		w.hasCE = len(v) > 0 && v[0] != ""
	case "Date":
		w.hasDate = true
	case "Trailer":
		w.trailer = true
		for _, s := range v {
			foreachElement(s, func(t string) {
				t = http.CanonicalHeaderKey(t)
				if httpguts.ValidTrailerHeader(t) {
					w.trailers = append(w.trailers, t)
				}
			})
		}
	}
	if strings.HasPrefix(k, http.TrailerPrefix) {
		w.trailer = true
		return true
	}
	return false
}

func (w *fastResponse) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.bodyOK {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.cl != -1 && w.written > w.cl {
		return 0, http.ErrContentLength
	}
	n := len(p)
	if !w.committed {
		pend := len(w.out) - w.hdrEnd
		if pend+len(p) <= bufferBeforeChunking {
			w.out = append(w.out, p...)
			return n, nil
		}
		k := min(len(p), max(bufferBeforeChunking-pend, 0))
		w.out = append(w.out, p[:k]...)
		p = p[k:]
		w.commit()
		if len(p) == 0 {
			return n, nil
		}
	}
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return n, nil
}

func (w *fastResponse) WriteString(s string) (int, error) {
	// Write never keeps p: it is copied or written before returning.
	return w.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// writeBody writes body bytes after the head is committed.
func (w *fastResponse) writeBody(p []byte) error {
	if w.isHEAD {
		return nil
	}
	if w.c.werr != nil {
		return w.c.werr
	}
	if w.chunking {
		w.out = strconv.AppendInt(w.out, int64(len(p)), 16)
		w.out = append(w.out, "\r\n"...)
	}
	if len(w.out)+len(p)+2 <= cap(w.out) {
		w.out = append(w.out, p...)
	} else {
		if err := w.flushOut(); err != nil {
			return err
		}
		if err := w.c.write(p); err != nil {
			return err
		}
	}
	if w.chunking {
		w.out = append(w.out, "\r\n"...)
	}
	if len(w.out) >= cap(w.out)-64 {
		return w.flushOut()
	}
	return nil
}

// commit decides the framing (net/http's chunkWriter.writeHeader) and
// completes the head in out, before the body bytes held back.
func (w *fastResponse) commit() {
	w.committed = true
	pend := w.out[w.hdrEnd:]
	hasTE := len(w.teVals) > 0 && w.teVals[0] != ""
	te := ""
	if hasTE {
		te = w.teVals[0]
	}
	var extraCL, extraConn, extraTE, extraType string
	if w.done && !w.trailer && !hasTE && w.bodyOK && w.clVals == nil && (!w.isHEAD || len(pend) > 0) {
		w.cl = int64(len(pend))
		extraCL = strconv.Itoa(len(pend))
	}
	hasCL := w.cl != -1
	closing := w.c.lane.closing.Load()
	if w.wantsClose {
		w.closeAfter = true
	}
	connFirst := ""
	if len(w.connVals) > 0 {
		connFirst = w.connVals[0]
	}
	if connFirst == "close" || closing {
		w.closeAfter = true
	}
	dropConn := false
	if w.req.ContentLength != 0 && !w.closeAfter && w.body != nil {
		closeAfter, tooBig := w.body.discardEarly()
		if closeAfter {
			w.closeAfter = true
		}
		if tooBig {
			w.closeAfter = true
			dropConn, extraConn = true, "close"
		}
	}
	if w.bodyOK && !w.hasCE && !w.haveType && !hasTE && len(pend) > 0 {
		extraType = http.DetectContentType(pend)
	}
	dropCL, dropTE := false, false
	if hasCL && hasTE && te != "identity" {
		dropCL, hasCL = true, false
	}
	switch {
	case w.isHEAD || !w.bodyOK:
		dropTE = true
	case hasCL:
		dropTE = true
	case hasTE && te == "identity":
		w.closeAfter, dropTE = true, true
	default:
		w.chunking, extraTE = true, "chunked"
		if te == "chunked" {
			dropTE = true
		}
	}
	if w.chunking {
		dropCL = true
	}
	if w.closeAfter && (closing || !hasToken(connFirst, "close")) {
		dropConn, extraConn = true, "close"
	}
	if !w.bodyOK {
		// Suppressed for bodiless statuses (and dropped at WriteHeader).
		dropCL, dropTE = true, true
	}

	var ins [512]byte
	b := ins[:0]
	if !dropCL {
		b = appendLines(b, "Content-Length", w.clVals)
	}
	if !dropTE {
		b = appendLines(b, "Transfer-Encoding", w.teVals)
	}
	if !dropConn {
		b = appendLines(b, "Connection", w.connVals)
	}
	if !w.hasDate {
		b = append(b, "Date: "...)
		b = w.c.lane.appendDate(b)
		b = append(b, "\r\n"...)
	}
	if extraCL != "" {
		b = append(b, "Content-Length: "...)
		b = append(b, extraCL...)
		b = append(b, "\r\n"...)
	}
	for _, kv := range [...][2]string{{"Content-Type", extraType}, {"Connection", extraConn}, {"Transfer-Encoding", extraTE}} {
		if kv[1] != "" {
			b = append(b, kv[0]...)
			b = append(b, ": "...)
			b = append(b, kv[1]...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	sendBody := len(pend) > 0 && !w.isHEAD && w.bodyOK
	if w.chunking && sendBody {
		b = strconv.AppendInt(b, int64(len(pend)), 16)
		b = append(b, "\r\n"...)
	}
	if !sendBody {
		w.out = append(w.out[:w.hdrEnd], b...)
		return
	}
	n := len(pend)
	w.out = slices.Grow(w.out, len(b))[:len(w.out)+len(b)]
	copy(w.out[w.hdrEnd+len(b):], w.out[w.hdrEnd:w.hdrEnd+n])
	copy(w.out[w.hdrEnd:], b)
	if w.chunking {
		w.out = append(w.out, "\r\n"...)
	}
}

// Flush implements http.Flusher.
func (w *fastResponse) Flush() { _ = w.FlushError() }

// FlushError sends what is held, committing the head (and so the
// framing) first.
func (w *fastResponse) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit()
	}
	return w.flushOut()
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *fastResponse) SetReadDeadline(t time.Time) error { return w.c.raw.SetReadDeadline(t) }

func (w *fastResponse) SetWriteDeadline(t time.Time) error {
	w.wroteWD = true
	return w.c.raw.SetWriteDeadline(t)
}

// flushOut writes out what is pending.
func (w *fastResponse) flushOut() error {
	if len(w.out) == 0 {
		return w.c.werr
	}
	err := w.c.write(w.out)
	w.out = w.out[:0]
	w.hdrEnd = 0
	return err
}

// write writes to the connection, recording the first error: like
// net/http, it cancels the request, and the connection is not reused.
func (c *fastConn) write(p []byte) error {
	if c.werr != nil {
		return c.werr
	}
	_, err := c.raw.Write(p)
	if err != nil {
		c.werr = err
		c.wmu.Lock()
		if c.wcancel != nil {
			c.wcancel.cancel(err)
		}
		c.wmu.Unlock()
	}
	return err
}

// finish completes the response once the handler returned: the head if it
// never went out, the last chunk and trailers, and a flush.
func (w *fastResponse) finish() {
	w.done = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit()
	}
	if w.chunking {
		w.out = append(w.out, "0\r\n"...)
		if t := w.finalTrailers(); t != nil {
			w.out = w.appendHeader(w.out, t, nil)
		}
		w.out = append(w.out, "\r\n"...)
	}
	_ = w.flushOut()
}

// finalTrailers is net/http's: the TrailerPrefix keys and the declared
// trailers, as the handler left them.
func (w *fastResponse) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.hdr {
		if kk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = http.Header{}
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		for _, v := range w.hdr[k] {
			if t == nil {
				t = http.Header{}
			}
			t.Add(k, v)
		}
	}
	return t
}

// reusable is net/http's shouldReuseConnection, less the body checks the
// caller makes.
func (w *fastResponse) reusable() bool {
	if w.closeAfter {
		return false
	}
	if !w.isHEAD && w.cl != -1 && w.bodyOK && w.cl != w.written {
		return false
	}
	return true
}

// appendHeader appends h's lines, sorted by key, as net/http's
// Header.Write does: keys that are not valid field names are skipped,
// newlines in values become spaces and values are trimmed. skip, when set,
// sees every key first and leaves out those it reports.
func (w *fastResponse) appendHeader(b []byte, h http.Header, skip func(string) bool) []byte {
	keys := w.keys[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if skip != nil && skip(k) {
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		b = appendLines(b, k, h[k])
	}
	w.keys = keys[:0]
	return b
}

// appendLines appends "k: v\r\n" for each value, sanitised as net/http
// does.
func appendLines(b []byte, k string, vv []string) []byte {
	for _, v := range vv {
		v = strings.TrimFunc(v, isASCIISpace)
		b = append(b, k...)
		b = append(b, ": "...)
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c == '\r' || c == '\n' {
				c = ' '
			}
			b = append(b, c)
		}
		b = append(b, "\r\n"...)
	}
	return b
}

func isASCIISpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, "\r\n"...)
}

// bodyAllowed is net/http's bodyAllowedForStatus.
func bodyAllowed(code int) bool {
	switch {
	case code >= 100 && code <= 199, code == http.StatusNoContent, code == http.StatusNotModified:
		return false
	}
	return true
}

// hasToken reports whether v has token as one of its comma-separated
// elements, in any case.
func hasToken(v, token string) bool {
	for e := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(e), token) {
			return true
		}
	}
	return false
}

// foreachElement calls fn for each trimmed, non-empty comma-separated
// element of v.
func foreachElement(v string, fn func(string)) {
	for e := range strings.SplitSeq(v, ",") {
		if e = strings.TrimFunc(e, isASCIISpace); e != "" {
			fn(e)
		}
	}
}

// dateStamp is the Date header value of one second.
type dateStamp struct {
	sec int64
	b   []byte
}

// appendDate appends the current time in http.TimeFormat, formatted once
// a second per lane.
func (l *fastLane) appendDate(b []byte) []byte {
	now := time.Now()
	sec := now.Unix()
	d := l.date.Load()
	if d == nil || d.sec != sec {
		d = &dateStamp{sec: sec, b: now.UTC().AppendFormat(nil, http.TimeFormat)}
		l.date.Store(d)
	}
	return append(b, d.b...)
}
