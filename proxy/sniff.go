package proxy

import (
	"bytes"
	"net"
	"net/http"
)

// serverConn is an accepted connection. It frees its listener slot on
// Close, and it keeps a copy of each HTTP/1 request head as it is read, to
// tell whether the head carried both Content-Length and Transfer-Encoding:
// Go's server drops the Content-Length of such a request before the
// handler runs, and keeps the connection open (golang/go#80942), so only
// the raw bytes tell.
//
// The common path is cheap: a Read that carries head bytes copies them
// (up to the blank line, found with bytes.Index) into a buffer the
// connection keeps, and nothing is parsed. Only a request that needs the
// check — a chunked one, or HTTP/1.0 — parses the copy (framing). A head
// read ahead of time (pipelining) is not seen; the handler then cannot
// verify a chunked request and closes the connection after it instead,
// which is just as safe.
//
// No lock is taken: the server orders the calls. Head reads, the handler
// (framing) and nextRequest run on the connection's goroutine; the one
// concurrent reader, the server's one-byte background read, only runs
// once the head is complete, and the server waits for it to end before
// the connection turns idle (nextRequest).
type serverConn struct {
	net.Conn
	slot      *capSlot
	maxHeader int

	watching bool   // the head is being read: copy what Read returns
	done     bool   // head holds a complete head, blank line included
	h2       bool   // an h2c connection: nothing to watch
	head     []byte // the current request head, as read
	small    [256]byte
	stash    byte // a byte read ahead by the server's background read
	hasStash bool
	replay   []byte // read by the fast lane before it handed the connection over
}

func newServerConn(c net.Conn, slot *capSlot, maxHeader int) *serverConn {
	sc := &serverConn{Conn: c, slot: slot, maxHeader: maxHeader}
	sc.reset()
	return sc
}

// maxKeptHead is the largest head buffer a connection keeps between
// requests; a bigger one is dropped so idle connections stay small.
const maxKeptHead = 4 << 10

// reset starts watching for a new request head.
func (c *serverConn) reset() {
	if cap(c.head) > maxKeptHead || c.head == nil {
		c.head = c.small[:0]
	}
	c.head = c.head[:0]
	c.watching, c.done = true, false
}

// nextRequest is called when the server has finished a request and waits
// for the next one (http.StateIdle).
func (c *serverConn) nextRequest() {
	if c.h2 {
		return
	}
	c.reset()
	if c.hasStash {
		c.hasStash = false
		c.watch([]byte{c.stash})
	}
}

// handOver readies the connection for net/http after the fast lane read
// pending from it (fast.go): net/http reads those bytes first, and the
// watch sees them as the start of a request head.
func (c *serverConn) handOver(pending []byte) {
	c.reset()
	c.hasStash = false
	if len(pending) > 0 {
		c.watch(pending)
		c.replay = pending
	}
}

func (c *serverConn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if c.watching {
			c.watch(p[:n])
		} else if len(p) == 1 && !c.h2 {
			// The server's one-byte background read: the first byte of
			// the next request, read before StateIdle.
			c.stash, c.hasStash = p[0], true
		}
	}
	return n, err
}

// watch appends the head bytes of b to the copy, stopping after the blank
// line that ends the head, or giving up past the header size limit. Only
// head bytes are copied, so a request body read along never is.
func (c *serverConn) watch(b []byte) {
	end := -1
	if n := len(c.head); n > 0 {
		// A blank line may straddle two reads: look at the last two bytes
		// kept and the first two of b (the kept bytes hold no blank line).
		var w [4]byte
		k := copy(w[:], c.head[max(n-2, 0):])
		m := copy(w[k:], b)
		if e := headEnd(w[:k+m]); e >= 0 {
			end = e - k
		}
	}
	if end < 0 {
		end = headEnd(b)
	}
	if end >= 0 {
		b = b[:end]
	}
	if len(c.head)+len(b) > c.maxHeader+4096 {
		// Longer than any head Go accepts: unverifiable.
		c.watching = false
		return
	}
	c.head = append(c.head, b...)
	if end < 0 {
		return
	}
	c.watching, c.done = false, true
	if isH2Preface(c.head) {
		// The h2c preface: HTTP/2 frames follow, never another head.
		c.h2 = true
		c.head = nil
	}
}

// isH2Preface reports whether a head's request line is HTTP/2's preface
// ("PRI * HTTP/2.0"), with which Go's server hands the connection to h2c.
func isH2Preface(head []byte) bool {
	const pri = "PRI * HTTP/2.0"
	if !bytes.HasPrefix(head, []byte(pri)) {
		return false
	}
	rest := head[len(pri):]
	return bytes.HasPrefix(rest, []byte("\n")) || bytes.HasPrefix(rest, []byte("\r\n"))
}

// headEnd returns the length of b up to and including the first blank line
// ("\n\n" or "\n\r\n", as Go's reader accepts both), or -1.
func headEnd(b []byte) int {
	i, j := bytes.Index(b, []byte("\n\n")), bytes.Index(b, []byte("\n\r\n"))
	switch {
	case i < 0 && j < 0:
		return -1
	case j < 0 || (i >= 0 && i < j):
		return i + 2
	}
	return j + 3
}

// framing reports whether the head of r, as the connection saw it, had a
// Content-Length and a Transfer-Encoding, and whether that head is
// verifiably r's (its request line matches). It parses the copy, so it is
// only called for requests that need the check.
func (c *serverConn) framing(r *http.Request) (sawCL, sawTE, verified bool) {
	if !c.done || c.h2 {
		return false, false, false
	}
	first, cl, te := parseHead(c.head)
	if !sameRequestLine(first, r) {
		return false, false, false
	}
	return cl, te, true
}

// parseHead reads a complete head: its request line, and whether a header
// line (not an obs-fold continuation) names Content-Length or
// Transfer-Encoding, in any case.
func parseHead(head []byte) (first []byte, cl, te bool) {
	line, rest, _ := bytes.Cut(head, []byte("\n"))
	first = bytes.TrimSuffix(line, []byte("\r"))
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		cl = cl || hasPrefixFold(line, "content-length:")
		te = te || hasPrefixFold(line, "transfer-encoding:")
	}
	return first, cl, te
}

// hasPrefixFold reports whether b starts with the lower-case ASCII prefix,
// ignoring case.
func hasPrefixFold(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// sameRequestLine compares "METHOD TARGET PROTO" with r without allocating.
func sameRequestLine(line []byte, r *http.Request) bool {
	want := [...]string{r.Method, " ", r.RequestURI, " ", r.Proto}
	for _, part := range want {
		if len(line) < len(part) || string(line[:len(part)]) != part {
			return false
		}
		line = line[len(part):]
	}
	return len(line) == 0
}

// CloseWrite passes a half-close on (WebSocket tunnels use it).
func (c *serverConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *serverConn) Close() error {
	err := c.Conn.Close()
	c.slot.free()
	return err
}
