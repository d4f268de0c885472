package srt

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	gosrt "github.com/datarhei/gosrt"
)

// Why a watchdog stopped a connection; its reads then fail with the cause.
var (
	errClosing      = errors.New("server shutting down")
	errSessionEnded = errors.New("session ended")
	errSilent       = errors.New("no data")
	errDiscovery    = errors.New("discovery window passed")
)

// watchdog is the connection's reader with the deadlines gosrt lacks (its
// SetReadDeadline does nothing): it closes the connection when no data came
// for the idle time — a caller that only sends keep-alives would otherwise
// hold its slot forever — or when a deadline passes, and makes every later
// read fail with the cause. Closing is the only way to interrupt a blocked
// gosrt read.
type watchdog struct {
	c       gosrt.Conn
	idle    time.Duration
	onPanic func(v any)  // a timer's callback panicked (it was recovered)
	last    atomic.Int64 // UnixNano of the last read that returned data

	rest []byte // the part of the last packet's payload not read yet
	buf  []byte // rest's backing array, reused

	mu    sync.Mutex
	cause error
	idleT *time.Timer
	dlT   *time.Timer
}

// newWatchdog watches c. Its timers' callbacks run on goroutines of their
// own; a panic in one (closing c calls into the library) is recovered and
// handed to onPanic.
func newWatchdog(c gosrt.Conn, idle time.Duration, onPanic func(v any)) *watchdog {
	w := &watchdog{c: c, idle: idle, onPanic: onPanic}
	w.last.Store(time.Now().UnixNano())
	w.mu.Lock()
	w.idleT = time.AfterFunc(idle, func() {
		defer w.recoverPanic()
		w.checkIdle()
	})
	w.mu.Unlock()
	return w
}

// recoverPanic is deferred by the timers' callbacks.
func (w *watchdog) recoverPanic() {
	if v := recover(); v != nil && w.onPanic != nil {
		w.onPanic(v)
	}
}

// Read reads the payloads of the connection's data packets. Once the
// watchdog stopped it, the error is the cause.
//
// It reads packets rather than calling the connection's Read, which
// returns io.EOF for a data packet without payload (ffmpeg sends one first).
func (w *watchdog) Read(p []byte) (int, error) {
	if len(w.rest) > 0 {
		n := copy(p, w.rest)
		w.rest = w.rest[n:]
		return n, nil
	}
	for {
		pkt, err := w.c.ReadPacket()
		if err != nil {
			if cause := w.err(); cause != nil {
				return 0, cause
			}
			return 0, err
		}
		data := pkt.Data()
		if len(data) == 0 {
			pkt.Decommission()
			continue
		}
		// One clock read per SRT packet; cheaper than resetting a timer.
		w.last.Store(time.Now().UnixNano())
		n := copy(p, data)
		if n < len(data) {
			w.rest = append(w.buf[:0], data[n:]...)
			w.buf = w.rest[:0]
		}
		// The packet goes back to the library's pool: nothing may keep data.
		pkt.Decommission()
		return n, nil
	}
}

func (w *watchdog) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cause
}

// checkIdle runs when the idle time may have passed: it stops the
// connection, or sleeps for what is left since the last data.
func (w *watchdog) checkIdle() {
	since := time.Since(time.Unix(0, w.last.Load()))
	if since >= w.idle {
		w.stop(errSilent)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cause == nil {
		w.idleT.Reset(w.idle - since)
	}
}

// deadline stops the connection with errDiscovery after d; d = 0 cancels
// the deadline.
func (w *watchdog) deadline(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dlT != nil {
		w.dlT.Stop()
		w.dlT = nil
	}
	if d > 0 && w.cause == nil {
		w.dlT = time.AfterFunc(d, func() {
			defer w.recoverPanic()
			w.stop(errDiscovery)
		})
	}
}

// stop closes the connection (once) and makes later reads fail with cause
// (net.ErrClosed when nil). The first cause wins.
func (w *watchdog) stop(cause error) {
	if cause == nil {
		cause = net.ErrClosed
	}
	if w.setCause(cause) {
		_ = w.c.Close()
	}
}

// setCause records cause and stops the timers unless a cause was set
// before; it reports whether this was the first. (Its lock is released by
// defer, so that no panic can leave it held.)
func (w *watchdog) setCause(cause error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cause != nil {
		return false
	}
	w.cause = cause
	w.idleT.Stop()
	if w.dlT != nil {
		w.dlT.Stop()
	}
	return true
}
