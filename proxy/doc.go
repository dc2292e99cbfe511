// Package proxy is Meridian's HTTP reverse proxy: the listener (HTTP/1.1 and
// h2c on one port, with slowloris and connection limits), and the handler
// that matches a request to a route, chooses a split arm, a pool and an
// endpoint, and forwards with httputil.ReverseProxy (Rewrite, never
// Director), with retries, a retry budget, mirroring, access logs and
// metrics. TLSServer terminates TLS (certificates by SNI, reloaded from disk,
// HTTP/2 limits) and enforces the routes' TLS policy (client certificates,
// 421 on SNI/Host mismatch, HSTS); PlainEdge adds HTTPS redirects to the
// plain listener.
//
// Concurrency: the handler loads the live routing table once per request
// and never locks on the request path; a table swap only affects requests
// that start after it, and in-flight requests finish on their old endpoints.
// Per-table state (label-resolved metric children, upstream transports) is
// built once per table the first time a request sees it; retry budgets and
// mirror concurrency are carried across tables by route name, and upstream
// connection pools by protocol and TLS settings, so reloads reuse them.
// TLSServer's handshakes read one immutable certificate generation through
// an atomic pointer; reloads (Reload, the file watcher in Run) build a new
// generation under a mutex and never touch open connections.
package proxy
