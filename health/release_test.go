package health_test

import (
	"testing"

	"github.com/meridian-lb/meridian/health"
)

// TestReleaseOverride: an override set with a source of its own (a
// failover drill's) is ended by ReleaseOverride with that source only; an
// override someone set since stays in force.
func TestReleaseOverride(t *testing.T) {
	const addr = "10.0.0.1:80"
	e := health.New(health.Options{})
	e.Sync([]health.PoolSpec{{Name: "web", Endpoints: []string{addr}}})
	if err := e.OverrideAs("web", addr, health.ActionDrain, "drill:d1"); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.Status("web", addr); st.State != health.StateDraining || st.OverrideSource != "drill:d1" {
		t.Fatalf("after OverrideAs: %s from %q", st.State, st.OverrideSource)
	}
	if ok, err := e.ReleaseOverride("web", addr, "drill:d2"); ok || err != nil {
		t.Fatalf("release by another source = %t %v, want false", ok, err)
	}
	if ok, err := e.ReleaseOverride("web", addr, "drill:d1"); !ok || err != nil {
		t.Fatalf("release by its source = %t %v", ok, err)
	}
	if m := e.Member("web", addr); !m.Available() || m.State() != health.StateUp {
		t.Fatalf("after the release: %s", m.State())
	}
	// An operator's drain set over the drill's is the operator's now.
	_ = e.OverrideAs("web", addr, health.ActionDrain, "drill:d3")
	_ = e.Override("web", addr, health.ActionDrain)
	if ok, _ := e.ReleaseOverride("web", addr, "drill:d3"); ok {
		t.Fatal("the drill released the operator's drain")
	}
	if st, _ := e.Status("web", addr); st.State != health.StateDraining || st.OverrideSource != "api" {
		t.Fatalf("operator's drain: %s from %q", st.State, st.OverrideSource)
	}
	if _, err := e.ReleaseOverride("nope", addr, "drill:d3"); err == nil {
		t.Fatal("release on an unknown pool: no error")
	}
}
