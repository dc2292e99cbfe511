package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/meridian-lb/meridian/dns"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/proxy"
	"github.com/meridian-lb/meridian/routing"
)

// explainHandler serves GET /api/v1/explain for both layers: with HTTP
// parameters (host, path, method, header, cookie) the HTTP explanation
// (routing.Table.ExplainHTTP), otherwise the DNS one, unchanged
// (dns.ExplainHandler). client is shared. One endpoint answers both
// because an operator chasing "why does this user land there" should not
// have to know which layer to ask first. status gives endpoint health
// reasons.
//
// forward, when not nil, says whether a request of a service with
// on_all_down: forward would be forwarded to the next region now
// (fleet.go); the answer then carries it, and its outcome says so.
func explainHandler(live *routing.Live, status func(pool, address string) (health.Status, bool), forward func(t *routing.Table, service string) *proxy.ForwardExplanation) http.Handler {
	dnsExplain := dns.ExplainHandler(live)
	explainHTTPParams := []string{"host", "path", "method", "header", "cookie"}
	explainDNSParams := []string{"qname", "qtype", "ecs"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		isHTTP, isDNS := hasAny(q, explainHTTPParams), hasAny(q, explainDNSParams)
		switch {
		case isHTTP && isDNS:
			explainError(w, http.StatusBadRequest, fmt.Errorf("ask about an HTTP request (%s) or a DNS query (%s), not both",
				strings.Join(explainHTTPParams, ", "), strings.Join(explainDNSParams, ", ")))
			return
		case !isHTTP && !isDNS && !q.Has("client"):
			explainError(w, http.StatusBadRequest, fmt.Errorf("want qname= (and qtype=, ecs=) for a DNS query, or host= and path= (and method=, header=Name:value, cookie=name=value) for an HTTP request; client= for either"))
			return
		case !isHTTP:
			dnsExplain.ServeHTTP(w, r)
			return
		}
		req, client, err := explainRequest(q, r.RemoteAddr)
		if err != nil {
			explainError(w, http.StatusBadRequest, err)
			return
		}
		t := live.Load()
		if t == nil {
			explainError(w, http.StatusServiceUnavailable, fmt.Errorf("no routing table yet"))
			return
		}
		ex := t.ExplainHTTP(req, client, routing.ExplainOptions{Status: status})
		if forward != nil && ex.Service != nil {
			if fw := forward(t, ex.Service.Name); fw != nil {
				if fw.Forward && fw.To != "" && req.Header.Get(proxy.HopHeader) == "" {
					ex.Outcome = "forwarded to an edge of region " + fw.To + " (" + strings.Join(fw.Edges, ", ") + "): no pool of this instance's region " + fw.Region + " is available"
					ex.Pool, ex.Endpoint = "", ""
				}
				writeJSON(w, struct {
					*routing.HTTPExplanation
					Forward *proxy.ForwardExplanation `json:"forward"`
				}{ex, fw})
				return
			}
		}
		writeJSON(w, ex)
	})
}

func hasAny(q url.Values, names []string) bool {
	for _, n := range names {
		if q.Has(n) {
			return true
		}
	}
	return false
}

// explainError answers like dns.ExplainHandler does: JSON {"error": ...}.
func explainError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// explainRequest builds the request the HTTP explanation is about from the
// query: method (default GET), host, path (a request target, with its
// query; default /), header=Name:value and cookie=name=value (repeatable),
// and client (default the caller's address, else 127.0.0.1). A Host header
// stands for host= when that is not given, because the proxy matches the
// request's host, never a raw header.
func explainRequest(q url.Values, remote string) (*http.Request, netip.Addr, error) {
	method := q.Get("method")
	if method == "" {
		method = http.MethodGet
	}
	if !validToken(method) {
		return nil, netip.Addr{}, fmt.Errorf("method: %q is not an HTTP method", method)
	}
	target := q.Get("path")
	if target == "" {
		target = "/"
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("path: want a request path such as /api/v1?x=1: %w", err)
	}
	host := q.Get("host")
	if host == "" && u.Host != "" { // an absolute URL
		host = u.Host
	}
	u.Scheme, u.Host, u.User = "", "", nil
	hdr := http.Header{}
	for _, h := range q["header"] {
		name, val, ok := strings.Cut(h, ":")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if !ok || !validToken(name) || strings.ContainsAny(val, "\r\n\x00") {
			return nil, netip.Addr{}, fmt.Errorf("header: want Name:value, not %q", h)
		}
		if strings.EqualFold(name, "Host") {
			if host != "" && !strings.EqualFold(host, val) {
				return nil, netip.Addr{}, fmt.Errorf("header Host %q and host %q disagree", val, host)
			}
			host = val
			continue
		}
		hdr.Add(name, val)
	}
	var cookies []string
	for _, c := range q["cookie"] {
		name, _, ok := strings.Cut(c, "=")
		if !ok || !validToken(strings.TrimSpace(name)) || strings.ContainsAny(c, ";\r\n\x00") {
			return nil, netip.Addr{}, fmt.Errorf("cookie: want name=value, not %q", c)
		}
		cookies = append(cookies, strings.TrimSpace(c))
	}
	if len(cookies) > 0 {
		hdr.Add("Cookie", strings.Join(cookies, "; "))
	}
	client, err := explainClient(q.Get("client"), remote)
	if err != nil {
		return nil, netip.Addr{}, err
	}
	r := &http.Request{Method: method, Host: host, URL: u, Header: hdr, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, RemoteAddr: client.String()}
	return r, client, nil
}

// explainClient parses client= (an address, or address:port), defaulting
// to the caller's address and then to 127.0.0.1.
func explainClient(s, remote string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		if ap, err := netip.ParseAddrPort(remote); err == nil {
			return ap.Addr().Unmap(), nil
		}
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a, nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), nil
	}
	return netip.Addr{}, fmt.Errorf("client: want an IP address, not %q", s)
}

// validToken reports whether s is an RFC 9110 token: a method or a header
// or cookie name.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
