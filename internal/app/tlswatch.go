package app

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
)

// tlsFileDebounce is the quiet time after a change to a TLS file the table
// was compiled from before it is recompiled: tools replace a certificate
// and its key one after the other, and a table built between the two would
// be rejected once.
const tlsFileDebounce = 250 * time.Millisecond

// tlsFiles watches the TLS files the live table was compiled from — each
// pool's upstream CA, client certificate and key, and each route's client
// CA — and pokes the rebuild loop when one changes. They are part of the
// table (routing.Compile reads them, and their contents are in its
// version), so a rotation makes a new table, and the proxy's transports,
// the health probes and the TLS handshake switch to it together; a
// rotation to a file that cannot be used is rejected like a bad config.
type tlsFiles struct {
	logger *zap.Logger
	poke   func()

	mu     sync.Mutex
	paths  []string
	repath chan struct{} // the set changed: Run moves the watch
}

func newTLSFiles(logger *zap.Logger, poke func()) *tlsFiles {
	return &tlsFiles{logger: logger, poke: poke, repath: make(chan struct{}, 1)}
}

// set records the files a newly published config names. It never blocks.
func (w *tlsFiles) set(cfg *config.Config) {
	var paths []string
	add := func(p string) {
		if p != "" && !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Pools)) {
		if t := cfg.Pools[name].TLS; t != nil {
			add(t.CA)
			add(t.Cert)
			add(t.Key)
		}
	}
	for _, r := range cfg.Routes {
		if r == nil {
			continue
		}
		if r.TLS != nil {
			add(r.TLS.ClientCA)
		}
		// The policy files a route's table holds (basic auth's htpasswd, a
		// JWKS file) are watched the same way: a change makes a new table.
		if r.BasicAuth != nil {
			add(r.BasicAuth.Htpasswd)
		}
		if r.JWT != nil && !strings.HasPrefix(r.JWT.JWKS, "https://") && !strings.HasPrefix(r.JWT.JWKS, "http://") {
			add(r.JWT.JWKS)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if slices.Equal(paths, w.paths) {
		return
	}
	w.paths = paths
	select {
	case w.repath <- struct{}{}:
	default:
	}
}

// Run watches the current files until ctx is done, moving the watch when
// a new config names other files. The first poke of each watch recompiles,
// catching a change made before it; an unchanged table is not published
// again.
func (w *tlsFiles) Run(ctx context.Context) error {
	paths := func() []string {
		w.mu.Lock()
		defer w.mu.Unlock()
		return slices.Clone(w.paths)
	}
	config.WatchMoving(ctx, config.Watcher{Logger: w.logger, Debounce: tlsFileDebounce}, paths, w.repath, w.poke,
		func(err error) {
			w.logger.Error("TLS file watcher stopped; rotated files apply with the next config change", zap.Error(err))
		})
	return nil
}
