// Package tlsfiles reads the TLS material a config names for upstream
// connections and client authentication: a pool's CA and client
// certificate, a route's client CA. routing.Compile calls it once per
// table, and the proxy's transports, the health engine's https probes and
// the TLS listener's client-certificate policy all use what the table
// holds, so they agree after a rotation. It refuses an empty or
// unparsable file rather than falling back to the system roots or no
// certificate, and reads at most 4 MiB of any file.
//
// Concurrency: the functions are safe for concurrent use; what they
// return is never modified (callers Clone a tls.Config before changing it).
package tlsfiles
