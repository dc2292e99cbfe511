// Package telemetry owns Meridian's traffic numbers, the one source the
// admin API (GET /api/v1/stats), the operations console, Prometheus and,
// later, automated canary judgement all read.
//
// It counts per HTTP route arm (the service one split entry sends to) and
// per pool endpoint: responses by status class, failure kinds, bytes, two
// latency histograms (whole exchange and upstream-only) and requests in
// flight; and per DNS zone and owner name: queries by rcode, NODATA, and
// steered answers by pool. Routes, services, pools and zones are sums of
// those cells. On top of the cumulative counts it keeps sliding windows (10
// s, 1 min, 5 min: rate, error ratio, p50/p95/p99) and a 15-minute series
// of 10 s steps per route, service, pool and zone.
//
// Cost model. The request path touches only cells it was handed when its
// table was compiled (a slice index, never a map or a lock) and updates
// them with atomic adds to fixed arrays: a log-linear histogram's bucket is
// a bit length and a shift. HTTP cells are striped by a hint the caller
// keeps on one CPU, so CPUs serving the same route do not pass cache lines
// back and forth. Nothing on the request path allocates. All
// derived numbers (sums, windows, quantiles) are computed off the request
// path: by Tick, once a second, which takes cumulative snapshots, and by
// Stats and the Prometheus collector when they are read.
//
// Memory follows traffic, not the table. A cell starts with one stripe and
// gets its full set on the tick after it first counts; a route, service or
// pool that has counted nothing shares one set of windows and series with
// every other made at the same time, and gets a copy of its own on its
// first count, which shows exactly what it would have shown. Both happen
// under the lock, never on the request path. A table of 10,000 routes of
// which a few get traffic costs about 2.5 KB of telemetry per route
// (mostly the one stripe, which stays untouched, so mostly not resident);
// one with windows of its own about 21 KB more. The tick skips the cells
// that never counted at the cost of one load each.
//
// Reloads. PrepareHTTP finds a kept cell where the live table had it (the
// same route or pool at the same place) before it hashes its key, and
// ActivateHTTP changes the registry's maps only for what came or went:
// the live set's entries and aggregates carry the activation's
// generation, so the previous set's that do not are the ones that leave.
//
// Judging. ArmTraffic and PoolTraffic give an automated judge (rollouts,
// wired in internal/app) the cumulative traffic of a route's canary arm
// against its other weighted arms, or of a pool: requests, 5xx, and a
// latency histogram whose difference between two readings gives an
// interval's exact p99 (Traffic.QuantileSince). They read under the lock,
// off the request path.
//
// Lifecycle. The proxy calls PrepareHTTP when it compiles a table and
// ActivateHTTP when it installs it; the DNS server calls ActivateDNS when
// it learns of a table. A cell lives as long as its key (route, split
// entry and service; pool and address; zone and owner name) stays in the
// live table. Cells that leave stop being listed and exported at once
// (the collector reads the live set at scrape time, so an endpoint's series
// disappear with it) and keep feeding their aggregates for a minute, so
// requests in flight on the old table still count.
//
// Concurrency. The cell methods (HTTP.Begin, Done, Response, Failed,
// BodyFailed, Served; DNSRecord.Query) are safe for concurrent use, take
// no lock and work on nil cells (counting nothing). Every Telemetry method
// is safe for concurrent use and serialises on one mutex that the request
// path never takes. A Telemetry holds no package-level state: several can
// live in one process.
package telemetry
