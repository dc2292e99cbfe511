// Package routing compiles a validated config and the current catalog into
// an immutable *Table: pools with their endpoints, services that order pools
// by policy (failover, weighted, geo), HTTP routes with compiled matchers and
// splits, and DNS zones (compiled by package dns/zone against the table's
// services). Compile is pure and deterministic; Table.String is its
// canonical text form, compared by golden tests. What Compile finds wrong
// it reports by config path, every problem of the run, and the error is a
// *config.Error with each problem's line (config.Config.Locate).
//
// Concurrency: a published Table is read by many goroutines without locks.
// Compile and BindHealth run in the rebuild loop before publication (Compile
// uses goroutines of its own, done when it returns); after it, only atomics
// inside balancers and weighted schedules change, and the failover guards'
// pool flags and statuses (guard.go, set by Guards under its lock).
package routing
