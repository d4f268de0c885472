package rtmp

import (
	"errors"
	"net"
	"time"
)

// listener is one bound address (RTMP or RTMPS) and its accept loop.
type listener struct {
	s        *Server
	ln       net.Listener
	protocol string // admit.ProtocolRTMP or admit.ProtocolRTMPS
}

// run accepts until the listener is closed. A temporary accept error (out
// of file descriptors) is retried after a short pause instead of ending the
// edge's ingest.
func (l *listener) run() {
	var pause time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			l.s.log.Warn("accept failed; retrying", "protocol", l.protocol, "err", err, "pause", pause)
			select {
			case <-time.After(pause):
				continue
			case <-l.s.conns.Closed():
				return
			}
		}
		pause = 0
		c := newConn(l.s, nc, l.protocol)
		if !l.s.conns.Add(c, c) {
			_ = nc.Close()
			return
		}
		l.s.metrics.conns.WithLabelValues(l.protocol).Inc()
		go c.run()
	}
}
