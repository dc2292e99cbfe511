package geo

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/geo/geotest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

var (
	dbGB = map[string]geotest.Record{"81.2.69.0/24": {Country: "GB", Continent: "EU"}}
	dbDE = map[string]geotest.Record{"81.2.69.0/24": {Country: "DE", Continent: "EU"}}
	dbJP = map[string]geotest.Record{"81.2.69.0/24": {Country: "JP", Continent: "AS"}}

	probe = netip.MustParseAddr("81.2.69.1")
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes data next to path and renames it over path, the way
// editors and download tools replace files atomically.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// reloads reads meridian_geo_db_reloads_total{result} from reg.
func reloads(t *testing.T, reg *prometheus.Registry, result string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "meridian_geo_db_reloads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

func country(d *DB, a netip.Addr) string {
	rec, _, _ := d.lookup(a)
	return rec.country
}

// runDB runs d.Run until the test ends and checks that it returns nil.
func runDB(t *testing.T, d *DB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestOpenDBErrors(t *testing.T) {
	dir := t.TempDir()
	good := geotest.MMDB(t, 6, dbGB)
	corrupt := append([]byte(nil), good...)
	for i := range 64 { // the search tree starts the file
		corrupt[i] = 0xff
	}
	for _, tc := range []struct {
		name string
		data []byte // nil: no file
	}{
		{"missing", nil},
		{"empty", []byte{}},
		{"garbage", []byte("this is not a MaxMind database")},
		{"truncated", good[:len(good)/2]},
		{"corrupt tree", corrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".mmdb")
			if tc.data != nil {
				writeFile(t, path, tc.data)
			}
			reg := prometheus.NewRegistry()
			db, err := OpenDB(path, zaptest.NewLogger(t), reg)
			if err == nil {
				t.Fatalf("OpenDB succeeded: %v", db.Status())
			}
			if !strings.Contains(err.Error(), `geo.mmdb "`+path+`"`) {
				t.Errorf("error does not name the file: %v", err)
			}
			if n := reloads(t, reg, "error"); n != 1 {
				t.Errorf("reloads{error} = %d, want 1", n)
			}
		})
	}
}

func TestDBLookupKinds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v       int
		addr    string
		country string
		bits    int
		found   bool
	}{
		{"v6 db, v4 hit", 6, "81.2.69.1", "GB", 24, true},
		{"v6 db, v4 miss", 6, "81.3.0.1", "", 16, false},   // 81.3.0.0/16 is empty
		{"v6 db, v6 miss", 6, "2a02:ec0::1", "", 5, false}, // 2800::/5 is empty
		{"v4 db, v4 hit", 4, "81.2.69.1", "GB", 24, true},
		{"v4 db, v4 miss", 4, "81.3.0.1", "", 16, false},
		{"v4 db, v6 is no error", 4, "2a02:ec0::1", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db.mmdb")
			writeFile(t, path, geotest.MMDB(t, tc.v, dbGB))
			reg := prometheus.NewRegistry()
			db, err := OpenDB(path, zaptest.NewLogger(t), reg)
			if err != nil {
				t.Fatal(err)
			}
			rec, bits, found := db.lookup(netip.MustParseAddr(tc.addr))
			if rec.country != tc.country || bits != tc.bits || found != tc.found {
				t.Errorf("lookup = %+v %d %v, want %q %d %v", rec, bits, found, tc.country, tc.bits, tc.found)
			}
			// Twice: the second answer comes from the record cache.
			rec, bits, found = db.lookup(netip.MustParseAddr(tc.addr))
			if rec.country != tc.country || bits != tc.bits || found != tc.found {
				t.Errorf("cached lookup = %+v %d %v, want %q %d %v", rec, bits, found, tc.country, tc.bits, tc.found)
			}
		})
	}
}

func TestDBReload(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup returns the path to open; change rewrites the database
		// behind it with data.
		setup  func(t *testing.T, dir string, data []byte) string
		change func(t *testing.T, path string, data []byte)
	}{
		{
			name:   "write in place",
			setup:  plainFile,
			change: func(t *testing.T, path string, data []byte) { writeFile(t, path, data) },
		},
		{
			name:   "rename over",
			setup:  plainFile,
			change: replaceFile,
		},
		{
			// Kubernetes ConfigMap layout: geo.mmdb -> ..data/geo.mmdb,
			// ..data -> ..v1; an update makes ..v2 and renames a new
			// ..data symlink over the old one.
			name: "symlink swap",
			setup: func(t *testing.T, dir string, data []byte) string {
				mkdir(t, filepath.Join(dir, "..v0"))
				writeFile(t, filepath.Join(dir, "..v0", "geo.mmdb"), data)
				symlink(t, "..v0", filepath.Join(dir, "..data"))
				symlink(t, filepath.Join("..data", "geo.mmdb"), filepath.Join(dir, "geo.mmdb"))
				return filepath.Join(dir, "geo.mmdb")
			},
			change: func(t *testing.T, path string, data []byte) {
				dir := filepath.Dir(path)
				prev, err := os.Readlink(filepath.Join(dir, "..data"))
				if err != nil {
					t.Fatal(err)
				}
				v := filepath.Join(dir, "..v"+time.Now().Format("150405.000000000"))
				mkdir(t, v)
				writeFile(t, filepath.Join(v, "geo.mmdb"), data)
				symlink(t, filepath.Base(v), filepath.Join(dir, "..data_tmp"))
				if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
					t.Fatal(err)
				}
				// The kubelet then removes the old version.
				if err := os.RemoveAll(filepath.Join(dir, prev)); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			// The path is a symlink into another directory, whose file is
			// rewritten in place: only a watch on the target's directory
			// sees it.
			name: "symlink target rewritten",
			setup: func(t *testing.T, dir string, data []byte) string {
				mkdir(t, filepath.Join(dir, "data"))
				mkdir(t, filepath.Join(dir, "etc"))
				writeFile(t, filepath.Join(dir, "data", "geo.mmdb"), data)
				symlink(t, filepath.Join(dir, "data", "geo.mmdb"), filepath.Join(dir, "etc", "geo.mmdb"))
				return filepath.Join(dir, "etc", "geo.mmdb")
			},
			change: func(t *testing.T, path string, data []byte) {
				target, err := filepath.EvalSymlinks(path)
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, target, data)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := tc.setup(t, dir, geotest.MMDB(t, 6, dbGB))
			reg := prometheus.NewRegistry()
			core, logs := observer.New(zap.InfoLevel)
			db, err := OpenDB(path, zap.New(core), reg)
			if err != nil {
				t.Fatal(err)
			}
			if got := country(db, probe); got != "GB" {
				t.Fatalf("country %q, want GB", got)
			}
			runDB(t, db)

			tc.change(t, path, geotest.MMDB(t, 6, dbDE))
			waitFor(t, "DE after the change", func() bool { return country(db, probe) == "DE" })
			select {
			case <-db.Changed():
			default:
				t.Error("Changed not poked after a reload")
			}

			// A bad file keeps the database that was serving.
			// (A reload may already have failed on a file caught mid-write.)
			failed := reloads(t, reg, "error")
			tc.change(t, path, []byte("not a database"))
			waitFor(t, "a failed reload", func() bool { return reloads(t, reg, "error") > failed })
			if got := country(db, probe); got != "DE" {
				t.Errorf("after a bad file: country %q, want DE kept", got)
			}
			if st := db.Status(); st.LastError == "" || st.LastErrorAt.IsZero() {
				t.Errorf("Status after a bad file: %+v", st)
			}
			if logs.FilterMessage("geo database not loaded; keeping the previous one").Len() == 0 {
				t.Error("bad file not logged")
			}

			// And a good one after it is picked up.
			tc.change(t, path, geotest.MMDB(t, 6, dbJP))
			waitFor(t, "JP after the bad file", func() bool { return country(db, probe) == "JP" })
			if st := db.Status(); st.LastError != "" {
				t.Errorf("LastError after a good reload: %v", st.LastError)
			}
			if n := reloads(t, reg, "ok"); n < 3 {
				t.Errorf("reloads{ok} = %d, want >= 3", n)
			}
		})
	}
}

func TestDBMissingFileKeepsOld(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	writeFile(t, path, geotest.MMDB(t, 6, dbGB))
	reg := prometheus.NewRegistry()
	db, err := OpenDB(path, zaptest.NewLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	runDB(t, db)
	failed := reloads(t, reg, "error")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed reload", func() bool { return reloads(t, reg, "error") > failed })
	if got := country(db, probe); got != "GB" {
		t.Errorf("after removal: country %q, want GB kept", got)
	}
	replaceFile(t, path, geotest.MMDB(t, 6, dbDE))
	waitFor(t, "DE after the file came back", func() bool { return country(db, probe) == "DE" })
}

func TestDBConcurrentLookups(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	writeFile(t, path, geotest.MMDB(t, 6, dbGB))
	db, err := OpenDB(path, zaptest.NewLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLocator(testGeo(), db)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch c := l.Lookup(probe).Country; c {
				case "GB", "DE", "JP":
				default:
					t.Errorf("country %q during reloads", c)
					return
				}
			}
		})
	}
	for i, recs := range []map[string]geotest.Record{dbDE, dbJP, dbGB, dbDE} {
		writeFile(t, path, geotest.MMDB(t, 6, recs))
		if _, err := db.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if got := country(db, probe); got != "DE" {
		t.Errorf("country %q, want DE", got)
	}
}

func TestDBReloadMethod(t *testing.T) {
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	writeFile(t, path, geotest.MMDB(t, 6, dbGB))
	reg := prometheus.NewRegistry()
	db, err := OpenDB(path, zaptest.NewLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	st := db.Status()
	if st.Path != path || st.DatabaseType != "GeoIP2-Country" || st.SHA256 == "" || st.LoadedAt.IsZero() || st.BuildTime.IsZero() {
		t.Errorf("Status = %+v", st)
	}
	select {
	case <-db.Changed():
		t.Error("Changed poked by the first load")
	default:
	}

	steps := []struct {
		name    string
		data    []byte
		changed bool
		err     bool
		country string
	}{
		{"unchanged", nil, false, false, "GB"},
		{"same content rewritten", geotest.MMDB(t, 6, dbGB), false, false, "GB"},
		{"new content", geotest.MMDB(t, 6, dbDE), true, false, "DE"},
		{"bad content", []byte("garbage"), false, true, "DE"},
		{"good again", geotest.MMDB(t, 6, dbJP), true, false, "JP"},
	}
	for _, s := range steps {
		if s.data != nil {
			writeFile(t, path, s.data)
		}
		changed, err := db.Reload()
		if changed != s.changed || (err != nil) != s.err {
			t.Errorf("%s: Reload = %v, %v; want changed %v, error %v", s.name, changed, err, s.changed, s.err)
		}
		if got := country(db, probe); got != s.country {
			t.Errorf("%s: country %q, want %q", s.name, got, s.country)
		}
	}
	if ok, bad := reloads(t, reg, "ok"), reloads(t, reg, "error"); ok != 3 || bad != 1 {
		t.Errorf("reloads ok=%d error=%d, want 3 and 1", ok, bad)
	}
}

func TestDBRunLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	writeFile(t, path, geotest.MMDB(t, 6, dbGB))
	reg := prometheus.NewRegistry()
	db, err := OpenDB(path, zaptest.NewLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	// A second DB on the same registry shares the metrics.
	db2, err := OpenDB(path, zaptest.NewLogger(t), reg)
	if err != nil {
		t.Fatalf("second OpenDB on one registry: %v", err)
	}
	if n := reloads(t, reg, "ok"); n != 2 {
		t.Errorf("reloads{ok} = %d, want 2 (shared)", n)
	}
	db2.Close()

	done := make(chan error, 1)
	go func() { done <- db.Run(context.Background()) }()
	waitFor(t, "Run to start", func() bool { return db.running.Load() })
	if err := db.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
	if err := db.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run after Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Lookups keep answering from the last database after Close.
	if got := country(db, probe); got != "GB" {
		t.Errorf("after Close: country %q, want GB", got)
	}
}

func plainFile(t *testing.T, dir string, data []byte) string {
	path := filepath.Join(dir, "geo.mmdb")
	writeFile(t, path, data)
	return path
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestDBPollReportsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	writeFile(t, path, geotest.MMDB(t, 6, dbGB))
	reg := prometheus.NewRegistry()
	db, err := OpenDB(path, zaptest.NewLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	// Old timestamps: a stat then proves the file unchanged.
	old := time.Now().Add(-time.Hour)
	age := func() {
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct {
		name   string
		change func()
		errors int // reloads{error} after two polls
	}{
		{"bad file", func() { writeFile(t, path, []byte("garbage")); age() }, 1},
		{"same bad file", func() {}, 1},
		{"other bad file", func() { writeFile(t, path, []byte("other garbage")); age() }, 2},
		{"missing", func() { os.Remove(path) }, 3},
		{"still missing", func() {}, 3},
		{"good", func() { writeFile(t, path, geotest.MMDB(t, 6, dbDE)); age() }, 3},
	} {
		s.change()
		db.reload(false)
		db.reload(false)
		if n := reloads(t, reg, "error"); n != s.errors {
			t.Errorf("%s: reloads{error} = %d, want %d", s.name, n, s.errors)
		}
	}
	if got := country(db, probe); got != "DE" {
		t.Errorf("country %q, want DE", got)
	}
	if n := reloads(t, reg, "ok"); n != 2 {
		t.Errorf("reloads{ok} = %d, want 2", n)
	}
}
