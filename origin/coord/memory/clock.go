package memory

import (
	"sync"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
)

var _ coord.Clock = (*ManualClock)(nil)

// ManualClock is a coord.Clock that moves only when Advance is called, so
// tests can drive lease expiry and rate limits to the exact nanosecond
// without sleeping. It is safe for concurrent use.
type ManualClock struct {
	advance sync.Mutex // one Advance at a time, so timers fire in order

	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers map[uint64]*manualTimer
}

type manualTimer struct {
	at  time.Time
	seq uint64 // breaks ties: timers due at the same instant fire in creation order
	f   func()
}

// NewManualClock returns a clock that reads start until advanced.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{now: start, timers: map[uint64]*manualTimer{}}
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f for when the clock has been advanced by d. A timer
// with d <= 0 fires at once, in its own goroutine, as time.AfterFunc does.
func (c *ManualClock) AfterFunc(d time.Duration, f func()) func() bool {
	if d <= 0 {
		go f()
		return func() bool { return false }
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	id := c.seq
	c.timers[id] = &manualTimer{at: c.now.Add(d), seq: id, f: f}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, pending := c.timers[id]
		delete(c.timers, id)
		return pending
	}
}

// Advance moves the clock forward by d. Every timer due on the way fires in
// deadline order, with Now reading the timer's deadline while it runs; each
// runs in its own goroutine (as the Clock contract says) but Advance waits for
// it before going on, so when Advance returns every effect of the elapsed
// time (a lease's Lost closed, say) is visible to the caller.
func (c *ManualClock) Advance(d time.Duration) {
	c.advance.Lock()
	defer c.advance.Unlock()
	c.mu.Lock()
	target := c.now.Add(d)
	for {
		next := c.nextDueLocked(target)
		if next == nil {
			break
		}
		delete(c.timers, next.seq)
		c.now = next.at
		c.mu.Unlock()
		done := make(chan struct{})
		go func() {
			defer close(done)
			next.f()
		}()
		<-done
		c.mu.Lock()
	}
	if target.After(c.now) {
		c.now = target
	}
	c.mu.Unlock()
}

// nextDueLocked returns the earliest timer due at or before target. A linear
// scan is fine: tests hold a handful of timers.
func (c *ManualClock) nextDueLocked(target time.Time) *manualTimer {
	var next *manualTimer
	for _, t := range c.timers {
		if t.at.After(target) {
			continue
		}
		if next == nil || t.at.Before(next.at) || t.at.Equal(next.at) && t.seq < next.seq {
			next = t
		}
	}
	return next
}
