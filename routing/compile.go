package routing

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"sync"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/geo"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/policy"
)

// Catalog answers which endpoints a Consul selection has right now. ready is
// false until the selection's first answer, so a pool is never emptied by an
// error and the admin API can say what it waits for.
type Catalog interface {
	Endpoints(sel config.ConsulSelect) (eps []CatalogEndpoint, ready bool)
}

// CatalogEndpoint is one instance the catalog lists for a selection.
type CatalogEndpoint struct {
	Address string // host:port
	Weight  int
	Region  string
}

// Inputs are what shapes a table besides the config file.
type Inputs struct {
	Catalog Catalog // nil: no Consul
	GeoDB   *geo.DB // nil: no GeoIP database
	// Previous is the live table, if any. A pool whose Consul selection has
	// not answered yet (its tags changed in this reload, say) keeps the
	// Consul endpoints it had there instead of starting empty.
	Previous *Table
	// KeySets fetches the JWKS of jwt policies that name a URL; nil
	// checks such URLs without fetching (meridian validate).
	KeySets *policy.KeySets
	// AuthClient sends forward-auth subrequests; nil: each policy has its
	// own.
	AuthClient *http.Client
	// Fleet counts the live Meridian instances for rate limits with scope
	// fleet; nil counts one.
	Fleet func() int
	// RolloutWeight is the canary weight a rollout is at now (package
	// rollout's Manager); a rollout it does not know, or nil, is at its
	// plan's first step.
	RolloutWeight func(name string) (int, bool)
	// Defer hands the table back before two of its costliest parts are
	// done, which only the version and the request path read: the config's
	// share of the version hash (an encoding of the whole config) and the
	// maglev lookup tables of pools whose endpoints changed. They go on in
	// the background, one after the other, beside what the caller does
	// next; Table.Finish waits for them. Until it returns, Version is
	// empty and the pools must not pick. The rebuild loop overlaps them
	// with the proxy's compile and the table's apply, and finishes the
	// table before it compares versions or publishes it.
	Defer bool
	// NoKeyGeneration compiles signed zones without generating a missing
	// key (unsigned instead): for compiling a config that is not served
	// (meridian validate, meridian diff), which must write nothing.
	NoKeyGeneration bool
}

// Compile turns a validated config and the current inputs into a table, or
// into a *config.Error listing every problem it found with its line (see
// config.Config.Locate): what the config's rules cannot see, such as two
// steered records at one name or one network mapped to two regions. It
// is pure and deterministic: the same inputs give the same table and the same
// Version, and nothing outside the returned table is touched. A reload waits
// for it, so it spreads its costliest parts over goroutines of its own, all
// done when it returns (but those in.Defer leaves to Table.Finish).
func Compile(cfg *config.Config, in Inputs) (*Table, error) {
	var wg sync.WaitGroup
	defer wg.Wait()
	// The config's share of the version is the costliest input to hash and
	// needs nothing Compile builds, so it is computed beside the rest, and
	// with in.Defer beside what the caller does next.
	hashed := make(chan configDigest, 1)
	go func() { hashed <- hashConfig(cfg) }()

	t := &Table{
		Config:   cfg,
		Pools:    make(map[string]*Pool, len(cfg.Pools)),
		Services: make(map[string]*Service, len(cfg.Services)),
	}
	// Every step reports what it finds wrong, by config path where it can
	// (a config.Problem), and Compile goes on to the next, so one run lists
	// every problem; config.Locate gives each its line in the file.
	var errs []error
	loc, err := geo.NewLocator(cfg.Geo, in.GeoDB)
	if err != nil {
		errs = append(errs, err)
	}
	t.Geo = loc
	for i, c := range cfg.HTTP.TrustedProxies {
		p, err := config.ParsePrefix(c)
		if err != nil {
			errs = append(errs, config.Problem{Path: fmt.Sprintf("http.trusted_proxies[%d]", i), Msg: fmt.Sprintf("invalid CIDR %q", c)})
			continue
		}
		t.TrustedProxies = append(t.TrustedProxies, p)
	}
	if err := health.CheckConfig(cfg); err != nil {
		errs = append(errs, err)
	}
	pools := make([]*Pool, 0, len(cfg.Pools))
	prevs := make([]*Pool, 0, len(cfg.Pools)) // the live table's pool of each name, for balancer tables to reuse
	for _, name := range sortedKeys(cfg.Pools) {
		var prev *Pool
		if in.Previous != nil {
			prev = in.Previous.Pools[name]
		}
		p, pending := compilePool(name, cfg.Pools[name], cfg.Checks, in.Catalog, prev)
		if pending {
			t.Pending = append(t.Pending, fmt.Sprintf("pool %q: waiting for Consul service %q", name, cfg.Pools[name].Consul.Service))
		}
		t.Pools[name] = p
		pools = append(pools, p)
		prevs = append(prevs, prev)
	}
	// The balancers' tables (maglev's above all) depend on the pools alone
	// and are, after the version hash, the costliest part: they are built
	// beside the services, routes and zones, which never look at them, or
	// with in.Defer after Compile returns (later).
	pickerErrs := make([]error, len(pools))
	var later []func()
	wg.Go(func() {
		var lp *[]func()
		if in.Defer {
			lp = &later
		}
		for i, p := range pools {
			pk, err := newPicker(p, prevs[i], lp)
			if err != nil {
				pickerErrs[i] = pickerProblem(p, err)
			}
			p.picker = pk
		}
	})
	ro := newRollouts(in)
	for _, name := range sortedKeys(cfg.Services) {
		s := cfg.Services[name]
		svc := &Service{Name: name, Policy: s.Policy, Weights: s.Weights}
		if s.Rollout != nil {
			var perrs []error
			svc.Weights, perrs = ro.service(name, s)
			errs = append(errs, perrs...)
		}
		for i, pn := range s.Pools {
			p, ok := t.Pools[pn]
			if !ok {
				errs = append(errs, config.Problem{Path: fmt.Sprintf("services.%s.pools[%d]", name, i), Msg: fmt.Sprintf("unknown pool %q", pn)})
				continue
			}
			svc.Pools = append(svc.Pools, p)
		}
		if s.Policy == config.PolicyWeighted {
			svc.wrr = newWRR(svc.Weights)
		}
		t.Services[name] = svc
	}
	errs = append(errs, compileGuards(cfg, t)...)
	if t.Routes, err = compileRoutes(cfg, t.Services, ro); err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, compilePolicies(t, in)...)
	}
	zones, probs := zone.CompileWith(cfg, zoneServices(t.Services), zone.Options{NoKeyGeneration: in.NoKeyGeneration})
	t.Zones = zones
	for _, p := range probs {
		errs = append(errs, p)
	}
	if err := compileTLSFiles(cfg, t); err != nil {
		errs = append(errs, err)
	}
	t.Rollouts, t.RolloutWeights = ro.plans, ro.weights
	wg.Wait()
	errs = append(errs, pickerErrs...)
	if err := errors.Join(errs...); err != nil {
		<-hashed
		return nil, cfg.Locate(err)
	}
	pt := &pendingTable{done: make(chan struct{})}
	t.pending = pt
	rest := func() {
		pt.digest = <-hashed
		for _, build := range later {
			build()
		}
		close(pt.done)
	}
	if !in.Defer {
		rest()
		t.Finish()
		return t, nil
	}
	go rest()
	return t, nil
}

// pendingTable is what Compile left running with Inputs.Defer: the
// config's share of the version hash, then the lookup tables it deferred;
// done is closed when both are.
type pendingTable struct {
	done   chan struct{}
	digest configDigest
}

// Finish waits for what Compile left running on a table compiled with
// Inputs.Defer (see there), sets Version and returns it; on any other table
// it returns Version. The table's owner calls it before anything reads
// Version or picks: the rebuild loop, before it compares versions and
// before it publishes the table.
func (t *Table) Finish() string {
	if p := t.pending; p != nil {
		<-p.done
		t.Version = version(p.digest, t)
		t.pending = nil
	}
	return t.Version
}

// compilePool resolves a pool's endpoints: the static ones in file order,
// then the catalog's sorted by address. While a Consul selection has not
// answered, the pool keeps prev's Consul endpoints; pending is true when it
// has none to keep. Compile then builds the pool's picker.
func compilePool(name string, c *config.Pool, checks map[string]*config.Check, cat Catalog, prev *Pool) (*Pool, bool) {
	p := &Pool{
		Name:      name,
		Region:    c.Region,
		Balance:   c.Balance,
		HashOn:    c.HashOn,
		FailOpen:  c.OnAllDown != config.OnAllDownFail,
		CheckName: c.Check,
		Check:     checks[c.Check],
		Outlier:   c.Outlier,
		TLS:       c.TLS,
		SlowStart: c.SlowStart.D(),
		Limits:    c.Limits,
	}
	seen := map[string]bool{}
	add := func(addr string, weight int, region, source string) {
		if seen[addr] || weight <= 0 {
			return
		}
		seen[addr] = true
		if region == "" {
			region = c.Region
		}
		ep := &Endpoint{Address: addr, Weight: weight, Region: region, Source: source, Index: len(p.Endpoints)}
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			ep.IP = ap.Addr().Unmap()
		}
		p.Endpoints = append(p.Endpoints, ep)
	}
	for _, e := range c.Endpoints {
		add(e.Address, e.Weight, "", "static")
	}
	pending := false
	if c.Consul != nil {
		var eps []CatalogEndpoint
		ready := false
		if cat != nil {
			eps, ready = cat.Endpoints(*c.Consul)
		}
		if !ready && prev != nil {
			for _, e := range prev.Endpoints {
				if e.Source == "consul" {
					eps = append(eps, CatalogEndpoint{Address: e.Address, Weight: e.Weight, Region: e.Region})
				}
			}
		}
		pending = !ready && len(eps) == 0
		sort.Slice(eps, func(i, j int) bool { return eps[i].Address < eps[j].Address })
		for _, e := range eps {
			add(e.Address, max(e.Weight, 1), e.Region, "consul")
		}
	}
	return p, pending
}

// configDigest is the version hash after the config was written to it.
type configDigest struct {
	h   hash.Hash
	err error // the config could not be encoded; version hashes the dump
}

// hashConfig starts the version hash with the config as decoded (so
// comments and key order do not count).
func hashConfig(cfg *config.Config) configDigest {
	h := sha256.New()
	return configDigest{h: h, err: writeConfigJSON(h, cfg)}
}

// writeConfigJSON writes exactly what json.NewEncoder(w).Encode(cfg) writes,
// but one top-level field, and one item of a top-level list, at a time, so
// that no buffer holds the whole encoding (megabytes for thousands of routes,
// grown by doubling). encoding/json writes maps in key order, so equal
// configs hash equal; it is several times cheaper than re-encoding YAML.
// It fails where encoding/json fails (a NaN, say), after writing part.
// The config's types compiled into plans (confighash.go) write the same
// bytes several times faster; encoding/json writes them when they cannot.
func writeConfigJSON(w io.Writer, cfg *config.Config) error {
	if enc := configEncoder(); enc != nil {
		return writeConfigFast(w, enc, cfg)
	}
	// Each Encode writes one value and a newline; compact JSON has no other
	// newline byte (strings escape theirs), so dropping them all leaves the
	// values as json.Marshal writes them.
	enc := json.NewEncoder(newlineDropper{w})
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	for i := range t.NumField() {
		if _, tagged := t.Field(i).Tag.Lookup("json"); tagged {
			// Field names are written here as encoding/json writes untagged
			// fields; should a field get a json tag, encode in one piece.
			return json.NewEncoder(w).Encode(cfg)
		}
	}
	sep := "{"
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		io.WriteString(w, sep+`"`+f.Name+`":`)
		sep = ","
		fv := v.Field(i)
		if fv.Kind() != reflect.Slice || fv.IsNil() || fv.Type().Elem().Kind() != reflect.Pointer {
			if err := enc.Encode(fv.Interface()); err != nil {
				return err
			}
			continue
		}
		io.WriteString(w, "[")
		for j := range fv.Len() {
			if j > 0 {
				io.WriteString(w, ",")
			}
			if err := enc.Encode(fv.Index(j).Interface()); err != nil {
				return err
			}
		}
		io.WriteString(w, "]")
	}
	_, err := io.WriteString(w, "}\n")
	return err
}

// newlineDropper writes to w everything but newline bytes.
type newlineDropper struct{ w io.Writer }

func (d newlineDropper) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		if _, err := d.w.Write(b[:i]); err != nil {
			return 0, err
		}
		b = b[min(i+1, len(b)):]
	}
	return n, nil
}

// version finishes the hash of the config (d) with the resolved endpoints
// and the pending selections (so a catalog change counts too).
func version(d configDigest, t *Table) string {
	h := d.h
	if d.err != nil {
		// Encoding fails only on values JSON has no form for (a NaN
		// share): hash the canonical dump instead.
		h = sha256.New()
		h.Write([]byte(t.String()))
	}
	var buf []byte
	for _, name := range sortedKeys(t.Pools) {
		for _, e := range t.Pools[name].Endpoints {
			buf = append(buf[:0], name...)
			buf = append(buf, 0)
			buf = append(buf, e.Address...)
			buf = append(buf, 0)
			buf = strconv.AppendInt(buf, int64(e.Weight), 10)
			buf = append(buf, 0)
			buf = append(buf, e.Region...)
			buf = append(buf, '\n')
			h.Write(buf)
		}
	}
	for _, p := range t.Pending {
		buf = append(append(append(buf[:0], "pending\x00"...), p...), '\n')
		h.Write(buf)
	}
	hashTLSFiles(h, t)
	// A signed zone's key set is read from key_dir: a key added or removed
	// makes a new table (published on SIGHUP like a rotated certificate).
	for _, z := range t.Zones {
		if z.Keys != nil {
			buf = binary.BigEndian.AppendUint64(append(append(buf[:0], "zone\x00"...), z.Name...), z.StaticDigest)
			h.Write(buf)
		}
	}
	for _, name := range sortedKeys(t.RolloutWeights) {
		buf = append(strconv.AppendInt(append(append(buf[:0], "rollout\x00"...), name...), int64(t.RolloutWeights[name]), 10), '\n')
		h.Write(buf)
	}
	for _, r := range t.Routes {
		if r.Policy != nil {
			fp := r.Policy.Fingerprint()
			buf = append(append(strconv.AppendInt(append(buf[:0], "policy\x00"...), int64(r.Index), 10), 0), fp[:]...)
			h.Write(buf)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// HealthSpecs lists every pool with its check and endpoints, for
// health.Engine.Sync.
func (t *Table) HealthSpecs() []health.PoolSpec {
	specs := make([]health.PoolSpec, 0, len(t.Pools))
	for _, name := range sortedKeys(t.Pools) {
		p := t.Pools[name]
		s := health.PoolSpec{Name: name, CheckName: p.CheckName, Check: p.Check, TLS: p.TLS, Outlier: p.Outlier}
		if p.ClientTLS != nil {
			s.ClientTLS, s.TLSFingerprint = p.ClientTLS.Config, p.ClientTLS.Fingerprint
		}
		for _, e := range p.Endpoints {
			s.Endpoints = append(s.Endpoints, e.Address)
		}
		specs = append(specs, s)
	}
	return specs
}

// MemberSource hands out the live health member of (pool, address).
type MemberSource interface {
	Member(pool, address string) *health.Member
}

// BindHealth attaches the health overlay to every endpoint. The rebuild loop
// calls it after Sync and before publishing, so a published table is never
// written again.
func (t *Table) BindHealth(src MemberSource) {
	for name, p := range t.Pools {
		for _, e := range p.Endpoints {
			e.Health = src.Member(name, e.Address)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// compilePolicies compiles each route's edge policies (package policy),
// handing each the same-named route's policies of the live table, whose
// unchanged state (rate-limit buckets) carries over.
func compilePolicies(t *Table, in Inputs) []error {
	var prev map[string]*policy.Route
	if in.Previous != nil {
		for _, r := range in.Previous.Routes {
			if r.Policy != nil {
				if prev == nil {
					prev = map[string]*policy.Route{}
				}
				prev[r.Name] = r.Policy
			}
		}
	}
	var errs []error
	for i, r := range t.Routes {
		path := "routes[" + strconv.Itoa(i) + "]"
		var herrs []error
		r.AddHeaders, herrs = policy.CompileHeaders(path+".add_headers", r.Config.AddHeaders)
		errs = append(errs, herrs...)
		if rh := r.Config.ResponseHeaders; rh != nil {
			r.ResponseAdd, herrs = policy.CompileHeaders(path+".response_headers.add", rh.Add)
			errs = append(errs, herrs...)
		}
		env := policy.Env{KeySets: in.KeySets, Client: in.AuthClient, Previous: prev[r.Name], Fleet: in.Fleet, Regexp: t.Config.Regexp}
		p, err := policy.Compile(path, r.Config, env)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.Policy = p
	}
	return errs
}
