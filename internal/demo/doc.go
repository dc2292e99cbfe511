// Package demo runs the small upstreams behind `meridian demo`: named HTTP
// servers that answer with their own name, and a control server that stops
// and starts them so a new user can watch health checks and failover work,
// and that makes one fail (500 to every request but /healthz) or slow down
// while its health checks stay green, so a user can watch a rollout judge
// the canary's traffic and roll it back.
//
// Concurrency: an Upstream's Stop and Start may be called from any goroutine;
// they serialise on the upstream's mutex. Its faults (SetFailing, SetSlow,
// Heal) are atomic and take effect on the next request.
package demo
