package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/config"
)

const (
	// maxProbeBody bounds what an HTTP probe reads of a response body, and
	// what a TCP probe reads while looking for its Receive string.
	maxProbeBody = 64 << 10
	userAgent    = "meridian-health/1"
)

// NetProber is the real Prober: HTTP and HTTPS requests, TCP connects with an
// optional send/expect exchange, and DNS queries over UDP. The zero value is
// ready to use and safe for concurrent use.
//
// An http probe to an IP:port of a target the engine owns keeps its
// connection for the next probe of that target (see keptConn); https
// probes and http probes to a host name dial afresh each time. Each reads
// at most 64 KiB of the body.
type NetProber struct {
	// FreshConnections makes every http probe open its own connection and
	// ask the server to close it, as HAProxy's checks do, instead of
	// keeping one per target between probes.
	FreshConnections bool

	plainOnce sync.Once
	plain     *http.Client
	bufs      sync.Pool // of *bufio.Reader, 4 KiB: http probes' responses
}

// Probe runs t's check once; ctx carries the timeout.
func (p *NetProber) Probe(ctx context.Context, t Target) error {
	r := &probeRun{ctx: ctx}
	if dl, ok := ctx.Deadline(); ok {
		r.deadline = dl
	}
	stop := context.AfterFunc(ctx, r.abort)
	defer stop()
	return p.probe(r, t)
}

// probe runs t's check once, bounded by r: the engine calls it directly,
// without a context (see probeRun).
func (p *NetProber) probe(r *probeRun, t Target) error {
	if t.Check == nil {
		return errors.New("no check")
	}
	switch t.Check.Type {
	case "http", "https":
		return p.probeHTTP(r, t)
	case "tcp":
		return probeTCP(r, t.Address, t.Check)
	case "dns":
		return probeDNS(r, t.Address, t.Check)
	}
	return fmt.Errorf("unknown check type %q", t.Check.Type)
}

// probeCache is per-target state the NetProber reuses between probes: the
// https client, the http request and the kept http connection. A target's
// TLS never changes (a rotated file makes a new target), so the client is
// built once.
type probeCache struct {
	mu        sync.Mutex
	client    *http.Client
	plain     *plainRequest // the http probe's request, built once
	plainKeep bool          // plain leaves out "Connection: close"
	idle      *keptConn     // the http connection kept for the next probe
	closed    bool          // the target is gone: keep no connection
}

func newTransport(tc *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:                  nil, // probes go to the endpoint itself, never through HTTP_PROXY
		DialContext:            (&net.Dialer{}).DialContext,
		TLSClientConfig:        tc,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxProbeBody,
	}
}

func newClient(tr *http.Transport) *http.Client {
	return &http.Client{
		Transport: tr,
		// A redirect is an answer; Expect decides whether it is healthy.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (p *NetProber) client(t Target) (*http.Client, error) {
	if t.Check.Type == "http" {
		p.plainOnce.Do(func() { p.plain = newClient(newTransport(nil)) })
		return p.plain, nil
	}
	c := t.cache
	if c == nil {
		return tlsClient(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		return c.client, nil
	}
	cl, err := tlsClient(t)
	if err != nil {
		return nil, err
	}
	c.client = cl
	return cl, nil
}

// tlsClient builds the https client for t from the check's settings and
// the pool's compiled TLS (its files were read when the table was
// compiled). The server name is the check's server_name, else the pool's,
// else the check's Host header; skip-verify is set by either.
func tlsClient(t Target) (*http.Client, error) {
	c := t.Check
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.ClientTLS != nil {
		tc = t.ClientTLS.Clone()
	} else if t.TLS != nil && (t.TLS.CA != "" || t.TLS.Cert != "" || t.TLS.Key != "") {
		// Never probe with the system roots what the pool pins to a CA.
		return nil, fmt.Errorf("pool TLS files not loaded")
	}
	if c.ServerName != "" {
		tc.ServerName = c.ServerName
	}
	tc.InsecureSkipVerify = tc.InsecureSkipVerify || c.SkipVerify
	if tc.ServerName == "" && c.Host != "" {
		host := c.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		tc.ServerName = host
	}
	return newClient(newTransport(tc)), nil
}

func (p *NetProber) probeHTTP(r *probeRun, t Target) error {
	c := t.Check
	if c.Type == "http" {
		if ap, err := netip.ParseAddrPort(t.Address); err == nil {
			return p.probePlainHTTP(r, ap, t)
		}
	}
	cl, err := p.client(t)
	if err != nil {
		return err
	}
	ctx, release := r.context()
	defer release()
	path := c.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	method := c.Method // config.SetDefaults fills method and expect
	url := string(c.Type) + "://" + t.Address + path
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	setCheckHeaders(req, c)
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if !statusOK(resp.StatusCode, c.Expect) {
		return fmt.Errorf("%s %s: status %d, want %s", method, url, resp.StatusCode, expectString(c.Expect))
	}
	if err != nil {
		return fmt.Errorf("%s %s: reading body: %w", method, url, err)
	}
	if c.Body != "" && !bytes.Contains(body, []byte(c.Body)) {
		return fmt.Errorf("%s %s: body does not contain %q", method, url, c.Body)
	}
	return nil
}

func statusOK(code int, expect []config.StatusRange) bool {
	for _, r := range expect {
		if r.Contains(code) {
			return true
		}
	}
	return false
}

func expectString(expect []config.StatusRange) string {
	parts := make([]string, len(expect))
	for i, r := range expect {
		if r.Lo == r.Hi {
			parts[i] = strconv.Itoa(r.Lo)
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		}
	}
	return strings.Join(parts, ",")
}

// probeTCP connects; with Send it writes those bytes, and with Receive it
// reads until that substring arrives (at most 64 KiB). An IP:port is
// dialled by dialProbe (proberdial.go), anything else by net.Dialer.
func probeTCP(r *probeRun, addr string, c *config.Check) error {
	var conn interface {
		io.ReadWriteCloser
		SetDeadline(time.Time) error
	}
	connectOnly := c.Send == "" && c.Receive == ""
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		// A check that waits for a banner needs the handshake completed.
		// Quick ACKs off only when nothing is read: a server that
		// writes in two segments without TCP_NODELAY would otherwise wait
		// out the prober's delayed ACK (40 ms) before its second one.
		f, err := dialProbe(r, ap, connectOnly, connectOnly)
		if err != nil || connectOnly {
			return err
		}
		conn = f
	} else {
		ctx, release := r.context()
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		release()
		if err != nil {
			return err
		}
		if connectOnly {
			nc.Close()
			return nil
		}
		if err := r.watch(nc); err != nil {
			nc.Close()
			return fmt.Errorf("tcp %s: %w", addr, err)
		}
		conn = nc
	}
	defer conn.Close()
	defer r.unwatch()
	if c.Send != "" {
		if _, err := io.WriteString(conn, c.Send); err != nil {
			return fmt.Errorf("tcp %s: send: %w", addr, err)
		}
	}
	if c.Receive == "" {
		return nil
	}
	want := []byte(c.Receive)
	var got []byte
	chunk := make([]byte, 4096)
	for {
		n, err := conn.Read(chunk)
		got = append(got, chunk[:n]...)
		if bytes.Contains(got, want) {
			return nil
		}
		if len(got) >= maxProbeBody {
			return fmt.Errorf("tcp %s: %q not in the first %d bytes", addr, c.Receive, len(got))
		}
		if err != nil {
			return fmt.Errorf("tcp %s: waiting for %q (got %q): %w", addr, c.Receive, truncate(got, 64), err)
		}
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// CheckConfig reports what only this package can check in cfg's checks: a
// dns check's qtype and rcode are DNS names, which miekg/dns knows and the
// config package does not import. routing.Compile runs it, so a check no
// probe could send is a problem at its line, not a failure on every probe;
// meridian validate also passes it to config.Parse, so these problems are
// listed with the config's own. The result is nil or config.Problems, by
// path (checks.NAME.qtype), joined.
func CheckConfig(cfg *config.Config) error {
	names := make([]string, 0, len(cfg.Checks))
	for name := range cfg.Checks {
		names = append(names, name)
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		errs = append(errs, checkProblems("checks."+name, cfg.Checks[name]))
	}
	return errors.Join(errs...)
}

// checkProblems is CheckConfig for the check at path.
func checkProblems(path string, c *config.Check) error {
	if c == nil || c.Type != config.CheckDNS {
		return nil
	}
	var errs []error
	if _, err := dnsQType(c); err != nil {
		errs = append(errs, config.Problem{Path: path + ".qtype", Msg: err.Error()})
	}
	if _, err := dnsRcode(c); err != nil {
		errs = append(errs, config.Problem{Path: path + ".rcode", Msg: err.Error()})
	}
	return errors.Join(errs...)
}

// dnsQType parses a dns check's query type (config.SetDefaults fills it).
func dnsQType(c *config.Check) (uint16, error) {
	qt, ok := mdns.StringToType[strings.ToUpper(c.QType)]
	if !ok {
		return 0, fmt.Errorf("unknown qtype %q", c.QType)
	}
	return qt, nil
}

// dnsRcode parses the rcode a dns check expects (config.SetDefaults fills
// it).
func dnsRcode(c *config.Check) (int, error) {
	rc, ok := mdns.StringToRcode[strings.ToUpper(c.RCode)]
	if !ok {
		return 0, fmt.Errorf("unknown rcode %q", c.RCode)
	}
	return rc, nil
}

// probeDNS sends one non-recursive query over UDP and compares the rcode.
func probeDNS(r *probeRun, addr string, c *config.Check) error {
	// config.SetDefaults fills qtype and rcode; validation requires qname.
	qt, err := dnsQType(c)
	if err != nil {
		return err
	}
	rc, err := dnsRcode(c)
	if err != nil {
		return err
	}
	qtype, rname := mdns.TypeToString[qt], mdns.RcodeToString[rc]
	qname := mdns.Fqdn(c.QName)
	m := new(mdns.Msg)
	m.SetQuestion(qname, qt)
	m.RecursionDesired = false

	ctx, release := r.context()
	defer release()
	cl := &mdns.Client{Net: "udp"}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) > 0 {
		cl.Timeout = time.Until(dl)
	}
	conn, err := cl.DialContext(ctx, addr)
	if err != nil {
		return fmt.Errorf("dns %s: %w", addr, err)
	}
	defer conn.Close()
	if err := r.watch(conn); err != nil {
		return fmt.Errorf("dns %s: %w", addr, err)
	}
	defer r.unwatch()
	resp, _, err := cl.ExchangeWithConnContext(ctx, m, conn)
	if err != nil {
		return fmt.Errorf("dns %s %s %s: %w", addr, qname, qtype, err)
	}
	if resp.Rcode != rc {
		return fmt.Errorf("dns %s %s %s: rcode %s, want %s", addr, qname, qtype, mdns.RcodeToString[resp.Rcode], rname)
	}
	return nil
}

// setCheckHeaders gives an http(s) probe's request the check's headers:
// the User-Agent, the configured headers (a Host among them sets the
// request's host) and the check's host, which wins.
func setCheckHeaders(req *http.Request, c *config.Check) {
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
}
