package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
)

// source yields the current config bytes: a file, or a Consul KV key.
type source interface {
	Read() ([]byte, error)
	Name() string
}

// ReloadStatus is the outcome of the last attempt to apply the config, shown
// by /api/v1/table.
type ReloadStatus struct {
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
}

// rebuilder owns compilation. Every input (the file watcher, SIGHUP, Consul,
// the GeoIP reloader) only pokes it; one goroutine reads the inputs, compiles,
// syncs health and publishes. That single writer is why nothing else locks.
type rebuilder struct {
	src     source
	logger  *zap.Logger
	live    *routing.Live
	poke    chan struct{}
	compile func(cfg *config.Config) (*routing.Table, error)
	// apply runs after a successful compile and before publication: health
	// sync and binding, catalog wants, log level.
	apply func(cfg *config.Config, t *routing.Table)
	// settle is how long a file that no longer parses must stay as it is
	// before the failure counts, 0 to count at once. The watcher fires
	// within milliseconds of a change, while a writer such as cp or a slow
	// pipe may not have finished: its half-written file is re-read rather
	// than reported. A source that replaces its content atomically
	// (Consul KV) needs none.
	settle time.Duration

	mu     sync.Mutex // guards status, for the admin API
	status ReloadStatus

	// Owned by the Run goroutine.
	lastHash   [32]byte       // of the last bytes read, good or bad
	cand       *config.Config // a parsed config not yet published (its compile failed)
	candLogged bool           // cand's compile error was reported
	cfg        *config.Config // the config of the live table

	reloads     *prometheus.CounterVec
	lastOK      prometheus.Gauge
	lastSuccess prometheus.Gauge
	tableInfo   *prometheus.GaugeVec
}

func newRebuilder(src source, logger *zap.Logger, reg prometheus.Registerer, live *routing.Live) *rebuilder {
	r := &rebuilder{
		src:    src,
		logger: logger,
		live:   live,
		poke:   make(chan struct{}, 1),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_config_reloads_total",
			Help: "Config reload attempts by result (success, failure).",
		}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_config_last_reload_successful",
			Help: "1 when the last config reload attempt was applied, 0 when it was rejected.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last applied config.",
		}),
		tableInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_table_info",
			Help: "The live routing table's version (value is always 1).",
		}, []string{"version"}),
	}
	reg.MustRegister(r.reloads, r.lastOK, r.lastSuccess, r.tableInfo)
	r.reloads.WithLabelValues("success")
	r.reloads.WithLabelValues("failure")
	return r
}

// Poke asks for a rebuild. It never blocks: a pending poke already covers
// this one.
func (r *rebuilder) Poke() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Status returns the last reload outcome.
func (r *rebuilder) Status() ReloadStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Run rebuilds on every poke until ctx is done.
func (r *rebuilder) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.poke:
			r.rebuild()
		}
	}
}

// rebuild reads the source and applies what it finds. A new file that
// parses and compiles is published; one that does not is logged once and
// counted, and the live config is recompiled instead, so catalog changes keep
// reaching the live table while the file is bad. It returns the error that
// kept the file from applying, if it is new.
func (r *rebuilder) rebuild() error {
	data, err := r.src.Read()
	if err != nil {
		return r.fail(err)
	}
	var fresh error
	for {
		sum := sha256.Sum256(data)
		if sum == r.lastHash && r.cfg != nil {
			break
		}
		r.lastHash = sum // a bad file is logged once, not on every poke
		cfg, err := config.Parse(r.src.Name(), data)
		if err == nil {
			r.cand, r.candLogged = cfg, false
			break
		}
		if r.cfg != nil {
			if newer, changed := r.waitSettled(data); changed {
				data = newer
				continue
			}
		}
		r.cand = nil
		fresh = r.fail(err)
		break
	}
	if r.cand != nil {
		t, err := r.compile(r.cand)
		if err == nil {
			r.publish(r.cand, t, true)
			r.cand = nil
			return nil
		}
		if !r.candLogged {
			r.candLogged = true
			fresh = r.fail(err)
		}
	}
	if r.cfg == nil {
		return fresh
	}
	// The live config, with the inputs as they are now.
	t, err := r.compile(r.cfg)
	if err != nil {
		r.logger.Error("recompiling the live config failed; the table keeps serving", zap.Error(err))
		return fresh
	}
	if old := r.live.Load(); old == nil || old.Version != t.Version {
		r.publish(r.cfg, t, false)
	}
	return fresh
}

// waitSettled re-reads the source for up to settle and returns the first
// content that differs from data; changed is false when it stayed the same
// (or could not be read) the whole time.
func (r *rebuilder) waitSettled(data []byte) (newer []byte, changed bool) {
	const step = 10 * time.Millisecond
	for waited := time.Duration(0); waited < r.settle; waited += step {
		time.Sleep(step)
		if b, err := r.src.Read(); err == nil && !bytes.Equal(b, data) {
			return b, true
		}
	}
	return nil, false
}

// publish applies and stores t. reload says a new config took effect, which
// counts as a successful reload; otherwise an input such as the catalog
// changed, and the last reload's status stands.
func (r *rebuilder) publish(cfg *config.Config, t *routing.Table, reload bool) {
	r.apply(cfg, t)
	t.Built = time.Now()
	r.live.Store(t)
	r.cfg = cfg
	r.tableInfo.Reset()
	r.tableInfo.WithLabelValues(t.Version).Set(1)
	r.logger.Info("routing table published", zap.String("version", t.Version), zap.String("source", r.src.Name()),
		zap.Bool("config_changed", reload), zap.Int("routes", len(t.Routes)), zap.Int("pools", len(t.Pools)), zap.Int("zones", len(t.Zones)))
	if !reload {
		return
	}
	r.mu.Lock()
	r.status = ReloadStatus{OK: true, At: t.Built}
	r.mu.Unlock()
	r.reloads.WithLabelValues("success").Inc()
	r.lastOK.Set(1)
	r.lastSuccess.SetToCurrentTime()
}

func (r *rebuilder) fail(err error) error {
	r.mu.Lock()
	r.status = ReloadStatus{OK: false, Error: err.Error(), At: time.Now()}
	r.mu.Unlock()
	r.reloads.WithLabelValues("failure").Inc()
	r.lastOK.Set(0)
	fields := []zap.Field{zap.String("source", r.src.Name())}
	var ce *config.Error
	if errors.As(err, &ce) {
		probs := make([]string, len(ce.Problems))
		for i, p := range ce.Problems {
			probs[i] = p.String()
		}
		fields = append(fields, zap.Strings("problems", probs))
	} else {
		fields = append(fields, zap.Error(err))
	}
	if cur := r.live.Load(); cur != nil {
		fields = append(fields, zap.String("serving_version", cur.Version))
	}
	r.logger.Error("config rejected; the last good table keeps serving", fields...)
	return err
}
