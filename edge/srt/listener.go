package srt

import (
	"errors"

	gosrt "github.com/datarhei/gosrt"
)

// errHandshakePanic is what accept returns when the library panicked on a
// handshake packet: that packet is dropped and the loop goes on.
var errHandshakePanic = errors.New("srt: the SRT library panicked on a handshake packet")

// acceptLoop hands every connection request to its own goroutine: admission
// reads the store and coordination, and one slow answer must not hold up
// the other callers' handshakes.
func (s *Server) acceptLoop(ln gosrt.Listener) {
	for {
		req, err := s.accept(ln)
		if errors.Is(err, errHandshakePanic) {
			continue
		}
		if err != nil {
			if !errors.Is(err, gosrt.ErrListenerClosed) {
				s.log.Error("accept failed; SRT ingest stopped", "err", err)
			}
			return
		}
		c := newConn(s, req)
		if !s.conns.Add(c, c) {
			safely(func() { req.Reject(gosrt.REJ_CLOSE) })
			return
		}
		go c.run()
	}
}

// accept is ln.Accept2, which parses the handshake packets of callers not
// connected yet on this goroutine (gosrt's newConnRequest): a panic in that
// parser is recovered here, counted, logged (the first with its stack, then
// at most one a minute) and answered with errHandshakePanic. What the
// library leaves behind is safe to go on with; see the package comment.
func (s *Server) accept(ln gosrt.Listener) (req gosrt.ConnRequest, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.metrics.handshakePanics.Inc()
			logPanic(&s.handshakePanicLog, s.log, "the SRT library panicked on a handshake packet; dropped it, still accepting", v)
			req, err = nil, errHandshakePanic
		}
	}()
	return ln.Accept2()
}
