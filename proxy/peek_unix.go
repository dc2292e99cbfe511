//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package proxy

import "golang.org/x/sys/unix"

// peekIdle reports whether an idle socket has nothing to read: no byte and
// no end of stream (a poll that does not wait finds it not readable).
func peekIdle(fd uintptr) bool {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds[:], 0)
	return err == nil && n == 0
}
