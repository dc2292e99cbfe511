package proxy

import (
	"bytes"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// serverConn is an accepted connection. It frees its listener slot on
// Close, and it watches each HTTP/1 request head go by to note whether it
// carried both Content-Length and Transfer-Encoding: Go's server drops the
// Content-Length of such a request before the handler runs, and keeps the
// connection open (golang/go#80942), so only the raw bytes tell.
//
// The watch is cheap: only the head is scanned (from the first byte after
// the previous request until the blank line), and only header names are
// looked at. A head read ahead of time (pipelining) is not seen; the
// handler then cannot verify a chunked request and closes the connection
// after it instead, which is just as safe.
type serverConn struct {
	net.Conn
	l         *limitListener
	closeOnce sync.Once

	scanning atomic.Bool // fast path for Read: false means nothing to do

	mu        sync.Mutex
	h2        bool // an h2c connection: nothing to watch
	budget    int  // head bytes left to scan
	first     []byte
	firstDone bool
	line      [18]byte // lower-cased start of the current header line
	lineN     int
	lineLen   int
	lastCR    bool // the line so far ends in CR
	cont      bool // the line is an obs-fold continuation
	sawCL     bool
	sawTE     bool
	done      bool // a complete head was scanned
	stash     byte // a byte read ahead by the server's background read
	hasStash  bool
}

func newServerConn(c net.Conn, l *limitListener) *serverConn {
	sc := &serverConn{Conn: c, l: l, first: make([]byte, 0, 256)}
	sc.reset()
	return sc
}

// reset starts watching for a new request head. Caller holds mu, or owns
// sc exclusively.
func (c *serverConn) reset() {
	c.budget = c.l.maxHeader + 4096
	c.first = c.first[:0]
	c.firstDone, c.lineN, c.lineLen, c.cont, c.lastCR = false, 0, 0, false, false
	c.sawCL, c.sawTE, c.done = false, false, false
	c.scanning.Store(true)
}

// nextRequest is called when the server has finished a request and waits
// for the next one (http.StateIdle).
func (c *serverConn) nextRequest() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h2 {
		return
	}
	c.reset()
	if c.hasStash {
		c.hasStash = false
		c.scan([]byte{c.stash})
	}
}

func (c *serverConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if c.scanning.Load() {
			// Head reads and the handler never run at once on a connection,
			// and the server orders them, so scanning needs no lock.
			c.scan(p[:n])
		} else if len(p) == 1 {
			// The server's one-byte background read: the first byte of
			// the next request, read before StateIdle.
			c.mu.Lock()
			if !c.h2 {
				c.stash, c.hasStash = p[0], true
			}
			c.mu.Unlock()
		}
	}
	return n, err
}

func (c *serverConn) stop() { c.scanning.Store(false) }

// scan advances the head parser over b, a line at a time: only the request
// line and the first bytes of each header line are looked at.
func (c *serverConn) scan(b []byte) {
	for len(b) > 0 {
		if c.budget -= len(b); c.budget < 0 {
			c.stop()
			return
		}
		seg, rest, eol := b, []byte(nil), false
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			seg, rest, eol = b[:i], b[i+1:], true
		}
		c.budget += len(rest)
		b = rest
		if !c.firstDone {
			c.first = append(c.first, seg[:min(len(seg), cap(c.first)-len(c.first))]...)
			if eol {
				c.firstDone = true
				c.first = bytes.TrimSuffix(c.first, []byte{'\r'})
				if string(c.first) == "PRI * HTTP/2.0" {
					c.h2 = true
					c.stop()
					return
				}
			}
			continue
		}
		if len(seg) > 0 {
			if c.lineLen == 0 && (seg[0] == ' ' || seg[0] == '\t') {
				c.cont = true
			}
			for _, ch := range seg[:min(len(seg), len(c.line)-c.lineN)] {
				if 'A' <= ch && ch <= 'Z' {
					ch += 'a' - 'A'
				}
				c.line[c.lineN] = ch
				c.lineN++
			}
			c.lineLen += len(seg)
			c.lastCR = seg[len(seg)-1] == '\r'
		}
		if !eol {
			return
		}
		if c.lineLen == 0 || (c.lineLen == 1 && c.lastCR) {
			c.done = true
			c.stop()
			return
		}
		if !c.cont {
			l := string(c.line[:c.lineN])
			switch {
			case len(l) >= 15 && l[:15] == "content-length:":
				c.sawCL = true
			case len(l) >= 18 && l[:18] == "transfer-encoding:":
				c.sawTE = true
			}
		}
		c.lineN, c.lineLen, c.cont, c.lastCR = 0, 0, false, false
	}
}

// framing reports whether the head of r, as the connection saw it, had a
// Content-Length and a Transfer-Encoding, and whether that head is
// verifiably r's (its request line matches).
func (c *serverConn) framing(r *http.Request) (sawCL, sawTE, verified bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done || c.h2 || !sameRequestLine(c.first, r) {
		return false, false, false
	}
	return c.sawCL, c.sawTE, true
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
	c.closeOnce.Do(c.l.release)
	return err
}
