// Package config owns Meridian's YAML schema: the types of the config
// contract, strict decoding (an unknown key, a wrong type, a bad duration or
// an unknown name such as a balancer is an error with its line), defaults
// filled in one place, and validation that lists every problem with its path
// and line. It is the one place that maps config paths to lines: compile
// steps elsewhere (zones, geo networks, TLS files) report Problems by path
// and Config.Locate places them in the file, so every message reads
// file:line: path: message (a YAML syntax error file:line:column: yaml:
// message). It also owns Watcher, the one
// file watcher of the server: the rebuild loop follows the config file with
// it, and geo (the GeoIP database), health (the admin state file) and proxy
// (the TLS certificates) follow theirs with it, under the same rules. It
// lives here because config is the one leaf package all of them import.
//
// Concurrency: a *Config returned by Parse or Load is never written again and
// may be read from any goroutine. Parse parses a large file in pieces on
// goroutines of its own (one per core), all done when it returns; it keeps
// no state between calls. Watcher.Run runs on its caller's goroutine and
// calls its hooks there; a Watcher keeps no state between runs. The
// package imports no other Meridian package.
package config
