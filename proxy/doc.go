// Package proxy is Meridian's HTTP reverse proxy: the listener (HTTP/1.1 and
// h2c on one port, with slowloris and connection limits), and the handler
// that matches a request to a route, chooses a split arm, a pool and an
// endpoint, and forwards it (relay: httputil.ReverseProxy's header and
// response rules without its copies; ReverseProxy itself, with Rewrite,
// for WebSocket upgrades), with retries, a retry budget, per-pool circuit
// breakers (breaker.go: Envoy's max_connections, max_pending, max_requests
// and max_retries), mirroring, access logs (accesslog.go: their own writer
// per destination, bounded, reopened on SIGUSR1), W3C trace context with
// optional OTLP export (trace.go), metrics, and the per-route arm and
// per-endpoint counts of package
// telemetry (telemetry.go: cells found by Compile, reached by slice index,
// counted with atomic adds). Plain HTTP/1.1 pools are reached through h1Client,
// which sends requests without a body on the handler's goroutine over
// kept-alive connections (the common head written and read by h1wire.go,
// the rest by net/http), and http.Transport for the rest. TLSServer
// terminates TLS (certificates by SNI, reloaded from disk or obtained by
// the acme package's Manager, HTTP/2 limits) and enforces the routes' TLS
// policy (client certificates, 421 on SNI/Host mismatch, HSTS); PlainEdge
// answers ACME HTTP-01 validations and adds HTTPS redirects to the plain
// listener.
//
// HTTP/1.1 connections, plain and over TLS, are served by the fast lane
// (fast.go, http.engine: fast, the default): Meridian's own connection loop
// in front of the same Handler, handing h2c, h2 (by ALPN, after the lane's
// own handshake: fasttls.go), upgrades and anything unusual to net/http on
// the same connection, and parking idle connections off Go's poller
// (fastpark.go). A lane request's context (laneCtx, fastctx.go) is also
// what the upstream guard cancels and what the upstream client hooks its
// connection to, so a request derives no context of its own; HTTP/2
// connections the lane hands over write through batchConn (h2batch.go),
// which sends the frames of many streams in one write.
//
// Concurrency: compile, then swap, then serve. The rebuild loop calls
// Handler.Compile for a new table (route policy, upstream clients, the
// routes' TLS policy: everything a request reads) and Handler.Install when
// the table goes live; the handler loads the installed state once per
// request, builds nothing, and takes no lock on the request path but the
// upstream client's, held only to take or return an idle connection. A
// swap only affects requests that start after it; in-flight requests
// finish on their old endpoints. Retry budgets and mirror concurrency are
// carried across tables by route name, upstream connection pools by pool,
// protocol and TLS fingerprint, and circuit breakers (breaker.go) by pool,
// so reloads reuse them.
// TLSServer's handshakes read one immutable certificate generation through
// an atomic pointer; reloads (Reload, the file watcher in Run) build a new
// generation under a mutex and never touch open connections. The ACME
// manager runs under Run's context; a reload that changes tls.acme builds
// a new one, which finds the stored certificates, and stops the old.
package proxy
