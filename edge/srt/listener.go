package srt

import (
	"errors"

	gosrt "github.com/datarhei/gosrt"
)

// acceptLoop hands every connection request to its own goroutine: admission
// reads the store and coordination, and one slow answer must not hold up
// the other callers' handshakes.
func (s *Server) acceptLoop(ln gosrt.Listener) {
	for {
		req, err := ln.Accept2()
		if err != nil {
			if !errors.Is(err, gosrt.ErrListenerClosed) {
				s.log.Error("accept failed; SRT ingest stopped", "err", err)
			}
			return
		}
		c := newConn(s, req)
		if !s.conns.Add(c, c) {
			req.Reject(gosrt.REJ_CLOSE)
			return
		}
		go c.run()
	}
}
