package compress

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// errFinished is returned by writes after finish.
var errFinished = errors.New("compress: write after the response finished")

// state is where a response is in the writer's life.
type state uint8

const (
	stNew    state = iota // no header written yet
	stHold                // eligible, length unknown: holding the body until MinSize
	stPlain               // header sent as the handler set it; bytes pass through
	stEncode              // header sent with Content-Encoding; bytes go through enc
	stDone                // finished
)

// writer is the http.ResponseWriter Wrap returns. Like any ResponseWriter
// it is used by one goroutine at a time. It holds at most MinSize bytes of
// body (a pooled buffer) and, once it compresses, one pooled encoder.
type writer struct {
	rw     http.ResponseWriter
	p      *Policy
	c      *coding // the negotiated coding; nil compresses nothing
	enc    encoder
	buf    *[]byte
	status int
	state  state
}

// Header returns the underlying writer's header map.
func (w *writer) Header() http.Header { return w.rw.Header() }

// WriteHeader decides, from the status and the header as the handler left
// it, whether to compress; see decide. Informational responses (except
// 101, which the server treats as final) pass through at once and leave
// the decision for the final one. A second final WriteHeader is ignored.
func (w *writer) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.rw.WriteHeader(code)
		return
	}
	if w.state != stNew {
		return
	}
	w.status = code
	switch w.decide(w.rw.Header(), code) {
	case stPlain:
		w.state = stPlain
		w.rw.WriteHeader(code)
	case stEncode:
		w.start()
	case stHold:
		w.state = stHold
	}
}

// decide returns stPlain (send as is), stEncode (compress) or stHold
// (compress if the body reaches MinSize). It adds "Vary: Accept-Encoding"
// to every response whose encoding depends on Accept-Encoding: those of a
// compressible type, whether or not this client gets them compressed, and
// 304s, which must carry the Vary of the response they revalidate (RFC
// 9110 15.4.5; so does Caddy). A 304 whose stored response may have been
// compressed also gets its ETag weakened, to match it.
func (w *writer) decide(h http.Header, code int) state {
	switch {
	case code == http.StatusNotModified:
		addVary(h, "Accept-Encoding")
		if w.c != nil && len(h["Content-Encoding"]) == 0 {
			weakenETag(h)
		}
		return stPlain
	case code < 200 || code > 999, code == http.StatusNoContent,
		code == http.StatusPartialContent, len(h["Content-Range"]) > 0,
		// Already encoded by the upstream: its coding, its business.
		len(h["Content-Encoding"]) > 0,
		// RFC 9111 5.2.2.6: intermediaries must not transform the content.
		hasToken(h["Cache-Control"], "no-transform"),
		!w.p.typeOK(h.Get("Content-Type")):
		return stPlain
	}
	addVary(h, "Accept-Encoding")
	if w.c == nil {
		return stPlain
	}
	if cl, ok := h["Content-Length"]; ok {
		n, err := strconv.ParseInt(strings.TrimSpace(firstOf(cl)), 10, 64)
		if err != nil || n == 0 || n < int64(w.p.minSize) {
			return stPlain
		}
		return stEncode
	}
	// A response announcing trailers cannot be held and then sent with a
	// Content-Length (trailers need chunking), so it is treated as the
	// stream it is.
	if w.p.minSize == 0 || len(h["Trailer"]) > 0 {
		return stEncode
	}
	return stHold
}

// start commits to compressing: it fixes the header, sends it, and takes
// an encoder writing to the underlying writer. The ETag is weakened because
// the compressed bytes are no longer those the strong validator named (RFC
// 9110 8.8.3.3); a weak one still matches the upstream's own tag in
// If-None-Match (weak comparison), so revalidation keeps working without
// rewriting the request, which Caddy's appended "-gzip" suffix needs.
// Accept-Ranges goes too: ranges of a compressed body are not served.
func (w *writer) start() {
	h := w.rw.Header()
	delete(h, "Content-Length")
	delete(h, "Accept-Ranges")
	h["Content-Encoding"] = []string{w.c.name}
	weakenETag(h)
	w.enc = w.c.get(w.rw)
	w.state = stEncode
	w.rw.WriteHeader(w.status)
}

// release ends holding: it starts compressing and passes the held bytes
// to the encoder.
func (w *writer) release() error {
	w.start()
	if w.buf == nil {
		return nil
	}
	_, err := w.enc.Write(*w.buf)
	w.p.putBuf(w.buf)
	w.buf = nil
	return err
}

// Write writes body bytes: as they are, through the encoder, or into the
// held buffer until the body reaches MinSize.
func (w *writer) Write(b []byte) (int, error) {
	switch w.state {
	case stNew:
		w.WriteHeader(http.StatusOK)
		return w.Write(b)
	case stPlain:
		return w.rw.Write(b)
	case stEncode:
		return w.enc.Write(b)
	case stHold:
		if len(b) == 0 {
			return 0, nil
		}
		if w.buf == nil {
			w.buf = w.p.getBuf()
		}
		if len(*w.buf)+len(b) < w.p.minSize {
			*w.buf = append(*w.buf, b...)
			return len(b), nil
		}
		if err := w.release(); err != nil {
			return 0, err
		}
		return w.enc.Write(b)
	}
	return 0, errFinished
}

// Flush implements http.Flusher; see FlushError.
func (w *writer) Flush() { _ = w.FlushError() }

// FlushError sends everything written so far: it flushes the encoder (a
// sync point every decoder can decode up to) and then the underlying
// writer. A flush while the body is held commits to compressing, as
// Traefik's Compress and gzhttp do: a handler that flushes is streaming
// (SSE, long polls), its length will not be known, and its client wants the
// bytes now. Without it a small event would wait for MinSize bytes.
func (w *writer) FlushError() error {
	switch w.state {
	case stNew:
		w.WriteHeader(http.StatusOK)
		return w.FlushError()
	case stDone:
		return errFinished
	case stHold:
		if err := w.release(); err != nil {
			return err
		}
	}
	if w.state == stEncode {
		if err := w.enc.Flush(); err != nil {
			return err
		}
	}
	switch f := w.rw.(type) {
	case interface{ FlushError() error }:
		return f.FlushError()
	case http.Flusher:
		f.Flush()
		return nil
	}
	return http.NewResponseController(w.rw).Flush()
}

// SetWriteDeadline passes the deadline to the underlying writer (the
// proxy extends it as a large response makes progress), directly or
// through its Unwrap chain.
func (w *writer) SetWriteDeadline(t time.Time) error {
	return http.NewResponseController(w.rw).SetWriteDeadline(t)
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (w *writer) Unwrap() http.ResponseWriter { return w.rw }

// finish ends the response: a body still held (it ended below MinSize) is
// sent as it is with its Content-Length; an encoder is closed, which writes
// the coding's end, and returned to its pool. Later calls do nothing.
func (w *writer) finish() error {
	var err error
	switch w.state {
	case stHold:
		n := 0
		if w.buf != nil {
			n = len(*w.buf)
		}
		w.rw.Header()["Content-Length"] = []string{strconv.Itoa(n)}
		w.rw.WriteHeader(w.status)
		if n > 0 {
			_, err = w.rw.Write(*w.buf)
		}
		if w.buf != nil {
			w.p.putBuf(w.buf)
			w.buf = nil
		}
	case stEncode:
		err = w.enc.Close()
		w.c.put(w.enc)
		w.enc = nil
	}
	w.state = stDone
	return err
}

// addVary adds token to the Vary header unless it, or "*", is there.
func addVary(h http.Header, token string) {
	if hasToken(h["Vary"], token) || hasToken(h["Vary"], "*") {
		return
	}
	h["Vary"] = append(h["Vary"], token)
}

// hasToken reports whether the comma-separated field lines vals have an
// element named token, case-insensitively; an element's "=value" (as in
// Cache-Control directives) is ignored.
func hasToken(vals []string, token string) bool {
	for _, v := range vals {
		for v != "" {
			var e string
			e, v, _ = strings.Cut(v, ",")
			e, _, _ = strings.Cut(e, "=")
			if strings.EqualFold(strings.Trim(e, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// weakenETag turns a strong ETag into a weak one.
func weakenETag(h http.Header) {
	if v := h["Etag"]; len(v) == 1 && strings.HasPrefix(v[0], `"`) {
		h["Etag"] = []string{"W/" + v[0]}
	}
}

func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
