package coord_test

import (
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/coord/memory"
)

func expired(d *coord.Deadline) bool {
	select {
	case <-d.Done():
		return true
	default:
		return false
	}
}

func TestDeadline(t *testing.T) {
	clock := memory.NewManualClock(time.Unix(1000, 0))
	d := coord.NewDeadline(clock)
	start := clock.Now()
	if !d.Extend(start.Add(10 * time.Second)) {
		t.Fatal("a future deadline did not start")
	}
	// An earlier deadline must not shorten the grant.
	d.Extend(start.Add(2 * time.Second))
	clock.Advance(5 * time.Second)
	if expired(d) || d.Expired() {
		t.Fatal("the deadline moved backwards")
	}
	d.Extend(start.Add(20 * time.Second))
	clock.Advance(10 * time.Second) // t = 15 s
	if expired(d) {
		t.Fatal("expired before the extended deadline")
	}
	clock.Advance(5 * time.Second) // t = 20 s
	if !expired(d) || !d.Expired() {
		t.Fatal("not expired at the deadline")
	}
	if d.Extend(clock.Now().Add(time.Hour)) {
		t.Fatal("an expired deadline came back to life")
	}
	d.Expire() // idempotent

	past := coord.NewDeadline(clock)
	if past.Extend(clock.Now().Add(-time.Second)) || !expired(past) {
		t.Fatal("a deadline in the past did not expire at once")
	}
	now := coord.NewDeadline(clock)
	now.Extend(clock.Now().Add(time.Minute))
	now.Expire()
	if !expired(now) {
		t.Fatal("Expire did not close Done")
	}
}
