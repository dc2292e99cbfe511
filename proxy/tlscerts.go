package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/meridian-lb/meridian/acme"
	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
)

// certSet is one immutable generation of serving certificates, indexed for
// the SNI lookup: exact names first, then the longest wildcard, then the
// default (the first configured pair), unless unknown names fail.
type certSet struct {
	exact       map[string]*tls.Certificate
	wildcard    map[string]*tls.Certificate // "*.example.com" keyed ".example.com"
	def         *tls.Certificate
	failUnknown bool
}

// lookup returns the certificate for a normalised server name, or nil when
// no certificate covers it and unknown names fail.
func (s *certSet) lookup(name string) *tls.Certificate {
	if name != "" {
		if c := s.exact[name]; c != nil {
			return c
		}
		// A wildcard covers exactly one label: a.example.com, not
		// b.a.example.com (RFC 6125 6.4.3).
		if i := strings.IndexByte(name, '.'); i > 0 {
			if c := s.wildcard[name[i:]]; c != nil {
				return c
			}
		}
	}
	if s.failUnknown {
		return nil
	}
	return s.def
}

// loadedPair is one certificate/key pair as last read successfully.
type loadedPair struct {
	pair config.CertPair
	sum  [32]byte // of the cert and key bytes
	cert *tls.Certificate
}

// loadPair reads and parses a pair. The leaf must carry at least one DNS
// name (or, lacking SANs, a common name) for SNI selection, unless it is the
// default; an expired leaf is loaded (clients decide) but reported.
func loadPair(p config.CertPair) (*loadedPair, error) {
	cb, err := os.ReadFile(p.Cert)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", p.Cert, err)
	}
	kb, err := os.ReadFile(p.Key)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", p.Key, err)
	}
	sum := sha256.Sum256(append(append(slices.Clip(cb), 0), kb...))
	c, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return &loadedPair{pair: p, sum: sum}, fmt.Errorf("pair %s / %s: %w", p.Cert, p.Key, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return &loadedPair{pair: p, sum: sum}, fmt.Errorf("certificate %s: %w", p.Cert, err)
		}
	}
	return &loadedPair{pair: p, sum: sum, cert: &c}, nil
}

// certNames lists the names a leaf serves, normalised: its DNS SANs, or its
// common name when it has none (old self-signed certificates).
func certNames(leaf *x509.Certificate) []string {
	names := leaf.DNSNames
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = []string{leaf.Subject.CommonName}
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, routing.NormalizeHost(n))
	}
	return out
}

// buildCertSet indexes pairs in config order: an earlier pair wins a name
// two pairs both cover, and the first pair is the default.
func buildCertSet(pairs []*loadedPair, failUnknown bool) *certSet {
	s := &certSet{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}, failUnknown: failUnknown}
	add := func(c *tls.Certificate) {
		if s.def == nil {
			s.def = c
		}
		for _, n := range certNames(c.Leaf) {
			if strings.HasPrefix(n, "*.") {
				if _, dup := s.wildcard[n[1:]]; !dup {
					s.wildcard[n[1:]] = c
				}
				continue
			}
			if _, dup := s.exact[n]; !dup {
				s.exact[n] = c
			}
		}
	}
	for _, p := range pairs {
		if p.cert != nil {
			add(p.cert)
		}
	}
	return s
}

// pairSum hashes a pair's files, so the watcher (which pokes on every
// event in the directories) can skip content it has already seen.
func pairSum(p config.CertPair) ([32]byte, error) {
	cb, err1 := os.ReadFile(p.Cert)
	kb, err2 := os.ReadFile(p.Key)
	if err := errors.Join(err1, err2); err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(append(append(slices.Clip(cb), 0), kb...)), nil
}

// CertStatus describes one served certificate for the admin API.
type CertStatus struct {
	Cert     string    `json:"cert"`
	Key      string    `json:"key"`
	Names    []string  `json:"names,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	// Error is why the files on disk are not served (the previous pair,
	// if any, still is).
	Error string `json:"error,omitempty"`
}

// TLSStatus is the state of the TLS listener's certificates, for
// /api/v1/table: like a rejected config, a rejected certificate is shown
// here while the last good one keeps serving.
type TLSStatus struct {
	// OK is false while any configured file is not served as it is on disk.
	OK bool `json:"ok"`
	// Error joins the problems of the last reload.
	Error string `json:"error,omitempty"`
	// At is when files were last read.
	At           time.Time    `json:"at"`
	Certificates []CertStatus `json:"certificates"`
	// ACME lists the tls.acme domains: expiry of the certificate served,
	// and the last failure to obtain or renew it.
	ACME []acme.Status `json:"acme,omitempty"`
}
