package ingest

import (
	"context"
	"sync"
)

// Conn is one connection (RTMP, SRT) or session (WHIP) of a protocol
// server, as Conns sees it.
type Conn interface {
	// Abort cuts the connection's pending work, its final flush included.
	// Conns.Close calls it, from another goroutine, when its ctx ends
	// before the connection finished on its own.
	Abort()
}

// Conns is a protocol server's set of live connections and its closing
// state: the shutdown every server does the same way. A server Adds each
// connection before it runs and calls Done when it ended; Close stops new
// ones, lets the live ones end gracefully (each flushes its last segment
// and releases its lease) and cuts them short when its ctx ends.
//
// K is the key a connection is found by (WHIP: the session id; RTMP and
// SRT: the connection itself). All methods are safe for concurrent use.
type Conns[K comparable, C Conn] struct {
	mu      sync.Mutex
	live    map[K]C
	closing bool
	closed  chan struct{}
	wg      sync.WaitGroup // live connections and Go's goroutines
}

// NewConns returns an empty set.
func NewConns[K comparable, C Conn]() *Conns[K, C] {
	return &Conns[K, C]{live: map[K]C{}, closed: make(chan struct{})}
}

// Add registers c under k, unless the server is closing: then it returns
// false and c must not run. Every true is balanced by one Done(k).
func (s *Conns[K, C]) Add(k K, c C) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.live[k] = c
	s.wg.Add(1)
	return true
}

// Done removes the connection Add registered under k.
func (s *Conns[K, C]) Done(k K) {
	s.mu.Lock()
	delete(s.live, k)
	s.mu.Unlock()
	s.wg.Done()
}

// Go runs f in a goroutine that Close waits for (an accept loop), unless
// the server is closing: then it returns false and f does not run.
func (s *Conns[K, C]) Go(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Go(f)
	return true
}

// Get finds a live connection.
func (s *Conns[K, C]) Get(k K) (C, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.live[k]
	return c, ok
}

// Each calls f for every live connection (under the set's lock: f must not
// call back into the set).
func (s *Conns[K, C]) Each(f func(C)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.live {
		f(c)
	}
}

// Closed is closed once Close began: connections watch it to end.
func (s *Conns[K, C]) Closed() <-chan struct{} { return s.closed }

// Closing reports whether Close began.
func (s *Conns[K, C]) Closing() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Close refuses new connections, closes Closed, runs stop once (the
// server stops accepting: closes its listeners), and waits for every
// connection and goroutine. When ctx ends first it aborts the connections
// still live, waits for them all the same, and returns ctx's error.
// Idempotent: a second call only waits.
func (s *Conns[K, C]) Close(ctx context.Context, stop func()) error {
	s.mu.Lock()
	first := !s.closing
	if first {
		s.closing = true
		close(s.closed)
	}
	s.mu.Unlock()
	if first && stop != nil {
		stop()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Each(func(c C) { c.Abort() })
		<-done
		return ctx.Err()
	}
}
