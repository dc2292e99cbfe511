package fleet

import (
	"slices"
	"strings"
	"time"
)

// Status is the fleet as this instance sees it, for /api/v1/fleet and the
// console.
type Status struct {
	Self    string        `json:"self"`
	Region  string        `json:"region,omitempty"`
	Session string        `json:"session,omitempty"` // "" while this instance has none: its reports are missing
	Stale   bool          `json:"stale"`             // the view is too old to count (partitioned from Consul)
	Synced  time.Time     `json:"synced,omitzero"`   // when the watch last answered
	Quorum  *QuorumStatus `json:"quorum,omitempty"`
	Shared  bool          `json:"shared_overrides"`
	Members []Member      `json:"members"`
	// Reporters are the live reporters (held by a live session), this
	// instance included.
	Reporters []ReporterStatus `json:"reporters"`
	// Endpoints are every endpoint some reporter or this instance has a
	// verdict on, with each reporter's view.
	Endpoints []EndpointStatus `json:"endpoints"`
	Overrides []Override       `json:"overrides"`
}

// QuorumStatus is health.quorum as the API shows it.
type QuorumStatus struct {
	MinReporters int     `json:"min_reporters"`
	DownRatio    float64 `json:"down_ratio"`
}

// ReporterStatus is one live reporter.
type ReporterStatus struct {
	Instance   string    `json:"instance"`
	Region     string    `json:"region,omitempty"`
	Datacenter string    `json:"datacenter,omitempty"`
	Updated    time.Time `json:"updated,omitzero"`
	Self       bool      `json:"self,omitempty"`
}

// EndpointStatus is one endpoint across the fleet.
type EndpointStatus struct {
	Pool    string `json:"pool"`
	Address string `json:"address"`
	// Views are each reporter's verdict (up or down), by instance.
	Views map[string]string `json:"views"`
	Down  int               `json:"down"`      // reporters that see it down
	Of    int               `json:"reporters"` // reporters with a verdict
	// Verdict is what DNS answers by: up or down (the quorum's), or none
	// (this instance's own health: no quorum configured, too few
	// reporters, or a stale view).
	Verdict string `json:"verdict"`
	// Overruled is set when the verdict goes against this instance's.
	Overruled bool `json:"overruled,omitempty"`
}

// Status reports the fleet as this instance sees it.
func (f *Fleet) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	st := Status{
		Self: f.id, Region: f.opts.Region, Session: f.session, Stale: f.staleLocked(now), Synced: f.lastSync,
		Shared: f.shared, Members: slices.Clone(f.members),
	}
	if st.Members == nil {
		st.Members = []Member{}
	}
	if q := f.quorum; q != nil {
		st.Quorum = &QuorumStatus{MinReporters: q.MinReporters, DownRatio: q.DownRatio}
	}
	st.Reporters = append(st.Reporters, ReporterStatus{Instance: f.id, Region: f.opts.Region, Datacenter: f.opts.Datacenter, Self: true})
	eps := map[string]*EndpointStatus{}
	view := func(k, who, word string) {
		e := eps[k]
		if e == nil {
			i := strings.LastIndex(k, "/")
			e = &EndpointStatus{Pool: k[:i], Address: k[i+1:], Views: map[string]string{}, Verdict: "none"}
			if v, ok := f.verdicts[k]; ok {
				e.Verdict = v.String()
			}
			e.Overruled = f.overruled[k]
			eps[k] = e
		}
		e.Views[who] = word
		e.Of++
		if word == "down" {
			e.Down++
		}
	}
	for k, down := range f.local {
		view(k, f.id, verdictWord(down))
	}
	for id, r := range f.reports {
		if id == f.id {
			continue
		}
		st.Reporters = append(st.Reporters, ReporterStatus{Instance: id, Region: r.Region, Datacenter: r.Datacenter, Updated: r.Updated})
		for k, w := range r.Endpoints {
			view(k, id, w)
		}
	}
	slices.SortFunc(st.Reporters, func(a, b ReporterStatus) int { return strings.Compare(a.Instance, b.Instance) })
	for _, e := range eps {
		st.Endpoints = append(st.Endpoints, *e)
	}
	slices.SortFunc(st.Endpoints, func(a, b EndpointStatus) int {
		if c := strings.Compare(a.Pool, b.Pool); c != 0 {
			return c
		}
		return strings.Compare(a.Address, b.Address)
	})
	for _, o := range f.overrides {
		st.Overrides = append(st.Overrides, o)
	}
	slices.SortFunc(st.Overrides, func(a, b Override) int { return strings.Compare(a.Pool+"/"+a.Address, b.Pool+"/"+b.Address) })
	if st.Endpoints == nil {
		st.Endpoints = []EndpointStatus{}
	}
	if st.Overrides == nil {
		st.Overrides = []Override{}
	}
	return st
}
