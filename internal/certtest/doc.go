// Package certtest makes certificate authorities and certificates at test
// time (ECDSA P-256, valid from an hour ago for a day), for the tests of
// the TLS listener, upstream TLS, health probes and ACME. Only tests and
// test harnesses import it. A CA is safe for concurrent use.
package certtest
