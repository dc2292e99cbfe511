// Package consultest is an in-process Consul HTTP API server for tests: the
// subset Meridian uses, with Consul's semantics, plus controls to script
// failures. It owns no production code path; only tests import it.
//
// Served endpoints:
//
//	GET    /v1/health/service/<name>   ?index ?wait ?dc ?tag (repeatable) ?passing ?near ?stale
//	GET    /v1/kv/<key>                ?index ?wait ?dc ?raw ?recurse ?keys ?separator; 404 (with X-Consul-Index) when missing or an empty folder
//	PUT    /v1/kv/<key>                ?cas ?flags ?acquire ?release; body is the value; answers true or false
//	DELETE /v1/kv/<key>                ?cas
//	PUT    /v1/agent/service/register  ?replace-existing-checks
//	PUT    /v1/agent/service/deregister/<id>
//	GET    /v1/status/leader
//	PUT    /v1/session/create          body: Name, TTL, LockDelay, Behavior, Node, Checks/NodeChecks
//	PUT    /v1/session/renew/<id>      404 when the session is gone
//	PUT    /v1/session/destroy/<id>
//	GET    /v1/session/info/<id>       ?index ?wait ?dc; also /v1/session/node/<node> and /v1/session/list
//	GET    /v1/catalog/datacenters     the agent's first, then by estimated RTT, then by name
//	GET    /v1/coordinate/datacenters  one server coordinate per datacenter (SetDatacenterRTT)
//	GET    /v1/agent/self              Config.Datacenter and NodeName, Member, Coord
//
// Datacenters: every datacenter (Options.Datacenter, those instances are
// added to, AddDatacenter) has its own catalog and its own catalog index,
// so a change in one neither shows in nor wakes a blocking query on
// another (the raft index counter is shared, so indexes stay comparable).
// StopDatacenter makes one stop answering, as when the WAN link to its
// servers is cut: requests naming it, and blocking queries waiting on it,
// answer 500 "No path to datacenter" until StartDatacenter. KV and
// sessions model the agent's datacenter only: ?dc= naming another answers
// 500, saying so.
//
// Blocking queries follow Consul: with ?index=N the request waits until the
// view's index exceeds N or ?wait= elapses (default 5m, capped at
// Options.MaxWait, 10m by default; no extra jitter so tests stay
// deterministic), then answers with the current index in X-Consul-Index.
// Every catalog change (an instance, a check, Touch) bumps one catalog
// index, so every health query wakes and may answer unchanged content,
// exactly the "a return is no guarantee of a change" behaviour clients must
// handle. A KV key's index is its ModifyIndex; a missing key reports the KV
// table's index. Responses carry X-Consul-KnownLeader,
// X-Consul-LastContact and X-Consul-Effective-Consistency, and JSON shaped
// like Consul's (checked by decoding with github.com/hashicorp/consul/api in
// this package's tests). An unknown ?dc answers 500 "No path to datacenter";
// ?filter answers 400 because nothing here implements it. A folder listing
// (?recurse, ?keys) reports the KV table's index, which covers every key
// and deletion below any prefix (Consul tracks the prefix's own, so it
// wakes less often; "a return is no guarantee of a change" either way).
// ?near is accepted and recorded but does not reorder nodes.
//
// Sessions and locks follow Consul too. A session lives on a registered node
// (default the agent's, which always is) and is bound to its serfHealth
// check unless Checks/NodeChecks say otherwise (serfHealth is the only
// check implemented). TTLs must lie between Options.MinSessionTTL (10s by
// default, like Consul) and 24h; LockDelay defaults to 15s (a string
// duration, or nanoseconds, read as seconds below 1000, as Consul does).
// A session is invalidated when destroyed, when its node's serfHealth
// goes critical (SetCheck), by ExpireSession, or when its TTL lapses:
// on real time, two TTLs after creation or the last renewal, which is
// when Consul's leader does it (the TTL is only a lower bound). Invalidation
// releases (keeping the value) or deletes, per Behavior, every key the
// session holds in one write that bumps their ModifyIndex, so blocking
// reads wake; each key then refuses acquire for the lock-delay (at most
// 60s). Acquire takes a free or missing key (LockIndex+1) or lets the
// holder rewrite the value (an unchanged value and flags write nothing,
// so the index stays); it answers false when another session holds
// the key or a lock-delay runs (checked first), and 500 "invalid session"
// for an unknown session. Release answers false unless the session holds
// the key, and, as in Consul, writes the request's body and flags as the
// key's (a release without a body empties the value). ?cas, ?acquire and
// ?release are exclusive (400 "Conflicting flags"). Plain writes and
// deletes ignore locks, which are advisory. KV reads carry LockIndex and
// Session. Session reads block on the sessions table's index.
//
// Registering a service with the agent endpoint also puts it in the catalog
// on the agent's node (Options.NodeName), with its checks initially
// critical as Consul does; deregistering removes it. With
// Options.RunChecks the agent runs those HTTP and TCP checks at their
// interval (HTTP: 2xx passing, 429 warning, else critical) and reaps a
// service critical for DeregisterCriticalServiceAfter (without Consul's
// one-minute floor), as a real agent does; without it they stay critical.
//
// Controls: AddInstance, RemoveInstance, SetCheck and SetStatus (flip
// health), Touch (index bump without a change), ResetIndex (make the index
// go backwards), SetKnownLeader, PutKV and DeleteKV, Fail (answer 500, 403
// or any code for the next N calls or until ClearFaults, optionally echoing
// the request's token to test redaction), Hang (never answer until Unhang,
// Stop or the request's context ends), Stop and Restart (agent down and
// back on the same address), and observation: Calls, LastCall, History and
// InFlight (open requests; it returns to zero when clients stop their
// loops, which is how tests detect leaked watchers). For sessions:
// ExpireSession (invalidate now, as a lapsed TTL), FailRenewals (renewals
// answer 500, as if the holder lost the cluster), LockHolder, Locks and
// Sessions.
//
// Partitions and several instances: NewLink puts a TCP relay between one
// client and the server; Link.Cut partitions that client alone (its open
// connections close, new ones are dropped) and Restore heals it, so a
// fleet of clients can share one server while one of them loses it.
//
// The package does not import testing (New takes the TB interface), so
// `meridian demo -consul` runs a Server as a clearly labelled stand-in:
// state is in memory, there is no Raft, no gossip, no ACL system beyond one
// token, and no anti-entropy; only the endpoints above exist.
//
// Concurrency: every method is safe from any goroutine; the server may be
// used by many clients at once. Two servers share nothing.
package consultest
