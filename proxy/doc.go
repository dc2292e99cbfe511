// Package proxy is Meridian's HTTP reverse proxy: the listener (HTTP/1.1 and
// h2c on one port, with slowloris and connection limits), and the handler
// that matches a request to a route, chooses a split arm, a pool and an
// endpoint, and forwards with httputil.ReverseProxy (Rewrite, never
// Director), with retries, a retry budget, mirroring, access logs and
// metrics.
//
// Concurrency: the handler loads the live routing table once per request
// and never locks on the request path; a table swap only affects requests
// that start after it, and in-flight requests finish on their old endpoints.
// Per-table state (label-resolved metric children, upstream transports) is
// built once per table the first time a request sees it; retry budgets and
// mirror concurrency are carried across tables by route name, and upstream
// connection pools by protocol and TLS settings, so reloads reuse them.
package proxy
