package health

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"

	"github.com/meridian-lb/meridian/config"
)

// probePlainHTTP is the http probe to an IP:port: the request written on a
// connection of dialProbe's and the response read with http.ReadResponse,
// on the probe's goroutine.
//
// Why: http.Client with keep-alives off costs a Transport connection per
// probe — a dial goroutine, a read loop and a write loop goroutine joined
// by channels, the request built and validated anew — which came to three
// quarters of a core at 5,000 probes a second (BenchmarkProbe5000HTTP).
// The rules stay the client's: the same request (method, path, Host,
// headers, User-Agent; no Accept-Encoding, as DisableCompression; the
// connection closed after), 1xx responses skipped, redirects not followed,
// a 64 KiB cap on the response head and on the body read, and errors worded
// as the client's (`Get "http://ADDR/PATH": ...`, the context's error on a
// timeout).
func probePlainHTTP(ctx context.Context, ap netip.AddrPort, t Target) error {
	pr, err := plainRequestFor(t)
	if err != nil {
		return err
	}
	c := t.Check
	fail := func(err error) error {
		err = ctxErr(ctx, err)
		return &url.Error{Op: pr.op, URL: pr.url, Err: err}
	}
	conn, err := dialProbe(ctx, ap, false)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	defer closeOnCancel(ctx, conn)()
	if _, err := conn.Write(pr.raw); err != nil {
		return fail(err)
	}
	lr := &io.LimitedReader{R: conn, N: maxProbeBody + 4096}
	br := bufPool.Get().(*bufio.Reader)
	br.Reset(lr)
	defer func() {
		br.Reset(nil)
		bufPool.Put(br)
	}()
	var resp *http.Response
	for range config.MaxInformationalResponses + 1 {
		resp, err = http.ReadResponse(br, pr.req)
		if err != nil {
			if lr.N <= 0 {
				err = fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", maxProbeBody)
			}
			return fail(err)
		}
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		resp = nil
	}
	if resp == nil {
		return fail(errors.New("net/http: too many 1xx informational responses"))
	}
	lr.N += maxProbeBody + int64(br.Buffered())
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if !statusOK(resp.StatusCode, c.Expect) {
		return fmt.Errorf("%s %s: status %d, want %s", c.Method, pr.url, resp.StatusCode, expectString(c.Expect))
	}
	if err != nil {
		return fmt.Errorf("%s %s: reading body: %w", c.Method, pr.url, ctxErr(ctx, err))
	}
	if c.Body != "" && !bytes.Contains(body, []byte(c.Body)) {
		return fmt.Errorf("%s %s: body does not contain %q", c.Method, pr.url, c.Body)
	}
	return nil
}

// ctxErr is the context's error for an I/O error the context caused: the
// connection's deadline is the context's, and its timer may not have
// fired yet when the read times out.
func ctxErr(ctx context.Context, err error) error {
	if e := ctx.Err(); e != nil {
		return e
	}
	if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}

var bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// plainRequest is an http probe's request, as bytes, with what reading the
// response and wording errors need.
type plainRequest struct {
	raw []byte
	req *http.Request // method, for ReadResponse
	url string
	op  string // "Get", as http.Client names the method in errors
}

// plainRequestFor returns t's request, built once per target (t.cache).
func plainRequestFor(t Target) (*plainRequest, error) {
	if t.cache == nil {
		return buildPlainRequest(t)
	}
	t.cache.mu.Lock()
	defer t.cache.mu.Unlock()
	if t.cache.plain == nil {
		pr, err := buildPlainRequest(t)
		if err != nil {
			return nil, err
		}
		t.cache.plain = pr
	}
	return t.cache.plain, nil
}

// buildPlainRequest builds the request http.Client would send for the
// probe: http.NewRequest's URL and header rules, Request.Write's form.
func buildPlainRequest(t Target) (*plainRequest, error) {
	c := t.Check
	path := c.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := "http://" + t.Address + path
	req, err := http.NewRequest(c.Method, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	for k, v := range c.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if c.Host != "" {
		req.Host = c.Host
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, &url.Error{Op: opName(c.Method), URL: u, Err: fmt.Errorf("net/http: invalid header field name %q", k)}
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, &url.Error{Op: opName(c.Method), URL: u, Err: fmt.Errorf("net/http: invalid header field value for %q", k)}
			}
		}
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", req.Method, req.URL.RequestURI(), host)
	keys := make([]string, 0, len(req.Header))
	for k := range req.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range req.Header[k] {
			fmt.Fprintf(&b, "%s: %s\r\n", k, strings.TrimSpace(v))
		}
	}
	b.WriteString("Connection: close\r\n\r\n")
	return &plainRequest{raw: b.Bytes(), req: &http.Request{Method: req.Method}, url: u, op: opName(c.Method)}, nil
}

// opName is the method as http.Client's errors name it ("Get").
func opName(method string) string {
	if method == "" {
		return "Get"
	}
	return method[:1] + strings.ToLower(method[1:])
}
