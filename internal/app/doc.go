// Package app wires one Meridian instance: the config source and its watcher,
// the rebuild loop that compiles and publishes routing tables, the health
// engine, the proxy and DNS servers, the telemetry both feed, and the admin
// API with the operations console (dashboard.html) and GET /api/v1/stats.
// cmd/meridian calls it; tests run it in-process on 127.0.0.1:0.
//
// Concurrency: every input pokes the rebuild loop, whose single goroutine
// compiles, syncs health and publishes the table with an atomic store.
// Readers (proxy, DNS, admin) load the table once per request. Run owns the
// lifecycle through an errgroup (the telemetry's one-second tick is one of
// its goroutines); shutdown flips /readyz, stops the listeners and drains
// within shutdown.grace.
package app
