package examples

import "embed"

// Files holds every example config, so `meridian demo` works from any
// directory and tests can compile each one.
//
//go:embed *.yaml
var Files embed.FS
