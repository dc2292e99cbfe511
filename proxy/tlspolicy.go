package proxy

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/meridian-lb/meridian/routing"
)

// tlsPolicy is a table's TLS policy, compiled with its state: whether
// any route has a TLS-related setting (so requests skip the extra route
// match when none has), and the routes that require client certificates,
// for the handshake to ask for one (TLSServer's configFor).
type tlsPolicy struct {
	auth     bool // some route requires a client certificate
	hsts     bool
	redirect bool
	// authRoutes are the routes that require client certificates, and
	// cas the distinct client CAs they use (authRoutes[i].ca indexes it).
	authRoutes []authRoute
	cas        []*routing.ClientCA
}

// authRoute is a route that requires client certificates: the handshake
// asks for one when the route can take requests for the server name.
type authRoute struct {
	route *routing.Route
	ca    int // index into tlsPolicy.cas; -1 when the route names no CA
}

func compileTLSPolicy(routes []*routeState) *tlsPolicy {
	p := &tlsPolicy{}
	index := map[*routing.ClientCA]int{}
	for _, rs := range routes {
		p.hsts = p.hsts || rs.hsts != ""
		p.redirect = p.redirect || rs.redirect
		if !rs.requireCert {
			continue
		}
		p.auth = true
		ar := authRoute{route: rs.route, ca: -1}
		if ca := rs.clientCA; ca != nil {
			i, ok := index[ca]
			if !ok {
				i = len(p.cas)
				index[ca] = i
				p.cas = append(p.cas, ca)
			}
			ar.ca = i
		}
		p.authRoutes = append(p.authRoutes, ar)
	}
	return p
}

// caMask reports whether a handshake for server name must ask for a
// client certificate (asks: a route that can take requests for the name
// requires one; any such route when there is no name, since a client that
// connects by address may ask for any route), and which CAs those routes
// accept: bit i for cas[i], every bit past the 64th.
func (p *tlsPolicy) caMask(name string) (mask uint64, asks bool) {
	for _, a := range p.authRoutes {
		if name != "" && !a.route.MatchesHost(name) {
			continue
		}
		asks = true
		switch {
		case a.ca < 0: // no CA: validate refuses such routes
		case a.ca < 64:
			mask |= 1 << a.ca
		default:
			mask = ^uint64(0)
		}
	}
	return mask, asks
}

// connAuthKey finds a TLS connection's *connAuth in a request context.
type connAuthKey struct{}

// connAuth caches, per connection, which client CAs its certificate was
// verified against, so HTTP/2 requests on one connection verify once.
type connAuth struct {
	mu       sync.Mutex
	verified map[*x509.CertPool]bool
}

// policyHandler enforces the routes' TLS policy on the TLS listener before
// the proxy handler runs. It matches the request with the same table and
// client address the handler will use (Table.Match cleans the path the
// same way), so the route checked is the route served.
type policyHandler struct {
	s    *TLSServer
	next *Handler
}

func (p *policyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && r.TLS.ServerName != "" &&
		routing.NormalizeHost(r.TLS.ServerName) != routing.NormalizeHost(r.Host) {
		// The connection authenticated for another name: its client
		// certificate says nothing about this one (RFC 9110 15.5.20).
		misdirected(w)
		return
	}
	st := p.next.state.Load()
	rs, _ := policyRoute(st, r, func(pol *tlsPolicy) bool { return pol.auth || pol.hsts })
	if rs == nil {
		p.next.serve(w, r, st)
		return
	}
	if rs.requireCert && !p.clientCertOK(w, r, rs) {
		return
	}
	if v := rs.hsts; v != "" && r.TLS != nil {
		// Set before the upstream's headers are copied, so ours comes
		// first, and a user agent only reads the first (RFC 6797 8.1).
		w.Header().Set("Strict-Transport-Security", v)
	}
	p.next.serve(w, r, st)
}

// clientCertOK checks the request's client certificate against the route's
// CA, answering 421 or 403 when it does not pass.
func (p *policyHandler) clientCertOK(w http.ResponseWriter, r *http.Request, rs *routeState) bool {
	if r.TLS == nil {
		forbidden(w, "meridian: this route requires a client certificate over HTTPS\n")
		return false
	}
	if sni := r.TLS.ServerName; sni != "" && routing.NormalizeHost(sni) != routing.NormalizeHost(r.Host) {
		// The handshake decided on client certificates for another name.
		misdirected(w)
		return false
	}
	if len(r.TLS.PeerCertificates) == 0 {
		forbidden(w, "meridian: client certificate required\n")
		return false
	}
	if rs.clientCA == nil {
		// A route that requires a certificate but names no CA: nothing
		// can be verified, so fail closed (validate refuses such routes).
		forbidden(w, "meridian: client certificate not accepted\n")
		return false
	}
	pool := rs.clientCA.Pool
	ca, _ := r.Context().Value(connAuthKey{}).(*connAuth)
	if ca != nil {
		ca.mu.Lock()
		ok, seen := ca.verified[pool]
		ca.mu.Unlock()
		if seen {
			if !ok {
				forbidden(w, "meridian: client certificate not accepted\n")
			}
			return ok
		}
	}
	ok := verifyClient(r.TLS.PeerCertificates, pool)
	if ca != nil {
		ca.mu.Lock()
		if ca.verified == nil {
			ca.verified = map[*x509.CertPool]bool{}
		}
		ca.verified[pool] = ok
		ca.mu.Unlock()
	}
	if !ok {
		forbidden(w, "meridian: client certificate not accepted\n")
	}
	return ok
}

// verifyClient verifies a client's chain (leaf first, then what it sent as
// intermediates) against roots, for client authentication.
func verifyClient(chain []*x509.Certificate, roots *x509.CertPool) bool {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err == nil
}

func misdirected(w http.ResponseWriter) {
	http.Error(w, "meridian: misdirected request: the connection is for another name\n", http.StatusMisdirectedRequest)
}

func forbidden(w http.ResponseWriter, msg string) {
	http.Error(w, msg, http.StatusForbidden)
}

// PlainEdge wraps the proxy handler for the plain-text listener: ACME
// HTTP-01 validations for ts's tls.acme domains are answered first; routes
// with redirect_https get a 308 to the same URL on HTTPS (at ts's port, or
// 443 without ts), unless a trusted proxy says the client already used
// HTTPS; routes that require a client certificate get 403, since plain
// HTTP has none. Everything else goes to h untouched.
func PlainEdge(h *Handler, ts *TLSServer) http.Handler {
	return &plainEdge{next: h, ts: ts}
}

// acmeChallengePath is where ACME HTTP-01 validations ask (RFC 8555 8.3).
const acmeChallengePath = "/.well-known/acme-challenge/"

type plainEdge struct {
	next *Handler
	ts   *TLSServer
}

// Drain passes the shutdown drain to the handler, so the plain listener's
// WebSockets still get their going-away close.
func (p *plainEdge) Drain(ctx context.Context) { p.next.Drain(ctx) }

func (p *plainEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.ts != nil && strings.HasPrefix(r.URL.Path, acmeChallengePath) && p.ts.ServeACMEChallenge(w, r) {
		return
	}
	st := p.next.state.Load()
	rs, trusted := policyRoute(st, r, func(pol *tlsPolicy) bool { return pol.auth || pol.redirect })
	if rs == nil {
		p.next.serve(w, r, st)
		return
	}
	if rs.redirect && !(trusted && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")) {
		port := 443
		if p.ts != nil && p.ts.Port() != 0 {
			port = p.ts.Port()
		}
		u, ok := httpsURL(r, port)
		if !ok {
			http.Error(w, "meridian: bad host\n", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, u, http.StatusPermanentRedirect)
		return
	}
	if rs.requireCert {
		forbidden(w, "meridian: this route requires a client certificate over HTTPS\n")
		return
	}
	p.next.serve(w, r, st)
}

// policyRoute returns the compiled route of st that r will be served by,
// and whether its peer is a trusted proxy, when st has a route policy that
// matters (needs says which); nil when the request can go straight to the
// handler.
func policyRoute(st *tableState, r *http.Request, needs func(*tlsPolicy) bool) (*routeState, bool) {
	if st == nil || !needs(st.tls) {
		return nil, false
	}
	t := st.table
	_, client, trusted := clientAddr(r, t.TrustedProxies)
	route := t.Match(r, client)
	if route == nil {
		return nil, trusted
	}
	return st.routes[route.Index], trusted
}

// httpsURL is r's URL on HTTPS at port: the host without its port, the
// path as the client sent it, and the query (with '#' escaped). It refuses (and the caller
// answers 400) a Host that is not a valid host[:port]: a Location built
// from "[:" or "a:b:c" does not parse, and Go accepts "user@host" in Host,
// which would make the redirect leave for another host.
func httpsURL(r *http.Request, port int) (string, bool) {
	host, ok := redirectHost(r.Host)
	if !ok {
		return "", false
	}
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if port != 443 {
		host += ":" + strconv.Itoa(port)
	}
	u := "https://" + host + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		// A '#' is not allowed in a query (RFC 3986 3.4) but Go's server
		// passes it through; raw, it would start a fragment in the
		// Location and cut the query short.
		u += "?" + strings.ReplaceAll(r.URL.RawQuery, "#", "%23")
	}
	return u, true
}

// redirectHost returns the host of a Host value (RFC 9110 7.2: uri-host
// [":" port]) without its port and trailing dot, and whether it is valid.
// It splits the port as routing.NormalizeHost does (brackets, else a single
// colon), so the redirect names the host the route was matched on. A valid
// host is a bracketed IPv6 address without zone, an IPv4 address, or a DNS
// name of letters, digits, '-' and '_' in labels of 1 to 63 bytes; a port
// is at most five digits up to 65535 (RFC 3986 allows it empty). An
// unbracketed IPv6 address is refused: its last group reads as a port.
func redirectHost(hostport string) (string, bool) {
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", false
		}
		host, port = hostport[1:end], hostport[end+1:]
		if port != "" && port[0] != ':' {
			return "", false
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false
		}
	} else {
		if i := strings.IndexByte(hostport, ':'); i >= 0 {
			host, port = hostport[:i], hostport[i:]
		}
		host = strings.TrimSuffix(host, ".")
		if !validDNSName(host) {
			return "", false
		}
	}
	if port != "" && !validPort(port[1:]) {
		return "", false
	}
	return host, true
}

// validPort reports whether p is an empty or decimal port up to 65535.
func validPort(p string) bool {
	if len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}

// validDNSName reports whether h (without its trailing dot) is a host name
// a URL can carry unescaped: labels of 1 to 63 letters, digits, '-' or '_'
// (underscores appear in real service names), 253 bytes at most. IPv4
// addresses pass as names.
func validDNSName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			label++
			if label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
}
