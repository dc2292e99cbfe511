// Package policy compiles a route's edge policies — client IP lists, rate
// limits, basic, JWT and forward auth, CORS, redirects, rewrites, a body
// cap and response compression — into one *Route, and runs them on a
// request in one documented order:
//
//	allow/deny → rate_limit → cors preflight → basic_auth → jwt →
//	forward_auth → redirect → rewrite → max_body → (forwarding; cors
//	headers and compress on the response)
//
// The order is the one an operator reasons with: who may connect at all,
// how often, who they are, where the request goes, and what it may carry.
// Cheap refusals come before costly checks, so a flood of unauthenticated
// requests is rate limited before it can spend bcrypt or RSA time. CORS
// preflights are answered before authentication because browsers never
// send credentials with them (behind auth no preflight could pass, which
// is why Envoy runs its CORS filter ahead of jwt_authn); the CORS headers
// of an actual request are added to its response, refusals included, so
// a page's script can read a 401 or 429.
//
// Each policy is one subpackage with one job (access, ratelimit, auth,
// cors, template, compress); this package owns their compilation from
// config (every problem a config.Problem at its path, so `meridian
// validate` and a rejected reload print it with its line), their order,
// the request-side glue (keys, headers, answers), and the state a reload
// keeps: a route whose rate limit is unchanged keeps its buckets.
//
// Concurrency: a *Route is immutable once compiled and is used by every
// request on the route at once. The state it points to — rate-limit
// buckets, the basic-auth cache, JWKS key sets — is safe for concurrent
// use and may be shared with the same-named route of the next table.
// A route without policies has no *Route at all (nil), so it pays nothing
// for their existence.
package policy
