// Package dnssec signs Meridian's DNS answers online: the keys of a zone
// (read from, or generated into, a key directory in BIND's file format),
// the RRSIGs over each RRset as it is answered, a bounded cache of those
// signatures keyed by the RRset's content, and the NSEC records of
// authenticated denial, made per query.
//
// Why online: a steered answer depends on the client (its region, by
// source address or EDNS Client Subnet), on a weighted draw and on the
// health of the endpoints at that moment, so the RRsets served cannot be
// listed and signed ahead of time. Like PowerDNS's LUA records, CoreDNS's
// dnssec plugin and Knot's mod-onlinesign, Meridian signs what it answers,
// when it answers it. A steered answer that has not changed is not signed
// again: signatures are cached by the RRset's content (owner, type, TTL
// and the records), whichever client asked, and kept for Refresh.
//
// Keys. A key is a pair of files, K<zone>+<alg>+<tag>.key (the DNSKEY
// record) and .private (BIND's Private-key-format v1.2 or v1.3), as
// dnssec-keygen and ldns-keygen write them; Meridian writes the same when
// it generates one. Every key of the zone found in the directory is
// published in the DNSKEY RRset. When the directory holds both keys with
// the SEP flag (257, key-signing keys) and keys without it (256,
// zone-signing keys), the KSKs sign the DNSKEY, CDS and CDNSKEY RRsets and
// the ZSKs sign the rest; otherwise every key signs everything (a combined
// signing key, CSK, is the default and what is generated). CDS and CDNSKEY
// (RFC 7344) list the SEP keys, or every key when none has the flag, so a
// parent that scans for them follows a rollover. Timing metadata in the
// files (dnssec-settime) is ignored: what is in the directory is published
// and signs. A rollover is therefore a double-signature rollover driven by
// files: add the new key, wait, remove the old one (see the README); no
// state in between leaves the zone signed by a key that is not in its
// DNSKEY RRset, since signing keys are always a subset of the published.
//
// Signatures. The inception is backdated by Backdate (clock skew between
// us and validators); the expiration is Validity after signing plus a
// random share of Jitter, so signatures made together do not all expire
// together. A cached signature is reused for Refresh at most, so every
// signature served has at least Validity-Refresh left: far longer than
// any TTL it covers. The signer name is the zone; the RRSIG's TTL is the
// RRset's.
//
// Denial. Names here are synthesised (wildcards, steered records whose
// answers come and go), so there is no precomputed NSEC chain to serve.
// Meridian answers denial with compact denial of existence (RFC 9824,
// "black lies"): a name that does not exist is answered NOERROR/NODATA
// with one NSEC at the query name whose next name is its immediate
// successor (\000.qname) and whose type bitmap holds RRSIG, NSEC and the
// NXNAME pseudo-type; NODATA gets the same NSEC listing the types the name
// has (minus the one asked for). Compared with the minimally covering NSEC
// records of RFC 4470 ("white lies", two NSECs for an NXDOMAIN: one
// covering the name, one covering the wildcard at the closest encloser),
// it costs one signature instead of two for each negative answer (online,
// signatures are the cost), makes smaller responses, needs no closest
// encloser or wildcard proof, and, like white lies, discloses no name of
// the zone. Its price is that an NXDOMAIN is seen by validators as NODATA:
// the NXNAME type tells a resolver that knows RFC 9824 what it is, and a
// query that sets the Compact Answers OK flag (CO) gets the NXDOMAIN rcode
// back. Queries without DO are answered as before: NXDOMAIN stays
// NXDOMAIN. Aggressive use of NSEC (RFC 8198) gains nothing from either
// scheme, since both cover nothing beyond the name asked for.
//
// Wildcards. An answer synthesised from a wildcard is signed as the
// wildcard's RRset (the RRSIG's label count is the wildcard's, RFC 4034
// §3.1.3), so one signature serves every name the wildcard synthesises,
// and it carries the proof RFC 4035 §3.1.3.3 asks for: an NSEC, made for
// the query, that covers the query name (its owner just before the name,
// its next name just after the name and everything below it), which shows
// that the name itself does not exist. A wildcard NODATA is compact
// denial's NODATA at the query name. (Knot's mod-onlinesign and Cloudflare
// sign a synthesised answer as if the name existed, which needs no proof
// but a signature per name.)
//
// Concurrency: a KeySet and a Signer are safe for concurrent use; a Cache
// is sharded, each shard under its own mutex, held for a map lookup or
// insert only, never while signing. Nothing here is package-level mutable
// state: each dns.Server owns one Cache.
package dnssec
