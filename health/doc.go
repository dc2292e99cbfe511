// Package health is Meridian's health engine: the one live view of which
// endpoints may take traffic, shared by the HTTP proxy and the DNS server. It
// owns active probes (HTTP, HTTPS, TCP, DNS), rise/fall hysteresis, passive
// outlier ejection from the proxy's results, and admin overrides (drain,
// force down) from the admin API or a gdnsd-style state file. It is a leaf
// package: it imports config and nothing else of the project.
//
// # Model
//
// A Target is one (address, check) pair, keyed by the check's name and its
// full content (plus the pool's TLS settings for https), so two checks on
// one address are two targets and an edited check is a new target. Pools that
// use the same check on the same address share one target and its probes.
//
// A Member is one (pool, address). Its state is derived, in this order of
// precedence, from an admin override (forced_down, draining), a passive
// ejection (ejected), and its target's probe state (up, down, unknown); a
// pool without a check has no target and is up unless ejected or overridden.
//
// # Lifecycle
//
// The rebuild loop calls Sync with every pool of each new table. Sync starts
// new targets (their first probe runs at once), keeps existing targets with
// their state and probe schedule, and stops targets and members no pool uses
// any more (cancelling probes in flight, closing kept connections and
// deleting their metric series).
// Members keep their overrides and ejections across Syncs while they exist.
// When a check changes under an endpoint, the new target starts unknown but
// keeps the old target's availability until its first probe completes, so a
// reload never brings a dead endpoint back. Run drives probes and ejection
// expiries until its context ends; Sync may be called before Run.
//
// # Active probes
//
// The first completed probe decides a target's state at once (as Envoy does
// for new hosts); until then it is unknown and counts as up or down per the
// check's initial setting (default down). After that Rise consecutive
// successes bring it up and Fall consecutive failures take it down, so
// interleaved results never flip it. The next probe is due one interval
// (jittered by ±Jitter/2 of it) after the previous one started, and never
// before it finished, so probes of one target never overlap.
//
// All targets share one timer (a heap of due times, queue.go) and a pool
// of probe workers (workers.go), not a goroutine per probe: the Run
// goroutine wakes about a hundred times a second, hands the probes due
// (or due within 10 ms, at most a tenth of the interval) to the workers,
// and wakes or starts a worker only when none is free to take them soon: a
// probe that waits for the network lets another worker take the next one,
// and a worker held 10 ms by one probe (a slow target) no longer counts.
// MaxInFlight bounds the workers, so the probes in flight; idle workers
// exit after 10 s. The NetProber runs without a context per probe: its
// deadline is the socket's, and cancelling sets a past one (probeRun).
//
// TCP checks connect with quick ACKs off (as HAProxy does), so a
// connect-only check resets the connection before the server's kernel
// completes the handshake (the server never accepts it); checks that read
// an answer keep quick ACKs, so a server writing in two segments without
// TCP_NODELAY does not wait out a delayed ACK. A worker keeps
// the socket of a connect-only check for its next one: connect(AF_UNSPEC)
// resets the connection and frees the port (spareSocket). An http check
// to an IP:port keeps its connection for the next probe of its target (as
// Envoy does by default; the check's reuse_connection: false or
// NetProber.FreshConnections turns that off): only a clean success keeps
// it, a peek drops it if the server closed it or sent anything unasked, a
// kept connection that fails (or stays silent for half the time left)
// before a response is retried once at once on a fresh one, so a stale
// connection does not report a target down, and every fifth probe takes a
// fresh connection, so a server that accepts none cannot look healthy on
// an old one (keptConn). https checks and http checks to
// a host name dial afresh each time. HTTP probes read at most 64 KiB of a
// body; redirects are not followed (Expect decides). A dns check with no
// qname queries ".". An https target reloads its CA and client certificate
// files at most once a minute.
//
// # Passive outlier detection
//
// The proxy calls Member.Report after each upstream attempt. ConsecutiveFailures
// connect failures, resets or timeouts (and 5xx when On5xx; otherwise a 5xx
// counts as a success) eject the member for Ejection, doubled for each
// repeat ejection up to MaxEjection. The doubling level decays by one step for
// every Ejection period the member spends back in service, so an endpoint
// that stays healthy returns to the base time. At most MaxEjectedPercent of a
// pool's members are ejected at once, rounded down but at least one (2
// members at 50% allow 1; a lone member can be ejected so a failover service
// moves on). An ejection ends by itself when its time is up; turning a
// pool's outlier detection off ends its ejections.
//
// # Returning members
//
// A member that becomes available after being down, ejected, drained or
// forced down has returned, and so has one added to a pool after the
// pool's first Sync when it is first available; Member.ReturnedAt says
// when (Nanotime, a monotonic clock), and Member.PoolReturnedAt the latest
// of its pool. The members a pool starts with have not returned, whether
// they are available at once or after their first probe. Slow-start
// balancers (package routing) ramp a returned member's weight up from
// these; the stamps live in the members, so they survive reloads.
//
// # Admin overrides
//
// Engine.Override sets drain, down or enable on one member (source "api");
// Engine.OverrideAs names another source, such as a failover drill's
// "drill:ID", and Engine.ReleaseOverride ends an override only if that
// source still holds it, so a drill never undoes an operator. The optional
// state file holds lines "pool/address drain|down|enable" ("pool/*" for a
// whole pool; a member's own line wins; "#" starts a comment; bad lines are
// logged, counted and skipped). It is followed with config.Watcher, the
// file watcher shared with the config, GeoIP and certificate files (and
// polled every 30s as a safety net), and changes apply edge-triggered: a
// member whose line changed gets the new action, a member whose line went
// away loses the override only if the file had set it, so an API override
// is never undone by an unrelated edit. File overrides also apply to members
// that appear later; API overrides end with the member.
//
// # Concurrency contract
//
// Member.Available is one atomic load, safe from any goroutine; the engine
// recomputes it whenever a probe result, an ejection or an override changes
// its inputs, then calls Options.OnChange once (outside its locks) if any
// member's availability changed. Member.Report takes no lock on success and
// only the pool's lock when a failure reaches the ejection threshold. All
// Engine methods are safe for concurrent use. Locks are ordered
// Engine.mu → pool.mu → Member.mu, and no lock is held while a probe runs;
// a target's probeRun.mu and probeCache.mu are leaves (Sync and Run take
// them under Engine.mu to abort a probe or close a kept connection). The
// scheduler's state (the heap, the ready targets, the workers) is guarded
// by Engine.mu; a target is in exactly one of the heap, the ready list or
// a worker's hands, which is why its probes never overlap.
// Member pointers stay valid while the member is synced; a stale pointer
// (from a table being replaced) keeps answering its last state and ignores
// reports.
//
// # Observability
//
// Each transition is logged once with its reason, counted in
// meridian_health_transitions_total{pool}, and kept in the member's last 10
// transitions for Status. Metrics: meridian_endpoint_up{pool,endpoint},
// meridian_health_probes_total{check,result}, meridian_health_ejections_total{pool}
// and meridian_health_state_file_errors_total.
package health
