// Package acme obtains and renews the TLS listener's certificates from an
// ACME CA (Let's Encrypt, a private CA, pebble in tests) for the names in
// tls.acme. It wraps github.com/caddyserver/certmagic: certmagic runs the
// ACME protocol, keeps account, keys and certificates in tls.acme.storage
// (so a restart loads them instead of asking again) and renews them in the
// background; this package turns a config section into one certmagic
// setup and answers the two challenge types on Meridian's own listeners:
// HTTP-01 through ServeHTTPChallenge on the plain listener, TLS-ALPN-01
// through Certificate on the TLS listener.
//
// Concurrency: a Manager is built once per tls.acme section; Certificate,
// Covers, ServeHTTPChallenge and Status are safe for concurrent use and
// never wait for the CA: a handshake for a name whose certificate is still
// being obtained gets an error, and the TLS listener falls back to its
// files. They may read storage (a challenge solved by another instance
// sharing it). Start begins issuance and renewal in background goroutines
// that end with Stop or with Start's context; Stop waits for certmagic's
// maintenance pass, which may be talking to the CA, so callers do not hold
// locks across it. A config change builds a new Manager and stops the old
// one; the new one finds the certificates in storage. A change made while
// a renewal runs can delay that renewal to the next maintenance pass.
package acme
