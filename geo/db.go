package geo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	maxminddb "github.com/oschwald/maxminddb-golang/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/promutil"
)

const (
	// reloadDelay lets a burst of file events (a write in several chunks,
	// a rename, a symlink swap) settle before the file is read.
	reloadDelay = 100 * time.Millisecond
	// pollEvery re-checks the file even without events: fsnotify misses
	// changes on network file systems and when its queue overflows.
	pollEvery = 30 * time.Second
	// racyWindow: a file modified less than this before we read it may have
	// changed again within the same timestamp tick, keeping size and mtime;
	// its stat proves nothing, so the next check reads it again (git's
	// "racily clean" rule).
	racyWindow = time.Second
)

// DB is a MaxMind-format database (GeoIP2/GeoLite2 Country or City, or any
// database with country.iso_code and continent.code) that reloads itself
// when its file changes. Lookups load the current reader atomically; a
// reload swaps in a new one, so lookups never wait. A bad, partial or
// missing file is logged and counted and the previous database keeps
// serving.
//
// The file is read into memory rather than memory-mapped: the file may then
// be rewritten in place without corrupting lookups in flight, and a replaced
// reader is freed by the garbage collector once no lookup uses it.
type DB struct {
	path string
	log  *zap.Logger
	m    dbMetrics

	state   atomic.Pointer[dbState]
	changed chan struct{}
	recs    sync.Pool // *mmdbRecord, so that decoding does not allocate

	mu         sync.Mutex  // serialises reloads; guards the fields below
	lastErr    error       // of the latest load attempt; nil after a good one
	lastAt     time.Time   // when lastErr happened
	failedInfo os.FileInfo // the file lastErr is about; nil if it was missing

	running   atomic.Bool
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

// dbState is one loaded version of the file. Immutable, except for the
// decode cache, which is safe for concurrent use.
type dbState struct {
	reader   *maxminddb.Reader
	info     os.FileInfo // the file as stat'ed before it was read
	readAt   time.Time   // when its content was last read
	sum      [sha256.Size]byte
	loadedAt time.Time
	ipv4Only bool
	cache    *recordCache
}

type dbMetrics struct {
	reloads      *prometheus.CounterVec // result: ok | error
	lookupErrors prometheus.Counter
	buildTime    prometheus.Gauge
}

func newDBMetrics(reg prometheus.Registerer) (dbMetrics, error) {
	m := dbMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_geo_db_reloads_total",
			Help: "GeoIP database loads by result (ok, error); on error the previous database keeps serving.",
		}, []string{"result"}),
		lookupErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_geo_db_lookup_errors_total",
			Help: "GeoIP database lookups that failed to decode a record; the client got the default region.",
		}),
		buildTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_geo_db_build_timestamp_seconds",
			Help: "Build time (Unix seconds) of the GeoIP database in use, from its metadata.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.reloads, err = promutil.Register(reg, m.reloads)
	if err != nil {
		return m, err
	}
	m.lookupErrors, err = promutil.Register(reg, m.lookupErrors)
	if err != nil {
		return m, err
	}
	m.buildTime, err = promutil.Register(reg, m.buildTime)
	return m, err
}

// OpenDB loads the database at path. It fails if that first load fails, so
// a wrong path is caught at startup; later failures keep the loaded
// database. Call Run to follow changes to the file. A nil logger logs
// nothing; a nil reg registers no metrics. Metrics already registered on reg
// by an earlier DB (a reopen after a config change) are shared.
func OpenDB(path string, logger *zap.Logger, reg prometheus.Registerer) (*DB, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("geo.mmdb %q: %w", path, err)
	}
	m, err := newDBMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("geo.mmdb %q: %w", path, err)
	}
	d := &DB{
		path:    abs,
		log:     logger.With(zap.String("mmdb", abs)),
		m:       m,
		changed: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	if _, err := d.reload(true); err != nil {
		return nil, err
	}
	return d, nil
}

// Path is the absolute path of the database file.
func (d *DB) Path() string { return d.path }

// Changed is poked (non-blocking, 1-buffered) after each reload that swapped
// in a new database (not after the first load in OpenDB). Lookups see the
// new data at once without it; it is for the rebuild loop, which may want
// to republish (new table version, admin view) when the data changed.
func (d *DB) Changed() <-chan struct{} { return d.changed }

// Reload re-reads the file if it changed since the last load and reports
// whether a new database was swapped in. A failure keeps the current
// database and is logged and counted like one found by Run. Use it for
// SIGHUP or an admin "reload now".
func (d *DB) Reload() (bool, error) { return d.reload(true) }

// reload loads the file when it differs from the loaded one. With force the
// content is compared (read and hashed); without (the poll), an unchanged
// stat is enough to skip reading, and a file that already failed the same
// way is not reported again.
func (d *DB) reload(force bool) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.state.Load()
	fi, err := os.Stat(d.path)
	if err != nil {
		if !force && d.lastErr != nil && d.failedInfo == nil {
			// Still missing: a poll does not log and count it again.
			return false, d.lastErr
		}
		d.failedInfo = nil
		return false, d.fail(err)
	}
	if !force {
		if cur != nil && unchanged(cur.info, fi, cur.readAt) {
			return false, nil
		}
		if d.lastErr != nil && d.failedInfo != nil && unchanged(d.failedInfo, fi, d.lastAt) {
			// The same bad file: reported once is enough.
			return false, d.lastErr
		}
	}
	d.failedInfo = fi
	readAt := time.Now()
	data, err := os.ReadFile(d.path)
	if err != nil {
		return false, d.fail(err)
	}
	sum := sha256.Sum256(data)
	if cur != nil && sum == cur.sum {
		// Same content (touched, or rewritten identically): remember the
		// new stat so polling stops reading it, keep everything else.
		next := *cur
		next.info, next.readAt = fi, readAt
		d.state.Store(&next)
		d.clearErr()
		return false, nil
	}
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return false, d.fail(err)
	}
	// Verify walks the whole tree and data section once, so that a
	// truncated or corrupt file is rejected here rather than failing
	// lookups later.
	if err := r.Verify(); err != nil {
		return false, d.fail(err)
	}
	next := &dbState{
		reader:   r,
		info:     fi,
		readAt:   readAt,
		sum:      sum,
		loadedAt: time.Now(),
		ipv4Only: r.Metadata.IPVersion == 4,
		cache:    newRecordCache(),
	}
	d.state.Store(next)
	d.clearErr()
	d.m.reloads.WithLabelValues("ok").Inc()
	d.m.buildTime.Set(float64(r.Metadata.BuildEpoch))
	d.log.Info("geo database loaded",
		zap.String("type", r.Metadata.DatabaseType),
		zap.Time("build", r.Metadata.BuildTime()),
		zap.Int64("bytes", int64(len(data))),
		zap.String("sha256", hex.EncodeToString(sum[:8])))
	if cur != nil {
		select {
		case d.changed <- struct{}{}:
		default:
		}
	}
	return true, nil
}

// fail records a failed load. Called with d.mu held.
func (d *DB) fail(err error) error {
	err = fmt.Errorf("geo.mmdb %q: %w", d.path, err)
	d.lastErr, d.lastAt = err, time.Now()
	d.m.reloads.WithLabelValues("error").Inc()
	if d.state.Load() != nil {
		d.log.Error("geo database not loaded; keeping the previous one", zap.Error(err))
	}
	return err
}

func (d *DB) clearErr() { d.lastErr, d.lastAt, d.failedInfo = nil, time.Time{}, nil }

// unchanged reports whether fi describes the same file as was, with the
// same size and modification time, modified safely before readAt (see
// racyWindow).
func unchanged(was, fi os.FileInfo, readAt time.Time) bool {
	return os.SameFile(was, fi) && was.Size() == fi.Size() && was.ModTime().Equal(fi.ModTime()) &&
		fi.ModTime().Add(racyWindow).Before(readAt)
}

// DBStatus describes the loaded database and the last failed reload, for
// the admin API.
type DBStatus struct {
	Path         string    `json:"path"`
	DatabaseType string    `json:"database_type"`
	BuildTime    time.Time `json:"build_time"`
	LoadedAt     time.Time `json:"loaded_at"`
	SHA256       string    `json:"sha256"`
	// LastError is the error of the latest reload attempt when it failed
	// and the previous database kept serving; empty after a good one.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Status reports what is loaded and whether the last reload failed.
func (d *DB) Status() DBStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := DBStatus{Path: d.path, LastErrorAt: d.lastAt}
	if d.lastErr != nil {
		s.LastError = d.lastErr.Error()
	}
	if st := d.state.Load(); st != nil {
		s.DatabaseType = st.reader.Metadata.DatabaseType
		s.BuildTime = st.reader.Metadata.BuildTime()
		s.LoadedAt = st.loadedAt
		s.SHA256 = hex.EncodeToString(st.sum[:])
	}
	return s
}

// Run follows the file until ctx is done or Close is called, and returns
// nil then. It watches the file with config.Watcher (the file's directory
// and its symlink target's, so in-place writes, a new file renamed over the
// old one and symlink swaps such as Kubernetes ConfigMaps all reload) and
// also polls every 30 s as a safety net. An event reads the file again; the
// poll, and the look once the watch is in place, only stat it, so an
// unchanged database of a hundred megabytes is not re-read and hashed for
// nothing. Run may be called once.
func (d *DB) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return fmt.Errorf("geo.mmdb %q: Run called twice", d.path)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	w := &config.Watcher{
		Paths:    []string{d.path},
		Debounce: reloadDelay,
		Poll:     pollEvery,
		Logger:   d.log,
		Polled:   func() { _, _ = d.reload(false) },
	}
	return w.Run(ctx, func() { _, _ = d.reload(true) })
}

// Close stops Run. Lookups through Locators that still hold d keep
// answering from the last loaded database, whose memory is freed once
// nothing references d.
func (d *DB) Close() error {
	d.closeOnce.Do(func() { close(d.done) })
	return nil
}

// record is what Lookup needs from a database record.
type record struct {
	country, continent string
}

// mmdbRecord selects the fields decoded from a GeoIP2 Country or City
// record; the decoder skips everything else.
type mmdbRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	Continent struct {
		Code string `maxminddb:"code"`
	} `maxminddb:"continent"`
}

// lookup returns the record for addr (already unmapped), the length of the
// network the database answered for (a miss is a network too) and whether
// there was a record. On a decode error it reports a miss of the full
// address length, the scope that cannot over-generalise.
func (d *DB) lookup(addr netip.Addr) (record, int, bool) {
	st := d.state.Load()
	if st == nil {
		return record{}, 0, false
	}
	if st.ipv4Only && addr.Is6() {
		// The database says nothing about any IPv6 address.
		return record{}, 0, false
	}
	res := st.reader.Lookup(addr)
	if res.Err() != nil {
		d.m.lookupErrors.Inc()
		return record{}, addr.BitLen(), false
	}
	bits := addr.BitLen()
	if p := res.Prefix(); p.IsValid() {
		if p.Addr().Is4() == addr.Is4() {
			bits = p.Bits()
		} else {
			// An IPv4 address whose lookup ended above the IPv4 subtree
			// of an IPv6 database: all of IPv4 is one (empty) network.
			bits = 0
		}
	}
	if !res.Found() {
		return record{}, bits, false
	}
	off := res.Offset()
	if rec, ok := st.cache.get(off); ok {
		return rec, bits, true
	}
	m, _ := d.recs.Get().(*mmdbRecord)
	if m == nil {
		m = new(mmdbRecord)
	}
	*m = mmdbRecord{} // Decode leaves absent fields alone
	err := res.Decode(m)
	rec := record{country: m.Country.ISOCode, continent: m.Continent.Code}
	if rec.country == "" {
		rec.country = m.RegisteredCountry.ISOCode
	}
	d.recs.Put(m)
	if err != nil {
		d.m.lookupErrors.Inc()
		return record{}, addr.BitLen(), false
	}
	st.cache.put(off, rec)
	return rec, bits, true
}
