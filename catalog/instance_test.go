package catalog

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"
)

func entry(id, node, nodeAddr, svcAddr string, port int, meta map[string]string, w api.AgentWeights, statuses ...string) *api.ServiceEntry {
	e := &api.ServiceEntry{
		Node:    &api.Node{Node: node, Address: nodeAddr, Datacenter: "dc1"},
		Service: &api.AgentService{ID: id, Service: "web", Address: svcAddr, Port: port, Meta: meta, Weights: w, Tags: []string{"t"}},
	}
	for i, s := range statuses {
		e.Checks = append(e.Checks, &api.HealthCheck{CheckID: "c" + string(rune('0'+i)), Status: s})
	}
	return e
}

func TestFromEntry(t *testing.T) {
	w := api.AgentWeights{Passing: 10, Warning: 2}
	tests := []struct {
		name       string
		e          *api.ServiceEntry
		ok         bool
		wantAddr   string
		wantWeight int
		wantRegion string
		wantStatus string
	}{
		{name: "service address wins", e: entry("a", "n", "10.0.0.1", "10.1.0.1", 80, nil, w, "passing"),
			ok: true, wantAddr: "10.1.0.1", wantWeight: 10, wantRegion: "dc1", wantStatus: StatusPassing},
		{name: "node address fallback", e: entry("a", "n", "10.0.0.1", "", 80, nil, w, "passing"),
			ok: true, wantAddr: "10.0.0.1", wantWeight: 10, wantRegion: "dc1", wantStatus: StatusPassing},
		{name: "meta weight wins", e: entry("a", "n", "10.0.0.1", "", 80, map[string]string{MetaWeight: " 7 "}, w, "passing"),
			ok: true, wantAddr: "10.0.0.1", wantWeight: 7, wantRegion: "dc1", wantStatus: StatusPassing},
		{name: "invalid meta weight ignored", e: entry("a", "n", "10.0.0.1", "", 80, map[string]string{MetaWeight: "0"}, w, "passing"),
			ok: true, wantAddr: "10.0.0.1", wantWeight: 10, wantRegion: "dc1", wantStatus: StatusPassing},
		{name: "too large meta weight ignored", e: entry("a", "n", "10.0.0.1", "", 80, map[string]string{MetaWeight: "70000"}, w, "passing"),
			ok: true, wantAddr: "10.0.0.1", wantWeight: 10, wantRegion: "dc1", wantStatus: StatusPassing},
		{name: "warning uses warning weight", e: entry("a", "n", "10.0.0.1", "", 80, nil, w, "passing", "warning"),
			ok: true, wantAddr: "10.0.0.1", wantWeight: 2, wantRegion: "dc1", wantStatus: StatusWarning},
		{name: "zero weights become 1", e: entry("a", "n", "10.0.0.1", "", 80, nil, api.AgentWeights{}, "passing"),
			ok: true, wantAddr: "10.0.0.1", wantWeight: 1, wantRegion: "dc1", wantStatus: StatusPassing},
		{name: "region from meta", e: entry("a", "n", "10.0.0.1", "", 80, map[string]string{MetaRegion: "eu"}, w, "critical"),
			ok: true, wantAddr: "10.0.0.1", wantWeight: 10, wantRegion: "eu", wantStatus: StatusCritical},
		{name: "maintenance is critical", e: func() *api.ServiceEntry {
			e := entry("a", "n", "10.0.0.1", "", 80, nil, w, "passing")
			e.Checks = append(e.Checks, &api.HealthCheck{CheckID: api.NodeMaint, Status: "critical"})
			return e
		}(), ok: true, wantAddr: "10.0.0.1", wantWeight: 10, wantRegion: "dc1", wantStatus: StatusCritical},
		{name: "unknown check state is critical", e: entry("a", "n", "10.0.0.1", "", 80, nil, w, "bogus"),
			ok: true, wantAddr: "10.0.0.1", wantWeight: 10, wantRegion: "dc1", wantStatus: StatusCritical},
		{name: "no checks is passing", e: entry("a", "n", "10.0.0.1", "", 80, nil, w),
			ok: true, wantAddr: "10.0.0.1", wantWeight: 10, wantRegion: "dc1", wantStatus: StatusPassing},
		{name: "no port", e: entry("a", "n", "10.0.0.1", "", 0, nil, w, "passing")},
		{name: "port out of range", e: entry("a", "n", "10.0.0.1", "", 70000, nil, w, "passing")},
		{name: "no address", e: entry("a", "n", "", "", 80, nil, w, "passing")},
		{name: "no service", e: &api.ServiceEntry{Node: &api.Node{Node: "n"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, ok := fromEntry(tc.e, "fallback")
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if in.Address != tc.wantAddr || in.Weight != tc.wantWeight || in.Region != tc.wantRegion || in.Status != tc.wantStatus {
				t.Errorf("got addr %q weight %d region %q status %q", in.Address, in.Weight, in.Region, in.Status)
			}
		})
	}
}

func TestFromEntriesDatacenterFallbackAndOrder(t *testing.T) {
	w := api.AgentWeights{Passing: 1}
	b := entry("b", "n2", "10.0.0.2", "", 80, nil, w, "passing")
	a := entry("a", "n1", "10.0.0.1", "", 80, nil, w, "passing")
	a.Node.Datacenter = ""
	bad := entry("x", "n3", "", "", 80, nil, w)

	got, skipped := fromEntries([]*api.ServiceEntry{b, bad, a}, "dc9", false)
	if skipped != 1 || len(got) != 2 {
		t.Fatalf("got %d instances, %d skipped", len(got), skipped)
	}
	if got[0].ID != "b" || got[1].ID != "a" {
		// "dc1" < "dc9": sorted by datacenter first.
		t.Errorf("order = %s, %s", got[0].ID, got[1].ID)
	}
	if got[1].Datacenter != "dc9" || got[1].Region != "dc9" {
		t.Errorf("fallback datacenter not used: %+v", got[1])
	}
	kept, _ := fromEntries([]*api.ServiceEntry{b, a}, "dc1", true)
	if kept[0].ID != "b" {
		t.Errorf("keepOrder reordered: %s first", kept[0].ID)
	}
	if e := got[0].Endpoint(); e != "10.0.0.2:80" {
		t.Errorf("Endpoint = %q", e)
	}
	v6 := Instance{Address: "2001:db8::1", Port: 443}
	if e := v6.Endpoint(); e != "[2001:db8::1]:443" {
		t.Errorf("Endpoint = %q", e)
	}
}

func TestHealthAllows(t *testing.T) {
	tests := []struct {
		filter string
		want   []string
	}{
		{"passing", []string{StatusPassing}},
		{"", []string{StatusPassing}},
		{"bogus", []string{StatusPassing}},
		{"warning", []string{StatusPassing, StatusWarning}},
		{"any", []string{StatusPassing, StatusWarning, StatusCritical}},
	}
	for _, tc := range tests {
		t.Run("filter="+tc.filter, func(t *testing.T) {
			var got []string
			for _, s := range []string{StatusPassing, StatusWarning, StatusCritical} {
				if healthAllows(tc.filter, s) {
					got = append(got, s)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("allowed %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzFromEntries feeds arbitrary health answers through the conversion:
// it must never panic, and every instance it keeps must be dialable.
func FuzzFromEntries(f *testing.F) {
	f.Add([]byte(`[{"Node":{"Node":"n","Address":"10.0.0.1","Datacenter":"dc1"},"Service":{"ID":"a","Service":"web","Port":80,"Meta":{"meridian-weight":"5"},"Weights":{"Passing":3,"Warning":1}},"Checks":[{"CheckID":"c","Status":"warning"}]}]`))
	f.Add([]byte(`[{"Node":null,"Service":null,"Checks":null}]`))
	f.Add([]byte(`[{"Service":{"Address":"::1","Port":65535,"Meta":{"meridian-region":"eu","meridian-weight":"-1"}}}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var entries []*api.ServiceEntry
		if json.Unmarshal(data, &entries) != nil {
			return
		}
		got, skipped := fromEntries(entries, "dc", false)
		if len(got)+skipped != len(entries) {
			t.Fatalf("%d kept + %d skipped != %d entries", len(got), skipped, len(entries))
		}
		for _, in := range got {
			if in.Address == "" || in.Port < 1 || in.Port > 65535 || in.Weight < 1 || in.Weight > MaxWeight {
				t.Fatalf("invalid instance %+v", in)
			}
			switch in.Status {
			case StatusPassing, StatusWarning, StatusCritical:
			default:
				t.Fatalf("status %q", in.Status)
			}
		}
	})
}
