// Package fleet is what Meridian instances registered in one Consul
// datacenter share: the live instance list, every instance's health
// verdicts (and the quorum DNS answers by), and operator overrides made on
// any of them. It imports config, catalog (instances) and routing (the
// table whose endpoints it marks); internal/app wires it.
//
// # Members
//
// The live instance list is the fleet registration in the Consul catalog
// (consul.register): the passing instances of that service in the local
// datacenter and the others the config's pools span. Each Member carries
// its region (meta meridian-region, else its datacenter), its HTTP edge
// (the registration's address and port) and its admin port. Rate limits
// with scope fleet divide by its length; a service with on_all_down:
// forward sends requests to the edges of the next region in it.
//
// # Reports and quorum
//
// Every instance keeps one Consul session (TTL consul.fleet.session_ttl,
// renewed every TTL/2, behaviour delete, bound to its agent's serfHealth)
// and holds its report key, PREFIX/reports/ID, through it: a JSON map of
// "pool/address" to up or down, its own health engine's verdict (probe
// state and passive ejection; operator overrides and endpoints whose first
// probe has not completed are left out). The report is rewritten when a
// verdict changes. When the instance dies its session lapses (Consul
// invalidates it one to two TTLs after the last renewal) and the key is
// deleted with it: a dead instance's reports vanish. A clean shutdown
// destroys the session at once.
//
// Each instance watches PREFIX/ with one blocking query. With
// health.quorum {min_reporters: M, down_ratio: R}, an endpoint's verdict
// for DNS is: with fewer than M live reporters that know it, none (DNS
// follows this instance's own health); else down when at least R of them
// see it down, up otherwise. This instance counts itself with its live
// verdict, the others with their last report. While this instance's view
// is stale (the watch has failed for longer than the session TTL: it is
// partitioned from Consul, and the others have stopped counting it), every
// verdict is none. The verdict is set on the table's endpoints
// (routing.Endpoint.SetQuorum), which DNS reads; the HTTP path keeps
// avoiding endpoints this instance cannot reach.
//
// # Shared overrides
//
// An admin drain, down or enable on one instance is also written to
// PREFIX/overrides/POOL/ADDRESS (enable deletes the key). Every instance
// applies the keys to its health engine as source "fleet"
// (health.Engine.OverrideAs), re-applies them to endpoints that appear
// later, and releases what it applied when a key goes away; an override
// made locally (the API's own, the state file's) is never undone by the
// fleet. consul.fleet.shared_overrides: false keeps them local.
//
// # Concurrency
//
// Fleet's methods are safe from any goroutine. Run owns the session, the
// watch and the refresh loop, and ends them all (destroying the session)
// when its context ends. HealthChanged and Bind never block on Consul.
package fleet
