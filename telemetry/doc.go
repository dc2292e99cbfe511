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
