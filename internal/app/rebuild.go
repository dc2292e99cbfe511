package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
)

// source yields the current config bytes: a file, or a Consul KV key.
type source interface {
	// Read returns the current content and, for a file, the FileInfo of
	// the file it was read from (nil for a source that replaces its
	// content atomically): two readings of the same file with different
	// content mean the file is being written in place.
	Read() ([]byte, os.FileInfo, error)
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
	// admit, when set, checks what a new config names outside itself (the
	// admin token file) before it may replace the live one; an error
	// rejects the config like a compile error, and it is tried again on
	// the next poke (a SIGHUP after fixing the token file applies it).
	admit func(cfg *config.Config) error
	// published, when set, is told of every table published, after the
	// swap, and when reload, of the new config's bytes: the config
	// history. It must be cheap (history.go).
	published func(t *routing.Table, raw []byte, reload bool)
	// settle is how long a file that no longer parses must stay as it is
	// before the failure counts, 0 to count at once. The watcher fires
	// within milliseconds of a change, while a writer such as cp or a slow
	// pipe may not have finished: its half-written file is re-read rather
	// than reported. A source that replaces its content atomically
	// (Consul KV) needs none.
	settle time.Duration
	// inPlaceSettle is how long content written into the file in place
	// must stay unchanged before it is applied (config.DefaultSettle); 0
	// applies it at once. A writer that pauses may leave a prefix that
	// parses and serves less; waiting out its pauses keeps that prefix
	// from ever being served. A file replaced by a rename or a symlink
	// swap is complete by construction and is applied at once.
	inPlaceSettle time.Duration
	// written and replaced are when the watcher last saw the file written
	// in place and a file appear at the path, as time since epoch (so the
	// monotonic clock orders them; 0 for never). A write after the last
	// appearance means the file now at the path is being written, even a
	// newly created one, which os.SameFile cannot tell.
	written, replaced atomic.Int64
	epoch             time.Time

	mu     sync.Mutex // guards status, for the admin API
	status ReloadStatus

	// Owned by the Run goroutine (and New's first rebuild, before Run).
	lastHash   [32]byte       // of the last bytes parsed, good or bad
	readErr    string         // the read error last reported, until a read succeeds
	cand       *config.Config // a parsed config not yet published (its admit or compile failed)
	candRaw    []byte         // cand's bytes, for the history
	candLogged bool           // cand's admit or compile error was reported
	cfg        *config.Config // the config of the live table
	lastFile   os.FileInfo    // what the last read read from; nil for other sources
	lastRead   time.Time      // when the last read began
	pending    pendingChange  // content written in place, waiting to settle
	settleWake *time.Timer    // pokes the loop when pending may have settled

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
		epoch:  time.Now(),
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

// MarkWritten records that the watcher saw the file written in place. It
// never blocks; the watcher calls it for every such event.
func (r *rebuilder) MarkWritten() { r.written.Store(int64(time.Since(r.epoch))) }

// MarkReplaced records that the watcher saw a file appear at the path (a
// rename into place, a new file, a symlink swap). It never blocks.
func (r *rebuilder) MarkReplaced() { r.replaced.Store(int64(time.Since(r.epoch))) }

// pendingChange is content written in place that has not settled yet: its
// hash and when it was first read.
type pendingChange struct {
	sum  [32]byte
	seen time.Time
}

// Run rebuilds on every poke until ctx is done.
func (r *rebuilder) Run(ctx context.Context) error {
	defer func() {
		if r.settleWake != nil {
			r.settleWake.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.poke:
			r.rebuild()
		}
	}
}

// read reads the source and reports whether its content, if it changed,
// was written in place rather than replaced: it came from the same file as
// the previous read (os.SameFile), or the watcher saw a write to the path
// since that read began and after the last file appeared there (a file
// created anew and being written). A rename or a symlink swap brings a new
// file and writes nothing to the path, so it is never taken for a write in
// place, even when it lands in the middle of one.
func (r *rebuilder) read() (data []byte, inPlace bool, err error) {
	began := time.Now()
	data, file, err := r.src.Read()
	if err != nil {
		return nil, false, err
	}
	w := r.written.Load()
	inPlace = file != nil && r.lastFile != nil && os.SameFile(file, r.lastFile) ||
		!r.lastRead.IsZero() && w > int64(r.lastRead.Sub(r.epoch)) && w > r.replaced.Load()
	r.lastFile, r.lastRead = file, began
	return data, inPlace, nil
}

// settled reports whether content sum, written in place, has stayed the
// same for inPlaceSettle: read unchanged since that long, with no write
// event since. When it has not, it arms a timer that pokes the loop when
// it may have, and the caller keeps serving what it serves.
func (r *rebuilder) settled(sum [32]byte) bool {
	now := time.Now()
	if r.pending.seen.IsZero() || r.pending.sum != sum {
		r.pending = pendingChange{sum: sum, seen: now}
		r.logger.Debug("config file written in place; applying it once it has not changed for the settle window",
			zap.String("source", r.src.Name()), zap.Duration("settle", r.inPlaceSettle))
	}
	quiet := r.pending.seen
	if w := r.epoch.Add(time.Duration(r.written.Load())); w.After(quiet) {
		quiet = w
	}
	wait := r.inPlaceSettle - now.Sub(quiet)
	if wait <= 0 {
		return true
	}
	if r.settleWake == nil {
		r.settleWake = time.AfterFunc(wait, r.Poke)
	} else {
		r.settleWake.Reset(wait)
	}
	return false
}

// rebuild reads the source and applies what it finds. A new file that
// parses and compiles is published; one that does not is logged once and
// counted, and the live config is recompiled instead, so catalog changes keep
// reaching the live table while the file is bad. It returns the error that
// kept the file from applying, if it is new.
//
// Content written into the file in place is applied only once it has
// stopped changing for inPlaceSettle (see settled); until then the live
// config keeps serving, and a timer pokes the loop again.
func (r *rebuilder) rebuild() error {
	fresh := r.readConfig()
	if r.cand != nil {
		err := r.admitCand()
		var t *routing.Table
		if err == nil {
			t, err = r.compile(r.cand)
		}
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
	if old := r.live.Load(); old == nil || old.Version != t.Finish() {
		r.publish(r.cfg, t, false)
	}
	return fresh
}

// readConfig reads the source and makes what changed in it the candidate
// (r.cand). It returns the error that kept new content from becoming the
// candidate, if it is new.
func (r *rebuilder) readConfig() error {
	data, inPlace, err := r.read()
	if err != nil {
		// Reported once while it lasts, like a bad file, and the live
		// config still follows the other inputs. The next good read is
		// parsed even if its bytes are the last ones, so the status
		// recovers.
		r.lastHash = [32]byte{}
		if msg := err.Error(); msg != r.readErr || r.cfg == nil {
			r.readErr = msg
			return r.fail(err)
		}
		return nil
	}
	r.readErr = ""
	for {
		sum := sha256.Sum256(data)
		if sum == r.lastHash && r.cfg != nil {
			r.pending = pendingChange{} // written back to what was handled
			return nil
		}
		if inPlace && r.cfg != nil && r.inPlaceSettle > 0 && !r.settled(sum) {
			return nil
		}
		r.pending = pendingChange{}
		r.lastHash = sum // a bad file is logged once, not on every poke
		cfg, err := parse(r.src.Name(), data)
		if err == nil {
			r.cand, r.candLogged, r.candRaw = cfg, false, data
			return nil
		}
		if r.cfg != nil {
			if newer, newerInPlace, changed := r.waitSettled(data); changed {
				data, inPlace = newer, inPlace || newerInPlace
				continue
			}
		}
		r.cand = nil
		return r.fail(err)
	}
}

// admitCand runs the admit hook, if any, on the candidate config.
func (r *rebuilder) admitCand() error {
	if r.admit == nil {
		return nil
	}
	return r.admit(r.cand)
}

// parse is what a config must pass before it is compiled: it parses,
// validates, and serves something.
func parse(name string, data []byte) (*config.Config, error) {
	cfg, err := config.Parse(name, data)
	if err != nil {
		return nil, err
	}
	if err := cfg.Serves(name); err != nil {
		return nil, err
	}
	return cfg, nil
}

// waitSettled re-reads the source for up to settle and returns the first
// content that differs from data, and whether it was written in place;
// changed is false when it stayed the same (or could not be read) the
// whole time.
func (r *rebuilder) waitSettled(data []byte) (newer []byte, inPlace, changed bool) {
	const step = 10 * time.Millisecond
	for waited := time.Duration(0); waited < r.settle; waited += step {
		time.Sleep(step)
		if b, ip, err := r.read(); err == nil && !bytes.Equal(b, data) {
			return b, ip, true
		}
	}
	return nil, false, false
}

// publish applies and stores t. reload says a new config took effect, which
// counts as a successful reload; otherwise an input such as the catalog
// changed, and the last reload's status stands. The table's version hash
// and new maglev tables may still be under way (routing.Inputs.Defer):
// they run beside apply, on another core, and are finished before the
// table is published.
func (r *rebuilder) publish(cfg *config.Config, t *routing.Table, reload bool) {
	r.apply(cfg, t)
	t.Finish()
	t.Built = time.Now()
	r.live.Store(t)
	r.cfg = cfg
	r.tableInfo.Reset()
	r.tableInfo.WithLabelValues(t.Version).Set(1)
	if r.published != nil {
		r.published(t, r.candRaw, reload)
	}
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
