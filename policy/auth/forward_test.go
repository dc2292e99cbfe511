package auth

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// seen is what the auth service saw of a subrequest.
type seen struct {
	method string
	header http.Header
	body   []byte
	length int64
}

// authServer runs handler on 127.0.0.1 and reports each subrequest it
// got on the returned channel.
func authServer(t *testing.T, handler http.HandlerFunc) (string, <-chan seen) {
	t.Helper()
	ch := make(chan seen, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case ch <- seen{r.Method, r.Header.Clone(), body, r.ContentLength}:
		default:
		}
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/auth", ch
}

func newForward(t *testing.T, s ForwardSpec) *Forward {
	t.Helper()
	f, err := NewForward(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// clientRequest is a request as a client would send it through Meridian,
// with a body, hop-by-hop headers and forged forwarding headers.
func clientRequest() *http.Request {
	r := httptest.NewRequest(http.MethodPost, "https://app.example.com/orders/7?expand=items", strings.NewReader(`{"qty":1}`))
	r.Header.Set("Cookie", "session=abc")
	r.Header.Set("Authorization", "Bearer tok")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Length", "9")
	r.Header.Set("Connection", "keep-alive, X-Hop")
	r.Header.Set("X-Hop", "1")
	r.Header.Set("Keep-Alive", "timeout=5")
	r.Header.Set("Te", "trailers")
	r.Header.Set("Proxy-Authorization", "Basic eDp5")
	r.Header.Set("Accept-Encoding", "br")
	r.Header.Set("X-Forwarded-For", "6.6.6.6")
	r.Header.Set("X-Forwarded-User", "admin")
	r.Header.Set("X-Real-Ip", "6.6.6.6")
	r.Header.Set("Forwarded", "for=6.6.6.6")
	return r
}

func TestForwardPass(t *testing.T) {
	url, got := authServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-User", "alice")
		w.Header().Add("X-Groups", "dev")
		w.Header().Add("X-Groups", "ops")
		w.Header().Set("X-Not-Copied", "1")
		io.WriteString(w, "ok")
	})
	f := newForward(t, ForwardSpec{URL: url, CopyHeaders: []string{"x-user", "X-Groups", "X-Missing"}})
	out, err := f.Check(context.Background(), clientRequest(), "203.0.113.9")
	if err != nil {
		t.Fatal(err)
	}
	if !out.Pass || out.Status != 0 || out.Body != nil {
		t.Fatalf("outcome %+v, want a pass", out)
	}
	want := http.Header{"X-User": {"alice"}, "X-Groups": {"dev", "ops"}, "X-Missing": nil}
	if len(out.Copy) != len(want) {
		t.Fatalf("copy %v, want %v", out.Copy, want)
	}
	for k, v := range want {
		if g, ok := out.Copy[k]; !ok || strings.Join(g, "|") != strings.Join(v, "|") {
			t.Errorf("copy %s = %q (present %v), want %q", k, g, ok, v)
		}
	}

	s := <-got
	if s.method != http.MethodGet || len(s.body) != 0 || s.length != 0 {
		t.Errorf("subrequest %s with %d-byte body (length %d), want GET without body", s.method, len(s.body), s.length)
	}
	for k, v := range map[string]string{
		"X-Forwarded-Method": "POST",
		"X-Forwarded-Proto":  "https",
		"X-Forwarded-Host":   "app.example.com",
		"X-Forwarded-Uri":    "/orders/7?expand=items",
		"X-Forwarded-For":    "203.0.113.9",
		"Cookie":             "session=abc",
		"Authorization":      "Bearer tok",
		"Content-Type":       "application/json",
		"Accept-Encoding":    "gzip", // the transport's own, not the client's br
	} {
		if g := s.header.Values(k); len(g) != 1 || g[0] != v {
			t.Errorf("subrequest %s = %q, want %q", k, g, v)
		}
	}
	for _, k := range []string{"X-Hop", "Keep-Alive", "Te", "Proxy-Authorization", "Content-Length", "X-Forwarded-User", "X-Real-Ip", "Forwarded"} {
		if v, ok := s.header[k]; ok {
			t.Errorf("subrequest carries %s: %q", k, v)
		}
	}
}

func TestForwardDenyRelayed(t *testing.T) {
	var redirected atomic.Int64
	big := bytes.Repeat([]byte("x"), 100<<10)
	mux := http.NewServeMux()
	url, _ := authServer(t, mux.ServeHTTP)
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("X-Forwarded-Uri") {
		case "/login-redirect":
			w.Header().Set("Location", "/login")
			w.Header().Set("Set-Cookie", "state=1")
			w.Header().Set("Connection", "X-Secret")
			w.Header().Set("X-Secret", "hop")
			w.WriteHeader(http.StatusFound)
			io.WriteString(w, "see /login")
		case "/big":
			w.Header().Set("WWW-Authenticate", `Basic realm="sso"`)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write(big)
		case "/gzip":
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				t.Error("no gzip offered")
			}
			w.Header().Set("Content-Encoding", "gzip")
			w.WriteHeader(http.StatusForbidden)
			zw := gzip.NewWriter(w)
			zw.Write(big)
			zw.Close()
		}
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) { redirected.Add(1) })
	f := newForward(t, ForwardSpec{URL: url, CopyHeaders: []string{"X-User"}})
	check := func(path string) Outcome {
		t.Helper()
		out, err := f.Check(context.Background(), httptest.NewRequest(http.MethodGet, path, nil), "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if out.Pass || out.Copy != nil {
			t.Fatalf("%s: outcome %+v, want a refusal", path, out)
		}
		return out
	}

	out := check("/login-redirect")
	if out.Status != http.StatusFound || out.Header.Get("Location") != "/login" || out.Header.Get("Set-Cookie") != "state=1" || string(out.Body) != "see /login" {
		t.Errorf("redirect relayed as %d %v %q", out.Status, out.Header, out.Body)
	}
	for _, k := range []string{"Connection", "X-Secret", "Content-Length"} {
		if _, ok := out.Header[k]; ok {
			t.Errorf("relayed header %s", k)
		}
	}
	if n := redirected.Load(); n != 0 {
		t.Errorf("redirect followed %d times", n)
	}

	out = check("/big")
	if out.Status != http.StatusUnauthorized || out.Header.Get("Www-Authenticate") != `Basic realm="sso"` || len(out.Body) != maxDenyBody {
		t.Errorf("big refusal: %d %v, %d-byte body, want 401 with %d bytes", out.Status, out.Header, len(out.Body), maxDenyBody)
	}

	out = check("/gzip")
	if out.Status != http.StatusForbidden || out.Header.Get("Content-Encoding") != "" || !bytes.Equal(out.Body, big[:maxDenyBody]) {
		t.Errorf("gzip refusal: %d %v, body %d bytes decoded=%v", out.Status, out.Header, len(out.Body), bytes.Equal(out.Body, big[:maxDenyBody]))
	}
}

func TestForwardTimeout(t *testing.T) {
	release := make(chan struct{})
	url, _ := authServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Forwarded-Uri") == "/slow-body" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	f := newForward(t, ForwardSpec{URL: url, Timeout: 50 * time.Millisecond})
	for _, path := range []string{"/slow-headers", "/slow-body"} {
		_, err := f.Check(context.Background(), httptest.NewRequest(http.MethodGet, path, nil), "192.0.2.1")
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: got %v, want a deadline error", path, err)
		}
	}
	// The caller's own cancellation is not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.Check(ctx, httptest.NewRequest(http.MethodGet, "/", nil), "192.0.2.1")
	if !errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled: got %v", err)
	}
}

func TestForwardUnreachable(t *testing.T) {
	f := newForward(t, ForwardSpec{URL: "http://" + closedAddr(t) + "/auth"})
	_, err := f.Check(context.Background(), httptest.NewRequest(http.MethodGet, "/", nil), "192.0.2.1")
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "forward auth: ") {
		t.Fatalf("got %v, want a connection error", err)
	}
}

func TestNewForwardErrors(t *testing.T) {
	for _, tc := range []struct {
		spec ForwardSpec
		want string
	}{
		{ForwardSpec{URL: "/auth"}, `forward auth url "/auth": want an absolute http:// or https:// URL`},
		{ForwardSpec{URL: "ftp://auth.test/"}, `forward auth url "ftp://auth.test/": want an absolute http:// or https:// URL`},
		{ForwardSpec{URL: "http://u:secret@auth.test/"}, ""},
		{ForwardSpec{URL: "http://auth.test/", Timeout: -1}, "forward auth timeout -1ns is negative"},
		{ForwardSpec{URL: "http://auth.test/", CopyHeaders: []string{"Bad Header"}}, `forward auth copy_headers: header "Bad Header": not a valid header name`},
		{ForwardSpec{URL: "http://auth.test/", CopyHeaders: []string{"transfer-encoding"}}, `forward auth copy_headers: header "transfer-encoding" cannot be set by an auth policy`},
	} {
		f, err := NewForward(tc.spec, nil)
		if tc.want == "" {
			if err != nil || f.timeout != DefaultForwardTimeout {
				t.Errorf("%+v: %v", tc.spec, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("%+v:\n got %v\nwant %s", tc.spec, err, tc.want)
		}
	}
}
