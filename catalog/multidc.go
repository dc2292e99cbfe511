package catalog

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
)

// Multi-datacenter selections.
//
// A pool selection with datacenters or failover spans several datacenters
// with Consul prepared-query semantics: its own datacenter (the selection's,
// else the local one) first, then, for failover, the nearest N others by
// network coordinates followed by failover.datacenters, or the fixed
// datacenters list, each datacenter once. The pool's instances are those of
// the first datacenter in that order with an instance that passes the
// selection's health and meta filters. Every (service, datacenter) is one
// Key, so one blocking query, shared by every pool that needs it. A
// datacenter that stops answering keeps its last known instances: they stay
// eligible, flagged stale (SelectionStatus.Stale, the metric
// meridian_consul_datacenter_stale{datacenter}, one log line per outage).

// DefaultCoordinateInterval is how often the watcher re-reads
// /v1/coordinate/datacenters while a selection uses failover.nearest.
const DefaultCoordinateInterval = time.Minute

// dcView is what a snapshot knows of the datacenters: the local one's name
// ("" when unknown) and the others nearest first.
type dcView struct {
	local   string
	nearest []string
}

// order lists the datacenters a selection spans, in the order they are
// tried; "" stands for the selection's own key when it names none.
func (v dcView) order(sel config.ConsulSelect) []string {
	own := sel.Datacenter
	out := []string{own}
	seen := func(dc string) bool {
		return dc == "" || slices.Contains(out, dc) || (own == "" && dc == v.local)
	}
	add := func(dcs ...string) {
		for _, dc := range dcs {
			if !seen(dc) {
				out = append(out, dc)
			}
		}
	}
	add(sel.Datacenters...)
	if f := sel.Failover; f != nil {
		if f.Nearest > 0 {
			n := 0
			for _, dc := range v.nearest {
				if n == f.Nearest {
					break
				}
				if dc == own {
					continue
				}
				if !seen(dc) {
					out = append(out, dc)
				}
				n++
			}
		}
		add(f.Datacenters...)
	}
	return out
}

// keys returns the keys of every datacenter the selection spans.
func (v dcView) keys(sel config.ConsulSelect) []Key {
	base := KeyOf(sel)
	dcs := v.order(sel)
	out := make([]Key, len(dcs))
	for i, dc := range dcs {
		k := base
		k.Datacenter = dc
		out[i] = k
	}
	return out
}

// WantSelections sets the selections to watch, as Want does for keys, and
// expands each multi-datacenter selection into one key per datacenter it
// spans. It remembers the selections: when the nearest datacenters change
// (failover.nearest), the keys follow.
func (w *Watcher) WantSelections(sels []config.ConsulSelect) {
	w.mu.Lock()
	w.sels = slices.Clone(sels)
	v := w.dcs
	wake := w.needsNearestLocked() && len(v.nearest) == 0
	w.mu.Unlock()
	w.Want(selectionKeys(sels, v))
	if wake {
		select {
		case w.dcWake <- struct{}{}:
		default:
		}
	}
}

// selectionKeys expands selections into their distinct keys, sorted.
func selectionKeys(sels []config.ConsulSelect, v dcView) []Key {
	seen := map[Key]bool{}
	var out []Key
	for _, s := range sels {
		ks := []Key{KeyOf(s)}
		if s.MultiDC() {
			ks = v.keys(s)
		}
		for _, k := range ks {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// needsNearest reports whether a wanted selection orders datacenters by
// coordinates. Caller holds w.mu.
func (w *Watcher) needsNearestLocked() bool {
	return slices.ContainsFunc(w.sels, func(s config.ConsulSelect) bool {
		return s.Failover != nil && s.Failover.Nearest > 0
	})
}

// multiDCLocked reports whether a wanted selection spans datacenters.
func (w *Watcher) multiDCLocked() bool {
	return slices.ContainsFunc(w.sels, func(s config.ConsulSelect) bool { return s.MultiDC() })
}

// datacenterFetch reads the local datacenter's name and the others by
// distance; the production one asks Consul, tests use fakes.
type datacenterFetch func(ctx context.Context) (dcView, error)

// consulDatacenters returns the production datacenterFetch: the local name
// from the config (consul.datacenter), else /v1/agent/self, and the order
// from /v1/coordinate/datacenters: every other datacenter by the median
// estimated round trip between its servers and the local datacenter's,
// then by name (a datacenter without coordinates comes last).
func consulDatacenters(client *api.Client, local string) datacenterFetch {
	raw := client.Raw()
	return func(ctx context.Context) (dcView, error) {
		ctx, cancel := context.WithTimeout(ctx, requestSlack)
		defer cancel()
		if local == "" {
			var self map[string]map[string]any
			if _, err := raw.Query("/v1/agent/self", &self, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
				return dcView{}, fmt.Errorf("agent self: %w", err)
			}
			local, _ = self["Config"]["Datacenter"].(string)
		}
		var maps []*api.CoordinateDatacenterMap
		if _, err := raw.Query("/v1/coordinate/datacenters", &maps, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
			return dcView{local: local}, fmt.Errorf("coordinates: %w", err)
		}
		return dcView{local: local, nearest: byDistance(local, maps)}, nil
	}
}

// byDistance orders the datacenters other than local by the median
// estimated RTT between their servers and local's.
func byDistance(local string, maps []*api.CoordinateDatacenterMap) []string {
	var home []api.CoordinateEntry
	for _, m := range maps {
		if m != nil && m.Datacenter == local {
			home = m.Coordinates
		}
	}
	type dc struct {
		name string
		rtt  float64
	}
	var dcs []dc
	for _, m := range maps {
		if m == nil || m.Datacenter == local || m.Datacenter == "" {
			continue
		}
		var rtts []float64
		for _, a := range home {
			for _, b := range m.Coordinates {
				if a.Coord == nil || b.Coord == nil {
					continue
				}
				if d, ok := distance(a.Coord.Vec, a.Coord.Height, a.Coord.Adjustment, b.Coord.Vec, b.Coord.Height, b.Coord.Adjustment); ok {
					rtts = append(rtts, d)
				}
			}
		}
		d := math.Inf(1)
		if len(rtts) > 0 {
			slices.Sort(rtts)
			d = rtts[len(rtts)/2]
		}
		dcs = append(dcs, dc{m.Datacenter, d})
	}
	slices.SortFunc(dcs, func(a, b dc) int {
		if a.rtt != b.rtt {
			if a.rtt < b.rtt {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	out := make([]string, len(dcs))
	for i, d := range dcs {
		out[i] = d.name
	}
	return slices.Compact(out)
}

// distance is serf's Coordinate.DistanceTo, in seconds: the Euclidean
// distance of the vectors plus both heights, plus both adjustments when
// that stays positive. ok is false for vectors of different sizes.
func distance(av []float64, ah, aadj float64, bv []float64, bh, badj float64) (float64, bool) {
	if len(av) != len(bv) || len(av) == 0 {
		return 0, false
	}
	sum := 0.0
	for i := range av {
		d := av[i] - bv[i]
		sum += d * d
	}
	dist := math.Sqrt(sum) + ah + bh
	if adj := dist + aadj + badj; adj > 0 {
		dist = adj
	}
	return dist, true
}

// dcName names the datacenter a key queries, for status and metrics.
func (w *Watcher) dcName(k Key) string {
	if k.Datacenter != "" {
		return k.Datacenter
	}
	return w.dcs.local
}

// dcFailedLocked logs, once per outage of a datacenter other than the
// local one, that it stopped answering.
func (w *Watcher) dcFailedLocked(k Key, hasData bool, msg string) {
	dc := w.dcName(k)
	if k.Datacenter == "" || dc == w.dcs.local {
		return // the local datacenter's outage is the watcher's own (one line per outage)
	}
	if _, out := w.dcOutage[dc]; out {
		return
	}
	w.dcOutage[dc] = time.Now()
	w.log.Warn("Consul datacenter stopped answering; its selections keep their last known instances, flagged stale",
		zap.String("datacenter", dc), zap.Stringer("selection", k), zap.Bool("has_data", hasData), zap.String("error", msg))
}

// dcRecoveredLocked logs the end of a datacenter's outage once none of its
// keys fails any more.
func (w *Watcher) dcRecoveredLocked(k Key, now time.Time) {
	dc := w.dcName(k)
	since, out := w.dcOutage[dc]
	if !out {
		return
	}
	for key, st := range w.states {
		if st.failing && w.dcName(key) == dc {
			return
		}
	}
	delete(w.dcOutage, dc)
	w.log.Info("Consul datacenter is answering again", zap.String("datacenter", dc), zap.Duration("outage", now.Sub(since).Round(time.Millisecond)))
}

// StaleDatacenters lists, sorted, the datacenters whose selections fail
// now and are served from their last known instances.
func (w *Watcher) StaleDatacenters() []string {
	var out []string
	for _, s := range w.Status() {
		if s.Stale && !slices.Contains(out, s.Datacenter) {
			out = append(out, s.Datacenter)
		}
	}
	slices.Sort(out)
	return out
}

// trackDatacenters keeps the datacenter view current while a selection
// needs it: the local name (for a selection that lists it) and the
// nearest order (failover.nearest), re-read every CoordinateInterval or,
// after an error, with backoff. A change re-expands the selections'
// keys and pokes the rebuild loop.
func (w *Watcher) trackDatacenters(ctx context.Context) {
	if w.dcFetch == nil {
		return
	}
	every := w.opts.CoordinateInterval
	if every <= 0 {
		every = DefaultCoordinateInterval
	}
	failures := 0
	for {
		w.mu.Lock()
		need := w.needsNearestLocked() || (w.dcs.local == "" && w.multiDCLocked())
		w.mu.Unlock()
		wait := every
		if need {
			v, err := w.dcFetch(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				failures++
				wait = w.pace.backoff(failures)
				if failures == 1 {
					w.log.Warn("reading Consul's datacenters failed; keeping the last order", zap.String("error", describeError(err)), zap.Duration("retry_in", wait.Round(time.Millisecond)))
				}
			} else {
				failures = 0
				w.setDatacenters(v)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.dcWake:
			t.Stop()
		case <-t.C:
		}
	}
}

// setDatacenters installs a new view; when it changes the order, the keys
// follow and the rebuild loop is poked.
func (w *Watcher) setDatacenters(v dcView) {
	w.mu.Lock()
	if v.local == "" {
		v.local = w.dcs.local
	}
	same := v.local == w.dcs.local && slices.Equal(v.nearest, w.dcs.nearest)
	if same {
		w.mu.Unlock()
		return
	}
	w.log.Info("Consul datacenters by distance", zap.String("local", v.local), zap.Strings("nearest", v.nearest))
	w.dcs = v
	sels := w.sels
	w.publishLocked()
	w.mu.Unlock()
	w.Want(selectionKeys(sels, v))
	w.poke()
}
