// Package consultest is an in-process Consul HTTP API server for tests: the
// subset Meridian uses, with Consul's semantics, plus controls to script
// failures. It owns no production code path; only tests import it.
//
// Served endpoints:
//
//	GET    /v1/health/service/<name>   ?index ?wait ?dc ?tag (repeatable) ?passing ?near ?stale
//	GET    /v1/kv/<key>                ?index ?wait ?dc ?raw; 404 (with X-Consul-Index) when missing
//	PUT    /v1/kv/<key>                ?cas ?flags; body is the value; answers true or false
//	DELETE /v1/kv/<key>
//	PUT    /v1/agent/service/register  ?replace-existing-checks
//	PUT    /v1/agent/service/deregister/<id>
//	GET    /v1/status/leader
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
// ?filter, ?recurse and ?keys answer 400 because nothing here implements
// them. ?near is accepted and recorded but does not reorder (there are no
// network coordinates).
//
// Registering a service with the agent endpoint also puts it in the catalog
// on the agent's node (Options.NodeName), with its checks initially
// critical as Consul does; deregistering removes it.
//
// Controls: AddInstance, RemoveInstance, SetCheck and SetStatus (flip
// health), Touch (index bump without a change), ResetIndex (make the index
// go backwards), SetKnownLeader, PutKV and DeleteKV, Fail (answer 500, 403
// or any code for the next N calls or until ClearFaults, optionally echoing
// the request's token to test redaction), Hang (never answer until Unhang,
// Stop or the request's context ends), Stop and Restart (agent down and
// back on the same address), and observation: Calls, LastCall, History and
// InFlight (open requests; it returns to zero when clients stop their
// loops, which is how tests detect leaked watchers).
//
// Concurrency: every method is safe from any goroutine; the server may be
// used by many clients at once. Two servers share nothing.
package consultest
