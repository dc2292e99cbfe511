// Package promutil holds the one Prometheus helper every Meridian package
// needs: registering a collector so that a second registration of the same
// metric (a second server on one registry) shares the first.
//
// Concurrency: Register is safe wherever the Registerer is.
package promutil
