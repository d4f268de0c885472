package coord

import (
	"sync"
	"time"
)

// Deadline is the holder's side of a lease's validity: a channel that closes
// when the time on a Clock reaches the deadline, or at once on Expire. Both
// implementations back Lease.Lost with it. Safe for concurrent use.
type Deadline struct {
	clock Clock
	ch    chan struct{}

	mu   sync.Mutex
	at   time.Time
	gen  uint64      // generation of the timer; a stale timer sees a newer one
	stop func() bool // cancels the current timer
	done bool
}

// NewDeadline returns a Deadline that has not been set: call Extend.
func NewDeadline(clock Clock) *Deadline {
	return &Deadline{clock: clock, ch: make(chan struct{})}
}

// Done is closed once the deadline passed or Expire was called.
func (d *Deadline) Done() <-chan struct{} { return d.ch }

// Expired reports whether Done is closed.
func (d *Deadline) Expired() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.done
}

// Extend moves the deadline to at. It never moves it backwards, so that
// overlapping renewals cannot shorten a grant; an at that has already passed
// expires the Deadline at once. It reports whether the Deadline is still
// running afterwards.
func (d *Deadline) Extend(at time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return false
	}
	if !at.After(d.at) {
		return true
	}
	d.at = at
	if d.stop != nil {
		d.stop()
	}
	wait := at.Sub(d.clock.Now())
	if wait <= 0 {
		d.expireLocked()
		return false
	}
	d.gen++
	gen := d.gen
	d.stop = d.clock.AfterFunc(wait, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen {
			d.expireLocked()
		}
	})
	return true
}

// Expire closes Done now (idempotent).
func (d *Deadline) Expire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expireLocked()
}

func (d *Deadline) expireLocked() {
	if d.done {
		return
	}
	d.done = true
	close(d.ch)
	if d.stop != nil {
		d.stop()
		d.stop = nil
	}
}
