package proxy

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
)

// referenceHead is the plain reading of a request head the sniffer must
// agree with: the request line, and whether a header line (not a
// continuation) names Content-Length or Transfer-Encoding.
func referenceHead(raw []byte) (first string, cl, te, done bool) {
	lines := bytes.Split(raw, []byte("\n"))
	if len(lines) < 2 {
		return "", false, false, false
	}
	first = string(bytes.TrimSuffix(lines[0], []byte("\r")))
	for _, l := range lines[1 : len(lines)-1] {
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) == 0 {
			return first, cl, te, true
		}
		if l[0] == ' ' || l[0] == '\t' {
			continue
		}
		lower := strings.ToLower(string(l))
		cl = cl || strings.HasPrefix(lower, "content-length:")
		te = te || strings.HasPrefix(lower, "transfer-encoding:")
	}
	return first, cl, te, false
}

type nopConn struct{ net.Conn }

// FuzzSniff feeds a raw head to the connection's watcher in chunks of every
// size and checks the kept copy against referenceHead: the same end of
// head, request line and Content-Length / Transfer-Encoding findings, the
// h2c preface recognised, and no byte past the blank line kept.
func FuzzSniff(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), uint8(7))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), uint8(1))
	f.Add([]byte("POST /a HTTP/1.0\nTRANSFER-ENCODING: chunked\n X-Fold: content-length: 1\n\n"), uint8(3))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), uint8(5))
	f.Add([]byte("GET / HTTP/1.1\r\nA: b\r\r\n\r\nbody\n\n"), uint8(2))
	f.Fuzz(func(t *testing.T, raw []byte, chunk uint8) {
		c := newServerConn(nopConn{}, &capSlot{c: newConnCap(nil, 0, nil)}, 1<<16)
		step := int(chunk%16) + 1
		for i := 0; i < len(raw) && c.watching; i += step {
			c.watch(raw[i:min(i+step, len(raw))])
		}
		first, cl, te, done := referenceHead(raw)
		if first == "PRI * HTTP/2.0" && done {
			if !c.h2 {
				t.Fatal("h2c preface not recognised")
			}
			return
		}
		if c.done != done {
			t.Fatalf("done = %t, reference %t", c.done, done)
		}
		if !done {
			return
		}
		if !bytes.HasPrefix(raw, c.head) || headEnd(c.head) != len(c.head) {
			t.Fatalf("kept %q: not the head of the input up to its blank line", c.head)
		}
		gotFirst, gotCL, gotTE := parseHead(c.head)
		if gotCL != cl || gotTE != te {
			t.Fatalf("CL %t TE %t, reference %t %t", gotCL, gotTE, cl, te)
		}
		if string(gotFirst) != first {
			t.Fatalf("request line %q, reference %q", gotFirst, first)
		}
	})
}

func TestSameRequestLine(t *testing.T) {
	r := &http.Request{Method: "GET", RequestURI: "/a?b", Proto: "HTTP/1.1"}
	tests := map[string]bool{
		"GET /a?b HTTP/1.1":  true,
		"GET /a?b HTTP/1.0":  false,
		"GET /a?b HTTP/1.1x": false,
		"POST /a?b HTTP/1.1": false,
		"GET /a HTTP/1.1":    false,
		"":                   false,
	}
	for line, want := range tests {
		if got := sameRequestLine([]byte(line), r); got != want {
			t.Errorf("sameRequestLine(%q) = %t, want %t", line, got, want)
		}
	}
}
