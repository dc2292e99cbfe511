// Package rollout is Meridian's progressive delivery: a canary's weight is
// stepped up while its live traffic, judged inside the proxy, stays healthy,
// and taken to 0 when it does not (what Flagger or Argo Rollouts do from
// outside, with Prometheus queries; here the numbers are the proxy's own,
// from package telemetry). It is a leaf package: it imports config and
// nothing else of the project; the integrator (internal/app) feeds it
// traffic and turns its weights into routing.
//
// # Model
//
// A rollout is config.Rollout on a route (its canary is one of the split's
// weighted arms, by service name) or on a weighted service (its canary is
// one of the service's pools). NewPlan compiles it into a Plan: the weight
// steps (steps, or step_weight up to max_weight; 100, promotion, always
// last and never judged), the interval each step is held, the analysis, the
// failure limit and the progress deadline, defaults filled from
// config/defaults.go. Its errors name the field below the rollout, for the
// integrator to report by path.
//
// # Judging
//
// Judge decides one interval: fewer than min_requests canary requests is
// inconclusive (never a pass); below success_rate (the share of requests
// not answered 5xx) or above p99 fails; with compare_to_baseline the canary
// is judged against the other arms' traffic of the same interval instead
// (its success rate may be at most 100-success_rate points below the
// baseline's; its p99 fails only when above p99 and more than 1.5× the
// baseline's). The verdict's reason carries the numbers: "412 requests,
// 97.81% success < 99%".
//
// # States
//
// A Machine is one rollout. It is driven by the caller's clock: no
// goroutine, no time.Now. Tick takes cumulative counters and judges the
// difference over each interval (the machine remembers the counters at the
// interval's start; they are this process's and are never saved). A pass
// steps up, the last pass promotes (weight 100); a failure is counted
// (over the whole rollout) and holds the step, and the failure_limit-th
// rolls back (weight 0, Failed); an inconclusive interval holds the step.
// Still progressing at the progress deadline (time paused excluded), the
// rollout fails. Operators Pause (weight held, no judging), Resume (a fresh
// interval), Promote (100 now), Abort (0, Aborted) and Retry (a failed or
// aborted rollout from its first step). State is plain JSON-serialisable
// data with the last 50 judgements.
//
// # Weights and cohorts
//
// Weight is the canary's percentage. SplitWeights turns it into the arms'
// integer weights: the canary gets Weight percent of the declared total,
// the others share the rest in their declared proportions. Sticky routes
// pick the canary with InCanary instead of the weighted draw: a key's
// bucket (0..9999, a fixed hash) is in the canary when below Weight×100,
// so cohorts only grow as the weight rises and a user who saw the canary
// keeps seeing it.
//
// # Persistence and coordination
//
// A Store keeps states by name. FileStore is one JSON file, rewritten by
// temporary file and rename, so a restart resumes at the same step (with a
// fresh interval). ConsulStore shares states between instances: each
// rollout has a lock in Consul KV held by one instance's session; that
// instance drives (judges its own traffic and saves), the others follow the
// weight it saved (a blocking query per state key), and a driver that dies
// is replaced once its session's TTL lapses. A state carries its plan's
// fingerprint: after a config change the rollout starts over.
//
// Manager ties it together for the integrator: Sync on each new config,
// Tick once a second (adopt stored states, tick driven rollouts with
// windows read from telemetry, save changes, follow the others; it reports
// when a weight changed so routing is rebuilt), Act for the admin API's
// verbs, Status for GET /api/v1/rollouts.
//
// # Concurrency
//
// Machine, Manager, the stores and their methods are safe for concurrent
// use. Manager.Tick and Manager.Act are serialised with each other; they do
// the store's I/O (a ConsulStore's Load answers from memory once its watch
// has, and Save is one KV write bounded to 5 s). ConsulStore.Run is the
// only goroutine the package starts (plus one watch per rollout), and it
// ends them all when its context ends.
package rollout
