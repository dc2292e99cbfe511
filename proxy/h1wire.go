package proxy

// The upstream client's wire format for the common exchange: a request
// head written straight into the connection's buffer, and a response head
// parsed from it when it arrived whole and is framed by a Content-Length.
//
// Why not Request.Write and http.ReadResponse alone: on the HTTP/1.1
// benchmark (bench/http.sh, 2026-12-06 profile) they cost 3.9% and 5.4% of
// the proxy's CPU, about 2.8 µs per request, most of it formatting through
// fmt, a header sorter from a pool, a textproto.Reader, one string per
// header value and the transfer decoding's allocations. Both stay the
// reference: anything these functions do not vouch for (a host to
// punycode or with a zone, a trace that watches header fields, HTTP/1.0,
// 1xx, 204, 304, HEAD, chunked or close-delimited bodies, Pragma, obs-fold,
// a head still arriving, any byte net/http might judge differently) is
// left to them, and FuzzRequestHead and FuzzResponseHead hold the output
// to theirs: the same bytes on the wire, the same Response.

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
)

// writeHead writes req's head as req.Write would for a request
// h1Client.takes (no body, no trailer, no Transfer-Encoding). done is
// false when nothing was written and req.Write must do it.
func (pc *h1Conn) writeHead(req *http.Request) (done bool, err error) {
	if req.Close || req.ContentLength != 0 || req.URL.Opaque != "" {
		return false, nil
	}
	if t := httptrace.ContextClientTrace(req.Context()); t != nil &&
		(t.WroteHeaderField != nil || t.WroteHeaders != nil || t.WroteRequest != nil) {
		return false, nil
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf || host[i] == '%' {
			return false, nil // punycode or an IPv6 zone: req.Write's rules
		}
	}
	if !httpguts.ValidHostHeader(host) {
		host = "" // as req.Write does for a request not sent to a proxy
	}
	ruri := req.URL.RequestURI()
	for i := 0; i < len(ruri); i++ {
		if b := ruri[i]; b < ' ' || b == 0x7f {
			return false, nil // req.Write refuses it, in its own words
		}
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	w := pc.bw
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(ruri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	ua := "Go-http-client/1.1"
	if vv, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vv) > 0 {
			ua = vv[0]
		}
	}
	if ua != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(textproto.TrimString(ua))
		w.WriteString("\r\n")
	}
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	keys := pc.keys[:0]
	for k := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range req.Header[k] {
			// validateRequest refused CR and LF in values, so trimming
			// is all req.Write's newline replacement would leave to do.
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(textproto.TrimString(v))
			w.WriteString("\r\n")
		}
	}
	clear(keys)
	pc.keys = keys[:0]
	_, err = w.WriteString("\r\n")
	return true, err
}

var crlf2 = []byte("\r\n\r\n")

// readHead parses the response head waiting whole in pc.br when it is one
// this file vouches for (see the top of the file), and consumes it; ok is
// false, with nothing consumed, when http.ReadResponse must read it.
func (pc *h1Conn) readHead(req *http.Request) (res *http.Response, ok bool) {
	if req.Method == http.MethodHead {
		return nil, false
	}
	buf, _ := pc.br.Peek(pc.br.Buffered())
	end := bytes.Index(buf, crlf2)
	if end < 0 || end > maxFastResponseHead {
		return nil, false
	}
	// Checked on the bytes first, so a head left to net/http costs no
	// allocation here.
	if !fastStatusLine(buf) {
		return nil, false
	}
	lines := 0
	for i := 0; i <= end; i++ {
		if buf[i] == '\n' {
			lines++
		}
	}
	head := string(buf[:end+2]) // through the last header line's CRLF
	eol := strings.Index(head, "\r\n")
	code := int(head[9]-'0')*100 + int(head[10]-'0')*10 + int(head[11]-'0')
	h := make(http.Header, lines)
	strs := make([]string, lines)
	for rest := head[eol+2:]; rest != ""; {
		i := strings.Index(rest, "\r\n")
		line := rest[:i]
		rest = rest[i+2:]
		k, v, found := strings.Cut(line, ":")
		if !found || !httpguts.ValidHeaderFieldName(k) || !validValue(v) {
			return nil, false
		}
		k = http.CanonicalHeaderKey(k)
		v = textproto.TrimString(v)
		if vv, dup := h[k]; dup {
			h[k] = append(vv, v)
		} else {
			strs[0] = v
			h[k] = strs[:1:1]
			strs = strs[1:]
		}
	}
	if _, bad := h["Pragma"]; bad {
		return nil, false // net/http may add a Cache-Control
	}
	if _, bad := h["Transfer-Encoding"]; bad {
		return nil, false
	}
	if _, bad := h["Trailer"]; bad {
		return nil, false
	}
	cl := h["Content-Length"]
	if len(cl) != 1 {
		return nil, false // none (read to close) or repeated
	}
	n, ok := parseDigits(cl[0])
	if !ok {
		return nil, false
	}
	closing := httpguts.HeaderValuesContainsToken(h["Connection"], "close")
	if closing {
		delete(h, "Connection") // as http.ReadResponse does
	}
	pc.br.Discard(end + 4)
	res = &http.Response{
		Status:        head[9:eol],
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: n,
		Close:         closing,
		Request:       req,
		Body:          http.NoBody,
	}
	if n > 0 {
		pc.clb = clBody{br: pc.br, n: n}
		res.Body = &pc.clb
	}
	return res, true
}

// maxFastResponseHead is the largest head readHead parses; a larger one
// goes to http.ReadResponse (bounded by max_response_header_bytes).
const maxFastResponseHead = 8 << 10

// fastStatusLine reports whether buf opens with "HTTP/1.1 ", a status code
// from 200 to 999 with a body (not 204 or 304), and an optional reason
// free of control bytes other than tab, ended by CRLF.
func fastStatusLine(buf []byte) bool {
	if len(buf) < 14 || string(buf[:9]) != "HTTP/1.1 " {
		return false
	}
	for _, b := range buf[9:12] {
		if b < '0' || b > '9' {
			return false
		}
	}
	if buf[9] < '2' || string(buf[9:12]) == "204" || string(buf[9:12]) == "304" {
		return false
	}
	i := 12
	if buf[i] == ' ' {
		for i++; i < len(buf) && buf[i] != '\r'; i++ {
			if b := buf[i]; b < ' ' && b != '\t' || b == 0x7f {
				return false
			}
		}
	}
	return i+1 < len(buf) && buf[i] == '\r' && buf[i+1] == '\n'
}

// clBody is a Content-Length framed response body read from the
// connection's buffer. Like net/http's, it returns io.EOF with the last
// bytes and io.ErrUnexpectedEOF when the connection ends early. One per
// connection, reused: an h1Conn carries one exchange at a time, and
// h1Body stops reading it once the exchange is over.
type clBody struct {
	br *bufio.Reader
	n  int64 // bytes left
}

func (b *clBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	switch {
	case b.n == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *clBody) Close() error { return nil }
