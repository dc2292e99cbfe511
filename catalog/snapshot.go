package catalog

import (
	"slices"
	"time"

	"github.com/meridian-lb/meridian/config"
)

// Snapshot is an immutable view of every wanted selection's instances at one
// moment. The rebuild loop takes one with Watcher.Snapshot and compiles the
// routing table from it; nothing in it changes afterwards, so it can be read
// from any goroutine without locks. A nil *Snapshot is an empty catalog.
type Snapshot struct {
	version uint64
	sels    map[Key]*selection
	dcs     dcView // for multi-datacenter selections (multidc.go)
}

// selection is one key's data inside a Snapshot.
type selection struct {
	ready     bool // an answer was received (possibly with zero instances)
	instances []Instance
	index     uint64    // X-Consul-Index of the data
	changed   time.Time // when the data last changed
}

// NewSnapshot builds a ready snapshot from fixed data: the static catalog
// used by tests and examples that run without Consul. Instances are sorted
// like the watcher sorts them; the caller must not modify them afterwards.
func NewSnapshot(data map[Key][]Instance) *Snapshot {
	s := &Snapshot{version: 1, sels: make(map[Key]*selection, len(data))}
	for k, in := range data {
		in = slices.Clone(in)
		if k.Near == "" {
			slices.SortStableFunc(in, compareInstances)
		}
		s.sels[k] = &selection{ready: true, instances: in}
	}
	return s
}

// Version increases every time the watcher publishes a new snapshot, so the
// rebuild loop can tell whether anything changed since its last compile.
func (s *Snapshot) Version() uint64 {
	if s == nil {
		return 0
	}
	return s.version
}

// Instances returns the instances of a pool's selection that pass its health
// and meta filters, in a deterministic order (Consul's order when the
// selection uses near, which sorts by round-trip time). ready is false until
// Consul answered for the selection's key at least once: "no data yet" is
// never reported as "zero instances". The returned slice is the caller's;
// the Tags and Meta inside are shared and read-only.
func (s *Snapshot) Instances(sel config.ConsulSelect) (inst []Instance, ready bool) {
	if s == nil {
		return nil, false
	}
	if sel.MultiDC() {
		return s.multiDC(sel)
	}
	d, ok := s.sels[KeyOf(sel)]
	if !ok || !d.ready {
		return nil, false
	}
	return filterInstances(sel, d.instances), true
}

func filterInstances(sel config.ConsulSelect, in []Instance) []Instance {
	out := make([]Instance, 0, len(in))
	for _, i := range in {
		if healthAllows(sel.Health, i.Status) && metaMatches(sel.Meta, i.Meta) {
			out = append(out, i)
		}
	}
	return out
}

// multiDC applies prepared-query semantics: the instances of the first
// datacenter in the selection's order with any that pass its filters.
// ready follows the selection's own datacenter: a remote one that never
// answered is skipped, not waited for.
func (s *Snapshot) multiDC(sel config.ConsulSelect) ([]Instance, bool) {
	keys := s.dcs.keys(sel)
	own, ok := s.sels[keys[0]]
	ready := ok && own.ready
	for _, k := range keys {
		d, ok := s.sels[k]
		if !ok || !d.ready {
			continue
		}
		if out := filterInstances(sel, d.instances); len(out) > 0 {
			return out, true
		}
	}
	return []Instance{}, ready
}

// Datacenters returns the datacenters a selection spans, in the order they
// are tried ("" is the local one when its name is unknown).
func (s *Snapshot) Datacenters(sel config.ConsulSelect) []string {
	if s == nil || !sel.MultiDC() {
		return []string{sel.Datacenter}
	}
	return s.dcs.order(sel)
}

// Ready reports whether the key has received its first answer.
func (s *Snapshot) Ready(k Key) bool {
	if s == nil {
		return false
	}
	d, ok := s.sels[k]
	return ok && d.ready
}

// Pending lists, sorted, the wanted selections that have no data yet, so
// /readyz can say what it is waiting for.
func (s *Snapshot) Pending() []string {
	if s == nil {
		return nil
	}
	var out []string
	for k, d := range s.sels {
		if !d.ready {
			out = append(out, k.String())
		}
	}
	slices.Sort(out)
	return out
}

// Keys lists the selections in the snapshot, sorted.
func (s *Snapshot) Keys() []Key {
	if s == nil {
		return nil
	}
	out := make([]Key, 0, len(s.sels))
	for k := range s.sels {
		out = append(out, k)
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// Changed returns when the key's data last changed (zero before the first
// answer); the admin API shows it next to each Consul-backed pool.
func (s *Snapshot) Changed(k Key) time.Time {
	if s == nil {
		return time.Time{}
	}
	if d, ok := s.sels[k]; ok {
		return d.changed
	}
	return time.Time{}
}
