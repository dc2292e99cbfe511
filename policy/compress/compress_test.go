package compress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

var allEncodings = []string{"zstd", "br", "gzip"}

func newPolicy(t testing.TB, s Spec) *Policy {
	t.Helper()
	if s.Encodings == nil {
		s.Encodings = allEncodings
	}
	if s.Types == nil {
		s.Types = []string{"text/*", "application/json", "image/svg+xml"}
	}
	p, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// serve runs h behind p on a real loopback server, calling finish as the
// proxy will, and reports finish's errors through t.
func serve(t *testing.T, p *Policy, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw, finish := p.Wrap(w, r)
		h(cw, r)
		if err := finish(); err != nil {
			t.Errorf("finish: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// client does not decompress, so the tests see the bytes on the wire.
var client = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// fetch sends a request with the header lines given as "Name: value" and
// returns the response and its raw body.
func fetch(t *testing.T, method, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func decoder(t testing.TB, coding string, r io.Reader) io.Reader {
	t.Helper()
	switch coding {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip header: %v", err)
		}
		return zr
	case "br":
		return brotli.NewReader(r)
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(zr.Close)
		return zr
	}
	t.Fatalf("no decoder for %q", coding)
	return nil
}

func decode(t testing.TB, coding string, raw []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(decoder(t, coding, bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("decoding %s: %v", coding, err)
	}
	return out
}

// jsonBody is n bytes of JSON-like text with the variety of a real API
// response (a seeded generator, so the same every run).
func jsonBody(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu")
	var b bytes.Buffer
	b.WriteString("[")
	for b.Len() < n {
		fmt.Fprintf(&b, `{"id":%d,"uuid":"%08x-%04x","name":"%s %s","city":"%s","active":%t,"score":%.3f,"tags":["%s","%s"]},`,
			r.IntN(1e7), r.Uint32(), r.IntN(1<<16), words[r.IntN(26)], words[r.IntN(26)], words[r.IntN(26)],
			r.IntN(2) == 0, r.Float64()*100, words[r.IntN(26)], words[r.IntN(26)])
	}
	return b.Bytes()[:n]
}

func hasVary(h http.Header, token string) bool { return hasToken(h["Vary"], token) }

func TestNewErrors(t *testing.T) {
	ok := Spec{Encodings: []string{"gzip"}, MinSize: 1024, Types: []string{"text/*"}}
	if _, err := New(ok); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	for name, edit := range map[string]func(*Spec){
		"no encodings":     func(s *Spec) { s.Encodings = nil },
		"unknown encoding": func(s *Spec) { s.Encodings = []string{"deflate"} },
		"upper case":       func(s *Spec) { s.Encodings = []string{"GZIP"} },
		"repeated":         func(s *Spec) { s.Encodings = []string{"gzip", "br", "gzip"} },
		"negative size":    func(s *Spec) { s.MinSize = -1 },
		"huge size":        func(s *Spec) { s.MinSize = MaxMinSize + 1 },
		"no types":         func(s *Spec) { s.Types = nil },
		"no subtype":       func(s *Spec) { s.Types = []string{"text"} },
		"parameters":       func(s *Spec) { s.Types = []string{"text/html; charset=utf-8"} },
		"*/html":           func(s *Spec) { s.Types = []string{"*/html"} },
		"space in type":    func(s *Spec) { s.Types = []string{"text/ht ml"} },
	} {
		s := ok
		edit(&s)
		if _, err := New(s); err == nil {
			t.Errorf("%s: New accepted %+v", name, s)
		}
	}
}

func TestTypeOK(t *testing.T) {
	p := newPolicy(t, Spec{Types: []string{"text/*", "application/json", "Image/SVG+XML"}})
	for ct, want := range map[string]bool{
		"text/html":                       true,
		"text/html; charset=utf-8":        true,
		"TEXT/Plain;charset=UTF-8":        true,
		"text/event-stream":               true,
		"application/json":                true,
		"application/json; charset=utf-8": true,
		"application/json ;charset=utf-8": true,
		"image/svg+xml":                   true,
		"":                                false,
		"text":                            false,
		"text/":                           false,
		"textual/html":                    false,
		"application/jsonx":               false,
		"application/problem+json":        false,
		"image/png":                       false,
		"application/octet-stream":        false,
	} {
		if got := p.typeOK(ct); got != want {
			t.Errorf("typeOK(%q) = %v, want %v", ct, got, want)
		}
	}
	all := newPolicy(t, Spec{Types: []string{"*/*"}})
	if !all.typeOK("image/png") || all.typeOK("") || all.typeOK("nonsense") {
		t.Error("*/* should match every media type and nothing else")
	}
}

func TestRoundTrip(t *testing.T) {
	body := jsonBody(100 << 10)
	p := newPolicy(t, Spec{MinSize: 1024})
	srv := serve(t, p, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Accept-Ranges", "bytes")
		w.Header().Set("Vary", "Origin")
		if r.URL.Query().Has("length") {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		for b := body; len(b) > 0; {
			n := min(len(b), 7000)
			if _, err := w.Write(b[:n]); err != nil {
				t.Error(err)
				return
			}
			b = b[n:]
		}
	})
	for _, enc := range allEncodings {
		for _, query := range []string{"", "?length"} {
			t.Run(enc+query, func(t *testing.T) {
				// Several times: later responses reuse pooled encoders.
				for range 3 {
					res, raw := fetch(t, "GET", srv.URL+"/"+query, "Accept-Encoding: "+enc)
					h := res.Header
					if got := h.Get("Content-Encoding"); got != enc {
						t.Fatalf("Content-Encoding %q, want %q", got, enc)
					}
					if _, ok := h["Content-Length"]; ok || res.ContentLength != -1 {
						t.Errorf("Content-Length kept: %q", h.Get("Content-Length"))
					}
					if !hasVary(h, "Accept-Encoding") || !hasVary(h, "Origin") {
						t.Errorf("Vary %q, want Origin and Accept-Encoding", h.Values("Vary"))
					}
					if got := h.Get("Etag"); got != `W/"v1"` {
						t.Errorf("ETag %q, want it weakened", got)
					}
					if _, ok := h["Accept-Ranges"]; ok {
						t.Error("Accept-Ranges kept on a compressed response")
					}
					if len(raw) >= len(body)/2 {
						t.Errorf("%d bytes compressed to %d", len(body), len(raw))
					}
					if got := decode(t, enc, raw); !bytes.Equal(got, body) {
						t.Fatalf("decoded body differs: %d bytes, want %d", len(got), len(body))
					}
				}
			})
		}
	}
}

func TestNegotiatedOverHTTP(t *testing.T) {
	body := jsonBody(8 << 10)
	p := newPolicy(t, Spec{MinSize: 1024})
	srv := serve(t, p, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(body)
	})
	for ae, want := range map[string]string{
		"gzip, deflate, br, zstd": "zstd",
		"gzip, deflate, br":       "br",
		"br;q=0.5, gzip":          "gzip",
		"identity":                "",
		"*;q=0":                   "",
		"gzip;q=0.5, identity":    "",
	} {
		res, raw := fetch(t, "GET", srv.URL, "Accept-Encoding: "+ae)
		if got := res.Header.Get("Content-Encoding"); got != want {
			t.Errorf("%q: Content-Encoding %q, want %q", ae, got, want)
			continue
		}
		if !hasVary(res.Header, "Accept-Encoding") {
			t.Errorf("%q: no Vary: Accept-Encoding on a compressible response", ae)
		}
		if want == "" && !bytes.Equal(raw, body) {
			t.Errorf("%q: identity body changed", ae)
		}
	}
	// No Accept-Encoding at all: identity (as Caddy and Traefik), but the
	// representation still varies.
	res, raw := fetch(t, "GET", srv.URL)
	if res.Header.Get("Content-Encoding") != "" || !bytes.Equal(raw, body) || !hasVary(res.Header, "Accept-Encoding") {
		t.Errorf("no Accept-Encoding: got %q, Vary %q", res.Header.Get("Content-Encoding"), res.Header.Values("Vary"))
	}
}

func TestMinSize(t *testing.T) {
	const min = 1024
	p := newPolicy(t, Spec{MinSize: min, Encodings: []string{"gzip"}})
	srv := serve(t, p, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		body := jsonBody(n)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Has("length") {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		// In two writes, so an unknown length is decided across them.
		w.Write(body[:n/2])
		w.Write(body[n/2:])
	})
	for _, c := range []struct {
		n       int
		length  bool
		encoded bool
	}{
		{100, true, false},
		{min - 1, true, false},
		{min, true, true},
		{5000, true, true},
		{100, false, false},
		{min - 1, false, false},
		{min, false, true},
		{5000, false, true},
	} {
		url := fmt.Sprintf("%s/?n=%d", srv.URL, c.n)
		if c.length {
			url += "&length"
		}
		res, raw := fetch(t, "GET", url, "Accept-Encoding: gzip")
		encoded := res.Header.Get("Content-Encoding") == "gzip"
		if encoded != c.encoded {
			t.Errorf("%d bytes, length known %v: encoded %v, want %v", c.n, c.length, encoded, c.encoded)
			continue
		}
		body := raw
		if encoded {
			body = decode(t, "gzip", raw)
		} else if res.ContentLength != int64(c.n) {
			t.Errorf("%d bytes sent as is with Content-Length %d", c.n, res.ContentLength)
		}
		if !bytes.Equal(body, jsonBody(c.n)) {
			t.Errorf("%d bytes, length known %v: body differs", c.n, c.length)
		}
		if !hasVary(res.Header, "Accept-Encoding") {
			t.Errorf("%d bytes: eligible response without Vary", c.n)
		}
	}
}

// TestHeldBodyLength checks that a body held below MinSize is sent with an
// explicit Content-Length (a recorder shows the header as it was at
// WriteHeader, where a real server would fill it in by itself).
func TestHeldBodyLength(t *testing.T) {
	p := newPolicy(t, Spec{MinSize: 1024})
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	w, finish := p.Wrap(rec, r)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusCreated)
	w.Write([]byte("hello, "))
	w.Write([]byte("world"))
	if rec.Code != 200 || rec.Body.Len() != 0 {
		t.Fatalf("held body was sent early: code %d, %d bytes", rec.Code, rec.Body.Len())
	}
	if err := finish(); err != nil {
		t.Fatal(err)
	}
	res := rec.Result()
	if res.StatusCode != http.StatusCreated || res.Header.Get("Content-Length") != "12" || rec.Body.String() != "hello, world" {
		t.Errorf("got %d, Content-Length %q, body %q", res.StatusCode, res.Header.Get("Content-Length"), rec.Body)
	}
	if _, err := w.Write([]byte("late")); !errors.Is(err, errFinished) {
		t.Errorf("write after finish: %v", err)
	}
	if err := finish(); err != nil {
		t.Errorf("second finish: %v", err)
	}
}

func TestUntouched(t *testing.T) {
	body := jsonBody(4 << 10)
	p := newPolicy(t, Spec{MinSize: 1024})
	srv := serve(t, p, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("ETag", `"v1"`)
		code := 200
		switch r.URL.Path {
		case "/encoded":
			h.Set("Content-Encoding", "br")
		case "/range":
			h.Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(body)-1, 2*len(body)))
			code = http.StatusPartialContent
		case "/range200":
			h.Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(body)-1, len(body)))
		case "/206":
			code = http.StatusPartialContent
		case "/no-transform":
			h.Set("Cache-Control", "public, No-Transform, max-age=60")
		case "/png":
			h.Set("Content-Type", "image/png")
		case "/no-type":
			h.Del("Content-Type")
		case "/head":
			h.Set("Content-Length", strconv.Itoa(len(body)))
		case "/204":
			w.WriteHeader(http.StatusNoContent)
			return
		case "/304":
			h.Del("Content-Type")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.WriteHeader(code)
		w.Write(body)
	})
	for _, c := range []struct {
		path, method, reqHeader string
		code                    int
		vary                    bool // Vary: Accept-Encoding expected
		etag                    string
	}{
		{"/encoded", "GET", "", 200, false, `"v1"`},
		{"/range", "GET", "", 206, false, `"v1"`},
		{"/range200", "GET", "", 200, false, `"v1"`},
		{"/206", "GET", "", 206, false, `"v1"`},
		{"/no-transform", "GET", "", 200, false, `"v1"`},
		{"/json", "GET", "Cache-Control: no-transform", 200, true, `"v1"`},
		{"/png", "GET", "", 200, false, `"v1"`},
		{"/no-type", "GET", "", 200, false, `"v1"`},
		{"/head", "HEAD", "", 200, true, `"v1"`},
		{"/204", "GET", "", 204, false, `"v1"`},
		// A 304 carries the Vary and the (weakened) ETag the compressed
		// 200 it revalidates had.
		{"/304", "GET", "", 304, true, `W/"v1"`},
	} {
		hdr := []string{"Accept-Encoding: gzip, br, zstd"}
		if c.reqHeader != "" {
			hdr = append(hdr, c.reqHeader)
		}
		res, raw := fetch(t, c.method, srv.URL+c.path, hdr...)
		want := ""
		if c.path == "/encoded" {
			want = "br"
		}
		if got := res.Header.Get("Content-Encoding"); got != want {
			t.Errorf("%s %s: Content-Encoding %q, want %q", c.method, c.path, got, want)
		}
		if res.StatusCode != c.code {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, res.StatusCode, c.code)
		}
		if got := hasVary(res.Header, "Accept-Encoding"); got != c.vary {
			t.Errorf("%s %s: Vary: Accept-Encoding %v, want %v", c.method, c.path, got, c.vary)
		}
		if got := res.Header.Get("Etag"); got != c.etag {
			t.Errorf("%s %s: ETag %q, want %q", c.method, c.path, got, c.etag)
		}
		wantBody := body
		if c.method == "HEAD" || c.code == 204 || c.code == 304 {
			wantBody = nil
		}
		if !bytes.Equal(raw, wantBody) {
			t.Errorf("%s %s: body changed (%d bytes, want %d)", c.method, c.path, len(raw), len(wantBody))
		}
		if c.method == "HEAD" && res.ContentLength != int64(len(body)) {
			t.Errorf("HEAD: Content-Length %d, want %d", res.ContentLength, len(body))
		}
	}
}

func TestWeakETagKept(t *testing.T) {
	p := newPolicy(t, Spec{})
	srv := serve(t, p, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		w.Header().Set("ETag", `W/"x"`)
		w.Write(jsonBody(2000))
	})
	res, _ := fetch(t, "GET", srv.URL, "Accept-Encoding: gzip")
	if res.Header.Get("Content-Encoding") != "gzip" || res.Header.Get("Etag") != `W/"x"` {
		t.Errorf("got %q, ETag %q", res.Header.Get("Content-Encoding"), res.Header.Get("Etag"))
	}
}

func TestUpgradeGetsWriterItself(t *testing.T) {
	p := newPolicy(t, Spec{})
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	w, finish := p.Wrap(rec, r)
	if w != http.ResponseWriter(rec) {
		t.Errorf("Upgrade request got %T, want the writer itself", w)
	}
	if err := finish(); err != nil {
		t.Error(err)
	}
}

// TestStreaming has the handler send its header, then an event, and wait
// each time until the client has decoded what was flushed: a flush must
// get through the encoder and the server to the client.
func TestStreaming(t *testing.T) {
	p := newPolicy(t, Spec{MinSize: 1024})
	events := []string{"data: one\n\n", "data: two, a little longer\n\n", "data: three\n\n"}
	for _, enc := range allEncodings {
		t.Run(enc, func(t *testing.T) {
			next := make(chan struct{}) // the client has read what came so far
			done := make(chan struct{})
			srv := serve(t, p, func(w http.ResponseWriter, r *http.Request) {
				defer close(done)
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(200)
				if err := http.NewResponseController(w).Flush(); err != nil {
					t.Errorf("flush: %v", err)
					return
				}
				for _, e := range events {
					if _, ok := <-next; !ok {
						return
					}
					io.WriteString(w, e)
					w.(http.Flusher).Flush()
				}
			})
			defer func() { <-done }()
			defer close(next)
			req, _ := http.NewRequest("GET", srv.URL, nil)
			req.Header.Set("Accept-Encoding", enc)
			res := within(t, "response header", func() (*http.Response, error) { return client.Do(req) })
			defer res.Body.Close()
			if got := res.Header.Get("Content-Encoding"); got != enc {
				t.Fatalf("Content-Encoding %q, want %q", got, enc)
			}
			var dec io.Reader
			for _, e := range events {
				next <- struct{}{}
				if dec == nil { // the gzip reader wants its header at once
					dec = decoder(t, enc, res.Body)
				}
				buf := make([]byte, len(e))
				within(t, "event "+strconv.Quote(e), func() (int, error) { return io.ReadFull(dec, buf) })
				if string(buf) != e {
					t.Fatalf("got %q, want %q", buf, e)
				}
			}
		})
	}
}

// within runs f and fails the test if it takes more than 10 seconds, the
// sign of bytes stuck in a buffer.
func within[T any](t *testing.T, what string, f func() (T, error)) T {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r.v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not arrive while the handler waited", what)
	}
	panic("unreachable")
}

func TestInformational(t *testing.T) {
	p := newPolicy(t, Spec{})
	body := jsonBody(4000)
	srv := serve(t, p, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	var got1xx []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if h["Link"] == nil {
			t.Error("103 without its Link header")
		}
		got1xx = append(got1xx, code)
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if !slices.Equal(got1xx, []int{103}) {
		t.Errorf("1xx responses %v, want [103]", got1xx)
	}
	if res.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(decode(t, "gzip", raw), body) {
		t.Error("final response not compressed after the 103")
	}
}

// deadlineWriter is an underlying writer with the proxy's SetWriteDeadline.
type deadlineWriter struct {
	*httptest.ResponseRecorder
	deadlines []time.Time
}

func (d *deadlineWriter) SetWriteDeadline(t time.Time) error {
	d.deadlines = append(d.deadlines, t)
	return nil
}

func TestResponseController(t *testing.T) {
	p := newPolicy(t, Spec{})
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept-Encoding", "gzip")

	under := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
	w, finish := p.Wrap(under, r)
	at := time.Now().Add(time.Minute)
	if err := w.(interface{ SetWriteDeadline(time.Time) error }).SetWriteDeadline(at); err != nil {
		t.Fatal(err)
	}
	if err := http.NewResponseController(w).SetWriteDeadline(at); err != nil {
		t.Fatal(err)
	}
	if len(under.deadlines) != 2 || !under.deadlines[1].Equal(at) {
		t.Errorf("deadlines passed through: %v", under.deadlines)
	}
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "flushed early")
	if err := http.NewResponseController(w).Flush(); err != nil {
		t.Fatal(err)
	}
	if !under.Flushed || under.Header().Get("Content-Encoding") != "gzip" {
		t.Errorf("flush through the controller: flushed %v, encoding %q", under.Flushed, under.Header().Get("Content-Encoding"))
	}
	if got := decodePrefix(t, under.Body.Bytes()); got != "flushed early" {
		t.Errorf("flushed bytes decode to %q", got)
	}
	if err := finish(); err != nil {
		t.Fatal(err)
	}
	if got := decode(t, "gzip", under.Body.Bytes()); string(got) != "flushed early" {
		t.Errorf("body %q", got)
	}
	if w.(interface{ Unwrap() http.ResponseWriter }).Unwrap() != under {
		t.Error("Unwrap does not return the underlying writer")
	}

	// Through a real server's writer, which has the deadline via its
	// controller.
	srv := serve(t, p, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline: %v", err)
		}
		if err := rc.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetReadDeadline: %v", err)
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "x")
		if err := rc.Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
	})
	if res, raw := fetch(t, "GET", srv.URL, "Accept-Encoding: gzip"); string(decode(t, "gzip", raw)) != "x" {
		t.Errorf("got %q", res.Header.Get("Content-Encoding"))
	}
}

// decodePrefix decodes a gzip stream that is flushed but not finished.
func decodePrefix(t *testing.T, raw []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("unfinished stream read to %v", err)
	}
	return string(out)
}

// TestEncoderMemory holds the documented bounds (doc.go) on what an encoder
// keeps once it has compressed a large body. It fails if a window or level
// is raised without the doc being updated.
func TestEncoderMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MiB")
	}
	body := jsonBody(2 << 20)
	bound := map[codingID]int64{codingGzip: 1100 << 10, codingZstd: 2200 << 10, codingBr: 4600 << 10}
	for _, id := range serverOrder {
		c := newCoding(id)
		warm := c.get(io.Discard)
		warm.Write(body[:64<<10])
		warm.Close()
		const n = 2
		encs := make([]encoder, n)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range encs {
			encs[i] = c.pool.New().(encoder)
			encs[i].Reset(io.Discard)
			for b := body; len(b) > 0; b = b[32<<10:] {
				encs[i].Write(b[:32<<10]) // as the proxy relays a body
			}
			encs[i].Close()
			encs[i].Reset(nil)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(encs)
		per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
		t.Logf("%s: %d KiB per encoder", id, per>>10)
		if per > bound[id] {
			t.Errorf("%s keeps %d KiB per encoder, over the documented %d KiB", id, per>>10, bound[id]>>10)
		}
	}
}
