package health

import (
	"bufio"
	"bytes"

	"golang.org/x/net/http/httpguts"
)

// simpleHead is a response head readSimpleHead understood.
type simpleHead struct {
	status int
	length int64 // of the body
	close  bool  // the server asked to close the connection after it
}

// readSimpleHead reads a plain response head from br without
// http.ReadResponse: an HTTP/1.0 or 1.1 final status, header lines of the
// common form, and a body delimited by Content-Length (or none: HEAD, 204,
// 304). Anything else — a 1xx, chunked or close-delimited bodies, folded
// or odd header lines, a head not yet wholly received — gives ok false with
// nothing consumed, and the caller falls back to http.ReadResponse, which
// knows every case. err is a read error while waiting for the first bytes.
//
// Why: http.ReadResponse builds a Response, a Header map and canonical key
// strings per response; at 5,000 probes a second that was a seventh of the
// http prober's CPU. A probe needs only the status, the body's length and
// whether to close.
func readSimpleHead(br *bufio.Reader, isHead bool) (h simpleHead, ok bool, err error) {
	if _, err := br.Peek(1); err != nil {
		return h, false, err
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return h, false, nil
	}
	lines := buf[:end+2]
	line, lines := cutLine(lines)
	for _, c := range line {
		if c < ' ' && c != '\t' || c == 0x7f {
			return h, false, nil // a bare LF or CR hides a line: net/http judges
		}
	}
	var http10 bool
	switch {
	case len(line) < 12 || (len(line) > 12 && line[12] != ' '):
		return h, false, nil
	case bytes.HasPrefix(line, []byte("HTTP/1.1 ")):
	case bytes.HasPrefix(line, []byte("HTTP/1.0 ")):
		http10 = true
	default:
		return h, false, nil
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return h, false, nil
		}
		h.status = h.status*10 + int(c-'0')
	}
	if h.status < 200 {
		return h, false, nil // 1xx, or not a status
	}
	h.length = -1
	keepAlive := false
	for len(lines) > 0 {
		line, lines = cutLine(lines)
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !plainHeaderLine(line, colon) {
			return h, false, nil
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if h.length >= 0 || len(value) == 0 || len(value) > 18 {
				return h, false, nil
			}
			h.length = 0
			for _, c := range value {
				if c < '0' || c > '9' {
					return h, false, nil
				}
				h.length = h.length*10 + int64(c-'0')
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return h, false, nil
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.Trim(tok, " \t")
				h.close = h.close || bytes.EqualFold(tok, []byte("close"))
				keepAlive = keepAlive || bytes.EqualFold(tok, []byte("keep-alive"))
			}
		}
	}
	if isHead || h.status == 204 || h.status == 304 {
		h.length = 0
	} else if h.length < 0 {
		return h, false, nil // read until the close
	}
	h.close = h.close || (http10 && !keepAlive)
	br.Discard(end + 4)
	return h, true, nil
}

// cutLine splits off the first CRLF-terminated line of b.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.Index(b, []byte("\r\n"))
	return b[:i], b[i+2:]
}

// plainHeaderLine reports whether a header line is of the common form: a
// token name right before the colon, and no control bytes but tabs.
func plainHeaderLine(line []byte, colon int) bool {
	for i, c := range line {
		switch {
		case i < colon && !httpguts.IsTokenRune(rune(c)):
			return false
		case c < ' ' && c != '\t', c == 0x7f:
			return false
		}
	}
	return true
}
