//go:build linux && (amd64 || arm64)

package dns

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgSupported says whether udpMmsgWorker serves here.
const mmsgSupported = true

// mmsghdr is struct mmsghdr on 64-bit Linux: a msghdr and the length
// the kernel reports for it.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// udpMmsgWorker is udpBatchWorker with its own recvmmsg and sendmmsg in
// place of golang.org/x/net's ReadBatch and WriteBatch, for a measured
// reason: x/net enters each system call through the runtime (entersyscall),
// and on a busy server a sendmmsg that delivers a batch over loopback
// outlasts a sysmon tick, so sysmon hands the worker's P to another
// thread, which is woken and later put back to sleep (futex, context
// switches, sysmon's own wakeups). On bench/dns.sh's steered query, with
// the answer cache on, that scheduling was about a fifth of the server's
// CPU (perf: __schedule 11%, sysmon 7%, netpoll 4%, futex 3% of samples).
// These calls are non-blocking (MSG_DONTWAIT on a non-blocking socket),
// so they are made as raw system calls, which the scheduler does not
// see; waiting for a datagram is still the runtime poller's (RawConn.Read).
// It returns nil once conn is closed.
func (s *Server) udpMmsgWorker(conn *net.UDPConn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var (
		in     = make([]mmsghdr, udpBatch)
		iovIn  = make([]unix.Iovec, udpBatch)
		names  = make([]unix.RawSockaddrAny, udpBatch)
		bufs   = make([][]byte, udpBatch)
		out    = make([]mmsghdr, udpBatch)
		iovOut = make([]unix.Iovec, udpBatch)
		slots  = make([]batchSlot, udpBatch)
		sc     = new(scratch)
	)
	for i := range in {
		bufs[i] = make([]byte, udpReadSize)
		iovIn[i].Base = &bufs[i][0]
		iovIn[i].SetLen(udpReadSize)
		in[i].hdr.Iov = &iovIn[i]
		in[i].hdr.SetIovlen(1)
		in[i].hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
		slots[i].data = make([]byte, 0, 512)
	}
	for {
		var n int
		err := rc.Read(func(fd uintptr) bool {
			for i := range in {
				in[i].hdr.Namelen = unix.SizeofSockaddrAny
				in[i].hdr.Flags = 0
			}
			r, _, e := syscall.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&in[0])), uintptr(len(in)), unix.MSG_DONTWAIT, 0, 0)
			for e == unix.EINTR {
				r, _, e = syscall.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&in[0])), uintptr(len(in)), unix.MSG_DONTWAIT, 0, 0)
			}
			if e == unix.EAGAIN {
				return false
			}
			if e == 0 {
				n = int(r)
			}
			return true // other errors (ICMP-induced): read again
		})
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			continue
		}
		k := 0
		for i := range n {
			addr, ok := sockaddrAddr(&names[i], in[i].hdr.Namelen)
			if !ok {
				continue
			}
			slot := &slots[i]
			slot.data = slot.data[:0]
			s.datagram(bufs[i][:min(int(in[i].n), udpReadSize)], addr, slot, sc)
			if len(slot.data) == 0 {
				continue
			}
			iovOut[k].Base = &slot.data[0]
			iovOut[k].SetLen(len(slot.data))
			out[k] = mmsghdr{}
			out[k].hdr.Name = in[i].hdr.Name
			out[k].hdr.Namelen = in[i].hdr.Namelen
			out[k].hdr.Iov = &iovOut[k]
			out[k].hdr.SetIovlen(1)
			k++
		}
		for sent := 0; sent < k; {
			var m int
			err := rc.Write(func(fd uintptr) bool {
				r, _, e := syscall.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&out[sent])), uintptr(k-sent), unix.MSG_DONTWAIT, 0, 0)
				for e == unix.EINTR {
					r, _, e = syscall.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&out[sent])), uintptr(k-sent), unix.MSG_DONTWAIT, 0, 0)
				}
				if e == unix.EAGAIN {
					return false
				}
				if e != 0 {
					// Skip the datagram that failed (say, an unreachable
					// client) and send the rest.
					m = 1
				} else {
					m = max(int(r), 1)
				}
				return true
			})
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return nil
				}
				m = 1
			}
			sent += m
		}
	}
}

// sockaddrAddr is the address of a sockaddr the kernel filled in.
func sockaddrAddr(sa *unix.RawSockaddrAny, n uint32) (netip.Addr, bool) {
	switch sa.Addr.Family {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(sa)).Addr), true
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16((*unix.RawSockaddrInet6)(unsafe.Pointer(sa)).Addr).Unmap(), true
	}
	return netip.Addr{}, false
}
