//go:build !(linux && (amd64 || arm64))

package dns

import (
	"errors"
	"net"
)

// mmsgSupported says whether udpMmsgWorker serves here: Linux on 64-bit
// amd64 and arm64 only (the layout of struct mmsghdr); elsewhere
// udpBatchWorker does.
const mmsgSupported = false

func (s *Server) udpMmsgWorker(*net.UDPConn) error {
	return errors.New("dns: recvmmsg workers are not supported here")
}
