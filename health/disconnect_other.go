//go:build !linux || 386

package health

import "errors"

// disconnect is not done here (linux/386 has no connect system call of
// its own, only socketcall): the spare socket is closed instead of kept.
func disconnect(int) error { return errors.ErrUnsupported }
