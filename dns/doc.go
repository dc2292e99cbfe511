// Package dns is Meridian's authoritative DNS server: UDP on several
// SO_REUSEPORT sockets, each read by a few long-lived workers that batch
// datagrams (recvmmsg/sendmmsg, as raw system calls on Linux:
// udp_mmsg_linux.go) and answer most queries from a cache of packed
// answers, reading the query on the wire (wire.go, cache.go, fast.go), the
// rest decoded and encoded with miekg/dns;
// TCP on miekg/dns's server; a thin ServeDNS adapter; and a pure answer
// function that computes every response from the live *routing.Table and
// the zones it holds (compiled by the child package zone, the only other
// importer of miekg/dns besides the health DNS probe): static records, steered records answered from the available endpoints of
// the pool the service's policy picks for the client (by source address or
// EDNS Client Subnet), wildcards, delegations, CNAME chains, negative
// answers, EDNS and ECS handling, zone transfers (AXFR to allowed networks
// over TCP) and NOTIFY to secondaries, the additional section (the static
// addresses of in-zone NS, MX and SRV targets, dropped without TC when a
// UDP answer would not fit them), extended DNS errors (RFC 8914) on the
// refusals and degraded answers a resolver's operator would ask about,
// and online DNSSEC signing of the zones that have keys (package dnssec:
// RRSIGs on every authoritative RRset of a DO query, cached by content;
// compact denial of existence, RFC 9824; wildcard proofs; a signed AXFR
// with an NSEC chain). It also owns response rate limiting,
// DNS metrics, the sampled query log, the explain API, the answer each
// region gets now (regions.go, for the admin API) and the per-zone and
// per-record counts of package telemetry (telemetry.go).
//
// Zone serials: a zone's serial moves whenever its answer set changes: its
// records (a reload) or the availability of the endpoints its steered
// records use (a health change). The Server keeps, per zone origin, a digest
// of that answer set and the last serial; when the digest differs the
// serial becomes max(last+1, unix time), so it only grows, also across
// restarts. TableChanged and HealthChanged are the hooks that make it move.
// A signed zone's signatures are part of its answers: the digest includes
// the signature period (dnssec.Refresh), so its serial also moves once a
// period, and secondaries transfer fresh signatures.
//
// CNAME chains are followed inside the zone for at most maxChain hops,
// each name once (a loop gives each record once, RFC 1034 §3.6.2); a
// chain that reaches a delegation gets the referral beside its CNAMEs
// (RFC 1034 §4.3.2 step 3b), as Knot and NSD answer. TestDifferentialKnot
// holds the answers to Knot's, query by query.
//
// The answer cache belongs to one table (a reload starts a new one) and
// keeps, per query key, the zone serial it was built under and one packed
// answer per steering decision: a query still decides from live health
// and advances the rotation itself, so a health change shows in the next
// answer (cache.go says what else a kept answer depends on).
//
// Concurrency: a Server is safe for concurrent use. Each query loads the
// table once and never locks on the answer path; the only shared
// mutable state it touches is atomics (rotation counters, serials, the
// answer cache's slots), the rate limiter's, the signature cache's and the
// answer cache's sharded maps (a shard's mutex held for one map
// operation; the answer cache's read-locked on a hit) and the metrics. Several Servers can run in
// one process; each registers its metrics on the Registerer it is given.
package dns
