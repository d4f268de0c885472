//go:build !linux

package srt

import (
	"errors"
	"net"
)

// setReceiveBuffer is Linux-only (see rcvbuf_linux.go).
func setReceiveBuffer(net.Addr, int) (int, error) {
	return 0, errors.New("setting the SRT socket's receive buffer is supported on Linux only")
}
