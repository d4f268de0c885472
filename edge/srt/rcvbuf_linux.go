package srt

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// setReceiveBuffer raises the kernel receive buffer of the listener's UDP
// socket, which every caller of this server shares. gosrt neither sets nor
// exposes it, and the default (net.core.rmem_default, ~208 KiB) overflows
// with a few dozen callers: the kernel drops datagrams, SRT retransmits,
// and what is not recovered within the latency is lost media.
//
// The socket is found among the process's descriptors by its bound
// address. SO_RCVBUFFORCE (with CAP_NET_ADMIN) may exceed
// net.core.rmem_max; SO_RCVBUF is capped by it. It returns the size the
// kernel granted (Linux reports twice the requested bookkeeping size).
func setReceiveBuffer(addr net.Addr, size int) (int, error) {
	want, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("not a UDP address: %v", addr)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	for _, e := range fds {
		var fd int
		if _, err := fmt.Sscanf(e.Name(), "%d", &fd); err != nil {
			continue
		}
		if link, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err != nil || len(link) < 7 || link[:7] != "socket:" {
			continue
		}
		typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
		if err != nil || typ != syscall.SOCK_DGRAM {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil || !sameAddr(sa, want) {
			continue
		}
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size); err != nil {
			if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, size); err != nil {
				return 0, err
			}
		}
		return syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	}
	return 0, fmt.Errorf("no UDP socket bound to %v", addr)
}

func sameAddr(sa syscall.Sockaddr, want *net.UDPAddr) bool {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return sa.Port == want.Port && (want.IP.IsUnspecified() || net.IP(sa.Addr[:]).Equal(want.IP))
	case *syscall.SockaddrInet6:
		return sa.Port == want.Port && (want.IP.IsUnspecified() || net.IP(sa.Addr[:]).Equal(want.IP))
	}
	return false
}
