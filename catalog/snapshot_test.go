package catalog

import (
	"slices"
	"testing"

	"github.com/meridian-lb/meridian/config"
)

func ids(in []Instance) []string {
	out := []string{}
	for _, i := range in {
		out = append(out, i.ID)
	}
	return out
}

func TestSnapshotInstances(t *testing.T) {
	web := config.ConsulSelect{Service: "web", Tags: []string{"eu"}}
	snap := NewSnapshot(map[Key][]Instance{
		KeyOf(web): {
			{ID: "c", Node: "n3", Address: "10.0.0.3", Port: 80, Status: StatusCritical, Meta: map[string]string{"v": "2"}},
			{ID: "a", Node: "n1", Address: "10.0.0.1", Port: 80, Status: StatusPassing, Meta: map[string]string{"v": "1"}},
			{ID: "b", Node: "n2", Address: "10.0.0.2", Port: 80, Status: StatusWarning, Meta: map[string]string{"v": "2", "x": "y"}},
		},
	})
	tests := []struct {
		name      string
		health    string
		meta      map[string]string
		want      []string
		wantReady bool
	}{
		{name: "default is passing", want: []string{"a"}, wantReady: true},
		{name: "passing", health: "passing", want: []string{"a"}, wantReady: true},
		{name: "warning", health: "warning", want: []string{"a", "b"}, wantReady: true},
		{name: "any", health: "any", want: []string{"a", "b", "c"}, wantReady: true},
		{name: "meta filter", health: "any", meta: map[string]string{"v": "2"}, want: []string{"b", "c"}, wantReady: true},
		{name: "meta filter needs all keys", health: "any", meta: map[string]string{"v": "2", "x": "y"}, want: []string{"b"}, wantReady: true},
		{name: "meta filter with no match is ready and empty", health: "any", meta: map[string]string{"v": "9"}, want: []string{}, wantReady: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel := web
			sel.Health, sel.Meta = tc.health, tc.meta
			got, ready := snap.Instances(sel)
			if ready != tc.wantReady || !slices.Equal(ids(got), tc.want) {
				t.Errorf("got %v ready=%v, want %v ready=%v", ids(got), ready, tc.want, tc.wantReady)
			}
		})
	}
	t.Run("unknown selection is not ready", func(t *testing.T) {
		if got, ready := snap.Instances(config.ConsulSelect{Service: "api"}); ready || got != nil {
			t.Errorf("got %v ready=%v", got, ready)
		}
	})
	t.Run("returned slice is the caller's", func(t *testing.T) {
		sel := web
		sel.Health = "any"
		got, _ := snap.Instances(sel)
		got[0].ID = "mutated"
		again, _ := snap.Instances(sel)
		if again[0].ID != "a" {
			t.Errorf("snapshot changed through a returned slice: %v", ids(again))
		}
	})
}

func TestNilSnapshot(t *testing.T) {
	var s *Snapshot
	if got, ready := s.Instances(config.ConsulSelect{Service: "web"}); got != nil || ready {
		t.Error("nil snapshot returned data")
	}
	if s.Version() != 0 || s.Pending() != nil || s.Keys() != nil || s.Ready(Key{Service: "web"}) || !s.Changed(Key{}).IsZero() {
		t.Error("nil snapshot is not empty")
	}
}

func TestSnapshotPending(t *testing.T) {
	s := &Snapshot{sels: map[Key]*selection{
		{Service: "web"}:                   {ready: true},
		{Service: "api", Tags: "v2"}:       {},
		{Service: "db", Datacenter: "dc2"}: {},
	}}
	if got, want := s.Pending(), []string{"api[v2]", "db@dc2"}; !slices.Equal(got, want) {
		t.Errorf("Pending = %v, want %v", got, want)
	}
	if !s.Ready(Key{Service: "web"}) || s.Ready(Key{Service: "api", Tags: "v2"}) {
		t.Error("Ready wrong")
	}
	if got := len(s.Keys()); got != 3 {
		t.Errorf("Keys = %d", got)
	}
}
