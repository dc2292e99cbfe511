package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/config"
)

// rawUpstream is a scripted HTTP/1.1 upstream: for each request head read on
// a connection it calls reply, which writes whatever bytes it likes and
// says whether to keep the connection open. It counts connections.
type rawUpstream struct {
	ln    net.Listener
	conns atomic.Int64
	reqs  atomic.Int64
	reply func(n int64, req *http.Request, w io.Writer) (keep bool)

	mu   sync.Mutex
	open []net.Conn
}

func newRawUpstream(t *testing.T, reply func(n int64, req *http.Request, w io.Writer) bool) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, reply: reply}
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for _, c := range u.open {
			c.Close()
		}
		u.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			u.mu.Lock()
			u.open = append(u.open, c)
			u.mu.Unlock()
			go u.serve(c)
		}
	}()
	return u
}

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if !u.reply(u.reqs.Add(1), req, c) {
			return
		}
	}
}

func (u *rawUpstream) addr() string { return u.ln.Addr().String() }

const okReply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func newTestH1Client() *h1Client {
	d := &net.Dialer{Timeout: 2 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableCompression: true}
	return newH1Client(tr, d, 4, time.Minute, config.DefaultMaxResponseHeaderBytes, nil)
}

// do sends one request through c and reads the whole body.
func do(t *testing.T, c *h1Client, ctx context.Context, method, addr string, body io.Reader) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+"/x", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "")
	res, err := c.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(b), err
}

func idleCount(c *h1Client, addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle[addr])
}

func TestH1ClientReuse(t *testing.T) {
	tests := []struct {
		name      string
		reply     string
		method    string
		wantConns int64
	}{
		{"content length", okReply, "GET", 1},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n", "GET", 1},
		{"no body (204)", "HTTP/1.1 204 No Content\r\n\r\n", "GET", 1},
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "HEAD", 1},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "GET", 3},
		{"HTTP/1.0 read to close", "HTTP/1.0 200 OK\r\n\r\nok", "GET", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newRawUpstream(t, func(_ int64, req *http.Request, w io.Writer) bool {
				io.WriteString(w, tc.reply)
				return !strings.Contains(tc.reply, "close") && !strings.HasPrefix(tc.reply, "HTTP/1.0")
			})
			c := newTestH1Client()
			t.Cleanup(c.CloseIdleConnections)
			for i := range 3 {
				code, _, err := do(t, c, context.Background(), tc.method, u.addr(), nil)
				if err != nil || code/100 != 2 {
					t.Fatalf("request %d: %d %v", i, code, err)
				}
			}
			if got := u.conns.Load(); got != tc.wantConns {
				t.Errorf("%d upstream connections, want %d", got, tc.wantConns)
			}
		})
	}
}

func TestH1ClientStaleConnections(t *testing.T) {
	tests := []struct {
		name  string
		after string // what the upstream does after its first response
	}{
		{"closed after the response", "close"},
		{"stray bytes after the body", "stray"},
	}
	for _, tc := range tests {
		for _, method := range []string{"GET", "POST"} {
			t.Run(tc.name+" "+method, func(t *testing.T) {
				stray := make(chan struct{})
				u := newRawUpstream(t, func(n int64, req *http.Request, w io.Writer) bool {
					io.WriteString(w, okReply)
					if n == 1 && tc.after == "stray" {
						<-stray // the client has taken the body
						io.WriteString(w, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 5\r\n\r\nstray")
					}
					return n != 1 || tc.after != "close"
				})
				c := newTestH1Client()
				t.Cleanup(c.CloseIdleConnections)
				if _, _, err := do(t, c, context.Background(), method, u.addr(), nil); err != nil {
					t.Fatal(err)
				}
				close(stray)
				c.mu.Lock()
				pc := c.idle[u.addr()][0]
				c.mu.Unlock()
				// Wait until the close or the stray bytes reach the socket.
				deadline := time.Now().Add(5 * time.Second)
				for pc.usable() && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				code, body, err := do(t, c, context.Background(), method, u.addr(), nil)
				if err != nil || code != 200 || body != "ok" {
					t.Fatalf("second request: %d %q %v", code, body, err)
				}
				if got := u.conns.Load(); got != 2 {
					t.Errorf("%d upstream connections, want 2 (the stale one dropped)", got)
				}
			})
		}
	}
}

func TestH1ClientRetryRules(t *testing.T) {
	base := func(method string, hdr ...string) *http.Request {
		r, _ := http.NewRequest(method, "http://x/", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	tests := []struct {
		name string
		req  *http.Request
		err  error
		want bool
	}{
		{"nothing written, POST", base("POST"), errNothingWritten, true},
		{"closed idle, GET", base("GET"), errClosedIdle, true},
		{"closed idle, POST", base("POST"), errClosedIdle, false},
		{"closed idle, POST with key", base("POST", "Idempotency-Key", "k"), errClosedIdle, true},
		{"no response byte, HEAD", base("HEAD"), errNoResponseByte, true},
		{"no response byte, DELETE", base("DELETE"), errNoResponseByte, false},
		{"other error, GET", base("GET"), io.ErrUnexpectedEOF, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryable(tc.req, tc.err); got != tc.want {
				t.Errorf("retryable = %t, want %t", got, tc.want)
			}
		})
	}
}

func TestH1ClientCancelAndEarlyClose(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	u := newRawUpstream(t, func(_ int64, req *http.Request, w io.Writer) bool {
		switch req.URL.Query().Get("m") {
		case "hang":
			<-hang
			return false
		case "long":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
			w.Write(make([]byte, 64<<10))
			<-hang
			return false
		}
		io.WriteString(w, okReply)
		return true
	})
	c := newTestH1Client()
	t.Cleanup(c.CloseIdleConnections)

	t.Run("cancel while waiting for the head", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+u.addr()+"/?m=hang", nil)
		start := time.Now()
		_, err := c.RoundTrip(req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the context's", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("took %v to give up", time.Since(start))
		}
	})
	t.Run("body closed early drops the connection", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+u.addr()+"/?m=long", nil)
		res, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(res.Body, make([]byte, 10))
		res.Body.Close()
		if n := idleCount(c, u.addr()); n != 0 {
			t.Errorf("%d idle connections after an early close, want 0", n)
		}
		if _, err := res.Body.Read(make([]byte, 1)); err == nil {
			t.Error("read after Close succeeded")
		}
	})
	t.Run("cancel while reading the body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+u.addr()+"/?m=long", nil)
		res, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := io.Copy(io.Discard, res.Body); err == nil {
			t.Fatal("body read to the end despite the cancel")
		}
	})
}

func TestH1ClientInformational(t *testing.T) {
	u := newRawUpstream(t, func(_ int64, req *http.Request, w io.Writer) bool {
		io.WriteString(w, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"+okReply)
		return true
	})
	c := newTestH1Client()
	t.Cleanup(c.CloseIdleConnections)
	var got []int
	var link string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, code)
		if code == 103 {
			link = h.Get("Link")
		}
		return nil
	}}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	code, body, err := do(t, c, ctx, "GET", u.addr(), nil)
	if err != nil || code != 200 || body != "ok" {
		t.Fatalf("%d %q %v", code, body, err)
	}
	if len(got) != 2 || got[0] != 103 || got[1] != 100 || link != "</a.css>" {
		t.Errorf("1xx seen: %v, Link %q", got, link)
	}
	// The connection is still in step: a second request gets its own answer.
	if code, body, err := do(t, c, context.Background(), "GET", u.addr(), nil); err != nil || code != 200 || body != "ok" {
		t.Fatalf("second: %d %q %v", code, body, err)
	}
	if n := u.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

func TestH1ClientLimitsAndFallback(t *testing.T) {
	u := newRawUpstream(t, func(_ int64, req *http.Request, w io.Writer) bool {
		b := req.Header.Get("X-Echo")
		if req.Method == "POST" {
			b = "posted"
		}
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(b))+"\r\n\r\n"+b)
		return true
	})
	c := newTestH1Client()
	c.maxIdle = 1
	t.Cleanup(c.CloseIdleConnections)

	t.Run("a body goes through the transport", func(t *testing.T) {
		code, body, err := do(t, c, context.Background(), "POST", u.addr(), strings.NewReader("data"))
		if err != nil || code != 200 || body != "posted" {
			t.Fatalf("%d %q %v", code, body, err)
		}
	})
	t.Run("invalid header refused before sending", func(t *testing.T) {
		before := u.reqs.Load()
		req, _ := http.NewRequest("GET", "http://"+u.addr()+"/", nil)
		req.Header["X-Bad"] = []string{"a\r\nInjected: 1"}
		if _, err := c.RoundTrip(req); err == nil {
			t.Fatal("a header value with CRLF was sent")
		}
		if u.reqs.Load() != before {
			t.Error("the upstream saw the request")
		}
	})
	t.Run("idle connections capped", func(t *testing.T) {
		var wg sync.WaitGroup
		res := make([]*http.Response, 3)
		for i := range res {
			req, _ := http.NewRequest("GET", "http://"+u.addr()+"/", nil)
			req.Header.Set("X-Echo", "v")
			r, err := c.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			res[i] = r // three exchanges in flight at once
		}
		for _, r := range res {
			wg.Go(func() { io.Copy(io.Discard, r.Body); r.Body.Close() })
		}
		wg.Wait()
		if n := idleCount(c, u.addr()); n != 1 {
			t.Errorf("%d idle connections, want 1 (max_idle_conns_per_host)", n)
		}
	})
	t.Run("idle connections expire", func(t *testing.T) {
		c2 := newTestH1Client()
		c2.idleTimeout = 30 * time.Millisecond
		t.Cleanup(c2.CloseIdleConnections)
		if _, _, err := do(t, c2, context.Background(), "GET", u.addr(), nil); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for idleCount(c2, u.addr()) != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := idleCount(c2, u.addr()); n != 0 {
			t.Errorf("%d idle connections after the idle timeout", n)
		}
	})
}
