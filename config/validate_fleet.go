package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// fleet checks the keys of a fleet of instances over Consul: region,
// consul.fleet, health.quorum, the multi-datacenter pool selections and a
// service's on_all_down: forward. validate calls it once.
func (v *validator) fleet() {
	c := v.c
	if c.Region != "" && !validName(c.Region) {
		v.add("region", "invalid region %q: letters, digits, '-', '_' and '.' only", c.Region)
	}
	registered := c.Consul != nil && c.Consul.Register != nil
	if f := fleetBlock(c); f != nil {
		if !registered {
			v.add("consul.fleet", "the fleet is the instances registered with consul.register, which is not set")
		}
		if strings.HasPrefix(f.Prefix, "/") || strings.HasSuffix(f.Prefix, "/") || strings.ContainsAny(f.Prefix, " ?#") {
			v.add("consul.fleet.prefix", "want a KV folder such as meridian/fleet (no leading or trailing '/'), not %q", f.Prefix)
		}
		if ttl := f.SessionTTL.D(); ttl != 0 && (ttl < time.Second || ttl > 24*time.Hour) {
			v.add("consul.fleet.session_ttl", "must be between 1s and 24h (Consul's servers refuse TTLs below their session_ttl_min, 10s by default)")
		}
	}
	if q := c.Health.Quorum; q != nil {
		if !registered {
			v.add("health.quorum", "a quorum counts the reports of the fleet registered with consul.register, which is not set")
		}
		if q.MinReporters < 1 {
			v.add("health.quorum.min_reporters", "must be at least 1")
		}
		if q.DownRatio <= 0 || q.DownRatio > 1 {
			v.add("health.quorum.down_ratio", "must be above 0 and at most 1, not %v", q.DownRatio)
		}
	}
	for _, name := range sortedKeys(c.Pools) {
		pl := c.Pools[name]
		if pl == nil {
			continue
		}
		p := "pools." + name
		if pl.OnAllDown == OnAllDownForward {
			v.add(p+".on_all_down", "forward is a service's setting (services.NAME.on_all_down); a pool takes fail_open or fail")
		}
		if cs := pl.Consul; cs != nil {
			v.datacenters(p+".consul", cs)
		}
	}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if s == nil || s.OnAllDown == "" {
			continue
		}
		p := "services." + name + ".on_all_down"
		switch {
		case s.OnAllDown != OnAllDownForward:
			v.add(p, "a service takes forward only; %s is a pool's setting", s.OnAllDown)
		case !registered:
			v.add(p, "forward finds the next region's edges through the fleet registration: needs consul.register")
		case c.Region == "":
			v.add(p, "forward needs the top-level region: (where this instance runs) to tell its own region's pools from the next")
		}
	}
}

// fleetBlock is consul.fleet, or nil.
func fleetBlock(c *Config) *Fleet {
	if c.Consul == nil {
		return nil
	}
	return c.Consul.Fleet
}

// datacenters checks a selection's datacenters and failover.
func (v *validator) datacenters(p string, cs *ConsulSelect) {
	if len(cs.Datacenters) > 0 && cs.Failover != nil {
		v.add(p+".failover", "set datacenters or failover, not both (failover.datacenters is the same list)")
	}
	v.dcList(p+".datacenters", cs.Datacenters)
	if f := cs.Failover; f != nil {
		if f.Nearest < 0 {
			v.add(p+".failover.nearest", "must not be negative")
		}
		if f.Nearest == 0 && len(f.Datacenters) == 0 {
			v.add(p+".failover", "needs nearest or datacenters")
		}
		v.dcList(p+".failover.datacenters", f.Datacenters)
	}
}

func (v *validator) dcList(p string, dcs []string) {
	for i, dc := range dcs {
		switch {
		case dc == "" || !validName(dc):
			v.add(fmt.Sprintf("%s[%d]", p, i), "invalid datacenter name %q", dc)
		case slices.Contains(dcs[:i], dc):
			v.add(fmt.Sprintf("%s[%d]", p, i), "datacenter %q listed twice", dc)
		}
	}
}

// validName accepts the names that go into Consul meta values and query
// parameters unescaped: letters, digits, '-', '_' and '.'.
func validName(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_' || r == '.')
	}) < 0
}
