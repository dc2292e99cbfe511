package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/meridian-lb/meridian/catalog"
	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/fleet"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/proxy"
	"github.com/meridian-lb/meridian/routing"
)

// fleetApp wires package fleet into the App: the live instance list (the
// fleet registration in the catalog, which rate limits with scope fleet
// count and forwarding reads), the session-held health reports and their
// quorum, shared overrides, and the cross-region forwarder. It exists when
// the config at start has consul.register; every method is nil-safe.
type fleetApp struct {
	a       *App
	f       *fleet.Fleet
	fwd     *proxy.RegionForwarder
	regName string // consul.register.name
	region  string // config region at start
	members atomic.Pointer[[]fleet.Member]
}

// newFleetApp builds the fleet's parts for the App, or nil without a
// fleet registration.
func newFleetApp(a *App, cfg *config.Config) (*fleetApp, error) {
	if a.consul == nil || cfg.Consul == nil || cfg.Consul.Register == nil {
		return nil, nil
	}
	fs := cfg.Consul.FleetSettings()
	fa := &fleetApp{a: a, regName: cfg.Consul.Register.Name, region: cfg.Region}
	fa.members.Store(&[]fleet.Member{})
	var err error
	fa.f, err = fleet.New(fleet.Options{
		Client:     a.consul,
		Prefix:     fs.Prefix,
		SessionTTL: fs.SessionTTL.D(),
		Region:     cfg.Region,
		Datacenter: cfg.Consul.Datacenter,
		Health:     a.health,
		Table:      a.live.Load,
		OnChange:   a.dns.HealthChanged,
		Logger:     a.logger,
		Registerer: a.reg,
	})
	if err != nil {
		return nil, err
	}
	fa.fwd, err = proxy.NewRegionForwarder(proxy.RegionForwarderOptions{Edges: fa.edges, Logger: a.logger.Named("http"), Registerer: a.reg})
	if err != nil {
		return nil, err
	}
	a.proxy.SetRegionForwarder(fa.fwd)
	fa.configure(cfg)
	return fa, nil
}

// overrideRegion sets the instance's region (Options.Region, the -region
// flag) on a config just parsed, before anything reads it: a fleet sharing
// one config names each instance's region on its command line.
func overrideRegion(cfg *config.Config, region string) error {
	if region == "" {
		return nil
	}
	if strings.TrimFunc(region, func(r rune) bool {
		return r == '-' || r == '_' || r == '.' || unicode.IsLetter(r) || unicode.IsDigit(r)
	}) != "" {
		return fmt.Errorf("region %q: letters, digits, '-', '_' and '.' only", region)
	}
	if cfg.Region != region {
		// Only a config not yet published differs: a recompile of the
		// live one (a catalog change) writes nothing.
		cfg.Region = region
	}
	return nil
}

// configure takes what a reload may change.
func (fa *fleetApp) configure(cfg *config.Config) {
	if fa == nil {
		return
	}
	shared := true
	if cfg.Consul != nil && cfg.Consul.Fleet != nil && cfg.Consul.Fleet.SharedOverrides != nil {
		shared = *cfg.Consul.Fleet.SharedOverrides
	}
	fa.f.Configure(cfg.Health.Quorum, shared)
}

// selections are the fleet registration's Consul selections: one per
// datacenter the config's pools span (the local one first), passing
// instances only.
func (fa *fleetApp) selections(cfg *config.Config, snap *catalog.Snapshot) []config.ConsulSelect {
	if fa == nil || cfg == nil {
		return nil
	}
	dcs, local := []string{""}, ""
	if cfg.Consul != nil {
		local = cfg.Consul.Datacenter
	}
	for _, name := range sortedNames(cfg.Pools) {
		p := cfg.Pools[name]
		if p == nil || p.Consul == nil {
			continue
		}
		for _, dc := range snap.Datacenters(*p.Consul) {
			if dc != "" && dc != local && !slices.Contains(dcs, dc) {
				dcs = append(dcs, dc)
			}
		}
	}
	out := make([]config.ConsulSelect, len(dcs))
	for i, dc := range dcs {
		out[i] = config.ConsulSelect{Service: fa.regName, Datacenter: dc, Health: "passing"}
	}
	return out
}

// update reads the live instance list from the catalog snapshot: the
// fleet's members, which size rate limits with scope fleet (at least 1).
func (fa *fleetApp) update(cfg *config.Config, snap *catalog.Snapshot) {
	if fa == nil {
		return
	}
	var inst []catalog.Instance
	ready := false
	for _, sel := range fa.selections(cfg, snap) {
		in, ok := snap.Instances(sel)
		ready = ready || ok
		inst = append(inst, in...)
	}
	if !ready {
		return
	}
	ms := fleet.MembersOf(inst, fa.f.ID())
	fa.members.Store(&ms)
	fa.f.SetMembers(ms)
	fa.a.fleetSize.Store(int64(max(len(ms), 1)))
}

// edges lists the live HTTP edges of a region, this instance's excepted.
func (fa *fleetApp) edges(region string) []string {
	return fleet.Edges(*fa.members.Load(), region)
}

// bind marks a new table with the fleet's verdicts and overrides, before
// it is published.
func (fa *fleetApp) bind(cfg *config.Config, t *routing.Table) {
	if fa == nil {
		return
	}
	fa.configure(cfg)
	fa.f.Bind(t)
}

// healthChanged is the health engine's OnChange hook.
func (fa *fleetApp) healthChanged() {
	if fa != nil {
		fa.f.HealthChanged()
	}
}

// run starts the fleet once the listeners are bound: its ID is the
// registration's service ID, which needs the HTTP port.
func (fa *fleetApp) run(ctx context.Context, g *errgroup.Group) {
	if fa == nil {
		return
	}
	host, _ := os.Hostname()
	addrs := fa.a.Addrs()
	id, err := catalog.ServiceID(fa.regName, catalog.Self{HTTP: addrs.HTTP, HTTPS: addrs.HTTPS, Hostname: host})
	if err != nil {
		fa.a.logger.Error("fleet: no instance ID; health reports and shared overrides are off", zap.Error(err))
		return
	}
	fa.f.SetID(id)
	fa.a.rebuild.Poke() // the member list marks this instance
	g.Go(func() error { return fa.f.Run(ctx) })
}

// overrider makes admin overrides fleet-wide: applied here at once, then
// shared through Consul KV (a failure to share is logged; the local
// override stands).
func (fa *fleetApp) overrider(h *health.Engine) overrider {
	if fa == nil {
		return h
	}
	return fleetOverrider{Engine: h, f: fa.f, log: fa.a.logger.Named("fleet")}
}

type fleetOverrider struct {
	*health.Engine
	f   *fleet.Fleet
	log *zap.Logger
}

func (o fleetOverrider) Override(pool, address string, a health.Action) error {
	// Applied here as the fleet's own, so that an enable made on any
	// instance lifts it here too.
	src := "api"
	if o.f.Shared() {
		src = fleet.OverrideSource
	}
	if err := o.Engine.OverrideAs(pool, address, a, src); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.f.Share(ctx, pool, address, a); err != nil {
		o.log.Warn("override applied here but not shared with the fleet", zap.String("pool", pool), zap.String("endpoint", address), zap.Error(err))
	}
	return nil
}

// explainForward is explain's view of a service's forwarding; nil
// without a fleet or when the service does not forward.
func (fa *fleetApp) explainForward(t *routing.Table, service string) *proxy.ForwardExplanation {
	if fa == nil {
		return nil
	}
	return fa.fwd.Explain(t, service)
}

// fleetJSON is GET /api/v1/fleet.
type fleetJSON struct {
	fleet.Status
	// Datacenters are the catalog's watched datacenters, each with whether
	// it is stale (it stopped answering; its last instances are served).
	Datacenters []datacenterJSON            `json:"datacenters"`
	Forwarding  []*proxy.ForwardExplanation `json:"forwarding,omitempty"`
}

type datacenterJSON struct {
	Name     string `json:"name"`
	Stale    bool   `json:"stale"`
	Services int    `json:"selections"`
	Error    string `json:"error,omitempty"`
}

// routes serves GET /api/v1/fleet beside the admin API's own routes.
func (fa *fleetApp) routes(adm *admin, next http.Handler) http.Handler {
	if fa == nil {
		return next
	}
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/fleet", adm.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, fa.status())
	})))
	mux.Handle("/", next)
	return mux
}

func (fa *fleetApp) status() fleetJSON {
	out := fleetJSON{Status: fa.f.Status(), Datacenters: []datacenterJSON{}}
	if w := fa.a.watcher; w != nil {
		by := map[string]*datacenterJSON{}
		for _, s := range w.Status() {
			d := by[s.Datacenter]
			if d == nil {
				d = &datacenterJSON{Name: s.Datacenter}
				by[s.Datacenter] = d
			}
			d.Services++
			if s.Stale {
				d.Stale, d.Error = true, s.LastError
			}
		}
		for _, name := range sortedNames(by) {
			out.Datacenters = append(out.Datacenters, *by[name])
		}
	}
	if t := fa.a.live.Load(); t != nil {
		for _, name := range sortedNames(t.Services) {
			if ex := fa.fwd.Explain(t, name); ex != nil {
				out.Forwarding = append(out.Forwarding, ex)
			}
		}
	}
	return out
}
