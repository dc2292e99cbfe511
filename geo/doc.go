// Package geo maps a client address to a region, and reports how many
// leading bits of the address decided it, so that DNS can scope EDNS Client
// Subnet answers (RFC 7871) and the proxy can steer geo services.
//
// # What it owns
//
// A Locator is compiled from config.Geo (one per routing table) and answers,
// in order:
//
//  1. geo.nets: CIDR → region, longest prefix wins (a path-compressed binary
//     trie per family, built once);
//  2. non-global addresses (private, CGNAT, loopback, link-local,
//     documentation, multicast, ...) that no geo.nets entry covers: the
//     default region, scoped to the range's own length;
//  3. the MaxMind-format database (geo.mmdb): a region listing the record's
//     country (falling back to registered_country) wins over one listing its
//     continent;
//  4. default_region, scoped to the network the database reported for the
//     miss.
//
// Result.Prefix is the ECS scope: every address sharing those bits gets the
// same answer. It is at least the length of the deciding network and never
// spans a more specific geo.nets entry, non-global range or database network
// that would answer differently, so caching resolvers never over-generalise.
// IPv4-mapped IPv6 addresses are unmapped first (Result.PrefixFor converts
// the scope back to IPv6 bits).
//
// A DB is the database file. OpenDB reads it into memory (not mmap, so an
// in-place rewrite cannot corrupt lookups in flight) and verifies it; Run
// follows the file with config.Watcher, the file watcher shared with the
// config, state and certificate files (its directory and its symlink
// target's directory: in-place write, rename over, ConfigMap-style symlink
// swap), debounced, plus a 30 s poll that only stats the file. A bad,
// partial or missing file is logged, counted in
// meridian_geo_db_reloads_total{result="error"} and the previous database
// keeps serving. Decoded records are cached per database
// version by record offset.
//
// geotest builds small databases for tests in any package.
//
// # Wiring
//
// internal/app opens the DB when geo.mmdb is set (OpenDB fails startup on a
// bad path), runs DB.Run in its errgroup, and passes the DB to
// routing.Compile, which calls NewLocator(cfg.Geo, db) and keeps the Locator
// in the table. A DB reload needs no table rebuild: the Locator reads the
// DB's current reader on every lookup; DB.Changed only tells the rebuild loop
// that the data changed, if it wants to republish. When a config reload
// changes geo.mmdb, the app opens the new DB, compiles the table with it,
// then closes the old one. dns and proxy call Table's Locator.Lookup with the
// ECS address or the client address (after trusted X-Forwarded-For handling,
// which is the proxy's job).
//
// Metrics: meridian_geo_db_reloads_total{result="ok"|"error"},
// meridian_geo_db_lookup_errors_total, meridian_geo_db_build_timestamp_seconds.
//
// # Concurrency
//
// Locator is immutable after NewLocator and safe for any number of
// goroutines; Lookup takes no locks and does not allocate (except, rarely,
// when decoding a database record that is not in the cache yet). DB lookups load
// the current reader with one atomic load; reloads (Run, Reload) are
// serialised by a mutex that lookups never take. Run may be called once per
// DB; Close stops it and is idempotent.
package geo
