package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/geo"
	"github.com/meridian-lb/meridian/health"
)

// Catalog answers which endpoints a Consul selection has right now. ready is
// false until the selection's first answer, so a pool is never emptied by an
// error and the admin API can say what it waits for.
type Catalog interface {
	Endpoints(sel config.ConsulSelect) (eps []CatalogEndpoint, ready bool)
}

// CatalogEndpoint is one instance the catalog lists for a selection.
type CatalogEndpoint struct {
	Address string // host:port
	Weight  int
	Region  string
}

// Inputs are what shapes a table besides the config file.
type Inputs struct {
	Catalog Catalog // nil: no Consul
	GeoDB   *geo.DB // nil: no GeoIP database
	// Previous is the live table, if any. A pool whose Consul selection has
	// not answered yet (its tags changed in this reload, say) keeps the
	// Consul endpoints it had there instead of starting empty.
	Previous *Table
}

// Compile turns a validated config and the current inputs into a table. It
// is pure and deterministic: the same inputs give the same table and the same
// Version, and nothing outside the returned table is touched.
func Compile(cfg *config.Config, in Inputs) (*Table, error) {
	t := &Table{
		Config:   cfg,
		Pools:    make(map[string]*Pool, len(cfg.Pools)),
		Services: make(map[string]*Service, len(cfg.Services)),
	}
	loc, err := geo.NewLocator(cfg.Geo, in.GeoDB)
	if err != nil {
		return nil, err
	}
	t.Geo = loc
	for _, c := range cfg.HTTP.TrustedProxies {
		p, err := config.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("http.trusted_proxies: %w", err)
		}
		t.TrustedProxies = append(t.TrustedProxies, p)
	}
	for _, name := range sortedKeys(cfg.Pools) {
		var prev *Pool
		if in.Previous != nil {
			prev = in.Previous.Pools[name]
		}
		p, pending := compilePool(name, cfg.Pools[name], cfg.Checks, in.Catalog, prev)
		if pending {
			t.Pending = append(t.Pending, fmt.Sprintf("pool %q: waiting for Consul service %q", name, cfg.Pools[name].Consul.Service))
		}
		t.Pools[name] = p
	}
	for _, name := range sortedKeys(cfg.Services) {
		s := cfg.Services[name]
		svc := &Service{Name: name, Policy: s.Policy, Weights: s.Weights}
		for _, pn := range s.Pools {
			p, ok := t.Pools[pn]
			if !ok {
				return nil, fmt.Errorf("service %q: unknown pool %q", name, pn)
			}
			svc.Pools = append(svc.Pools, p)
		}
		if s.Policy == "weighted" {
			svc.wrr = newWRR(s.Weights)
		}
		t.Services[name] = svc
	}
	if t.Routes, err = compileRoutes(cfg, t.Services); err != nil {
		return nil, err
	}
	if t.Zones, err = compileZones(cfg, t.Services); err != nil {
		return nil, err
	}
	t.Version = version(cfg, t)
	return t, nil
}

// compilePool resolves a pool's endpoints: the static ones in file order,
// then the catalog's sorted by address. While a Consul selection has not
// answered, the pool keeps prev's Consul endpoints; pending is true when it
// has none to keep.
func compilePool(name string, c *config.Pool, checks map[string]*config.Check, cat Catalog, prev *Pool) (*Pool, bool) {
	p := &Pool{
		Name:      name,
		Region:    c.Region,
		Balance:   c.Balance,
		HashOn:    c.HashOn,
		FailOpen:  c.OnAllDown != "fail",
		CheckName: c.Check,
		Check:     checks[c.Check],
		Outlier:   c.Outlier,
		TLS:       c.TLS,
	}
	seen := map[string]bool{}
	add := func(addr string, weight int, region, source string) {
		if seen[addr] || weight <= 0 {
			return
		}
		seen[addr] = true
		if region == "" {
			region = c.Region
		}
		ep := &Endpoint{Address: addr, Weight: weight, Region: region, Source: source}
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			ep.IP = ap.Addr().Unmap()
		}
		p.Endpoints = append(p.Endpoints, ep)
	}
	for _, e := range c.Endpoints {
		add(e.Address, e.Weight, "", "static")
	}
	pending := false
	if c.Consul != nil {
		var eps []CatalogEndpoint
		ready := false
		if cat != nil {
			eps, ready = cat.Endpoints(*c.Consul)
		}
		if !ready && prev != nil {
			for _, e := range prev.Endpoints {
				if e.Source == "consul" {
					eps = append(eps, CatalogEndpoint{Address: e.Address, Weight: e.Weight, Region: e.Region})
				}
			}
		}
		pending = !ready && len(eps) == 0
		sort.Slice(eps, func(i, j int) bool { return eps[i].Address < eps[j].Address })
		for _, e := range eps {
			add(e.Address, max(e.Weight, 1), e.Region, "consul")
		}
	}
	p.picker = newPicker(p)
	return p, pending
}

// version hashes the config as decoded (so comments and key order do not
// count), the resolved endpoints and the pending selections (so a catalog
// change does).
func version(cfg *config.Config, t *Table) string {
	h := sha256.New()
	// encoding/json writes maps in key order, so equal configs hash equal;
	// it is several times cheaper than re-encoding YAML on large configs.
	if err := json.NewEncoder(h).Encode(cfg); err != nil {
		// Encoding a decoded config cannot fail; fall back to the dump.
		h.Write([]byte(t.String()))
	}
	for _, name := range sortedKeys(t.Pools) {
		for _, e := range t.Pools[name].Endpoints {
			h.Write([]byte(name + "\x00" + e.Address + "\x00" + strconv.Itoa(e.Weight) + "\x00" + e.Region + "\n"))
		}
	}
	for _, p := range t.Pending {
		h.Write([]byte("pending\x00" + p + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// HealthSpecs lists every pool with its check and endpoints, for
// health.Engine.Sync.
func (t *Table) HealthSpecs() []health.PoolSpec {
	specs := make([]health.PoolSpec, 0, len(t.Pools))
	for _, name := range sortedKeys(t.Pools) {
		p := t.Pools[name]
		s := health.PoolSpec{Name: name, CheckName: p.CheckName, Check: p.Check, TLS: p.TLS, Outlier: p.Outlier}
		for _, e := range p.Endpoints {
			s.Endpoints = append(s.Endpoints, e.Address)
		}
		specs = append(specs, s)
	}
	return specs
}

// MemberSource hands out the live health member of (pool, address).
type MemberSource interface {
	Member(pool, address string) *health.Member
}

// BindHealth attaches the health overlay to every endpoint. The rebuild loop
// calls it after Sync and before publishing, so a published table is never
// written again.
func (t *Table) BindHealth(src MemberSource) {
	for name, p := range t.Pools {
		for _, e := range p.Endpoints {
			e.Health = src.Member(name, e.Address)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
