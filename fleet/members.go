package fleet

import (
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/meridian-lb/meridian/catalog"
)

// Member is one live Meridian instance of the fleet.
type Member struct {
	ID         string `json:"id"` // its registration's service ID
	Node       string `json:"node"`
	Address    string `json:"address"`         // host:port of its HTTP edge
	Admin      string `json:"admin,omitempty"` // host:port of its admin API
	Region     string `json:"region"`
	Datacenter string `json:"datacenter"`
	Self       bool   `json:"self,omitempty"`
}

// MembersOf turns catalog instances of the fleet registration into
// members, sorted by region, datacenter and ID, without duplicates; selfID
// marks this instance.
func MembersOf(inst []catalog.Instance, selfID string) []Member {
	out := make([]Member, 0, len(inst))
	for _, in := range inst {
		m := Member{ID: in.ID, Node: in.Node, Address: in.Endpoint(), Region: in.Region, Datacenter: in.Datacenter, Self: in.ID == selfID}
		if p, err := strconv.Atoi(in.Meta[catalog.MetaAdminPort]); err == nil && p > 0 && p < 65536 {
			m.Admin = net.JoinHostPort(in.Address, strconv.Itoa(p))
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int {
		if c := strings.Compare(a.Region, b.Region); c != 0 {
			return c
		}
		if c := strings.Compare(a.Datacenter, b.Datacenter); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return slices.CompactFunc(out, func(a, b Member) bool { return a.ID == b.ID && a.Datacenter == b.Datacenter })
}

// Edges returns the HTTP edges of the members in region, this instance's
// excepted, in list order.
func Edges(members []Member, region string) []string {
	var out []string
	for _, m := range members {
		if m.Region == region && !m.Self {
			out = append(out, m.Address)
		}
	}
	return out
}
