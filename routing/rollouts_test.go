package routing

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/rollout"
)

const rolloutYAML = `
listen: {http: 127.0.0.1:0}
pools:
  a: {endpoints: [127.0.0.1:1]}
  b: {endpoints: [127.0.0.1:2]}
  c: {endpoints: [127.0.0.1:3]}
services:
  stable: {pools: [a]}
  other: {pools: [b]}
  canary: {pools: [c]}
  weighted: {policy: weighted, pools: [a, c], weights: [1, 1], rollout: {canary: c, steps: [10, 50]}}
routes:
  - name: web
    sticky: {cookie: u}
    split:
      - {service: stable, weight: 60}
      - {service: other, weight: 40}
      - {service: canary, weight: 0}
    rollout: {canary: canary, steps: [5, 25, 50]}
`

func compileRollout(t *testing.T, y string, weights map[string]int) *Table {
	t.Helper()
	cfg, err := config.Parse("r.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Compile(cfg, Inputs{RolloutWeight: func(n string) (int, bool) { w, ok := weights[n]; return w, ok }})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestRolloutWeights(t *testing.T) {
	first := compileRollout(t, rolloutYAML, nil)
	if w := first.RolloutWeights["route:web"]; w != 5 {
		t.Errorf("an unknown rollout compiles at its first step: %d, want 5", w)
	}
	if _, ok := first.Rollouts["service:weighted"]; !ok {
		t.Error("the service's rollout is not on the table")
	}
	tb := compileRollout(t, rolloutYAML, map[string]int{"route:web": 25, "service:weighted": 50})
	sp := tb.Routes[0].Split
	var got []int
	for _, a := range sp.arms {
		got = append(got, a.weight)
	}
	if want := rollout.SplitWeights([]int{60, 40, 0}, 2, 25); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("arm weights %v, want %v", got, want)
	}
	if got := tb.Services["weighted"].Weights; fmt.Sprint(got) != fmt.Sprint(rollout.SplitWeights([]int{1, 1}, 1, 50)) {
		t.Errorf("service weights %v", got)
	}
	if first.Version == tb.Version {
		t.Error("a new rollout weight kept the table version: it would not be published")
	}
}

// TestRolloutStickyMonotonic: a sticky user who saw the canary keeps
// seeing it as the weight grows, and one who did not keeps the arm they had.
func TestRolloutStickyMonotonic(t *testing.T) {
	at := func(w int) *Split {
		return compileRollout(t, rolloutYAML, map[string]int{"route:web": w}).Routes[0].Split
	}
	low, high := at(5), at(25)
	inCanary := 0
	for i := range 4000 {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", fmt.Sprintf("u=user-%d", i))
		a, b := low.choose(r), high.choose(r)
		if a.Service.Name == "canary" {
			inCanary++
			if b.Service.Name != "canary" {
				t.Fatalf("user-%d saw the canary at 5%% and left it at 25%%", i)
			}
		} else if b.Service.Name != "canary" && a.Service.Name != b.Service.Name {
			t.Fatalf("user-%d moved from %s to %s while the canary grew", i, a.Service.Name, b.Service.Name)
		}
	}
	if inCanary < 120 || inCanary > 280 {
		t.Errorf("%d of 4000 users in the canary at 5%%", inCanary)
	}
}

func TestRolloutProblems(t *testing.T) {
	for _, c := range []struct{ edit, want string }{
		{"rollout: {canary: canary, steps: [5, 25, 50]}", ""},
		{"rollout: {canary: nowhere, steps: [5]}", `routes[0].rollout.canary: "nowhere" is not the service of a weighted arm`},
		{"rollout: {canary: canary, steps: [25, 5]}", "routes[0].rollout.steps[1]"},
	} {
		y := strings.Replace(rolloutYAML, "rollout: {canary: canary, steps: [5, 25, 50]}", c.edit, 1)
		cfg, err := config.Parse("r.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Compile(cfg, Inputs{})
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.edit, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.edit, err, c.want)
		}
	}
}
