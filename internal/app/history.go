package app

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/consul/api"

	"github.com/meridian-lb/meridian/catalog"
	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/internal/audit"
	"github.com/meridian-lb/meridian/internal/history"
	"github.com/meridian-lb/meridian/routing"
)

// adminState is the App's config history, audit log, and what admit
// prepared for them for the config about to be published.
type adminState struct {
	hist  *history.History
	audit *audit.Log
	next  pendingAdmin // rebuild loop only; apply installs it
}

// pendingAdmin is the audit log file admit opened for cfg.
type pendingAdmin struct {
	cfg  *config.Config
	path string
	file *os.File // nil: the path is the one in use, or none
}

// initAdmin builds the history and the audit log and hooks the history to
// the rebuild loop's publication; New calls it before the first rebuild.
func (a *App) initAdmin() {
	a.adm.hist = history.New(config.DefaultConfigHistory)
	a.adm.audit = audit.New(audit.Options{Logger: a.logger.Named("audit")})
	a.rebuild.published = a.recordConfig
}

// recordConfig runs on the publish path: a new config (reload) becomes the
// newest history entry; a table rebuilt from the live config (the catalog,
// GeoIP or a TLS file changed) adds its version to that entry. Both only
// append: diffs are computed when asked for.
func (a *App) recordConfig(t *routing.Table, raw []byte, reload bool) {
	if !reload {
		a.adm.hist.Alias(t.Version)
		return
	}
	a.adm.hist.Add(history.Entry{Version: t.Version, Time: t.Built, Source: a.rebuild.src.Name(), Raw: raw})
}

// admitAdmin opens the audit log file a new config names, when it is not
// the one in use: a file that cannot be opened rejects the config, like an
// access log. The file is installed by applyAdmin when the config is
// published.
func (a *App) admitAdmin(cfg *config.Config) error {
	if f := a.adm.next.file; f != nil {
		_ = f.Close() // opened for a candidate that was not published
	}
	a.adm.next = pendingAdmin{cfg: cfg, path: cfg.Admin.AuditLog}
	if p := cfg.Admin.AuditLog; p != "" && p != a.adm.audit.Path() {
		f, err := audit.Open(p)
		if err != nil {
			return config.Problem{Path: "admin.audit_log", Msg: fmt.Sprintf("%s: %v", p, pathErr(err))}
		}
		a.adm.next.file = f
	}
	return nil
}

// applyAdmin applies a published config's admin.history and
// admin.audit_log.
func (a *App) applyAdmin(cfg *config.Config) {
	a.adm.hist.SetLimit(cfg.Admin.History)
	p := a.adm.next
	if p.cfg != cfg {
		return // the live config recompiled: nothing new
	}
	a.adm.next = pendingAdmin{}
	if p.file != nil || p.path == "" {
		a.adm.audit.SetFile(p.path, p.file)
	}
}

// namedToken is one of admin.tokens, read.
type namedToken struct {
	name, value string
}

// defaultTokenName is the name the audit log gives admin.token_file's
// token.
const defaultTokenName = "default"

// match returns the name of the token got is, comparing it with every
// token in constant time.
func (t *adminToken) match(got string) (string, bool) {
	name, ok := "", false
	if t.value != "" && subtle.ConstantTimeCompare([]byte(got), []byte(t.value)) == 1 {
		name, ok = defaultTokenName, true
	}
	for _, n := range t.named {
		if n.value != "" && subtle.ConstantTimeCompare([]byte(got), []byte(n.value)) == 1 && !ok {
			name, ok = n.name, true
		}
	}
	return name, ok
}

// loadTokens reads admin.token_file and every admin.tokens file. Each must
// hold a token (see loadToken); names must be given, unique and not
// "default" (admin.token_file's), and no two files may hold one token (the
// audit log could not tell who acted). It checks admin.history too, the
// admin section's other rule that config.Validate does not know. The
// error joins a config.Problem per mistake, at its path.
func loadTokens(c config.Admin) (adminToken, error) {
	tok, err := loadToken(c.TokenFile)
	var errs []error
	if err != nil {
		errs = append(errs, tokenProblem(err))
	}
	if c.History < 0 {
		errs = append(errs, config.Problem{Path: "admin.history", Msg: fmt.Sprintf("%d: want the number of configs to keep, at least 1 (default %d)", c.History, config.DefaultConfigHistory)})
	}
	names := map[string]int{}
	for i, nt := range c.Tokens {
		p := fmt.Sprintf("admin.tokens[%d]", i)
		name := strings.TrimSpace(nt.Name)
		switch j, dup := names[name]; {
		case name == "":
			errs = append(errs, config.Problem{Path: p + ".name", Msg: "missing: the audit log records it"})
		case name == defaultTokenName:
			errs = append(errs, config.Problem{Path: p + ".name", Msg: `"default" is admin.token_file's token's name`})
		case dup:
			errs = append(errs, config.Problem{Path: p + ".name", Msg: fmt.Sprintf("duplicate token name %q (also admin.tokens[%d])", name, j)})
		}
		names[name] = i
		if nt.File == "" {
			errs = append(errs, config.Problem{Path: p + ".file", Msg: "missing: the file holding the token"})
			continue
		}
		one, err := loadToken(nt.File)
		if err != nil {
			errs = append(errs, config.Problem{Path: p + ".file", Msg: strings.TrimPrefix(err.Error(), "admin.token_file ")})
			continue
		}
		if _, same := tok.match(one.value); same {
			errs = append(errs, config.Problem{Path: p + ".file", Msg: nt.File + ": the same token as another token file"})
			continue
		}
		tok.named = append(tok.named, namedToken{name: name, value: one.value})
		tok.required = true
	}
	if err := errors.Join(errs...); err != nil {
		return adminToken{}, err
	}
	return tok, nil
}

// errNotWritable marks a rollback the config source refused: the file or
// its directory is read-only or not ours to write, or the Consul KV key
// changed (check-and-set) or the token may not write it.
var errNotWritable = errors.New("the config source is not writable")

// sourceWriter is a config source that can be written back: what rollback
// writes to.
type sourceWriter interface {
	Write(ctx context.Context, data []byte) error
}

// rollback writes an earlier config's bytes back to the source, so that
// the file or the key stays the single truth: the watcher then applies it
// as any edit.
func (a *App) rollback(ctx context.Context, e history.Entry) error {
	w, ok := a.rebuild.src.(sourceWriter)
	if !ok {
		return fmt.Errorf("%w: %s", errNotWritable, a.rebuild.src.Name())
	}
	if e.Raw == nil {
		return fmt.Errorf("%w: version %s's bytes were not kept", errNotWritable, e.Version)
	}
	return w.Write(ctx, e.Raw)
}

// Write replaces the config file's content atomically: a temporary file in
// the same directory, with the file's mode, renamed over it. A symlinked
// path is resolved first, so the link (a ConfigMap's ..data, say) stays
// and its target is replaced. Errors that say the file may not be written
// (permission, read-only file system) wrap errNotWritable.
func (f fileSource) Write(_ context.Context, data []byte) (err error) {
	path, err := filepath.EvalSymlinks(string(f))
	if err != nil {
		return fmt.Errorf("%s: %w", f, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".rollback-*")
	if err != nil {
		return refused(path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("%s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(fi.Mode().Perm()); err != nil {
		return refused(path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("%s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return refused(path, err)
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		_ = d.Sync() // the rename's durability; best effort
		_ = d.Close()
	}
	return nil
}

// refused wraps err with errNotWritable when the file system refused the
// write (permission, read-only file system).
func refused(path string, err error) error {
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("%w: %s: %w", errNotWritable, path, pathErr(err))
	}
	return fmt.Errorf("%s: %w", path, err)
}

// Write puts the config back into the Consul KV key with a check-and-set
// on the key's current ModifyIndex (or, for a key that is gone, on its
// absence), so a write that lands in between is not overwritten: the
// rollback then fails and can be retried. A key that changed meanwhile, or
// an ACL token that may not write it, wraps errNotWritable.
func (s *kvSource) Write(ctx context.Context, data []byte) error {
	ref := catalog.KVScheme + s.ref.Key
	client, err := catalog.NewClient(&config.Consul{Address: s.ref.Address})
	if err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	kv := client.KV()
	cur, _, err := kv.Get(s.ref.Key, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return kvErr(ref, err)
	}
	p := &api.KVPair{Key: s.ref.Key, Value: data}
	if cur != nil {
		p.Flags, p.ModifyIndex = cur.Flags, cur.ModifyIndex
	}
	ok, _, err := kv.CAS(p, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return kvErr(ref, err)
	}
	if !ok {
		return fmt.Errorf("%w: %s changed while it was written (check-and-set failed); try again", errNotWritable, ref)
	}
	return nil
}

func kvErr(ref string, err error) error {
	var se api.StatusError
	if errors.As(err, &se) && (se.Code == 403 || se.Code == 401) {
		return fmt.Errorf("%w: %s: %w", errNotWritable, ref, err)
	}
	return fmt.Errorf("%s: %w", ref, err)
}

// CheckTable is Check, returning the compiled table: the candidate side
// of `meridian diff`.
func CheckTable(name string, data []byte) (*routing.Table, error) {
	cfg, err := Check(name, data)
	if err != nil {
		return nil, err
	}
	t, err := routing.Compile(cfg, routing.Inputs{NoKeyGeneration: true})
	if err != nil {
		return nil, cfg.Locate(err)
	}
	return t, nil
}

// CompileConfig parses and compiles a config without Check's checks of
// what it names outside itself (token files) nor of whether it serves
// anything: the running side of `meridian diff -against URL`, a config
// another machine accepted. It fails when a file the table reads (a TLS
// file, say) is not on this machine.
func CompileConfig(name string, data []byte) (*routing.Table, error) {
	cfg, err := config.Parse(name, data, zone.Check, health.CheckConfig)
	if err != nil {
		return nil, err
	}
	t, err := routing.Compile(cfg, routing.Inputs{NoKeyGeneration: true})
	if err != nil {
		return nil, cfg.Locate(err)
	}
	return t, nil
}
