// Package config owns Meridian's YAML schema: the types of the config
// contract, strict decoding (an unknown key, a wrong type or a bad duration is
// an error with its line), defaults filled in one place, and validation that
// lists every problem with its path and line. It also owns the file watcher
// that tells the rebuild loop when the file changed.
//
// Concurrency: a *Config returned by Parse or Load is never written again and
// may be read from any goroutine. Parse parses a large file in pieces on
// goroutines of its own (one per core), all done when it returns; it keeps
// no state between calls. Watcher runs in its own goroutine and only sends
// on a channel. The package imports no other Meridian package.
package config
