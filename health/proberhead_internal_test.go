package health

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadSimpleHead(t *testing.T) {
	tests := []struct {
		name   string
		head   string
		isHead bool
		ok     bool // understood, else left to http.ReadResponse
		want   simpleHead
	}{
		{name: "plain", head: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", ok: true, want: simpleHead{status: 200, length: 2}},
		{name: "no reason", head: "HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n", ok: true, want: simpleHead{status: 503}},
		{name: "connection close", head: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nConnection: Keep-Alive, close\r\n\r\nok", ok: true, want: simpleHead{status: 200, length: 2, close: true}},
		{name: "HTTP/1.0 closes", head: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", ok: true, want: simpleHead{status: 200, length: 2, close: true}},
		{name: "HTTP/1.0 keep-alive", head: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok", ok: true, want: simpleHead{status: 200, length: 2}},
		{name: "HEAD has no body", head: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", isHead: true, ok: true, want: simpleHead{status: 200}},
		{name: "204 has no body", head: "HTTP/1.1 204 No Content\r\n\r\n", ok: true, want: simpleHead{status: 204}},
		{name: "other headers", head: "HTTP/1.1 302 Found\r\nLocation: /x\r\nX-A:\t b \r\nContent-Length: 0\r\n\r\n", ok: true, want: simpleHead{status: 302}},
		{name: "1xx", head: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{name: "chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{name: "until close", head: "HTTP/1.1 200 OK\r\n\r\nok"},
		{name: "two lengths", head: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"},
		{name: "signed length", head: "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"},
		{name: "folded line", head: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: a\r\n b\r\n\r\nok"},
		{name: "space before colon", head: "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"},
		{name: "control byte", head: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: a\x00b\r\n\r\nok"},
		{name: "bare LF", head: "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"},
		{name: "bare LF in the status line", head: "HTTP/1.1 200 OK\nContent-Length: 0\r\nContent-Length: 7\r\n\r\n1234567"},
		{name: "bare CR in the status line", head: "HTTP/1.1 200 OK\rTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok"},
		{name: "HTTP/2", head: "HTTP/2 200\r\nContent-Length: 2\r\n\r\nok"},
		{name: "bad status", head: "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok"},
		{name: "status run-on", head: "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok"},
		{name: "garbage", head: "garbage\r\n\r\n"},
		{name: "head not all there", head: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.head))
			h, ok, err := readSimpleHead(br, tc.isHead)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.ok || (ok && h != tc.want) {
				t.Fatalf("got %+v ok %v, want %+v ok %v", h, ok, tc.want, tc.ok)
			}
			if !ok && br.Buffered() != len(tc.head) {
				t.Fatalf("a head left to http.ReadResponse was partly consumed")
			}
		})
	}
}
