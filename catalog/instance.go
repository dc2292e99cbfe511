package catalog

import (
	"cmp"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Service meta keys Meridian reads from Consul registrations.
const (
	// MetaWeight overrides an instance's weight: a decimal integer from 1 to
	// MaxWeight. It wins over Consul's Weights because it is the operator's
	// Meridian-specific intent, while Weights are shared with Consul DNS
	// (SRV) and other consumers. An invalid value is ignored.
	MetaWeight = "meridian-weight"
	// MetaRegion names the instance's region; without it the region is the
	// instance's datacenter.
	MetaRegion = "meridian-region"
	// MaxWeight bounds MetaWeight and Consul weights so one registration
	// cannot starve every other endpoint of a weighted pool.
	MaxWeight = 65535
)

// Health statuses of an Instance, aggregated over all its checks (node and
// service) the way Consul's ?passing filter does.
const (
	StatusPassing  = "passing"
	StatusWarning  = "warning"
	StatusCritical = "critical" // also maintenance mode and unknown states
)

// Instance is one service instance seen in Consul, reduced to what routing
// needs. Instances inside a Snapshot are shared: callers must treat Tags and
// Meta as read-only.
type Instance struct {
	ID      string // Consul service ID
	Node    string
	Address string // Service.Address, else Node.Address
	Port    int
	// Weight is MetaWeight when valid, else Consul's Weights.Warning for a
	// warning instance (when > 0), else Weights.Passing, and at least 1.
	Weight     int
	Region     string // MetaRegion, else Datacenter
	Datacenter string
	Tags       []string
	Meta       map[string]string
	Status     string // StatusPassing | StatusWarning | StatusCritical
}

// Endpoint returns the instance's dialable "host:port" address.
func (i Instance) Endpoint() string {
	return net.JoinHostPort(i.Address, strconv.Itoa(i.Port))
}

// equal reports whether two instances carry the same data.
func (i Instance) equal(o Instance) bool {
	return i.ID == o.ID && i.Node == o.Node && i.Address == o.Address &&
		i.Port == o.Port && i.Weight == o.Weight && i.Region == o.Region &&
		i.Datacenter == o.Datacenter && i.Status == o.Status &&
		slices.Equal(i.Tags, o.Tags) && maps.Equal(i.Meta, o.Meta)
}

func equalInstances(a, b []Instance) bool {
	return slices.EqualFunc(a, b, Instance.equal)
}

func compareInstances(a, b Instance) int {
	return cmp.Or(
		strings.Compare(a.Datacenter, b.Datacenter),
		strings.Compare(a.Node, b.Node),
		strings.Compare(a.ID, b.ID),
		strings.Compare(a.Address, b.Address),
		cmp.Compare(a.Port, b.Port),
	)
}

// fromEntries converts a /v1/health/service answer. dc is the datacenter the
// query was made for (used when a node does not report its own). With
// keepOrder the answer's order is kept (it is meaningful when the query used
// ?near); otherwise instances are sorted so equal content compares equal.
// Entries that cannot be an endpoint (no address, port outside 1..65535) are
// skipped and counted.
func fromEntries(entries []*api.ServiceEntry, dc string, keepOrder bool) (out []Instance, skipped int) {
	out = make([]Instance, 0, len(entries))
	for _, e := range entries {
		inst, ok := fromEntry(e, dc)
		if !ok {
			skipped++
			continue
		}
		out = append(out, inst)
	}
	if !keepOrder {
		slices.SortStableFunc(out, compareInstances)
	}
	return out, skipped
}

func fromEntry(e *api.ServiceEntry, dc string) (Instance, bool) {
	if e == nil || e.Service == nil {
		return Instance{}, false
	}
	s := e.Service
	inst := Instance{
		ID:         s.ID,
		Address:    s.Address,
		Port:       s.Port,
		Datacenter: dc,
		Status:     aggregateStatus(e.Checks),
	}
	if e.Node != nil {
		inst.Node = e.Node.Node
		if inst.Address == "" {
			inst.Address = e.Node.Address
		}
		if e.Node.Datacenter != "" {
			inst.Datacenter = e.Node.Datacenter
		}
	}
	if inst.Address == "" || inst.Port < 1 || inst.Port > 65535 {
		return Instance{}, false
	}
	if len(s.Tags) > 0 {
		inst.Tags = slices.Clone(s.Tags)
	}
	if len(s.Meta) > 0 {
		inst.Meta = maps.Clone(s.Meta)
	}
	inst.Weight = weightOf(s, inst.Status)
	inst.Region = inst.Datacenter
	if r := strings.TrimSpace(s.Meta[MetaRegion]); r != "" {
		inst.Region = r
	}
	return inst, true
}

// weightOf applies the documented weight precedence.
func weightOf(s *api.AgentService, status string) int {
	if v, ok := s.Meta[MetaWeight]; ok {
		if w, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && w >= 1 && w <= MaxWeight {
			return w
		}
	}
	w := s.Weights.Passing
	if status == StatusWarning && s.Weights.Warning > 0 {
		w = s.Weights.Warning
	}
	return min(max(w, 1), MaxWeight)
}

// aggregateStatus folds an instance's checks into one status. Maintenance
// and unknown check states count as critical: only what Consul would return
// for ?passing is passing.
func aggregateStatus(checks api.HealthChecks) string {
	switch checks.AggregatedStatus() {
	case api.HealthPassing:
		return StatusPassing
	case api.HealthWarning:
		return StatusWarning
	default:
		return StatusCritical
	}
}

// healthAllows reports whether a pool with the given health filter
// (passing | warning | any) may use an instance with the given status. An
// unknown filter is treated as the strictest, passing.
func healthAllows(filter, status string) bool {
	switch filter {
	case "any":
		return true
	case "warning":
		return status == StatusPassing || status == StatusWarning
	default:
		return status == StatusPassing
	}
}

// metaMatches reports whether every wanted key is present with exactly the
// wanted value.
func metaMatches(want, have map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}
