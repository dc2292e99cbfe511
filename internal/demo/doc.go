// Package demo runs the small upstreams behind `meridian demo`: named HTTP
// servers that answer with their own name, and a control server that stops
// and starts them so a new user can watch health checks and failover work.
//
// Concurrency: an Upstream's Stop and Start may be called from any goroutine;
// they serialise on the upstream's mutex.
package demo
