package routing

// Quorum is the fleet's verdict on an endpoint, which DNS answers by when
// health.quorum is configured (package fleet sets it): with it, an endpoint
// this instance cannot reach stays in DNS answers while enough of the fleet
// sees it up, and one it can reach leaves them when enough sees it down.
// The HTTP path never reads it: a request goes to endpoints this instance
// itself finds available.
type Quorum uint32

// The verdicts.
const (
	// QuorumNone: no verdict (no quorum configured, too few reporters, or
	// this instance's view of the fleet is stale): DNS follows this
	// instance's own health, as without a fleet.
	QuorumNone Quorum = iota
	// QuorumUp: fewer than down_ratio of the live reporters see it down.
	QuorumUp
	// QuorumDown: at least down_ratio of them do.
	QuorumDown
)

// String names the verdict for the API.
func (q Quorum) String() string {
	switch q {
	case QuorumUp:
		return "up"
	case QuorumDown:
		return "down"
	}
	return "none"
}

// SetQuorum sets the fleet's verdict on the endpoint and reports whether it
// changed. It is safe from any goroutine.
func (e *Endpoint) SetQuorum(q Quorum) bool { return e.quorum.Swap(uint32(q)) != uint32(q) }

// QuorumVerdict returns the fleet's verdict on the endpoint.
func (e *Endpoint) QuorumVerdict() Quorum { return Quorum(e.quorum.Load()) }

// DNSAvailable reports whether DNS may answer the endpoint: by the fleet's
// verdict when there is one, else by Available. An operator's drain or
// forced down wins over an up verdict (drains are shared fleet-wide), and
// a failover guard holds a pool in service over a down one, as it does
// over this instance's own health.
func (e *Endpoint) DNSAvailable() bool {
	switch Quorum(e.quorum.Load()) {
	case QuorumUp:
		return !e.Excluded()
	case QuorumDown:
		return e.pool != nil && e.pool.guardHolds(e)
	}
	return e.Available()
}

// dnsState is how steered DNS records see an endpoint (zone.State): by
// DNSAvailable.
type dnsState Endpoint

func (d *dnsState) Available() bool { return (*Endpoint)(d).DNSAvailable() }
func (d *dnsState) Excluded() bool  { return (*Endpoint)(d).Excluded() }
