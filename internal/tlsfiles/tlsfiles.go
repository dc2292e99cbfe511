package tlsfiles

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/meridian-lb/meridian/config"
)

// UpstreamTLS is a pool's compiled tls: block.
type UpstreamTLS struct {
	// Config holds the roots, the client certificate, the server name and
	// the verification setting. It is shared: callers Clone it before
	// setting anything (ALPN, a check's server name).
	Config *tls.Config
	// Fingerprint identifies the settings and the files' contents.
	Fingerprint string
}

// ClientCA is a route's client CA file, for routes that require client
// certificates.
type ClientCA struct {
	Path  string
	Pool  *x509.CertPool
	Certs []*x509.Certificate // to build the acceptable-CA list of a handshake
	// Fingerprint identifies the file's contents.
	Fingerprint string
}

// maxTLSFileBytes bounds what is read of a certificate, key or CA file: a
// bundle of hundreds of CAs is well under it, and a path that names a big
// file by mistake costs no memory.
const maxTLSFileBytes = 4 << 20

// readTLSFile reads a TLS file, refusing an empty one: empty never means
// "no CA" or "no certificate".
func readTLSFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTLSFileBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", path, err)
	case len(b) > maxTLSFileBytes:
		return nil, fmt.Errorf("%s: over %d MiB", path, maxTLSFileBytes>>20)
	case len(b) == 0:
		return nil, fmt.Errorf("%s: empty file", path)
	}
	return b, nil
}

// LoadUpstream compiles a pool's tls: block; problems are reported by
// the key they belong to (ca, or cert for the certificate and key pair).
func LoadUpstream(u *config.UpstreamTLS) (*UpstreamTLS, []KeyError) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%t\x00", u.CA, u.ServerName, u.Cert, u.Key, u.InsecureSkipVerify)
	c := &tls.Config{ServerName: u.ServerName, InsecureSkipVerify: u.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	var errs []KeyError
	if u.CA != "" {
		pool, _, err := loadCAFile(u.CA, h)
		if err != nil {
			errs = append(errs, KeyError{"ca", err})
		}
		c.RootCAs = pool
	}
	if u.Cert != "" || u.Key != "" {
		cb, err1 := readTLSFile(u.Cert)
		kb, err2 := readTLSFile(u.Key)
		if err := errors.Join(err1, err2); err != nil {
			errs = append(errs, KeyError{"cert", err})
		} else if pair, err := tls.X509KeyPair(cb, kb); err != nil {
			errs = append(errs, KeyError{"cert", fmt.Errorf("%s / %s: %w", u.Cert, u.Key, err)})
		} else {
			h.Write(cb)
			h.Write(kb)
			c.Certificates = []tls.Certificate{pair}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &UpstreamTLS{Config: c, Fingerprint: hex.EncodeToString(h.Sum(nil))[:16]}, nil
}

// KeyError is a problem with one key of a block.
type KeyError struct {
	Key string
	Err error
}

// LoadClientCA reads a route's client CA file.
func LoadClientCA(path string) (*ClientCA, error) {
	h := sha256.New()
	pool, certs, err := loadCAFile(path, h)
	if err != nil {
		return nil, err
	}
	return &ClientCA{Path: path, Pool: pool, Certs: certs, Fingerprint: hex.EncodeToString(h.Sum(nil))[:16]}, nil
}

// loadCAFile reads PEM certificates from path into a pool, adding the
// contents to h. A file without a certificate is an error.
func loadCAFile(path string, h hash.Hash) (*x509.CertPool, []*x509.Certificate, error) {
	b, err := readTLSFile(path)
	if err != nil {
		return nil, nil, err
	}
	h.Write(b)
	var certs []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, certs, nil
}
