package routing

import (
	"fmt"
	"slices"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/rollout"
)

// Rollouts (package rollout) step the weight of one arm of a route's split
// or one pool of a weighted service. Compile checks each rollout where it is
// written (its plan, and that its canary is a weighted arm or a pool of the
// service), builds the split or service at the weight the rollout is at
// (Inputs.RolloutWeight, else its first step), and records both on the
// table: the rollout manager is synced from Table.Rollouts, and a tick that
// moves a weight makes the rebuild loop compile a table with the new one.

// RolloutName is a route's rollout's name.
func RolloutName(route string) string { return "route:" + route }

// ServiceRolloutName is a service's rollout's name.
func ServiceRolloutName(service string) string { return "service:" + service }

// rollouts collects one Compile's rollouts.
type rollouts struct {
	weight  func(string) (int, bool)
	plans   map[string]rollout.Plan
	weights map[string]int
}

func newRollouts(in Inputs) *rollouts {
	return &rollouts{weight: in.RolloutWeight}
}

// plan compiles a rollout at path and returns the weight it is at.
func (ro *rollouts) plan(path, name string, c *config.Rollout) (int, []error) {
	p, err := rollout.NewPlan(c)
	if err != nil {
		var errs []error
		for _, pe := range rollout.PlanErrors(err) {
			at := path
			if pe.Field != "" {
				at += "." + pe.Field
			}
			errs = append(errs, config.Problem{Path: at, Msg: pe.Msg})
		}
		return 0, errs
	}
	w := p.Steps[0]
	if ro.weight != nil {
		if cur, ok := ro.weight(name); ok {
			w = cur
		}
	}
	if ro.plans == nil {
		ro.plans, ro.weights = map[string]rollout.Plan{}, map[string]int{}
	}
	ro.plans[name], ro.weights[name] = p, w
	return w, nil
}

// route checks routes[i]'s rollout: a split whose weighted arms include
// the canary's service, once.
func (ro *rollouts) route(i int, r *config.Route) (*splitCanary, []error) {
	path := fmt.Sprintf("routes[%d].rollout", i)
	c := r.Rollout
	arms := 0
	for _, e := range r.Split {
		if e != nil && e.When == nil && e.Service == c.Canary {
			arms++
		}
	}
	switch {
	case len(r.Split) == 0:
		return nil, []error{config.Problem{Path: path, Msg: "a rollout steps a split's weights: the route has no split"}}
	case c.Canary == "":
		return nil, []error{config.Problem{Path: path + ".canary", Msg: "missing: name the split arm's service"}}
	case arms == 0:
		return nil, []error{config.Problem{Path: path + ".canary", Msg: fmt.Sprintf("%q is not the service of a weighted arm of the split (rules with when: are not stepped)", c.Canary)}}
	case arms > 1:
		return nil, []error{config.Problem{Path: path + ".canary", Msg: fmt.Sprintf("%q is the service of %d weighted arms: merge them", c.Canary, arms)}}
	}
	w, errs := ro.plan(path, RolloutName(r.Name), c)
	if errs != nil {
		return nil, errs
	}
	return &splitCanary{service: c.Canary, weight: w}, nil
}

// service checks a weighted service's rollout and returns its pool
// weights at the rollout's weight (the declared ones when it has a
// problem, which is recorded).
func (ro *rollouts) service(name string, s *config.Service) ([]int, []error) {
	path := "services." + name + ".rollout"
	c := s.Rollout
	idx := slices.Index(s.Pools, c.Canary)
	switch {
	case s.Policy != config.PolicyWeighted:
		return s.Weights, []error{config.Problem{Path: path, Msg: "a rollout steps pool weights: the service's policy must be weighted"}}
	case c.Canary == "":
		return s.Weights, []error{config.Problem{Path: path + ".canary", Msg: "missing: name one of the service's pools"}}
	case idx < 0:
		return s.Weights, []error{config.Problem{Path: path + ".canary", Msg: fmt.Sprintf("%q is not one of the service's pools", c.Canary)}}
	case len(s.Weights) != len(s.Pools):
		return s.Weights, nil // the service's own rule reports it
	}
	w, errs := ro.plan(path, ServiceRolloutName(name), c)
	if errs != nil {
		return s.Weights, errs
	}
	return rollout.SplitWeights(s.Weights, idx, w), nil
}
