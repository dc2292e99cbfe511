package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	// maxDenyBody bounds the body of a refusal relayed to the client: a
	// login page or an error document, not a download.
	maxDenyBody = 64 << 10

	// DefaultForwardTimeout is the subrequest timeout when the spec gives
	// none (config.DefaultForwardAuthTimeout).
	DefaultForwardTimeout = 2 * time.Second
)

// ForwardSpec describes one forward-auth policy.
type ForwardSpec struct {
	// URL is the auth service's absolute http(s) URL.
	URL string
	// CopyHeaders are copied from a 2xx answer onto the upstream request.
	CopyHeaders []string
	// Timeout bounds the subrequest, answer body included; 0 means
	// DefaultForwardTimeout.
	Timeout time.Duration
}

// Forward asks an auth service about each request. It is immutable and
// safe for concurrent use.
type Forward struct {
	url     string
	copy    []string // canonical names
	timeout time.Duration
	client  *http.Client
}

// Outcome is the auth service's decision.
type Outcome struct {
	// Pass is true for a 2xx answer.
	Pass bool
	// Copy holds, on a pass, one entry per CopyHeaders name, with no
	// values when the answer lacked it (see ApplyHeaders).
	Copy http.Header
	// Status, Header and Body are, on a refusal, the answer to relay:
	// headers without hop-by-hop ones and Content-Length (the body may be
	// cut), body at most 64 KiB.
	Status int
	Header http.Header
	Body   []byte
}

// NewForward compiles a forward-auth policy using client (nil means a
// default client). The client is copied so that redirects are not followed
// (they are the auth service's answer to relay) and no cookie jar is used.
func NewForward(s ForwardSpec, client *http.Client) (*Forward, error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, fmt.Errorf("forward auth url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("forward auth url %q: want an absolute http:// or https:// URL", u.Redacted())
	}
	if s.Timeout < 0 {
		return nil, fmt.Errorf("forward auth timeout %v is negative", s.Timeout)
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultForwardTimeout
	}
	f := &Forward{url: s.URL, timeout: s.Timeout}
	seen := make(map[string]bool)
	for _, h := range s.CopyHeaders {
		k, err := checkHeaderName(h)
		if err != nil {
			return nil, fmt.Errorf("forward auth copy_headers: %w", err)
		}
		if !seen[k] {
			seen[k] = true
			f.copy = append(f.copy, k)
		}
	}
	if client == nil {
		client = &http.Client{}
	}
	c := *client
	c.Jar = nil
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	f.client = &c
	return f, nil
}

// Check asks the auth service about r, whose client is clientIP. A 2xx
// answer passes; any other answer is a refusal to relay. An error means
// the service could not be asked or did not answer in time: it wraps
// context.DeadlineExceeded on a timeout (answer 504) and is otherwise a
// failure to reach or read it (answer 503); it wraps context.Canceled when
// ctx itself ended.
func (f *Forward) Check(ctx context.Context, r *http.Request, clientIP string) (Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return Outcome{}, fmt.Errorf("forward auth: %w", err)
	}
	req.Header = subrequestHeader(r.Header)
	req.Header.Set("X-Forwarded-Method", r.Method)
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	req.Header.Set("X-Forwarded-Proto", proto)
	req.Header.Set("X-Forwarded-Host", r.Host)
	req.Header.Set("X-Forwarded-Uri", r.URL.RequestURI())
	if clientIP != "" {
		req.Header.Set("X-Forwarded-For", clientIP)
	}

	resp, err := f.client.Do(req)
	if err != nil {
		return Outcome{}, f.fail(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Drain a small body so the connection can be reused.
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxDenyBody))
		out := Outcome{Pass: true}
		if len(f.copy) > 0 {
			out.Copy = make(http.Header, len(f.copy))
			for _, k := range f.copy {
				if v := resp.Header[k]; len(v) > 0 {
					out.Copy[k] = append([]string(nil), v...)
				} else {
					out.Copy[k] = nil
				}
			}
		}
		return out, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDenyBody))
	if err != nil {
		return Outcome{}, f.fail(ctx, fmt.Errorf("reading the answer: %w", err))
	}
	h := resp.Header.Clone()
	removeHopByHop(h)
	h.Del("Content-Length")
	return Outcome{Status: resp.StatusCode, Header: h, Body: body}, nil
}

// fail wraps a subrequest error, making sure a timeout reads as
// context.DeadlineExceeded whichever layer noticed it.
func (f *Forward) fail(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("forward auth: %w (%w)", cerr, err)
	}
	return fmt.Errorf("forward auth: %w", err)
}

// subrequestHeader is the client's request header as the auth service
// should see it: no hop-by-hop or body headers, no Accept-Encoding (the
// transport then asks for gzip itself and hands back a decoded body, which
// can be cut at 64 KiB safely), and no forwarding headers the client could
// have forged; Check sets the X-Forwarded-* ones itself.
func subrequestHeader(in http.Header) http.Header {
	h := in.Clone()
	if h == nil {
		h = make(http.Header)
	}
	removeHopByHop(h)
	for _, k := range [...]string{"Content-Length", "Expect", "Accept-Encoding", "Forwarded", "X-Real-Ip"} {
		delete(h, k)
	}
	for k := range h {
		if strings.HasPrefix(k, "X-Forwarded-") {
			delete(h, k)
		}
	}
	return h
}
