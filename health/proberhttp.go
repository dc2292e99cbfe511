package health

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

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
// headers, User-Agent; no Accept-Encoding, as DisableCompression), 1xx
// responses skipped, redirects not followed, a 64 KiB cap on the response
// head and on the body read, and errors worded as the client's (`Get
// "http://ADDR/PATH": ...`, the context's error on a timeout).
//
// A target the engine owns keeps its connection between probes (see
// keptConn) unless the check says reuse_connection: false or the prober's
// FreshConnections is set; a target built by hand (no cache) sends
// "Connection: close" and dials every time.
func (p *NetProber) probePlainHTTP(r *probeRun, ap netip.AddrPort, t Target) error {
	keep := t.cache != nil && !p.FreshConnections && (t.Check.ReuseConnection == nil || *t.Check.ReuseConnection)
	pr, err := plainRequestFor(t, keep)
	if err != nil {
		return err
	}
	c := t.Check
	fail := func(err error) error { return &url.Error{Op: pr.op, URL: pr.url, Err: r.cause(err)} }
	var kc *keptConn
	if keep {
		kc = t.cache.takeConn()
	}
	if kc != nil && kc.uses >= keptProbes {
		// Now and then a fresh connection, so a server that no longer
		// accepts any (out of descriptors, a stuck accept loop) cannot
		// look healthy on the one it accepted long ago.
		kc.close()
		kc = nil
	}
	for {
		var early time.Time // the reused connection's own deadline
		if kc != nil {
			// The deadline first: the peek fails on the last probe's.
			if err := r.watch(kc.f); err != nil {
				kc.close()
				return fail(err)
			}
			if !kc.live() {
				r.unwatch()
				kc.close()
				kc = nil
			} else if !r.deadline.IsZero() {
				// Half the time left: a connection a middlebox dropped
				// without a word (a NAT's idle timeout) answers nothing,
				// and the rest of the time goes to a fresh one.
				early = time.Now().Add(time.Until(r.deadline) / 2)
				kc.f.SetDeadline(early)
			}
		}
		reused := kc != nil
		if !reused {
			f, err := dialProbe(r, ap, false, false)
			if err != nil {
				return fail(err)
			}
			kc = newKeptConn(f)
		}
		ex := p.exchange(r, kc.f, pr, c)
		r.unwatch()
		silent := errors.Is(ex.err, os.ErrDeadlineExceeded) && !early.IsZero() && time.Now().Before(r.deadline)
		if reused && (ex.status == 0 || ex.status == http.StatusRequestTimeout) &&
			r.done() == nil && (silent || !errors.Is(ex.err, os.ErrDeadlineExceeded)) {
			// The kept connection failed before a response to this
			// request: the server closed it as the request went out
			// (idle timeout, restart), what came was left over from
			// before (bytes sent unasked, an idle connection's 408), or
			// nothing came back in half the time. That says nothing of
			// the server's health: the probe goes again, at once and
			// within its deadline, on a fresh connection.
			kc.close()
			kc = nil
			continue
		}
		var err error
		switch {
		case ex.status == 0:
			err = fail(ex.err)
		case !ex.statusOK:
			err = fmt.Errorf("%s %s: status %d, want %s", c.Method, pr.url, ex.status, expectString(c.Expect))
		case ex.err != nil:
			err = fmt.Errorf("%s %s: reading body: %w", c.Method, pr.url, r.cause(ex.err))
		case ex.bodyMissing:
			err = fmt.Errorf("%s %s: body does not contain %q", c.Method, pr.url, c.Body)
		}
		// Only a clean success keeps the connection, so a failure is
		// always confirmed on a fresh one.
		if keep && err == nil && ex.reusable {
			kc.uses++
			t.cache.putConn(kc)
		} else {
			kc.close()
		}
		return err
	}
}

// exchanged is what one request on a connection came to.
type exchanged struct {
	status      int   // 0: no final response head was read
	statusOK    bool  // status is one the check expects
	bodyMissing bool  // the body lacks the check's Body substring
	err         error // writing, reading the head, or reading the body
	reusable    bool  // the connection may carry the next probe
}

// exchange writes pr on conn and reads the response: 1xx skipped, the head
// capped at 64 KiB, then at most 64 KiB of the body. The connection is
// reusable only if the response was read completely and nothing more came
// with it, and the server did not ask to close (Connection: close, an
// HTTP/1.0 answer, a body delimited by the close).
func (p *NetProber) exchange(r *probeRun, conn io.ReadWriter, pr *plainRequest, c *config.Check) (ex exchanged) {
	if _, err := conn.Write(pr.raw); err != nil {
		ex.err = err
		return ex
	}
	r.waiting() // the answer takes the server a moment
	const headCap = maxProbeBody + 4096
	lr := &io.LimitedReader{R: conn, N: headCap}
	br, _ := p.bufs.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(nil, 4096)
	}
	br.Reset(lr)
	defer func() {
		br.Reset(nil)
		p.bufs.Put(br)
	}()
	sh, simple, err := readSimpleHead(br, pr.req.Method == http.MethodHead)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // as http.ReadResponse words it
		}
		ex.err = err
		return ex
	}
	if simple {
		ex.status, ex.statusOK = sh.status, statusOK(sh.status, c.Expect)
		lr.N += maxProbeBody + 1 + int64(br.Buffered())
		n := min(sh.length, maxProbeBody)
		var got int
		if c.Body != "" && ex.statusOK {
			b := make([]byte, n)
			got, err = io.ReadFull(br, b)
			ex.bodyMissing = !bytes.Contains(b[:got], []byte(c.Body))
		} else {
			got, err = br.Discard(int(n))
		}
		if err == io.EOF || (err == nil && int64(got) < n) {
			err = io.ErrUnexpectedEOF
		}
		ex.err = err
		ex.reusable = err == nil && sh.length <= maxProbeBody && !sh.close && br.Buffered() == 0
		return ex
	}
	var resp *http.Response
	for range config.MaxInformationalResponses + 1 {
		resp, err = http.ReadResponse(br, pr.req)
		if err != nil {
			if lr.N <= 0 {
				err = fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", maxProbeBody)
			}
			ex.err = err
			return ex
		}
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		resp = nil
	}
	if resp == nil {
		ex.err = errors.New("net/http: too many 1xx informational responses")
		return ex
	}
	ex.status, ex.statusOK = resp.StatusCode, statusOK(resp.StatusCode, c.Expect)
	// One byte past the cap tells a body that ends there from a longer one.
	lr.N += maxProbeBody + 1 + int64(br.Buffered())
	body := io.LimitReader(resp.Body, maxProbeBody+1)
	var n int64
	if c.Body != "" && ex.statusOK {
		b, rerr := io.ReadAll(body)
		n, err = int64(len(b)), rerr
		ex.bodyMissing = !bytes.Contains(b[:min(len(b), maxProbeBody)], []byte(c.Body))
	} else {
		n, err = io.Copy(io.Discard, body)
	}
	ex.err = err
	ex.reusable = err == nil && n <= maxProbeBody && !resp.Close &&
		resp.StatusCode != http.StatusSwitchingProtocols && br.Buffered() == 0
	return ex
}

// plainRequest is an http probe's request, as bytes, with what reading the
// response and wording errors need.
type plainRequest struct {
	raw []byte
	req *http.Request // method, for ReadResponse
	url string
	op  string // "Get", as http.Client names the method in errors
}

// plainRequestFor returns t's request, built once per target (t.cache).
// keep leaves out "Connection: close".
func plainRequestFor(t Target, keep bool) (*plainRequest, error) {
	if t.cache == nil {
		return buildPlainRequest(t, keep)
	}
	t.cache.mu.Lock()
	defer t.cache.mu.Unlock()
	if t.cache.plain == nil || t.cache.plainKeep != keep {
		pr, err := buildPlainRequest(t, keep)
		if err != nil {
			return nil, err
		}
		t.cache.plain, t.cache.plainKeep = pr, keep
	}
	return t.cache.plain, nil
}

// buildPlainRequest builds the request http.Client would send for the
// probe: http.NewRequest's URL and header rules, Request.Write's form.
// Without keep it asks the server to close the connection after.
func buildPlainRequest(t Target, keep bool) (*plainRequest, error) {
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
	setCheckHeaders(req, c)
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
	if !keep {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	return &plainRequest{raw: b.Bytes(), req: &http.Request{Method: req.Method}, url: u, op: opName(c.Method)}, nil
}

// opName is the method as http.Client's errors name it ("Get").
func opName(method string) string {
	if method == "" {
		return "Get"
	}
	return method[:1] + strings.ToLower(method[1:])
}
