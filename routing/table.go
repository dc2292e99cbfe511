package routing

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/geo"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/rollout"
)

// Table is one compiled, immutable routing state. The proxy and the DNS
// server load it once per request and never lock it. Only the counters of
// balancers inside change after publication, and those are atomics.
type Table struct {
	// Version is a hash of every input that shaped the table, so equal inputs
	// give equal versions on every instance of a fleet.
	Version string
	// Built is when the rebuild loop published the table; not part of String.
	Built time.Time

	Config   *config.Config
	Pools    map[string]*Pool
	Services map[string]*Service
	Routes   []*Route
	// Zones are the DNS zones, compiled by package dns/zone; their steered
	// records name services of this table and hold its endpoints.
	Zones []*zone.Zone
	// Geo maps a client address to its region; never nil.
	Geo *geo.Locator
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Pending names Consul selections that have not answered yet.
	Pending []string
	// Rollouts are the table's rollout plans by name ("route:NAME",
	// "service:NAME"), and RolloutWeights the canary weight each was
	// compiled at; the rollout manager is synced from the first and ticks
	// decide the second.
	Rollouts       map[string]rollout.Plan
	RolloutWeights map[string]int
	// ClientCAs holds, by route index, the client CA of each route that
	// requires client certificates (nil for the others).
	ClientCAs []*ClientCA

	// pending is what Compile left running with Inputs.Defer (the version
	// hash, lookup tables); Finish waits for it and sets Version.
	pending *pendingTable
}

// Pool is a set of endpoints in one place, balanced by one policy.
type Pool struct {
	Name      string
	Region    string
	Endpoints []*Endpoint
	Balance   config.Balance
	HashOn    *config.HashOn
	// FailOpen is Envoy's panic mode: when no endpoint is available, use
	// every endpoint an operator has not drained or forced down.
	FailOpen  bool
	CheckName string
	Check     *config.Check
	Outlier   *config.Outlier
	TLS       *config.UpstreamTLS
	// ClientTLS is TLS compiled, files read; nil without tls:.
	ClientTLS *UpstreamTLS
	// SlowStart is the ramp window of new and returning endpoints
	// (slowstart.go); 0 for none.
	SlowStart time.Duration
	// Limits are the pool's circuit breakers, enforced by the proxy; nil
	// only in a Config built by hand without SetDefaults.
	Limits *config.PoolLimits

	picker picker
	slow   *slowStart // nil without slow_start
	guard  poolGuard  // failover guard flags (guard.go)
}

// Endpoint is one upstream address of a pool.
type Endpoint struct {
	Address string // host:port as configured or from Consul
	Weight  int
	Region  string
	Source  string // "static" | "consul"
	// IP is the parsed host when it is an address; invalid for host names,
	// which DNS answers skip.
	IP netip.Addr
	// Health is the live overlay; nil (tests, unsynced tables) means up.
	Health *health.Member
	// Index is the endpoint's position in its pool's Endpoints, so that
	// consumers keep per-endpoint state in a slice (the proxy's telemetry
	// cells), as Route.Index does for routes.
	Index int

	// inflight counts requests on this endpoint for least_request.
	inflight atomic.Int64
	// quorum is the fleet's verdict for DNS (quorum.go); 0: none.
	quorum atomic.Uint32
	// pool is set for the pools of guarded services only (guard.go).
	pool *Pool
}

// Available reports whether the endpoint may get new traffic right now:
// its health says so, or a failover guard holds its pool in service and
// no operator drained or forced it down (guard.go).
func (e *Endpoint) Available() bool {
	return e.Health == nil || e.Health.Available() || e.held()
}

// Excluded reports whether an operator drained the endpoint or forced it
// down. It then gets no new traffic even when its pool fails open: panic
// mode overrides health verdicts, never the operator.
func (e *Endpoint) Excluded() bool { return e.Health != nil && e.Health.Excluded() }

// Service steers across pools by policy; routes and DNS records name it.
type Service struct {
	Name    string
	Policy  config.Policy
	Pools   []*Pool
	Weights []int // for weighted; same length as Pools
	// Guard is the service's failover guardrail (guard.go); nil for none.
	Guard *config.Guard

	wrr   *wrrState
	guard serviceGuard
}

// LocationDependent reports whether the service's answer depends on the
// client's region, which decides the DNS ECS scope.
func (s *Service) LocationDependent() bool {
	return s.Policy == config.PolicyGeo && len(s.Pools) > 1
}

// Live holds the published table. The rebuild loop stores; the proxy, DNS
// and admin load once per request.
type Live struct{ p atomic.Pointer[Table] }

// Load returns the live table, or nil before the first one.
func (l *Live) Load() *Table { return l.p.Load() }

// Store publishes t.
func (l *Live) Store(t *Table) { l.p.Store(t) }
