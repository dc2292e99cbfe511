//go:build unix

package main

import (
	"os"
	"syscall"
)

// reopenSignals are the signals that reopen the access log files: SIGUSR1,
// which logrotate's postrotate scripts send, as to nginx.
func reopenSignals() []os.Signal { return []os.Signal{syscall.SIGUSR1} }
