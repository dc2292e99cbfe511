package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"reflect"
	"testing"
)

// writeBoth writes req with writeHead and with req.Write; done reports
// whether writeHead took it.
func writeBoth(t testing.TB, req *http.Request) (fast, std []byte, done bool) {
	t.Helper()
	var a, b bytes.Buffer
	pc := &h1Conn{bw: bufio.NewWriter(&a)}
	done, err := pc.writeHead(req)
	if err != nil {
		t.Fatalf("writeHead: %v", err)
	}
	pc.bw.Flush()
	if err := req.Write(&b); err != nil {
		if done {
			t.Fatalf("writeHead wrote a request req.Write refuses (%v):\n%q", err, a.Bytes())
		}
		return nil, nil, false
	}
	return a.Bytes(), b.Bytes(), done
}

func TestWriteHeadMatchesRequestWrite(t *testing.T) {
	cases := []func(*http.Request){
		func(r *http.Request) {},
		func(r *http.Request) { r.Header.Set("User-Agent", "  curl/8 ") },
		func(r *http.Request) { r.Header["User-Agent"] = nil },
		func(r *http.Request) { r.Header["User-Agent"] = []string{""} },
		func(r *http.Request) {
			r.Header.Add("X-B", "2")
			r.Header.Add("X-A", " 1 ")
			r.Header.Add("X-A", "3")
			r.Header["lower-case"] = []string{"v"}
			r.Header["Content-Length"] = []string{"7"}
			r.Header["Host"] = []string{"other"}
		},
		func(r *http.Request) { r.Method = http.MethodPost },
		func(r *http.Request) { r.Method = http.MethodDelete },
		func(r *http.Request) { r.Method = "" },
		func(r *http.Request) { r.Host = "front.example:8080" },
		func(r *http.Request) { r.Host = "bad host" },
		func(r *http.Request) { r.URL.RawQuery = "a=1&b=%20" },
		func(r *http.Request) { r.URL.Path, r.URL.RawPath = "/a b/ü", "" },
	}
	for i, mod := range cases {
		req, _ := http.NewRequest(http.MethodGet, "http://upstream.test:81/p", nil)
		mod(req)
		fast, std, done := writeBoth(t, req)
		if !done {
			t.Fatalf("case %d: writeHead declined an ordinary request", i)
		}
		if !bytes.Equal(fast, std) {
			t.Errorf("case %d:\nfast %q\nstd  %q", i, fast, std)
		}
	}
	// Declined: left to req.Write.
	for i, mod := range []func(*http.Request){
		func(r *http.Request) { r.Close = true },
		func(r *http.Request) { r.Host = "bücher.example" },
		func(r *http.Request) { r.Host = "[fe80::1%25eth0]:80" },
		func(r *http.Request) {
			*r = *r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{WroteHeaders: func() {}}))
		},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://upstream.test/", nil)
		mod(req)
		if _, _, done := writeBoth(t, req); done {
			t.Errorf("decline case %d: writeHead took it", i)
		}
	}
}

// FuzzRequestHead holds writeHead to req.Write: for every request the
// upstream client takes, the same bytes.
func FuzzRequestHead(f *testing.F) {
	f.Add("GET", "/x?y=1", "a.test", "X-Forwarded-For", "1.2.3.4", "accept", " */* ")
	f.Add("POST", "/", "", "User-Agent", "", "Cookie", "a=b")
	f.Add("PATCH", "/%zz", "h:1", "Connection", "close", "Te", "trailers")
	f.Fuzz(func(t *testing.T, method, target, host, k1, v1, k2, v2 string) {
		req, err := http.NewRequest(method, "http://upstream.test"+target, nil)
		if err != nil {
			return
		}
		req.Host = host
		req.Header[k1] = append(req.Header[k1], v1)
		req.Header[k2] = append(req.Header[k2], v2)
		h := &h1Client{}
		if !h.takes(req) || validateRequest(req) != nil {
			return
		}
		fast, std, done := writeBoth(t, req)
		if done && !bytes.Equal(fast, std) {
			t.Fatalf("\nfast %q\nstd  %q", fast, std)
		}
	})
}

// readFast runs readHead on data as the client would: after a first read
// has filled the buffer.
func readFast(data []byte, method string) (*http.Response, *bufio.Reader, bool) {
	br := bufio.NewReaderSize(bytes.NewReader(data), 16<<10)
	br.Peek(1)
	pc := &h1Conn{br: br}
	req, _ := http.NewRequest(method, "http://upstream.test/", nil)
	res, ok := pc.readHead(req)
	return res, br, ok
}

// sameResponse compares what readHead made of data with http.ReadResponse,
// the body and what follows it included.
func sameResponse(t testing.TB, data []byte, method string) bool {
	t.Helper()
	fres, fbr, ok := readFast(data, method)
	if !ok {
		return false
	}
	req, _ := http.NewRequest(method, "http://upstream.test/", nil)
	sbr := bufio.NewReader(bytes.NewReader(data))
	sres, err := http.ReadResponse(sbr, req)
	if err != nil {
		t.Fatalf("readHead took a head http.ReadResponse refuses (%v): %q", err, data)
	}
	type view struct {
		Status           string
		Code             int
		Proto            string
		Major, Minor     int
		Header           http.Header
		Length           int64
		Close            bool
		TransferEncoding []string
		Trailer          http.Header
		Body             string
		BodyErr          string
		Rest             string
	}
	see := func(r *http.Response, br *bufio.Reader) view {
		b, err := io.ReadAll(r.Body)
		es := ""
		if err != nil {
			es = err.Error()
			if errors.Is(err, io.ErrUnexpectedEOF) {
				es = "unexpected EOF"
			}
		}
		rest, _ := io.ReadAll(br)
		return view{r.Status, r.StatusCode, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Header, r.ContentLength, r.Close,
			r.TransferEncoding, r.Trailer, string(b), es, string(rest)}
	}
	if fv, sv := see(fres, fbr), see(sres, sbr); !reflect.DeepEqual(fv, sv) {
		t.Fatalf("input %q\nfast %+v\nstd  %+v", data, fv, sv)
	}
	return true
}

func TestReadHeadMatchesReadResponse(t *testing.T) {
	taken := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhelloNEXT",
		"HTTP/1.1 200 OK\r\nDate: Sun, 06 Dec 2026 08:00:00 GMT\r\nContent-Length: 13\r\n\r\nHello, world!",
		"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nx-a: 1\r\nX-A:  2 \r\n\r\n",
		"HTTP/1.1 503\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\nshort",
		"HTTP/1.1 299 Whatever \t reason \r\nContent-Length: 000\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Utf8: caf\xc3\xa9\r\n\r\n!",
	}
	for _, s := range taken {
		if !sameResponse(t, []byte(s), http.MethodGet) {
			t.Errorf("readHead declined %q", s)
		}
	}
	declined := []string{
		"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n!",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n!",
		"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n!",
		"HTTP/1.1 200 OK\r\n\r\nto the close",
		"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Key: a\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", // head not whole yet
	}
	for _, s := range declined {
		if _, _, ok := readFast([]byte(s), http.MethodGet); ok {
			t.Errorf("readHead took %q", s)
		}
	}
	if _, _, ok := readFast([]byte(taken[0]), http.MethodHead); ok {
		t.Error("readHead took the response to a HEAD")
	}
}

// FuzzResponseHead holds readHead to http.ReadResponse: whatever head it
// takes, the same Response, body and remainder.
func FuzzResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 500 x\r\nContent-Length: 3\r\nConnection: Close, foo\r\nA: b\r\na: c\r\n\r\nab",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Y:\r\n\r\nokHTTP/1.1 200 OK\r\n",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		m := http.MethodGet
		if head {
			m = http.MethodHead
		}
		sameResponse(t, data, m)
	})
}

// TestUpstreamFastWire: the upstream client's exchanges with a Go server
// go through readHead (the body is the connection's clBody) and through
// writeHead (the server sees the head writeHead writes: no default
// User-Agent where the header map has an empty one, keys in order).
func TestUpstreamFastWire(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c := newTestH1Client()
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	req.Header["User-Agent"] = []string{""}
	if _, _, done := writeBoth(t, req); !done {
		t.Fatal("writeHead declined a proxied GET")
	}
	res, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := res.Body.(*h1Body)
	if !ok || b.rc != &b.pc.clb {
		t.Fatalf("response body %T not framed by readHead", res.Body)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || string(body) != "ok" {
		t.Fatalf("body %q, %v", body, err)
	}
	h := <-got
	if _, ua := h["User-Agent"]; ua || h.Get("X-Forwarded-For") != "192.0.2.1" {
		t.Fatalf("upstream saw %v", h)
	}
}
