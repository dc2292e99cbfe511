package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/meridian-lb/meridian/dns"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/internal/audit"
	"github.com/meridian-lb/meridian/internal/history"
	"github.com/meridian-lb/meridian/policy"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// overrider applies admin drain/down/enable to a health member.
type overrider interface {
	Override(pool, address string, a health.Action) error
	Status(pool, address string) (health.Status, bool)
}

// admin serves the admin API: health, readiness, metrics, the live table and
// endpoint overrides.
type admin struct {
	live     *routing.Live
	health   overrider
	reload   func() ReloadStatus
	gatherer prometheus.Gatherer
	logger   *zap.Logger
	draining *atomic.Bool
	token    *atomic.Pointer[adminToken] // nil, or required and empty: locked
	explain  http.Handler                // may be nil until DNS/proxy provide one
	extra    func() []string             // reasons /readyz is not ready, besides draining
	consul   func() any                  // Consul selections' status; nil without Consul
	geo      func() any                  // GeoIP database status; nil without one
	tls      func() any                  // certificate status; returns nil without HTTPS
	tel      *telemetry.Telemetry        // GET /api/v1/stats (stats.go); nil: not served
	// hist serves /api/v1/config/history and diff, rollback writes an
	// entry back to the config source (adminconfig.go); nil: not served.
	hist     *history.History
	rollback func(ctx context.Context, e history.Entry) error
	audit    *audit.Log // every admin action; nil: not recorded
	ro       *rollouts  // GET /api/v1/rollouts and their actions (rollouts.go); nil: not served

	// drills serves /api/v1/drills and checks overrides against the
	// failover guards (drills.go); nil: neither.
	drills *drills
}

func (a *admin) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.gatherer, promhttp.HandlerOpts{}))
	mux.Handle("GET /api/v1/table", a.auth(http.HandlerFunc(a.table)))
	mux.Handle("GET /api/v1/stats", a.auth(http.HandlerFunc(a.stats)))
	mux.Handle("POST /api/v1/endpoints/{pool}/{address}/{action}", a.auth(http.HandlerFunc(a.override)))
	if a.hist != nil {
		mux.Handle("GET /api/v1/config/history", a.auth(http.HandlerFunc(a.historyList)))
		mux.Handle("GET /api/v1/config/history/{version}", a.auth(http.HandlerFunc(a.historyGet)))
		mux.Handle("GET /api/v1/config/diff", a.auth(http.HandlerFunc(a.configDiff)))
		mux.Handle("POST /api/v1/config/rollback/{version}", a.auth(http.HandlerFunc(a.configRollback)))
	}
	if a.audit != nil {
		mux.Handle("GET /api/v1/audit", a.auth(http.HandlerFunc(a.auditList)))
	}
	if a.drills != nil {
		a.drillRoutes(mux)
	}
	a.rolloutRoutes(mux)
	if a.explain != nil {
		mux.Handle("GET /api/v1/explain", a.auth(a.explain))
	}
	// Profiles show the request path's cost in production; they expose
	// internals, so they take the same token as the API.
	mux.Handle("GET /debug/pprof/", a.auth(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/cmdline", a.auth(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("GET /debug/pprof/profile", a.auth(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/symbol", a.auth(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("GET /debug/pprof/trace", a.auth(http.HandlerFunc(pprof.Trace)))
	mux.HandleFunc("GET /{$}", a.dashboard)
	return mux
}

func (a *admin) readyz(w http.ResponseWriter, r *http.Request) {
	var why []string
	if a.draining.Load() {
		why = append(why, "draining: shutting down")
	}
	if a.live.Load() == nil {
		why = append(why, "no routing table yet")
	}
	if a.extra != nil {
		why = append(why, a.extra()...)
	}
	if len(why) > 0 {
		http.Error(w, strings.Join(why, "\n"), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// auth requires a bearer token on /api/ when one is configured: the token
// of admin.token_file or of any of admin.tokens, each compared in constant
// time. It fails closed: with no token loaded yet, or a required token
// that is empty, no call passes, whatever it presents (an empty token must
// never mean open). The name of the token that passed goes with the
// request (tokenName) for the audit log.
func (a *admin) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tok *adminToken
		if a.token != nil {
			tok = a.token.Load()
		}
		if tok == nil || tok.required {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			name, match := "", false
			if tok != nil && ok {
				name, match = tok.match(got)
			}
			if !match {
				w.Header().Set("WWW-Authenticate", `Bearer realm="meridian"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), tokenNameKey{}, name))
		}
		next.ServeHTTP(w, r)
	})
}

func (a *admin) override(w http.ResponseWriter, r *http.Request) {
	pool, addr, action := r.PathValue("pool"), r.PathValue("address"), r.PathValue("action")
	target := pool + "/" + addr
	act, err := health.ParseAction(action)
	if err != nil {
		a.record(r, action, target, "bad request", err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	forced, ok := a.guardOverride(w, r, act, pool, addr) // 409 when it would break a failover guard
	if !ok {
		return
	}
	if err := a.health.Override(pool, addr, act); err != nil {
		a.record(r, action, target, "not found", err.Error())
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	a.logger.Info("admin override", zap.String("pool", pool), zap.String("endpoint", addr), zap.String("action", action), zap.String("remote", r.RemoteAddr))
	st, _ := a.health.Status(pool, addr)
	a.record(r, action, target, "ok", "state "+string(st.State)+forced)
	writeJSON(w, st)
}

// tableJSON is the /api/v1/table document.
type tableJSON struct {
	Version    string                 `json:"version"`
	Built      time.Time              `json:"built"`
	LastReload ReloadStatus           `json:"last_reload"`
	Routes     []routeJSON            `json:"routes"`
	Services   map[string]serviceJSON `json:"services"`
	Pools      map[string]poolJSON    `json:"pools"`
	Zones      []zoneJSON             `json:"zones"`
	Pending    []string               `json:"pending,omitempty"`
	Consul     any                    `json:"consul,omitempty"`
	GeoDB      any                    `json:"geo_db,omitempty"`
	TLS        any                    `json:"tls,omitempty"`
	Dump       string                 `json:"dump"`
}

type routeJSON struct {
	Name     string             `json:"name"`
	Service  string             `json:"service,omitempty"`
	Policies []policy.Described `json:"policies,omitempty"` // in the order they run
	Detail   any                `json:"config"`
}

type serviceJSON struct {
	Policy  string   `json:"policy"`
	Pools   []string `json:"pools"`
	Weights []int    `json:"weights,omitempty"`

	// Guard is the failover guard's state and why (routing/guard.go).
	Guard *routing.GuardStatus `json:"guard,omitempty"`
}

type poolJSON struct {
	Region    string         `json:"region,omitempty"`
	Balance   string         `json:"balance"`
	Check     string         `json:"check,omitempty"`
	FailOpen  bool           `json:"fail_open"`
	Panic     bool           `json:"panic"` // traffic fails open to it now (Table.FailingOpen)
	Endpoints []endpointJSON `json:"endpoints"`
	// HeldBy names the services whose failover guards hold it in service.
	HeldBy []string `json:"held_by,omitempty"`
}

type endpointJSON struct {
	Address   string         `json:"address"`
	Weight    int            `json:"weight"`
	Region    string         `json:"region,omitempty"`
	Source    string         `json:"source"`
	Available bool           `json:"available"`
	Health    *health.Status `json:"health,omitempty"`
}

type zoneJSON struct {
	Origin string `json:"origin"`
	Detail any    `json:"config"`
	Serial uint32 `json:"serial"`
	// Steered is each steered record with the answer every region gets now.
	Steered []dns.SteeredView `json:"steered,omitempty"`
}

func (a *admin) table(w http.ResponseWriter, r *http.Request) {
	t := a.live.Load()
	doc := tableJSON{LastReload: a.reload(), Services: map[string]serviceJSON{}, Pools: map[string]poolJSON{}}
	if t == nil {
		writeJSON(w, doc)
		return
	}
	doc.Version, doc.Built, doc.Pending, doc.Dump = t.Version, t.Built, t.Pending, t.String()
	if a.consul != nil {
		doc.Consul = a.consul()
	}
	if a.geo != nil {
		doc.GeoDB = a.geo()
	}
	if a.tls != nil {
		doc.TLS = a.tls()
	}
	for _, rt := range t.Routes {
		rj := routeJSON{Name: rt.Name, Policies: rt.Policy.Steps(), Detail: yamlDoc(rt.Config)}
		if rt.Service != nil {
			rj.Service = rt.Service.Name
		}
		doc.Routes = append(doc.Routes, rj)
	}
	for name, s := range t.Services {
		sj := serviceJSON{Policy: string(s.Policy), Weights: s.Weights, Guard: s.GuardStatus()}
		for _, p := range s.Pools {
			sj.Pools = append(sj.Pools, p.Name)
		}
		doc.Services[name] = sj
	}
	failing := t.FailingOpen() // panic only where traffic actually fails open
	for name, p := range t.Pools {
		pj := poolJSON{Region: p.Region, Balance: string(p.Balance), Check: p.CheckName, FailOpen: p.FailOpen, Panic: failing[name], HeldBy: p.HeldBy(), Endpoints: []endpointJSON{}}
		for _, e := range p.Endpoints {
			ej := endpointJSON{Address: e.Address, Weight: e.Weight, Region: e.Region, Source: e.Source, Available: e.Available()}
			if st, ok := a.health.Status(name, e.Address); ok {
				ej.Health = &st
			}
			pj.Endpoints = append(pj.Endpoints, ej)
		}
		doc.Pools[name] = pj
	}
	regions := dns.Regions(t)
	for _, z := range t.Zones {
		doc.Zones = append(doc.Zones, zoneJSON{Origin: z.Origin, Detail: yamlDoc(z.Config), Serial: z.Serial(), Steered: dns.RegionAnswers(t, z, regions)})
	}
	writeJSON(w, doc)
}

// yamlDoc renders a config section with its YAML keys, as the operator
// wrote them, for the JSON API.
func yamlDoc(v any) any {
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil
	}
	return doc
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
