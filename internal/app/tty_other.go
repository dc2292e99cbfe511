//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package app

import "os"

// isTerminal is false where there is no termios to ask: the console log
// format is then never coloured.
func isTerminal(*os.File) bool { return false }
