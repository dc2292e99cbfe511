// Package healthtest provides a scripted health.Prober for tests of the
// health engine and of the packages that use it (the proxy and DNS can drive
// endpoint health without a network). It does no I/O, so it works inside
// testing/synctest bubbles, where its delays run on the fake clock. Prober is
// safe for concurrent use.
package healthtest
