package rtmp

import (
	"errors"
	"net"
	"runtime/debug"
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
// edge's ingest; so is a panic, which is logged once with its stack.
func (l *listener) run() {
	for !l.accept() {
		select {
		case <-time.After(100 * time.Millisecond):
		case <-l.s.conns.Closed():
			return
		}
	}
}

// accept is the accept loop; it returns false if it panicked.
func (l *listener) accept() (done bool) {
	defer func() {
		if p := recover(); p != nil {
			l.s.log.Error("accept loop panicked; restarting", "proto", l.protocol,
				"err", "panic: "+panicText(p), "stack", capStack(debug.Stack()))
			done = false
		}
	}()
	var pause time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return true
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			l.s.log.Warn("accept failed; retrying", "proto", l.protocol, "err", safeErr(err), "pause", pause)
			select {
			case <-time.After(pause):
				continue
			case <-l.s.conns.Closed():
				return true
			}
		}
		pause = 0
		if l.s.wrapConn != nil {
			nc = l.s.wrapConn(nc)
		}
		c := newConn(l.s, nc, l.protocol)
		if !l.s.conns.Add(c, c) {
			_ = nc.Close()
			return true
		}
		l.s.metrics.conns.WithLabelValues(l.protocol).Inc()
		go c.run()
	}
}
