package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"

	"github.com/meridian-lb/meridian/acme"
	"github.com/meridian-lb/meridian/routing"
)

// The TLS listener's handshake: a generation (tlsGen) of certificates —
// the certificate store's pairs and the ACME manager's — read by every
// handshake through an atomic pointer, and the client-certificate request
// decided by the routes' compiled TLS policy (tlsPolicy, from the
// handler's installed state), so the route checked at the handshake is the
// route the request is served by.

// modernCiphers are the TLS 1.2 suites served: forward secret AEADs only.
// TLS 1.3 suites are not configurable in Go and are all modern.
var modernCiphers = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// tlsGen is one immutable generation of the certificates a handshake
// reads. Which client CAs a handshake asks for comes from the handler's
// compiled state (tlsPolicy), which changes with the table.
type tlsGen struct {
	certs      *certSet
	acme       *acme.Manager // nil without tls.acme
	minVersion uint16
	base       *tls.Config // no client certificate requested

	// authConfigs caches the handshake configs that ask for client
	// certificates, by CA mask, for one policy: a new table's policy
	// starts the cache over.
	authMu      sync.Mutex
	authPolicy  *tlsPolicy
	authConfigs map[uint64]*tls.Config
}

// serverConfig is the handshake config of a generation: for names no route
// asks a client certificate of (cas nil), or asking for one signed by any of
// cas. Client certificates are requested, not verified, at the handshake:
// each route checks them against its own CA and answers 403, so a route
// without client auth on the same name still works without one.
func (g *tlsGen) serverConfig(cas *x509.CertPool) *tls.Config {
	c := &tls.Config{
		MinVersion:     g.minVersion,
		CipherSuites:   modernCiphers,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: g.getCertificate,
	}
	if g.acme != nil && g.acme.ALPN() {
		// TLS-ALPN-01 validations offer only this protocol: without it in
		// the list their handshakes would fail before GetCertificate.
		c.NextProtos = append(c.NextProtos, acme.ALPNProto)
	}
	if cas != nil {
		c.ClientAuth = tls.RequestClientCert
		c.ClientCAs = cas // sent as acceptable issuers, a hint for clients
		// A session resumed from a ticket issued for a name that asked no
		// certificate would carry none; full handshakes keep it simple.
		c.SessionTicketsDisabled = true
	}
	return c
}

// getCertificate picks the certificate for a handshake by SNI: an ACME
// validation's, then the ACME certificate of a tls.acme domain, then the
// files' (exact, wildcard, default), then, with no files to default to,
// the first ACME domain's.
func (g *tlsGen) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := routing.NormalizeHost(hello.ServerName)
	m := g.acme
	if m != nil {
		if acme.IsChallenge(hello) {
			return m.Certificate(hello)
		}
		if m.Covers(name) {
			if c, err := m.Certificate(hello); err == nil {
				return c, nil
			}
		}
	}
	if c := g.certs.lookup(name); c != nil {
		return c, nil
	}
	if m != nil && !g.certs.failUnknown {
		if c, err := m.Fallback(hello); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("tls: no certificate for server name %q", hello.ServerName)
}

// configFor returns the handshake config for a server name under policy
// pol: the base one, or one that requests a client certificate when a
// route that can take requests for the name requires one, listing the CAs
// those routes accept.
func (g *tlsGen) configFor(pol *tlsPolicy, name string) *tls.Config {
	if pol == nil || !pol.auth {
		return g.base
	}
	mask, asks := pol.caMask(name)
	if !asks {
		return g.base
	}
	g.authMu.Lock()
	defer g.authMu.Unlock()
	if g.authPolicy != pol {
		g.authPolicy, g.authConfigs = pol, map[uint64]*tls.Config{}
	}
	if c := g.authConfigs[mask]; c != nil {
		return c
	}
	pool := x509.NewCertPool()
	for i, ca := range pol.cas {
		if i >= 64 || mask&(1<<i) != 0 {
			for _, c := range ca.Certs {
				pool.AddCert(c)
			}
		}
	}
	c := g.serverConfig(pool)
	g.authConfigs[mask] = c
	return c
}
