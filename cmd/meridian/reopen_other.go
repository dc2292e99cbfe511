//go:build !unix

package main

import "os"

// reopenSignals is empty where there is no SIGUSR1: the access log files
// are reopened by a restart there.
func reopenSignals() []os.Signal { return nil }
