package config

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap/zaptest"
)

// TestWatcherIgnoresNeighbours checks that writes to other files in the
// config's directory (a log, an editor's swap file) do not poke, while a
// write to the config and a rename over it do.
func TestWatcherIgnoresNeighbours(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	if err := os.WriteFile(path, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &Watcher{Paths: []string{path}, Logger: zaptest.NewLogger(t)}
	pokes, stop := startWatcher(w)
	defer stop(t)
	<-pokes // the poke made once the watch is in place

	// A burst of writes to neighbours: no poke, however long one waits
	// (20 debounce periods here).
	for i := range 50 {
		if err := os.WriteFile(filepath.Join(dir, "access.log"), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".meridian.yaml.swp"), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-pokes:
		t.Fatal("a neighbour's write poked")
	case <-time.After(20 * DefaultDebounce):
	}

	if err := os.WriteFile(path, []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, pokes, "a write to the config")

	tmp := filepath.Join(dir, ".meridian.yaml.tmp")
	if err := os.WriteFile(tmp, []byte("c"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, pokes, "a rename over the config")
}

// startWatcher runs w until stop, sending each poke to pokes (buffered for
// 100); stop reports Run's error.
func startWatcher(w *Watcher) (pokes chan struct{}, stop func(t *testing.T)) {
	pokes = make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func() { pokes <- struct{}{} }) }()
	return pokes, func(t *testing.T) {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func waitPoke(t *testing.T, pokes chan struct{}, what string) {
	t.Helper()
	select {
	case <-pokes:
	case <-time.After(10 * time.Second):
		t.Fatalf("no poke after %s", what)
	}
}

// TestWatcherReportsWritesInPlace: a write to the file itself (including a
// truncation, and a new file being written) calls Written; a file renamed
// into place does not, and calls Replaced, as a new file does.
func TestWatcherReportsWritesInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	if err := os.WriteFile(path, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	var written, replaced atomic.Int64
	w := &Watcher{Paths: []string{path}, Logger: zaptest.NewLogger(t),
		Written: func() { written.Add(1) }, Replaced: func() { replaced.Add(1) }}
	pokes, stop := startWatcher(w)
	defer stop(t)
	<-pokes

	// Replacements: the poke comes, and no write was reported.
	tmp := filepath.Join(dir, ".meridian.yaml.tmp")
	if err := os.WriteFile(tmp, []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, pokes, "a rename over the config")
	if n := written.Load(); n != 0 {
		t.Errorf("a rename reported %d writes in place", n)
	}
	if replaced.Load() == 0 {
		t.Error("a rename was not reported as a replacement")
	}

	// In place: truncate, then write.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	replaced.Store(0)
	waitPoke(t, pokes, "a write in place")
	if written.Load() == 0 {
		t.Error("a write in place was not reported")
	}
	if n := replaced.Load(); n != 0 {
		t.Errorf("a write in place reported %d replacements", n)
	}

	// A new file written where the old one was removed is written in place
	// too: a reader must not take it as whole.
	written.Store(0)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("d"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, pokes, "a new file written")
	for written.Load() == 0 || replaced.Load() == 0 {
		// The events may trail the remove's poke: wait for the next.
		waitPoke(t, pokes, "the new file's events")
	}
}

// TestWatchRules pins the one rule set every file watcher follows (config,
// GeoIP, state file, certificates): which directories are watched for a
// path, and which events count, are writes, or are replacements.
func TestWatchRules(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir()) // directories are watched by their real names
	if err != nil {
		t.Fatal(err)
	}
	mkdirs(t, filepath.Join(dir, "plain"), filepath.Join(dir, "etc"), filepath.Join(dir, "data"),
		filepath.Join(dir, "k8s", "..2024_01"), filepath.Join(dir, "links"), filepath.Join(dir, "v1"))
	plain := filepath.Join(dir, "plain", "meridian.yaml")
	writeFile(t, plain, "a")
	// A symlink into another directory.
	linked := filepath.Join(dir, "etc", "City.mmdb")
	writeFile(t, filepath.Join(dir, "data", "City-2024.mmdb"), "b")
	mustSymlink(t, filepath.Join(dir, "data", "City-2024.mmdb"), linked)
	// The Kubernetes ConfigMap layout.
	k8s := filepath.Join(dir, "k8s", "admin_state")
	writeFile(t, filepath.Join(dir, "k8s", "..2024_01", "admin_state"), "c")
	mustSymlink(t, "..2024_01", filepath.Join(dir, "k8s", "..data"))
	mustSymlink(t, filepath.Join("..data", "admin_state"), k8s)
	// A chain: the path links to a "current" link, swapped by ln -sfn.
	chained := filepath.Join(dir, "etc", "key.pem")
	writeFile(t, filepath.Join(dir, "v1", "key.pem"), "d")
	mustSymlink(t, filepath.Join(dir, "v1", "key.pem"), filepath.Join(dir, "links", "current"))
	mustSymlink(t, filepath.Join("..", "links", "current"), chained)
	// A path that does not exist yet.
	missing := filepath.Join(dir, "plain", "later.yaml")

	r := newWatchRules([]string{plain, linked, k8s, chained, missing})
	wantDirs := map[string]bool{
		filepath.Join(dir, "plain"):            true,
		filepath.Join(dir, "etc"):              true,
		filepath.Join(dir, "data"):             true, // the link's target's
		filepath.Join(dir, "k8s"):              true,
		filepath.Join(dir, "k8s", "..2024_01"): true, // where ..data points now
		filepath.Join(dir, "links"):            true, // a link of the chain
		filepath.Join(dir, "v1"):               true, // where the chain ends
	}
	if len(r.dirs) != len(wantDirs) {
		t.Errorf("watched directories %v, want %v", r.dirs, wantDirs)
	}
	for d := range wantDirs {
		if !r.dirs[d] {
			t.Errorf("directory %s not watched (%v)", d, r.dirs)
		}
	}

	const none, counts, write, create = 0, 1, 2, 4
	for _, tc := range []struct {
		name string
		ev   fsnotify.Event
		want int
	}{
		{"write to the file", ev(plain, fsnotify.Write), counts | write},
		{"rename into place", ev(plain, fsnotify.Create), counts | create},
		{"the file removed", ev(plain, fsnotify.Remove), counts},
		{"the file renamed away", ev(plain, fsnotify.Rename), counts},
		{"chmod of the file", ev(plain, fsnotify.Chmod), counts},
		{"a file not there yet appears", ev(missing, fsnotify.Create), counts | create},
		{"a neighbour written", ev(filepath.Join(dir, "plain", "access.log"), fsnotify.Write), none},
		{"a neighbour created", ev(filepath.Join(dir, "plain", "access.log"), fsnotify.Create), none},
		{"an editor's swap file", ev(filepath.Join(dir, "plain", ".meridian.yaml.swp"), fsnotify.Write), none},
		{"an editor's temp file renamed away", ev(filepath.Join(dir, "plain", ".meridian.yaml.tmp"), fsnotify.Rename), none},
		{"the path's own directory removed", ev(filepath.Join(dir, "plain"), fsnotify.Remove), counts},
		{"a symlink swapped over the path", ev(linked, fsnotify.Create), counts | create},
		{"the symlink's target written", ev(filepath.Join(dir, "data", "City-2024.mmdb"), fsnotify.Write), counts | write},
		{"a new version beside the target", ev(filepath.Join(dir, "data", "City-2025.mmdb"), fsnotify.Create), none},
		{"a neighbour of the link", ev(filepath.Join(dir, "etc", "other.conf"), fsnotify.Write), none},
		{"a link of the chain swapped", ev(filepath.Join(dir, "links", "current"), fsnotify.Create), counts | create},
		{"the chain's end written", ev(filepath.Join(dir, "v1", "key.pem"), fsnotify.Write), counts | write},
		{"a neighbour of a link of the chain", ev(filepath.Join(dir, "links", "previous"), fsnotify.Create), none},
		{"..data swapped", ev(filepath.Join(dir, "k8s", "..data"), fsnotify.Create), counts | create},
		{"..data_tmp made", ev(filepath.Join(dir, "k8s", "..data_tmp"), fsnotify.Create), counts | create},
		{"the old version removed", ev(filepath.Join(dir, "k8s", "..2024_01"), fsnotify.Remove), counts},
		{"the projected file removed with it", ev(filepath.Join(dir, "k8s", "..2024_01", "admin_state"), fsnotify.Remove), counts},
		{"another ConfigMap key", ev(filepath.Join(dir, "k8s", "other_key"), fsnotify.Create), none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			written, replaced, ok := r.classify(tc.ev)
			got := 0
			if ok {
				got |= counts
			}
			if written {
				got |= write
			}
			if replaced {
				got |= create
			}
			if got != tc.want {
				t.Errorf("classify(%v) = counts %v, written %v, replaced %v; want %03b", tc.ev, ok, written, replaced, tc.want)
			}
		})
	}
}

func ev(name string, op fsnotify.Op) fsnotify.Event { return fsnotify.Event{Name: name, Op: op} }

// TestWatcherFollowsReplacements runs the watcher on real files: writes to
// neighbours never poke; a rename over the file, a symlink swap and then a
// write to the new target (the watch moved with the swap) each poke; the
// look once the watch is in place and each poll go to Polled, not poke.
func TestWatcherFollowsReplacements(t *testing.T) {
	dir := t.TempDir()
	mkdirs(t, filepath.Join(dir, "etc"), filepath.Join(dir, "v1"), filepath.Join(dir, "v2"))
	path := filepath.Join(dir, "etc", "cert.pem")
	writeFile(t, filepath.Join(dir, "v1", "cert.pem"), "1")
	writeFile(t, filepath.Join(dir, "v2", "cert.pem"), "2")
	mustSymlink(t, filepath.Join(dir, "v1", "cert.pem"), path)

	polls := make(chan struct{}, 100)
	w := &Watcher{Paths: []string{path}, Logger: zaptest.NewLogger(t), Poll: time.Hour,
		Polled: func() { polls <- struct{}{} }}
	pokes, stop := startWatcher(w)
	defer stop(t)
	waitPoke(t, polls, "the watch was placed")
	quiet := func(what string) {
		t.Helper()
		select {
		case <-pokes:
			t.Fatalf("%s poked", what)
		case <-time.After(20 * DefaultDebounce):
		}
	}

	for i := range 20 {
		writeFile(t, filepath.Join(dir, "etc", "access.log"), fmt.Sprint(i))
		writeFile(t, filepath.Join(dir, "v1", ".cert.pem.swp"), fmt.Sprint(i))
	}
	quiet("a neighbour's write")

	writeFile(t, filepath.Join(dir, "v1", "cert.pem"), "1b")
	waitPoke(t, pokes, "a write to the symlink's target")

	// ln -sfn: a new link renamed over the old one.
	tmp := filepath.Join(dir, "etc", ".cert.pem.tmp")
	mustSymlink(t, filepath.Join(dir, "v2", "cert.pem"), tmp)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, pokes, "a symlink swap")
	quiet("the swap, after its poke")

	// The watch followed the link: the new target's directory counts, the
	// old one's no longer does.
	writeFile(t, filepath.Join(dir, "v1", "cert.pem"), "1c")
	quiet("a write to the old target")
	writeFile(t, filepath.Join(dir, "v2", "cert.pem"), "2b")
	waitPoke(t, pokes, "a write to the new target")

	// A plain file renamed over the link.
	writeFile(t, tmp, "3")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, pokes, "a rename over the path")
	select {
	case <-polls:
		t.Error("Polled called without a poll")
	default:
	}
}

// TestWatcherPollRewatches: a directory removed and made again loses its
// watch; the poll places it again, so later writes poke again. A watcher
// that cannot watch anything fails without Poll and polls with it.
func TestWatcherPollRewatches(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	mkdirs(t, dir)
	path := filepath.Join(dir, "admin_state")
	writeFile(t, path, "a")

	polls := make(chan struct{}, 1)
	w := &Watcher{Paths: []string{path}, Logger: zaptest.NewLogger(t), Poll: 20 * time.Millisecond,
		Polled: func() {
			select {
			case polls <- struct{}{}:
			default:
			}
		}}
	pokes, stop := startWatcher(w)
	defer stop(t)
	waitPoke(t, polls, "the watch was placed")

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, pokes, "the directory removed")
	mkdirs(t, dir)
	// The second poll that reports after this point placed its watch
	// after the directory was made again (the first may have placed it
	// just before).
	select {
	case <-polls:
	default:
	}
	for range 2 {
		waitPoke(t, polls, "a poll")
	}
	for len(pokes) > 0 {
		<-pokes
	}
	writeFile(t, path, "b")
	waitPoke(t, pokes, "a write in the directory made again")

	gone := filepath.Join(t.TempDir(), "no", "such", "dir", "file")
	if err := (&Watcher{Paths: []string{gone}}).Run(context.Background(), func() {}); err == nil {
		t.Error("Run without Poll on an unwatchable path succeeded")
	}
	pctx, pcancel := context.WithCancel(context.Background())
	looked := make(chan struct{}, 100)
	pw := &Watcher{Paths: []string{gone}, Poll: 10 * time.Millisecond}
	pdone := make(chan error, 1)
	go func() { pdone <- pw.Run(pctx, func() { looked <- struct{}{} }) }()
	waitPoke(t, looked, "the first look, polling only")
	waitPoke(t, looked, "a poll, polling only")
	pcancel()
	if err := <-pdone; err != nil {
		t.Errorf("Run polling only: %v", err)
	}
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestRenamedInto checks what tells a rename onto a watched name from a
// file created there: fsnotify shows the old name only in Event.String.
func TestRenamedInto(t *testing.T) {
	dir := t.TempDir()
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	if err := fw.Add(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "meridian.yaml")
	next := func(name string) fsnotify.Event {
		t.Helper()
		for {
			select {
			case ev := <-fw.Events:
				if ev.Name == name && ev.Has(fsnotify.Create) {
					return ev
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no create event for %s", name)
			}
		}
	}
	if err := os.WriteFile(path, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ev := next(path); renamedInto(ev) {
		t.Errorf("a new file taken for a rename: %v", ev)
	}
	tmp := filepath.Join(dir, `.odd "name" ← "x".tmp`)
	if err := os.WriteFile(tmp, []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ev := next(tmp); renamedInto(ev) {
		t.Errorf("a new file with an arrow in its name taken for a rename: %v", ev)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if ev := next(path); !renamedInto(ev) {
		t.Errorf("a rename not seen as one: %v", ev)
	}
}

// TestWatcherPokesAtOnceOnRename: a file renamed into place is whole, so
// the default watcher pokes without waiting for the burst to end. The
// debounce is stretched to an hour here, so only the rename can poke.
func TestWatcherPokesAtOnceOnRename(t *testing.T) {
	defer func(d time.Duration) { defaultDebounce = d }(defaultDebounce)
	defaultDebounce = time.Hour
	dir := t.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	if err := os.WriteFile(path, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	replaced := make(chan struct{}, 100)
	w := &Watcher{Paths: []string{path}, Logger: zaptest.NewLogger(t), Replaced: func() { replaced <- struct{}{} }}
	pokes, stop := startWatcher(w)
	defer stop(t)
	<-pokes // the poke made once the watch is in place

	// A file created in place waits for the debounce.
	other := filepath.Join(dir, "..other")
	if err := os.WriteFile(other, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, replaced, "a new file")
	select {
	case <-pokes:
		t.Fatal("a new file poked at once")
	case <-time.After(50 * time.Millisecond):
	}

	tmp := filepath.Join(dir, ".meridian.yaml.tmp")
	if err := os.WriteFile(tmp, []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, pokes, "a rename over the config")
}
