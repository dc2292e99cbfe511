// Package cors is Meridian's CORS policy (the Fetch standard's CORS
// protocol): it answers preflights at the edge and sets the CORS headers
// of actual responses, replacing whatever the upstream sent, so that one
// route has one policy whatever its backends do. It owns origin patterns,
// their matching, and the preflight decision; it knows nothing of config
// or routes: package policy compiles a route's cors block into a Spec.
//
// It is written here rather than wrapping github.com/rs/cors because that
// library is a middleware that writes its headers before calling the next
// handler, while the proxy needs to apply the policy after the upstream's
// header is in: copying the upstream's Access-Control-* over rs/cors's
// would let a backend widen the edge's policy. The protocol is small, and
// owning it also lets origins be normalized and checked when the config
// is loaded rather than matched loosely per request.
//
// # Origins
//
// An allowed origin is "*", "null", an exact "scheme://host[:port]", or
// "scheme://*.example.com[:port]", any subdomain of example.com (not
// example.com itself, and not evilexample.com). Patterns are normalized
// as browsers serialize origins (lower case, default port dropped), and a
// request's Origin must then match byte for byte, scheme and port
// included: http://a.example is not https://a.example, and
// https://a.example:8443 is not https://a.example. "null" (sandboxed
// iframes, file: pages, some redirects) is allowed only when listed, or by
// "*", which answers every origin with the same public "*".
//
// # Preflights and responses
//
// Preflight answers OPTIONS requests carrying Origin and
// Access-Control-Request-Method itself, with 204, and with the
// Access-Control-Allow-* headers only when the origin, the method and all
// requested headers are allowed (header names case-insensitively, methods
// case-sensitively after Fetch's normalization of the six standard ones).
// Response runs on every other response of the route. Both add the Vary
// fields a cache needs to keep answers for different origins apart.
// Private Network Access (Access-Control-Request-Private-Network) is not
// supported: such preflights are answered without its header, so the
// browser refuses them.
//
// # Concurrency contract
//
// A Policy is immutable after New and safe for concurrent use; Preflight
// and Response only read it and write the header they are given. There is
// no package-level mutable state, and no buffer: request headers are
// scanned in place, and a preflight listing more than 64 header names is
// refused.
package cors
