package config

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// DefaultDebounce coalesces the bursts of events one save produces (an
// editor's write-temp-then-rename, cp's truncate then write, a Kubernetes
// symlink swap), which arrive within a millisecond or two, while keeping a
// reload within its 50 ms budget. A writer slower than that makes its
// reader see a partial file first; the config rebuild re-reads such a file
// rather than report it (internal/app), and certificate files use a longer
// debounce, since cert and key are often replaced one after the other.
const DefaultDebounce = 10 * time.Millisecond

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

// Watcher tells its caller when a file may have changed. It watches the
// file's directory, not the file: editors and Kubernetes replace files by
// rename or symlink swap, which a watch on the file itself loses. It also
// watches the directory the file resolves to through symlinks. An event
// counts when it names a watched file, a Kubernetes AtomicWriter entry
// ("..data" and its timestamped directories), or anything in the directory
// a file resolves to when that is another directory; writes to other files
// beside the config (logs, editor swap files) are ignored, so a busy
// neighbour costs no reloads. The caller re-reads the real path and skips
// content it has already seen, so spurious pokes cost one read.
type Watcher struct {
	Paths    []string
	Debounce time.Duration
	Logger   *zap.Logger
	// Written and Replaced, when set, are called (they must not block) as
	// events arrive, before the burst's poke: Written for a write to a
	// watched file itself (fsnotify Write: a write or a truncation),
	// Replaced for a file appearing at a watched path or a Kubernetes
	// "..data" entry (fsnotify Create: a rename into place, a new file, a
	// symlink swap). A write after the file appeared means the file now at
	// the path is being written, even a newly created one; a rename raises
	// no write.
	Written  func()
	Replaced func()
}

// Run watches until ctx is done, calling poke (which must not block) once
// when the watch is in place and then once per burst of events.
func (w *Watcher) Run(ctx context.Context, poke func()) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %v: %w", w.Paths, err)
	}
	defer fw.Close()
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	watched := map[string]bool{}
	relevant := map[string]bool{} // event paths that concern a watched file
	realDirs := map[string]bool{} // directories files resolve to, beside theirs
	rewatch := func() {
		clear(realDirs)
		for _, p := range w.Paths {
			p = filepath.Clean(p)
			relevant[p] = true
			dirs := []string{filepath.Dir(p)}
			if real, err := filepath.EvalSymlinks(p); err == nil {
				relevant[real] = true
				if rd := filepath.Dir(real); rd != dirs[0] {
					realDirs[rd] = true
					dirs = append(dirs, rd)
				}
			}
			for _, d := range dirs {
				if watched[d] {
					continue
				}
				if err := fw.Add(d); err != nil {
					w.Logger.Warn("cannot watch directory", zap.String("dir", d), zap.Error(err))
					continue
				}
				watched[d] = true
			}
		}
	}
	rewatch()
	if len(watched) == 0 {
		return fmt.Errorf("watch %v: no directory could be watched", w.Paths)
	}
	// A change made between the caller's first read and the watch being
	// in place raised no event: poke once now, and let the caller's
	// content check skip it when nothing changed.
	poke()

	timer := time.NewTimer(0)
	if !timer.Stop() {
		<-timer.C
	}
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			name := filepath.Clean(ev.Name)
			dotdot := strings.HasPrefix(filepath.Base(name), "..")
			if !relevant[name] && !realDirs[filepath.Dir(name)] && !dotdot {
				continue
			}
			w.Logger.Debug("file event", zap.String("name", ev.Name), zap.String("op", ev.Op.String()))
			if w.Written != nil && ev.Has(fsnotify.Write) && relevant[name] {
				w.Written()
			}
			if w.Replaced != nil && ev.Has(fsnotify.Create) && (relevant[name] || dotdot) {
				w.Replaced()
			}
			timer.Reset(debounce)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.Logger.Warn("file watcher error", zap.Error(err))
			timer.Reset(debounce)
		case <-timer.C:
			rewatch() // a symlink swap may point somewhere new
			poke()
		}
	}
}
