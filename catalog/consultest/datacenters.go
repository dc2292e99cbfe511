package consultest

import (
	"cmp"
	"net/http"
	"slices"
	"time"
)

// dcState is one datacenter's part of the server: its catalog index (each
// datacenter's catalog is its own Raft state in Consul; this server shares
// one index counter, so indexes stay comparable, but a change in one
// datacenter does not move another's), whether it answers, and its
// servers' network coordinate.
type dcState struct {
	catalogIdx uint64
	stopped    bool          // StopDatacenter: requests for it answer "No path to datacenter"
	rtt        time.Duration // SetDatacenterRTT: estimated round trip from the agent's datacenter
}

// dcLocked returns the datacenter's state, adding the datacenter when it is
// new.
func (s *Server) dcLocked(name string) *dcState {
	d := s.dcs[name]
	if d == nil {
		d = &dcState{catalogIdx: 1}
		s.dcs[name] = d
	}
	return d
}

// StopDatacenter makes a datacenter stop answering, as when the WAN link to
// its servers is cut: requests naming it (?dc=) answer 500 "No path to
// datacenter", and blocking queries waiting on it are released with that
// error. Its state is kept; StartDatacenter brings it back.
func (s *Server) StopDatacenter(dc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dcLocked(dc).stopped = true
	s.wakeLocked()
}

// StartDatacenter ends StopDatacenter.
func (s *Server) StartDatacenter(dc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dcLocked(dc).stopped = false
	s.wakeLocked()
}

// SetDatacenterRTT places the datacenter's servers rtt away from the
// agent's datacenter in network-coordinate space, so that
// /v1/coordinate/datacenters and the order of /v1/catalog/datacenters
// reflect it. Datacenters without one are at distance 0 (they tie, and
// sort by name).
func (s *Server) SetDatacenterRTT(dc string, rtt time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dcLocked(dc).rtt = rtt
}

// wakeLocked releases blocked queries so they look at the state again.
func (s *Server) wakeLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// sortedDCsLocked lists the datacenters the way Consul's
// /v1/catalog/datacenters does: the agent's first, then by estimated round
// trip time, then by name.
func (s *Server) sortedDCsLocked() []string {
	out := make([]string, 0, len(s.dcs))
	for name := range s.dcs {
		out = append(out, name)
	}
	slices.SortFunc(out, func(a, b string) int {
		if a == s.opts.Datacenter || b == s.opts.Datacenter {
			return cmp.Compare(boolInt(a != s.opts.Datacenter), boolInt(b != s.opts.Datacenter))
		}
		return cmp.Or(cmp.Compare(s.dcs[a].rtt, s.dcs[b].rtt), cmp.Compare(a, b))
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Server) catalogDatacenters(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := s.sortedDCsLocked()
	s.mu.Unlock()
	writeJSON(w, out)
}

// Coordinate shapes, as serf's coordinate.Coordinate and Consul's
// /v1/coordinate/datacenters answer.
type (
	coordJSON struct {
		Vec        []float64
		Error      float64
		Adjustment float64
		Height     float64
	}
	coordEntryJSON struct {
		Node      string
		Segment   string
		Partition string `json:",omitempty"`
		Coord     coordJSON
	}
	coordDCJSON struct {
		Datacenter  string
		AreaID      string
		Coordinates []coordEntryJSON
	}
)

// minHeight is serf's minimum coordinate height (seconds).
const minHeight = 1.0e-5

// coordOf is the coordinate of a datacenter's (one) server: the agent's
// datacenter at the origin, another rtt along the first axis, so that
// serf's distance (|Δvec| + both heights + adjustments) comes out at rtt.
func coordOf(rtt time.Duration) coordJSON {
	vec := make([]float64, 8)
	if rtt > 0 {
		vec[0] = max(rtt.Seconds()-2*minHeight, 0)
	}
	return coordJSON{Vec: vec, Error: 1.5, Height: minHeight}
}

func (s *Server) coordinateDatacenters(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var out []coordDCJSON
	for _, name := range s.sortedDCsLocked() {
		out = append(out, coordDCJSON{
			Datacenter:  name,
			AreaID:      "wan",
			Coordinates: []coordEntryJSON{{Node: "server-1." + name, Coord: coordOf(s.dcs[name].rtt)}},
		})
	}
	s.mu.Unlock()
	writeJSON(w, out)
}

// agentSelf answers /v1/agent/self with the fields clients read: the
// agent's datacenter and node name (Config), its member entry and its LAN
// coordinate.
func (s *Server) agentSelf(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{
		"Config": map[string]any{
			"Datacenter": s.opts.Datacenter, "PrimaryDatacenter": s.opts.Datacenter,
			"NodeName": s.opts.NodeName, "NodeID": nodeID(s.opts.NodeName),
			"Server": false, "Version": "1.21.0", "Revision": "consultest",
		},
		"Member": map[string]any{
			"Name": s.opts.NodeName, "Addr": s.opts.NodeAddress, "Port": 8301, "Status": 1,
			"Tags": map[string]string{"dc": s.opts.Datacenter, "role": "node"},
		},
		"Coord": coordOf(0),
		"Meta":  map[string]string{},
	})
}
