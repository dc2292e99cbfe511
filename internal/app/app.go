package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/meridian-lb/meridian/catalog"
	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns"
	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/geo"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/policy"
	"github.com/meridian-lb/meridian/proxy"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// Options configure an App. Only ConfigPath is required.
type Options struct {
	// ConfigPath is the YAML file to serve and watch.
	ConfigPath string
	// Logger, when set, is used as is (tests); otherwise one is built from
	// the config's log section.
	Logger *zap.Logger
	// Registry receives every metric; nil makes a fresh one.
	Registry *prometheus.Registry
	// NoWatch turns the file watcher off: only Reload (SIGHUP) re-reads.
	NoWatch bool
	// ConsulAddr is the agent a consul://KEY ConfigPath is read from; empty
	// means CONSUL_HTTP_ADDR, else 127.0.0.1:8500.
	ConsulAddr string
	// Settle is how long a config file written in place must stay
	// unchanged before it is applied; 0 means config.DefaultSettle. A file
	// replaced by a rename or a symlink swap is applied at once.
	Settle time.Duration
	// Region, when set, overrides the config's region (fleet.go): a fleet
	// that shares one config across regions names each instance's here.
	Region string
}

// fileSettle is how long a config file that stopped parsing must stay
// unchanged before the failed reload counts (see rebuilder.settle).
const fileSettle = 100 * time.Millisecond

// Addrs are the addresses the App's listeners are bound to.
type Addrs struct {
	HTTP, HTTPS, Admin, DNS string
}

// App is one Meridian instance: config source, rebuild loop, health engine,
// servers and admin API. Several can run in one process.
type App struct {
	opts     Options
	logger   *zap.Logger
	level    zap.AtomicLevel
	reg      *prometheus.Registry
	live     routing.Live
	rebuild  *rebuilder
	health   *health.Engine
	geoDB    *geo.DB
	proxy    *proxy.Handler
	dns      *dns.Server
	tel      *telemetry.Telemetry // traffic counts of both layers: /api/v1/stats, the console, metrics
	consul   *api.Client
	watcher  *catalog.Watcher // nil without a consul: section
	kv       *kvSource        // nil unless the config lives in Consul KV
	liveCfg  *config.Config   // the published config; rebuild loop only
	compiled *proxy.Compiled  // the proxy's state for the last table compiled; rebuild loop only
	tlsFiles *tlsFiles        // watches the TLS files the live table was compiled from
	draining atomic.Bool
	token    atomic.Pointer[adminToken] // what /api/ requires; set by apply
	// nextToken is the token admit read for the config about to be
	// published (rebuild loop only); apply installs it.
	nextToken adminTokenFor
	tls       atomic.Pointer[proxy.TLSServer] // set by Run when listen.https is
	// keySets fetches the JWKS URLs of the routes' jwt policies, shared by
	// every table; Run refreshes them.
	keySets *policy.KeySets
	// fleetSize is how many Meridian instances Consul lists as passing
	// under consul.register's name (at least 1): rate limits with scope
	// fleet divide by it. compile updates it from the catalog.
	fleetSize atomic.Int64
	adm       adminState // config history, audit log (history.go)
	ro        *rollouts  // progressive delivery: the rollout manager and its store (rollouts.go)

	ready    chan struct{}
	addrsMu  sync.Mutex
	addrs    Addrs
	startCfg *config.Config

	// guards are the failover guardrails, re-evaluated on health changes
	// (routing/guard.go); drills the failover drills (drills.go).
	guards *routing.Guards
	drills *drills

	fl *fleetApp // the fleet over Consul (fleet.go); nil without consul.register
}

// New loads the config and builds an App. A config that does not load is an
// error here: there is no last good table to fall back to at start.
func New(opts Options) (_ *App, err error) {
	a := &App{opts: opts, reg: opts.Registry, ready: make(chan struct{})}
	if a.reg == nil {
		a.reg = prometheus.NewRegistry()
		a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	a.level = zap.NewAtomicLevel()
	bootLog := opts.Logger
	if bootLog == nil {
		bootLog = zap.NewNop()
	}
	var src source = fileSource(opts.ConfigPath)
	ref, isKV, err := catalog.ParseKVRef(opts.ConfigPath, opts.ConsulAddr)
	if err != nil {
		return nil, err
	}
	if isKV {
		if a.kv, err = newKVSource(ref, bootLog.Named("config")); err != nil {
			return nil, err
		}
		src = a.kv
	}
	data, _, err := src.Read()
	if err != nil {
		return nil, err
	}
	cfg, err := Check(src.Name(), data)
	if err != nil {
		return nil, err
	}
	if err := overrideRegion(cfg, opts.Region); err != nil {
		return nil, err
	}
	a.startCfg = cfg
	if opts.Logger != nil {
		a.logger = opts.Logger
	} else if a.logger, err = newLogger(cfg.Log, a.level); err != nil {
		return nil, err
	}
	if cfg.Geo.MMDB != "" {
		a.geoDB, err = geo.OpenDB(cfg.Geo.MMDB, a.logger.Named("geo"), a.reg)
		if err != nil {
			return nil, fmt.Errorf("geo.mmdb: %w", err)
		}
		defer func() {
			if err != nil {
				_ = a.geoDB.Close()
			}
		}()
	}
	a.tel = telemetry.New(telemetry.Options{})
	a.reg.MustRegister(a.tel.Collector())
	a.dns = dns.NewServer(dns.Options{Tables: &a.live, Settings: cfg.DNS, Logger: a.logger.Named("dns"), Registerer: a.reg, Telemetry: a.tel})
	a.proxy = proxy.NewHandler(proxy.Options{Logger: a.logger.Named("http"), Registerer: a.reg, Settings: cfg.HTTP, Telemetry: a.tel})
	a.reg.MustRegister(routing.NewPanicCollector(&a.live)) // meridian_pool_panic: both layers fail open from one table
	a.guards = routing.NewGuards(routing.GuardOptions{Logger: a.logger.Named("guard")})
	a.reg.MustRegister(a.guards) // meridian_service_guard_active, meridian_service_guard_holds_total
	a.health = health.New(health.Options{
		Logger:      a.logger,
		Registerer:  a.reg,
		MaxInFlight: cfg.Health.MaxInFlight,
		StateFile:   cfg.Health.StateFile,
		// The guards decide first, so DNS serials move with their holds.
		OnChange: func() { a.guards.HealthChanged(); a.dns.HealthChanged(); a.fl.healthChanged() },
	})
	a.rebuild = newRebuilder(src, a.logger.Named("config"), a.reg, &a.live)
	a.tlsFiles = newTLSFiles(a.logger.Named("tlsfiles"), a.rebuild.Poke)
	if a.kv == nil {
		if opts.Settle < 0 {
			return nil, fmt.Errorf("settle %v: must not be negative", opts.Settle)
		}
		a.rebuild.settle = fileSettle
		a.rebuild.inPlaceSettle = config.DefaultSettle
		if opts.Settle > 0 {
			a.rebuild.inPlaceSettle = opts.Settle
		}
	}
	if a.consul, err = consulClient(cfg); err != nil {
		return nil, err
	}
	if a.consul != nil {
		a.watcher, err = catalog.NewWatcher(a.consul, catalog.WatcherOptions{
			Logger:     a.logger,
			Registerer: a.reg,
			Poke:       a.rebuild.Poke,
			Stale:      cfg.Consul.Stale,
			Datacenter: cfg.Consul.Datacenter,
		})
		if err != nil {
			return nil, err
		}
	}
	a.keySets = policy.NewKeySets(a.logger.Named("jwks"))
	if a.fl, err = newFleetApp(a, cfg); err != nil {
		return nil, err
	}
	a.ro = newRollouts(cfg, a.consul, a.tel, &a.live, a.rebuild.Poke, a.Addrs, a.logger, a.reg)
	a.fleetSize.Store(1)
	a.rebuild.compile = a.compile
	a.rebuild.apply = a.apply
	a.rebuild.admit = a.admit
	a.initAdmin()
	a.drills = newDrills(&a.live, a.health, a.guards, a.adm.audit, a.logger.Named("drill"))
	if err := a.rebuild.rebuild(); err != nil {
		return nil, err
	}
	if a.ro.restore(time.Now()) {
		_ = a.rebuild.rebuild() // rollouts resume at their stored weights before anything is served
	}
	return a, nil
}

// Check parses, validates and compiles a config without serving it: what
// `meridian validate` runs, and what every reload must pass. The config
// must serve something (config.Config.Serves), and a token file it names
// must hold a token. Compiling catches what only the compiled table can see
// (two steered records at one name, one network mapped to two regions).
// Every problem found is reported, not only the first, each with its line:
// the error is a *config.Error. The zone compiler and the health checks'
// own checks also run as checks of Parse, so their problems are listed with
// the problems of the file's other rules, which stop it before
// routing.Compile (on a good file the zones are compiled twice, once by
// each: a validate run's cost, not a reload's).
func Check(name string, data []byte) (*config.Config, error) {
	cfg, err := config.Parse(name, data, zone.Check, health.CheckConfig)
	if err != nil {
		return nil, err
	}
	var errs []error
	if err := cfg.Serves(name); err != nil {
		errs = append(errs, err)
	}
	if _, err := loadTokens(cfg.Admin); err != nil {
		errs = append(errs, err)
	}
	if _, err := routing.Compile(cfg, routing.Inputs{NoKeyGeneration: true}); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Locate(errors.Join(errs...)); err != nil {
		return nil, err
	}
	return cfg, nil
}

// compile feeds the current catalog to routing.Compile, first telling the
// Consul watcher which selections this config needs (new ones start
// watching and poke the loop when they answer; unused ones stop).
func (a *App) compile(cfg *config.Config) (*routing.Table, error) {
	_ = overrideRegion(cfg, a.opts.Region) // fleet.go; the flag was checked at start
	// The version hash and new maglev tables go on beside the proxy's
	// compile and apply; the rebuild loop finishes the table before it
	// compares or publishes it (rebuild.go).
	in := routing.Inputs{GeoDB: a.geoDB, Previous: a.live.Load(), KeySets: a.keySets, Fleet: a.fleet, Defer: true}
	in.RolloutWeight = a.ro.weight
	if a.watcher != nil {
		// Watch what the live config and this one need; apply trims the
		// set to the published config, so a rejected candidate never stops
		// a live selection.
		snap := a.watcher.Snapshot()
		a.watcher.WantSelections(slices.Concat(consulSelections(cfg), consulSelections(a.liveCfg), a.fl.selections(cfg, snap)))
		in.Catalog = catalogView{snap}
		a.fl.update(cfg, snap) // the live instance list: rate limits with scope fleet
	} else if len(consulSelections(cfg)) > 0 {
		return nil, fmt.Errorf("pools select from Consul, but Meridian started without a consul: section; restart to apply it")
	}
	t, err := routing.Compile(cfg, in)
	if err != nil {
		return nil, err
	}
	// The proxy's state for the table is built here, before the swap, so
	// the first request on the new table builds nothing; apply installs it.
	a.compiled = a.proxy.Compile(t)
	if err := a.compiled.Err(); err != nil {
		// An access log file that cannot be opened rejects the config,
		// like an unreadable certificate: the last good one keeps serving.
		a.compiled = nil
		return nil, cfg.Locate(err)
	}
	return t, nil
}

// apply runs in the rebuild loop between compile and publication.
func (a *App) apply(cfg *config.Config, t *routing.Table) {
	a.liveCfg = cfg
	a.tlsFiles.set(cfg)
	if a.watcher != nil {
		a.watcher.WantSelections(append(consulSelections(cfg), a.fl.selections(cfg, a.watcher.Snapshot())...))
	}
	if lvl, err := zapcore.ParseLevel(cfg.Log.Level); err == nil {
		a.level.SetLevel(lvl)
	}
	if a.nextToken.cfg == cfg {
		// A new config: the token admit read for it. A recompile of the
		// live config (a catalog change) keeps the token in force.
		tok := a.nextToken.tok // a copy: the pointer must not alias nextToken
		a.token.Store(&tok)
		a.nextToken = adminTokenFor{}
	}
	a.applyAdmin(cfg)
	a.ro.sync(cfg, t)
	a.health.Sync(t.HealthSpecs())
	t.BindHealth(a.health)
	a.guards.Bind(t)  // before publication: the first request sees the guards' holds
	a.fl.bind(cfg, t) // fleet.go: DNS quorum verdicts and shared overrides
	if c := a.compiled; c != nil && c.Table() == t {
		a.proxy.Install(c)
	}
	a.compiled = nil
	a.dns.TableChanged(t)
	if ts := a.tls.Load(); ts != nil {
		if err := ts.Reload(cfg); err != nil {
			a.logger.Error("TLS settings not applied; the previous certificates keep serving", zap.Error(err))
		}
	}
	if a.startCfg != nil && cfg.Listen != a.startCfg.Listen {
		a.logger.Warn("listen addresses changed; they apply at the next restart",
			zap.Any("running", a.startCfg.Listen), zap.Any("configured", cfg.Listen))
	}
	if a.startCfg != nil && cfg.Geo.MMDB != a.startCfg.Geo.MMDB {
		a.logger.Warn("geo.mmdb changed; the database file in use changes at the next restart (its contents reload live)",
			zap.String("running", a.startCfg.Geo.MMDB), zap.String("configured", cfg.Geo.MMDB))
	}
}

// admit reads the admin token file a new config names, before the config
// may replace the live one: a file that is missing, unreadable, empty or
// only whitespace rejects the config, so the token in force (or, at start,
// the start itself) stands, and the API is never opened by a bad file.
func (a *App) admit(cfg *config.Config) error {
	tok, err := loadTokens(cfg.Admin)
	if err == nil {
		err = a.admitAdmin(cfg)
	}
	if err != nil {
		return cfg.Locate(err)
	}
	a.nextToken = adminTokenFor{cfg: cfg, tok: tok}
	return nil
}

// tokenProblem is loadToken's error as a problem at admin.token_file, so
// that a start, a reload and meridian validate report it at its line. The
// problem's path names the key, which loadToken's message starts with too.
func tokenProblem(err error) config.Problem {
	return config.Problem{Path: "admin.token_file", Msg: strings.TrimPrefix(err.Error(), "admin.token_file ")}
}

// adminToken is what /api/ requires.
type adminToken struct {
	// required is false only when no admin.token_file is configured: the
	// API is then open to whoever reaches listen.admin (loopback unless
	// configured otherwise).
	required bool
	// value is the bearer token. Required and empty never happens through
	// loadToken; should it, the API is locked, not opened.
	value string
	// named are admin.tokens, each accepted as well (history.go).
	named []namedToken
}

// adminTokenFor is a token read for one config.
type adminTokenFor struct {
	cfg *config.Config
	tok adminToken
}

// maxTokenBytes bounds what is read of a token file: a token is a line,
// and a path that names a large file by mistake must not cost memory.
const maxTokenBytes = 64 << 10

// loadToken reads the admin token file at path; "" means none is
// configured. The token is the file's content without surrounding
// whitespace (a trailing newline is usual), and an empty one is an error:
// empty must never mean "no token needed".
func loadToken(path string) (adminToken, error) {
	if path == "" {
		return adminToken{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return adminToken{}, fmt.Errorf("admin.token_file %s: %w", path, pathErr(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
	if err != nil {
		return adminToken{}, fmt.Errorf("admin.token_file %s: %w", path, pathErr(err))
	}
	if len(b) > maxTokenBytes {
		return adminToken{}, fmt.Errorf("admin.token_file %s: over %d KiB, not a token", path, maxTokenBytes>>10)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return adminToken{}, fmt.Errorf("admin.token_file %s: empty token", path)
	}
	return adminToken{required: true, value: tok}, nil
}

// pathErr drops the path from an *fs.PathError, which the caller's message
// already names.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Reload asks the rebuild loop to re-read the config (SIGHUP).
func (a *App) Reload() { a.rebuild.Poke() }

// ReopenLogs reopens the access log files (SIGUSR1), for logrotate: after
// it renames a file, lines keep going to the renamed file until this, and
// to a new file at the configured path after. It returns at once; a file
// that cannot be opened is logged and the old one kept.
func (a *App) ReopenLogs() {
	a.logger.Info("reopening the access log files")
	a.proxy.ReopenLogs()
	a.adm.audit.Reopen()
}

// Ready is closed once every listener is bound.
func (a *App) Ready() <-chan struct{} { return a.ready }

// Addrs returns the bound addresses; valid after Ready.
func (a *App) Addrs() Addrs {
	a.addrsMu.Lock()
	defer a.addrsMu.Unlock()
	return a.addrs
}

// Run serves until ctx is done, then drains: /readyz turns 503, listeners
// stop accepting, in-flight work gets up to shutdown.grace, and Run returns.
func (a *App) Run(ctx context.Context) error {
	cfg := a.startCfg
	grace := cfg.Shutdown.Grace.D()

	// Bind every listener first, so a port in use fails the start cleanly.
	adminLn, err := net.Listen("tcp", cfg.Listen.Admin)
	if err != nil {
		return fmt.Errorf("listen.admin %s: %w", cfg.Listen.Admin, err)
	}
	a.setAddr(func(ad *Addrs) { ad.Admin = adminLn.Addr().String() })
	var httpLn net.Listener
	if cfg.Listen.HTTP != "" {
		if httpLn, err = net.Listen("tcp", cfg.Listen.HTTP); err != nil {
			adminLn.Close()
			return fmt.Errorf("listen.http %s: %w", cfg.Listen.HTTP, err)
		}
		a.setAddr(func(ad *Addrs) { ad.HTTP = httpLn.Addr().String() })
	}
	var httpsLn net.Listener
	var tlsSrv *proxy.TLSServer
	if cfg.Listen.HTTPS != "" {
		if tlsSrv, err = proxy.NewTLSServer(a.proxy, cfg, a.logger, a.reg); err != nil {
			adminLn.Close()
			if httpLn != nil {
				httpLn.Close()
			}
			return fmt.Errorf("tls: %w", err)
		}
		if httpsLn, err = net.Listen("tcp", cfg.Listen.HTTPS); err != nil {
			tlsSrv.Close()
			adminLn.Close()
			if httpLn != nil {
				httpLn.Close()
			}
			return fmt.Errorf("listen.https %s: %w", cfg.Listen.HTTPS, err)
		}
		tlsSrv.Grace = grace
		a.tls.Store(tlsSrv)
		a.setAddr(func(ad *Addrs) { ad.HTTPS = httpsLn.Addr().String() })
	}

	adminSrv := &http.Server{Handler: a.adminHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(a.logger.Named("admin"))}
	adminDone := make(chan error, 1)
	go func() { adminDone <- adminSrv.Serve(adminLn) }()

	// Everything else runs in a group whose context ends only after /readyz
	// has answered 503 for shutdown.delay, so load balancers see the drain
	// before the listeners close.
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	g, gctx := errgroup.WithContext(serveCtx)
	g.Go(func() error { return a.health.Run(gctx) })
	g.Go(func() error { return a.tel.Run(gctx) })
	g.Go(func() error { return a.rebuild.Run(gctx) })
	g.Go(func() error { return a.drills.Run(gctx) }) // restores running drills before Run returns
	g.Go(func() error { return a.tlsFiles.Run(gctx) })
	if a.geoDB != nil {
		g.Go(func() error { return a.geoDB.Run(gctx) })
	}
	g.Go(func() error { a.keySets.Run(gctx); return nil })
	g.Go(func() error { return a.ro.run(gctx) })
	if a.watcher != nil {
		g.Go(func() error { return a.watcher.Run(gctx) })
	}
	if a.kv != nil {
		g.Go(func() error { return a.kv.run(gctx, a.rebuild.Poke) })
	} else if !a.opts.NoWatch {
		g.Go(func() error {
			w := &config.Watcher{Paths: []string{a.opts.ConfigPath}, Logger: a.logger.Named("watch"),
				Written: a.rebuild.MarkWritten, Replaced: a.rebuild.MarkReplaced}
			return w.Run(gctx, a.rebuild.Poke)
		})
	}
	if httpLn != nil {
		srv := proxy.NewServer(proxy.PlainEdge(a.proxy, tlsSrv), cfg.HTTP, a.logger)
		srv.Grace = grace
		g.Go(func() error { return srv.Serve(gctx, httpLn) })
	}
	if httpsLn != nil {
		g.Go(func() error { return tlsSrv.Serve(gctx, httpsLn) })
		g.Go(func() error { return tlsSrv.Run(gctx) })
	}
	if cfg.Listen.DNS != "" {
		bound := make(chan struct{})
		g.Go(func() error {
			return a.dns.Run(gctx, cfg.Listen.DNS, func(udp, _ net.Addr) {
				a.setAddr(func(ad *Addrs) { ad.DNS = udp.String() })
				close(bound)
			})
		})
		select {
		case <-bound:
		case <-gctx.Done():
		}
	}
	// Registration runs beside the group so that shutdown can stop it, and
	// wait for it, before deciding whether to deregister.
	var dereg func(context.Context) error
	regCtx, stopRegister := context.WithCancel(gctx)
	defer stopRegister()
	regDone := make(chan struct{})
	if a.consul != nil && cfg.Consul.Register != nil {
		go func() { defer close(regDone); dereg = a.register(regCtx, *cfg.Consul.Register) }()
	} else {
		close(regDone)
	}
	a.fl.run(gctx, g) // fleet.go: needs the bound HTTP port
	close(a.ready)
	addrs := a.Addrs()
	a.logger.Info("meridian started", zap.String("admin", addrs.Admin), zap.String("http", addrs.HTTP), zap.String("https", addrs.HTTPS),
		zap.String("dns", addrs.DNS), zap.String("config", a.opts.ConfigPath))

	select {
	case <-ctx.Done():
	case <-gctx.Done():
	case err := <-adminDone:
		adminDone <- err
	}
	a.draining.Store(true)
	a.logger.Info("shutting down", zap.Duration("delay", cfg.Shutdown.Delay.D()), zap.Duration("grace", grace))
	stopRegister()
	<-regDone
	if dereg != nil {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := dereg(dctx); err != nil {
			a.logger.Warn("consul deregistration failed", zap.Error(err))
		}
		cancel()
	}
	// /readyz now answers 503; give load balancers shutdown.delay to notice
	// before the listeners close.
	if d := cfg.Shutdown.Delay.D(); d > 0 {
		select {
		case <-time.After(d):
		case <-gctx.Done():
		}
	}
	stopServing() // listeners stop accepting; in-flight work gets the grace period
	err = g.Wait()
	a.proxy.Close() // writes the last access log lines and spans
	shutCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = adminSrv.Shutdown(shutCtx)
	_ = a.adm.audit.Close() // after the admin API's last action
	if aerr := <-adminDone; err == nil && !errors.Is(aerr, http.ErrServerClosed) {
		err = fmt.Errorf("admin server: %w", aerr)
	}
	if a.geoDB != nil {
		_ = a.geoDB.Close()
	}
	a.logger.Info("stopped")
	_ = a.logger.Sync()
	return err
}

// adminHandler builds the admin API over this App's parts.
func (a *App) adminHandler() http.Handler {
	adm := &admin{
		live: &a.live, health: a.fl.overrider(a.health), reload: a.rebuild.Status, gatherer: a.reg,
		logger: a.logger.Named("admin"), draining: &a.draining, token: &a.token, tel: a.tel,
		explain: explainHandler(&a.live, a.health.Status, a.fl.explainForward),
		hist:    a.adm.hist, audit: a.adm.audit, rollback: a.rollback,
		ro: a.ro,
		extra: func() []string {
			if t := a.live.Load(); t != nil {
				return t.Pending
			}
			return nil
		},
	}
	if a.watcher != nil {
		adm.consul = func() any { return a.watcher.Status() }
	}
	if a.geoDB != nil {
		adm.geo = func() any { return a.geoDB.Status() }
	}
	adm.drills = a.drills
	adm.tls = func() any {
		if ts := a.tls.Load(); ts != nil {
			return ts.Status()
		}
		return nil
	}
	return a.fl.routes(adm, adm.handler()) // fleet.go: GET /api/v1/fleet
}

// register announces this instance to the local Consul agent, retrying with
// backoff until it succeeds or ctx ends, and returns how to deregister (nil
// if it never registered).
func (a *App) register(ctx context.Context, reg config.Register) func(context.Context) error {
	host, _ := os.Hostname()
	addrs := a.Addrs()
	self := catalog.Self{HTTP: addrs.HTTP, HTTPS: addrs.HTTPS, DNS: addrs.DNS, Admin: addrs.Admin, Hostname: host, Region: a.startCfg.Region}
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		d, err := catalog.Register(ctx, a.consul, reg, self)
		if err == nil {
			a.logger.Info("registered with consul", zap.String("name", reg.Name))
			return d
		}
		a.logger.Warn("consul registration failed; retrying", zap.Error(err), zap.Duration("in", wait))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (a *App) setAddr(f func(*Addrs)) {
	a.addrsMu.Lock()
	defer a.addrsMu.Unlock()
	f(&a.addrs)
}

// fileSource reads the config file at its real path on every call, up to
// config.MaxFileBytes.
type fileSource string

func (f fileSource) Read() ([]byte, os.FileInfo, error) {
	return config.ReadFile(string(f))
}

func (f fileSource) Name() string { return string(f) }

// newLogger builds the zap logger the config asks for, writing to stderr;
// its level follows level, which reloads change. The console format is
// coloured only when stderr is a terminal and NO_COLOR is unset.
func newLogger(c config.Log, level zap.AtomicLevel) (*zap.Logger, error) {
	color := c.Format == "console" && os.Getenv("NO_COLOR") == "" && isTerminal(os.Stderr)
	return buildLogger(c, level, zapcore.Lock(os.Stderr), color)
}

// buildLogger is newLogger writing to w. Records carry no Go stack trace
// below DPanic: an error logged here is an operator's problem (a config
// rejected, a registration failed), said in the message and its fields, not
// a bug to locate in the code. zap's stock configs would add a trace to
// every error (production) or warning (development); the development
// config's panic on DPanic is left out as well, so that log.format changes
// only how records look.
func buildLogger(c config.Log, level zap.AtomicLevel, w zapcore.WriteSyncer, color bool) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	level.SetLevel(lvl)
	var enc zapcore.Encoder
	if c.Format == "console" {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		if color {
			ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		enc = zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	}
	return zap.New(zapcore.NewCore(enc, w, level),
		zap.AddCaller(), zap.AddStacktrace(zapcore.DPanicLevel), zap.ErrorOutput(w)), nil
}
