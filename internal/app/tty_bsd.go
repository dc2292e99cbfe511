//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package app

import "golang.org/x/sys/unix"

const ioctlGetTermios = unix.TIOCGETA
