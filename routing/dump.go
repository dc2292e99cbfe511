package routing

import (
	"fmt"
	"github.com/meridian-lb/meridian/config"
	"strings"
)

// String renders the table as canonical text: every pool, service, route and
// zone in a fixed order, without health or timestamps. Golden tests compare
// it, and /api/v1/table's consumers can diff two versions with it.
func (t *Table) String() string {
	var b strings.Builder
	for _, name := range sortedKeys(t.Pools) {
		p := t.Pools[name]
		fmt.Fprintf(&b, "pool %s region=%q balance=%s check=%q fail_open=%t\n", p.Name, p.Region, p.Balance, p.CheckName, p.FailOpen)
		if p.HashOn != nil {
			fmt.Fprintf(&b, "  hash_on header=%q cookie=%q client_ip=%t\n", p.HashOn.Header, p.HashOn.Cookie, p.HashOn.ClientIP)
		}
		if o := p.Outlier; o.Active() {
			fmt.Fprintf(&b, "  outlier failures=%d ejection=%s max_ejection=%s max_ejected=%d%% on_5xx=%t on_timeout=%t\n",
				o.ConsecutiveFailures, o.Ejection.D(), o.MaxEjection.D(), o.MaxEjectedPercent, o.On5xx, o.OnTimeout)
		} else {
			fmt.Fprintf(&b, "  outlier off\n")
		}
		if l := p.Limits; l != nil && *l != defaultLimits {
			fmt.Fprintf(&b, "  limits max_connections=%d max_pending=%d max_requests=%d max_retries=%d\n", l.MaxConnections, l.MaxPending, l.MaxRequests, l.MaxRetries)
		}
		if p.SlowStart > 0 {
			fmt.Fprintf(&b, "  slow_start %s\n", p.SlowStart)
		}
		for _, e := range p.Endpoints {
			fmt.Fprintf(&b, "  endpoint %s weight=%d region=%q source=%s\n", e.Address, e.Weight, e.Region, e.Source)
		}
	}
	for _, name := range sortedKeys(t.Services) {
		s := t.Services[name]
		names := make([]string, len(s.Pools))
		for i, p := range s.Pools {
			names[i] = p.Name
		}
		fmt.Fprintf(&b, "service %s policy=%s pools=%s", s.Name, s.Policy, strings.Join(names, ","))
		if len(s.Weights) > 0 {
			fmt.Fprintf(&b, " weights=%v", s.Weights)
		}
		if g := s.Guard; g != nil {
			fmt.Fprintf(&b, " guard=min_pools:%d,min_regions:%d", g.MinPools, g.MinRegions)
		}
		b.WriteByte('\n')
	}
	for _, r := range t.Routes {
		r.dump(&b)
	}
	for _, z := range t.Zones {
		z.Dump(&b)
	}
	for _, p := range t.Pending {
		fmt.Fprintf(&b, "pending %s\n", p)
	}
	return b.String()
}

// defaultLimits are a pool's circuit breakers when its config sets none;
// the dump leaves them out.
var defaultLimits = config.PoolLimits{
	MaxConnections: config.DefaultPoolMaxConnections, MaxPending: config.DefaultPoolMaxPending,
	MaxRequests: config.DefaultPoolMaxRequests, MaxRetries: config.DefaultPoolMaxRetries,
}
