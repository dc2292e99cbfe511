// Package examples ships Meridian's runnable example configs. Each file is
// compiled by a test (examples_test.go) so that none can rot.
//
// Concurrency: Files is read-only.
package examples
