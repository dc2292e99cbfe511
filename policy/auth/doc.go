// Package auth owns Meridian's three ways of deciding who a request comes
// from before it is forwarded: HTTP Basic credentials checked against an
// htpasswd file of bcrypt hashes (Basic), a bearer JWT verified against a
// JWK set from a file or a URL (JWT, with KeySets owning the remote sets),
// and a subrequest to an external auth service (Forward), as nginx's
// auth_request and Traefik's ForwardAuth do. It is a leaf package: it takes
// plain Go values, never config types, and imports nothing of the project,
// so package policy converts config into specs and owns answering the
// client (401, 503, ...).
//
// # Basic
//
// LoadBasic reads the whole htpasswd file at once (at most 4 MiB) and
// rejects it on the first bad line, naming the line, so a reload with a
// broken file keeps the previous one. Only bcrypt hashes are accepted: the
// MD5, SHA-1 and crypt(3) schemes htpasswd can also write are too cheap to
// brute-force. A successful bcrypt check (tens of milliseconds) is cached
// under an HMAC of user and password, keyed per Basic, so the password is
// never kept; at most 1024 entries, the oldest replaced first. Failures are
// not cached, and concurrent checks of the same credentials share one
// bcrypt run. An unknown user costs one bcrypt run like a known one, so
// timing does not reveal which users exist. Each load is a new Basic with
// an empty cache, so a changed password never lives on in a cache.
//
// # JWT
//
// A JWT verifier accepts only compact JWS tokens, signed with an algorithm
// its key's type allows: RS*/PS* for RSA keys of at least 2048 bits,
// ES256/384/512 for the matching P-256/384/521 key, EdDSA for Ed25519 and
// HS256/384/512 for "oct" keys at least as long as the hash. A key's own
// "alg" narrows that further. So an HS256 token "signed" with an RSA public
// key's bytes is refused (the classic algorithm confusion), and "none" is
// never accepted. Tokens larger than 16 KiB are refused unparsed. exp and
// nbf are checked with the configured leeway when present; a token without
// exp does not expire (as with Envoy and nginx). iss and aud are checked
// when the spec asks for them. Claims are copied to request headers as
// text: strings as they are, numbers as written in the token, booleans as
// true/false, arrays joined with ",", objects as compact JSON; control
// characters become spaces.
//
// A JWKS file is read by NewJWT and is part of its Fingerprint. A JWKS URL
// belongs to KeySets, one per process, which shares one set per URL across
// verifiers and reloads. Run fetches a new set at once, then every Refresh
// (the shortest asked for by live verifiers); a failed fetch keeps the last
// good keys and is retried after 1 s, doubling up to Refresh. A token whose
// kid is not in the set triggers a refetch at most once per 30 s per URL,
// and the request waits up to 2 s for it, so a key rotation costs no
// refusals. Fetches time out after 10 s and read at most 1 MiB; a set
// holds at most 64 keys; KeySets holds at most 256 URLs. A URL set no live
// verifier uses (verifiers are tracked with runtime.AddCleanup, as they
// have no Close) stops being refreshed and is dropped after 10 minutes, so
// a reload that briefly drops a route does not refetch.
//
// # Forward
//
// Forward.Check sends a GET to the auth service with the client's headers
// (minus hop-by-hop headers, Content-Length, Expect, Accept-Encoding and
// any client-sent Forwarded, X-Real-Ip and X-Forwarded-* headers, which the
// client could forge) and sets X-Forwarded-Method, -Proto, -Host, -Uri and
// -For. Redirects are not followed: a 3xx is relayed like any other non-2xx
// answer, with at most 64 KiB of its body. Copy (on a pass) and the claim
// headers of JWT.Verify list every configured header, with no values when
// the answer or token lacks it; ApplyHeaders replaces or deletes them on
// the upstream request, so a client cannot smuggle in an identity header
// the auth step did not set.
//
// # Concurrency contract
//
// Basic, JWT and Forward are immutable after construction apart from their
// internal caches and are safe for concurrent use by any number of
// requests; they may be shared by two route tables across a reload. All
// KeySets methods are safe for concurrent use; Run must be called once,
// may start after NewJWT (fetches kicked before it wait for it), and
// returns when its context ends and its fetches have stopped. Verify never
// blocks on the network except for the bounded unknown-kid wait above, and
// reads the current key set with one atomic load.
package auth
