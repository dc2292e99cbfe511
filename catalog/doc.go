// Package catalog owns Meridian's view of the Consul service catalog and the
// Consul-side plumbing around it: the API client (NewClient), the watcher that
// turns pool selections into endpoints (Watcher, Snapshot), the Consul KV
// config source (KVSource, ParseKVRef) and fleet self-registration
// (Register), which carries the instance's region (meta meridian-region)
// for the fleet (package fleet). It imports only the config package.
//
// # Selections and keys
//
// A pool's config.ConsulSelect is reduced to a Key (service, datacenter,
// tags, near): exactly what changes Consul's /v1/health/service answer.
// Tags are filtered by Consul; health (passing | warning | any) and meta
// are filtered by Snapshot.Instances per pool, so pools that differ only in
// those share one query. An instance's endpoint is Service.Address (else
// Node.Address) and Service.Port; its weight is the "meridian-weight" meta
// key when valid, else Consul's Weights (Warning for a warning instance,
// else Passing); its region is the "meridian-region" meta key, else its
// datacenter.
//
// # Watching
//
// Watcher runs one blocking-query loop per wanted Key, shared by every pool
// that uses it, in the way Consul's documentation asks: the next query
// waits on the last X-Consul-Index; an index that goes backwards restarts
// from 0; an index below 1 becomes 1; an answer with an unchanged index or
// unchanged content is not a change; queries of one key start at least
// MinInterval apart; errors back off exponentially with jitter up to
// BackoffMax, and the retry after an error does not block, so a recovered
// agent is noticed at once rather than at its next change; ?stale is
// optional. Each change publishes a new immutable
// Snapshot and calls the caller's non-blocking Poke.
//
// Last known good: an error (connection refused, timeout, 5xx, 403, a hung
// agent, or an empty answer from a cluster without a leader) never empties a
// selection. The data stays, the loop retries in the background, one warning
// is logged per outage and one info line on recovery, and the metrics
// meridian_consul_up, meridian_consul_last_success_timestamp_seconds and
// meridian_consul_selection_age_seconds{service,selection} (computed at
// scrape time) show the staleness. Before its first answer a selection is
// pending: Snapshot.Instances reports ready=false and Snapshot.Pending
// names it, so /readyz can say what it is waiting for.
//
// The ACL token is sent only in the X-Consul-Token header and is never
// logged: errors are rendered from status codes and bounded bodies, and the
// client's transport scrubs the token from any error body that echoes it.
//
// # Several datacenters
//
// A selection with datacenters or failover (multidc.go) spans datacenters
// with Consul prepared-query semantics: its own datacenter first, then
// failover.nearest others by network coordinates (/v1/coordinate/datacenters,
// the median estimated round trip between their servers and the local
// datacenter's, re-read every CoordinateInterval), then the fixed list, each
// once; the pool takes the instances of the first datacenter with one that
// passes its filters. Watcher.WantSelections expands such a selection into
// one Key, so one blocking query, per datacenter. A datacenter that stops
// answering keeps its last known instances, flagged stale
// (SelectionStatus.Stale, StaleDatacenters,
// meridian_consul_datacenter_stale{datacenter}, one log line per outage and
// one on recovery).
//
// # Concurrency
//
// Snapshot values are immutable and safe to share. Watcher.Snapshot is one
// atomic load; Want, Status and Up are safe from any goroutine; Run owns the
// loop goroutines and waits for all of them before returning. Poke and
// KVSource's onChange are called from the package's goroutines and must not
// block for long. The package holds no global state: loggers, registries and
// clients are passed in.
package catalog
