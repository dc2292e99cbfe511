// Package access owns a route's client address lists (routes[].allow and
// routes[].deny): it parses them once, when the config is compiled, into
// a List, and answers per request whether a client address may pass.
//
// # Semantics
//
// Deny wins: a client in any deny entry is refused, whatever allow says.
// When allow is non-empty, a client in none of its entries is refused.
// Order does not matter, unlike nginx's first-match allow/deny, so a long
// list can be sorted, merged or generated without changing its meaning.
// An entry is a CIDR or a bare address (a /32 or /128); an IPv4-mapped
// IPv6 client (::ffff:192.0.2.1, as a dual-stack socket reports IPv4
// peers) is the IPv4 client it stands for, and IPv4-mapped entries are
// stored as IPv4, so "192.0.2.0/24" and "::ffff:192.0.2.0/120" are one
// entry and no IPv6 entry (not even ::/0) covers an IPv4 client.
//
// Entries are checked strictly, each error naming its list and index
// ("deny[2]: ..."): host bits after the prefix length (10.1.2.3/8), zones
// and nginx's "all" are refused rather than guessed at, because a list
// silently widened or narrowed is a security hole that validates.
//
// # Lookup
//
// Lists are held in github.com/gaissmai/bart's Lite tables (a compressed
// multibit trie): a lookup costs a few memory reads whatever the list's
// length, so a country block list of tens of thousands of prefixes costs
// a request about what three entries do (see the benchmarks).
//
// # Concurrency contract
//
// A List is immutable once compiled and safe for concurrent use; Allowed
// takes no lock and does not allocate. A nil *List allows everyone, so a
// route without lists needs no List at all. The package has no mutable
// state.
package access
