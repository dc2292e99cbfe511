//go:build !386

package health

import (
	"syscall"
	"unsafe"
)

// disconnect ends fd's connection with a reset and leaves the socket
// ready to connect again: connect(2) with an AF_UNSPEC address.
func disconnect(fd int) error {
	sa := syscall.RawSockaddr{Family: syscall.AF_UNSPEC}
	_, _, errno := syscall.Syscall(syscall.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	if errno != 0 {
		return errno
	}
	return nil
}
