// Package acmetest runs pebble, Let's Encrypt's ACME test server, on
// loopback for tests: a real ACME CA that validates HTTP-01 and TLS-ALPN-01
// challenges by connecting to the ports a test gives it, with a DNS stub
// that resolves every name to 127.0.0.1. It owns no production code path;
// only tests import it.
//
// Pebble is a separate binary: Start looks for $MERIDIAN_PEBBLE, then
// pebble on $PATH, then $(go env GOPATH)/bin/pebble, and skips the test,
// saying how to install it, when there is none. scripts/test.sh installs it
// with `go install github.com/letsencrypt/pebble/v2/cmd/pebble@latest`.
//
// Concurrency: Start and the Pebble methods are called from the test
// goroutine; each Start runs its own pebble process and DNS stub, so tests
// may run in parallel. Everything stops in t.Cleanup.
package acmetest
