// Package template owns the small text templates of a route's edge
// policies: redirect targets (routes[].redirect.to), rewrite targets and
// query values (routes[].rewrite) and added header values. It parses a
// template once, when the config is compiled, and expands it per request
// without allocating beyond the caller's buffer; and it owns the two
// places where an expansion meets the wire and must be made safe: the
// Location of a redirect and the path and query of a rewritten request.
//
// # Syntax
//
//	{client_ip} {request_id} {route} {host} {scheme} {path} {query} {uri}
//	$1 ${1} ${name} $0     capture groups of the route's regular expression
//	$$ {{ }}               a literal $, { and }
//
// Captures follow Go's regexp.Expand (and so Traefik's redirectRegex and
// replacePathRegex): in $name the name is as long as possible, so $1x is
// the group named "1x", and ${1}x is group 1 followed by x. Unlike
// regexp.Expand, which silently expands a reference it cannot resolve to
// nothing and keeps a stray $ as text, Compile refuses both, naming the
// column: a typo in a redirect should fail `meridian validate`, not send
// users to the wrong page. For the same reason an unknown placeholder, an
// unclosed { and a lone } are errors.
//
// # Safety
//
// Placeholders and captures carry client-controlled text, decoded from
// the request path: they may hold CR, LF, NUL, "//" and "..". Expand
// copies them as they are; ExpandHeader blanks control characters so a
// value can never split a header or make Go's transport refuse the
// upstream request; Redirect.Location percent-encodes what a URL cannot
// hold and never yields a protocol-relative ("//host", "/\host") value;
// Rewrite.Apply resolves dot segments so a capture cannot climb above
// the root.
//
// # Concurrency contract
//
// A Template, Redirect or Rewrite is immutable once compiled and safe for
// concurrent use by any number of requests. Expand writes only to the dst
// it is given; Apply writes only to the URL it is given. The package has
// no mutable state.
package template
