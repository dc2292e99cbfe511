package config

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// DefaultDebounce coalesces the bursts of events one save produces (cp's
// truncate then write, an editor's rewrite in place), which arrive within a
// millisecond or two, while keeping a reload within its 50 ms budget. A
// writer slower than that makes its reader see a partial file first; the
// config rebuild re-reads such a file rather than report it (internal/app),
// and certificate files use a longer debounce, since cert and key are often
// replaced one after the other. A file renamed into place (an editor's
// write-temp-then-rename, a Kubernetes symlink swap) is whole when it
// appears, and with the default debounce pokes at once (see Watcher).
const DefaultDebounce = 10 * time.Millisecond

// defaultDebounce is DefaultDebounce, for tests to stretch.
var defaultDebounce = DefaultDebounce

// DefaultSettle is how long a config file written in place must stay
// unchanged before the server applies it. A tool that writes the file in
// place (cp, an editor that rewrites the file, a script's redirection, a
// template renderer) may pause between writes, and a prefix of a config is
// often valid YAML that serves less: applied, it answers 404 until the rest
// arrives. One second waits out pauses four times the 250 ms that exposed
// this, and is still a short delay for an edit made by hand. A file
// replaced by a rename or a symlink swap is whole when it appears and is
// applied within the debounce: replacing the file is the way to an
// instant reload.
const DefaultSettle = time.Second

// Watcher tells its caller when files may have changed. It is the one file
// watcher of the server: the config file, the GeoIP database, the admin
// state file and the TLS certificates all use it, so they all follow the
// same rules:
//
//   - It watches each file's directory, not the file: editors and
//     Kubernetes replace files by rename or symlink swap, which a watch on
//     the file itself loses. When the path is a symlink it also watches
//     the directory of every link of the chain and of the file the chain
//     ends at, so a swapped link anywhere on it, and a write to the target
//     in place, are seen.
//   - An event counts when it names a watched path, a link of its chain or
//     the file it resolves to; a Kubernetes AtomicWriter entry ("..data",
//     "..data_tmp" and the timestamped "..2024_…" directories); or a
//     watched directory itself (moved or removed, taking the file with
//     it). Anything else in those directories (logs, editor swap and temp
//     files, other versions beside a symlink's target) is ignored, so a
//     busy neighbour costs no reloads.
//   - Events are debounced: the poke comes once no event has counted for
//     Debounce. Then, before poking, the watch is placed again from the
//     paths as they resolve now, since a symlink swap may point somewhere
//     new; directories no longer wanted are dropped.
//   - With the default debounce, a file renamed onto a watched path or a
//     Kubernetes "..data" entry from another name in a watched directory
//     (inotify's moved-to with its moved-from) pokes at once, the watch
//     placed again first: a rename brings a whole file, so the rest of the
//     burst (a chmod, the old version's removal) adds nothing to wait
//     for, and the later events still poke once they are quiet. A file
//     created and then written (cp to a new path) is no rename and waits
//     out the burst, so its writes are seen first. A watcher that sets
//     Debounce (certificates, where cert and key are renamed into place
//     one after the other) waits after every event.
//   - Once the watch is in place it pokes once (see Polled), since a
//     change made between the caller's first read and the watch raised no
//     event. An error from the watch (a kernel queue overflow: events were
//     lost) counts as an event.
//
// The caller re-reads the real paths and skips content it has already
// seen, so a spurious poke costs one read.
//
// A Watcher's fields must not change while Run runs. It keeps no state
// between runs.
type Watcher struct {
	Paths []string
	// Debounce is the quiet time after the last event before the poke;
	// 0 means DefaultDebounce, with renames poking at once.
	Debounce time.Duration
	// Poll, when positive, is a safety net for events that never come
	// (network file systems, a directory removed and made again, which
	// loses its watch): every Poll the watch is placed again and Polled is
	// called. With Poll set, a watch that cannot be placed at all (no
	// inotify instance left, no directory exists yet) is logged and Run
	// polls only instead of failing.
	Poll   time.Duration
	Logger *zap.Logger // nil logs nothing
	// Written and Replaced, when set, are called (they must not block) as
	// events arrive, before the burst's poke: Written for a write to a
	// watched file itself (fsnotify Write: a write or a truncation),
	// Replaced for a file appearing at a watched path or a Kubernetes
	// "..data" entry (fsnotify Create: a rename into place, a new file, a
	// symlink swap). A write after the file appeared means the file now at
	// the path is being written, even a newly created one; a rename raises
	// no write. The config rebuild uses them to wait for a file written in
	// place to settle while applying a replaced one at once.
	Written  func()
	Replaced func()
	// Polled, when set, is called instead of poke for the looks no event
	// asked for: the one once the watch is in place and those every Poll.
	// A caller whose file is costly to read (GeoIP) can then compare the
	// file's stat rather than its content when nothing said it changed.
	Polled func()
}

// Run watches until ctx is done and then returns nil. It calls poke once
// the watch is in place, and then once per burst of events. poke and
// Polled run on Run's goroutine: while they run, events wait (in the
// kernel's queue), so a slow one delays the next but loses nothing. Run
// fails at once only when, without Poll, no directory can be watched.
func (w *Watcher) Run(ctx context.Context, poke func()) error {
	log := w.Logger
	if log == nil {
		log = zap.NewNop()
	}
	debounce, renameAtOnce := w.Debounce, false
	if debounce <= 0 {
		debounce, renameAtOnce = defaultDebounce, true
	}
	look := poke
	if w.Polled != nil {
		look = w.Polled
	}

	fw, err := fsnotify.NewWatcher()
	if err != nil {
		if w.Poll <= 0 {
			return fmt.Errorf("watch %v: %w", w.Paths, err)
		}
		log.Warn("cannot watch files; polling them", zap.Strings("paths", w.Paths),
			zap.Duration("every", w.Poll), zap.Error(err))
	} else {
		defer fw.Close()
	}
	rules := newWatchRules(w.Paths)
	failed := map[string]bool{} // directories whose watch failed, logged once
	rewatch := func() {
		if fw != nil {
			rules.place(fw, log, failed)
		}
	}
	rewatch()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if fw != nil {
		if len(fw.WatchList()) == 0 {
			if w.Poll <= 0 {
				return fmt.Errorf("watch %v: no directory could be watched", w.Paths)
			}
			log.Warn("no directory of these files can be watched yet; polling them",
				zap.Strings("paths", w.Paths), zap.Duration("every", w.Poll))
		}
		events, errs = fw.Events, fw.Errors
	}
	look()

	var pollC <-chan time.Time
	if w.Poll > 0 {
		poll := time.NewTicker(w.Poll)
		defer poll.Stop()
		pollC = poll.C
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil // closed: only Close does that
			}
			written, replaced, counts := rules.classify(ev)
			if !counts {
				continue
			}
			log.Debug("file event", zap.String("name", ev.Name), zap.String("op", ev.Op.String()))
			if written && w.Written != nil {
				w.Written()
			}
			if replaced && w.Replaced != nil {
				w.Replaced()
			}
			if replaced && renameAtOnce && renamedInto(ev) {
				rewatch() // a symlink swap may point somewhere new
				poke()
				continue
			}
			timer.Reset(debounce)
		case err, ok := <-errs:
			if !ok {
				return nil
			}
			log.Warn("file watcher error", zap.Error(err))
			timer.Reset(debounce)
		case <-timer.C:
			rewatch() // a symlink swap may point somewhere new
			poke()
		case <-pollC:
			rewatch() // a directory made again has lost its watch
			look()
		}
	}
}

// renamedInto reports an event for a file moved onto its name from another
// name in a watched directory (inotify's IN_MOVED_TO matched with its
// IN_MOVED_FROM). fsnotify keeps the old name unexported and shows it only
// in String, as `CREATE "new" ← "old"` (names quoted, so a name cannot
// hold that separator). Should that change, renames wait for the debounce
// like other events; TestWatcherPokesAtOnceOnRename notices.
func renamedInto(ev fsnotify.Event) bool {
	return ev.Has(fsnotify.Create) && strings.Contains(ev.String(), `" ← "`)
}

// watchRules is the rule set of a Watcher: which directories to watch for
// its paths and which events count. It is only used by Run's goroutine.
type watchRules struct {
	paths []string
	// files are the watched paths, every symlink their chains pass
	// through, and the files they end at, each also under its directory's
	// real name (events are named after the watched directory).
	files map[string]bool
	// dirs are the directories to watch, by their real names, so no
	// directory is watched twice under two names.
	dirs map[string]bool
}

func newWatchRules(paths []string) *watchRules {
	r := &watchRules{}
	for _, p := range paths {
		r.paths = append(r.paths, filepath.Clean(p))
	}
	r.resolve()
	return r
}

// maxLinks bounds a symlink chain, as the kernel does (ELOOP after 40).
const maxLinks = 40

// resolve recomputes files and dirs from the paths as they resolve through
// symlinks now. It follows each path's chain of symlinks link by link, so
// that swapping any link of the chain (ln -sfn on a "current" link beside
// the versions) is seen in the link's own directory, and adds where the
// whole path resolves to, which also covers symlinked directories on the
// way (Kubernetes' "..data"). A path that does not resolve (missing, a
// dangling link) is still watched through its own directory.
func (r *watchRules) resolve() {
	r.files, r.dirs = map[string]bool{}, map[string]bool{}
	add := func(p string) {
		r.files[p] = true
		dir := filepath.Dir(p)
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = filepath.Clean(real)
		}
		r.files[filepath.Join(dir, filepath.Base(p))] = true
		r.dirs[dir] = true
	}
	for _, p := range r.paths {
		add(p)
		cur := p
		for range maxLinks {
			fi, err := os.Lstat(cur)
			if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				break
			}
			target, err := os.Readlink(cur)
			if err != nil {
				break
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(cur), target)
			}
			cur = filepath.Clean(target)
			add(cur)
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			add(filepath.Clean(real))
		}
	}
}

// classify reports whether ev counts, and whether it is a write to a
// watched file or a file appearing at a watched path (see Watcher).
func (r *watchRules) classify(ev fsnotify.Event) (written, replaced, counts bool) {
	name := filepath.Clean(ev.Name)
	file := r.files[name]
	k8s := strings.HasPrefix(filepath.Base(name), "..")
	counts = file || k8s || r.dirs[name]
	written = file && ev.Has(fsnotify.Write)
	replaced = (file || k8s) && ev.Has(fsnotify.Create)
	return written, replaced, counts
}

// place resolves the paths again and makes fw watch exactly the wanted
// directories. It compares with fw.WatchList rather than its own record,
// because the kernel drops the watch of a directory that is removed (an
// old Kubernetes version directory, a directory made again). A directory
// that cannot be watched is logged the first time it fails in a row.
func (r *watchRules) place(fw *fsnotify.Watcher, log *zap.Logger, failed map[string]bool) {
	r.resolve()
	have := map[string]bool{}
	for _, d := range fw.WatchList() {
		d = filepath.Clean(d)
		if r.dirs[d] {
			have[d] = true
		} else {
			_ = fw.Remove(d) // it may be gone already
		}
	}
	for d := range r.dirs {
		if have[d] {
			continue
		}
		if err := fw.Add(d); err != nil {
			if !failed[d] {
				log.Warn("cannot watch directory", zap.String("dir", d), zap.Error(err))
			}
			failed[d] = true
			continue
		}
		delete(failed, d)
	}
	for d := range failed {
		if !r.dirs[d] {
			delete(failed, d)
		}
	}
}

// WatchMoving runs w over a set of paths that changes while it runs — the
// TLS listener's certificates, the TLS files a table was compiled from —
// until ctx is done: paths gives the current set, and a signal on moved
// means it changed, so the watch is replaced. Each watch pokes once when it
// is in place (catching changes made before it) and then on changes; a
// watch that fails is reported to onErr and the set waits for the next
// move. w's Paths are ignored.
func WatchMoving(ctx context.Context, w Watcher, paths func() []string, moved <-chan struct{}, poke func(), onErr func(error)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		wctx, cancel := context.WithCancel(ctx)
		if ps := paths(); len(ps) > 0 {
			cur := w
			cur.Paths = ps
			wg.Go(func() {
				if err := cur.Run(wctx, poke); err != nil {
					onErr(err)
				}
			})
		}
		select {
		case <-ctx.Done():
			cancel()
			return
		case <-moved:
			cancel()
			wg.Wait()
		}
	}
}
