//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package dns

import "syscall"

// reusePortSupported says whether several UDP sockets can share a port;
// here they cannot, so the server uses one.
const reusePortSupported = false

func reusePort(_, _ string, _ syscall.RawConn) error { return nil }
