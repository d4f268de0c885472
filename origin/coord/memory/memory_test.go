package memory

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/coord/coordtest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestConformance(t *testing.T) {
	coordtest.Run(t, func(t *testing.T) coordtest.Impl {
		clock := NewManualClock(start)
		c := New(clock)
		return coordtest.Impl{
			Locker:   c,
			Registry: c,
			NewLimiter: func(rate coord.Rate) coord.Limiter {
				l, err := c.NewLimiter(rate)
				if err != nil {
					t.Fatalf("NewLimiter(%+v): %v", rate, err)
				}
				return l
			},
			Advance:  clock.Advance,
			Now:      clock.Now,
			TTL:      10 * time.Second,
			Interval: 10 * time.Second, // the ingest default: burst 3, then one per 10 s
			Exact:    true,
		}
	})
}

// stuckClock reads a settable time but never fires timers, so a test can see
// what happens before a lease's own deadline timer runs.
type stuckClock struct{ now atomic.Int64 }

func (c *stuckClock) Now() time.Time                              { return time.Unix(0, c.now.Load()) }
func (c *stuckClock) AfterFunc(time.Duration, func()) func() bool { return func() bool { return true } }

func TestTakeoverClosesLostAtOnce(t *testing.T) {
	clock := &stuckClock{}
	clock.now.Store(start.UnixNano())
	c := New(clock)
	ctx := context.Background()
	l1, err := c.Acquire(ctx, "slot:cam-1:primary", time.Second, coord.Owner{ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	clock.now.Add(int64(time.Second))
	if _, err := c.Acquire(ctx, "slot:cam-1:primary", time.Second, coord.Owner{ID: "b"}); err != nil {
		t.Fatalf("take-over: %v", err)
	}
	select {
	case <-l1.Lost():
	default:
		t.Fatal("old holder's Lost open after take-over")
	}
}

func TestTokensFollowClockAndCounter(t *testing.T) {
	clock := NewManualClock(start)
	c := New(clock)
	ctx := context.Background()
	grant := func() uint64 {
		t.Helper()
		l, err := c.Acquire(ctx, "n", time.Second, coord.Owner{ID: "x"})
		if err != nil {
			t.Fatal(err)
		}
		_ = l.Release(ctx)
		return l.Token()
	}
	first := grant()
	if want := uint64(start.UnixMicro()); first != want {
		t.Fatalf("first token %d, want the clock in µs %d", first, want)
	}
	if got := grant(); got != first+1 {
		t.Fatalf("second token on a stopped clock %d, want %d", got, first+1)
	}
	clock.Advance(time.Hour)
	if got, want := grant(), uint64(start.Add(time.Hour).UnixMicro()); got != want {
		t.Fatalf("token after an hour %d, want %d", got, want)
	}
	// A new process (all state lost) on a later clock still fences the old grants.
	c2 := New(clock)
	clock.Advance(time.Microsecond)
	l, err := c2.Acquire(ctx, "n", time.Second, coord.Owner{ID: "y"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Token() <= uint64(start.Add(time.Hour).UnixMicro()) {
		t.Fatalf("token after state loss %d does not exceed earlier grants", l.Token())
	}
}

func TestManualClockFiresInOrder(t *testing.T) {
	clock := NewManualClock(start)
	var got []time.Duration
	for _, d := range []time.Duration{3 * time.Second, time.Second, 2 * time.Second} {
		clock.AfterFunc(d, func() { got = append(got, clock.Now().Sub(start)) })
	}
	stop := clock.AfterFunc(time.Second, func() { t.Error("stopped timer fired") })
	if !stop() {
		t.Fatal("stop of a pending timer reported false")
	}
	clock.Advance(2 * time.Second)
	if len(got) != 2 || got[0] != time.Second || got[1] != 2*time.Second {
		t.Fatalf("fired at %v, want [1s 2s]", got)
	}
	clock.Advance(time.Second)
	if len(got) != 3 || got[2] != 3*time.Second {
		t.Fatalf("fired at %v, want [1s 2s 3s]", got)
	}
	if stop() {
		t.Fatal("second stop reported true")
	}
}

func TestLimiterForgetsFullBuckets(t *testing.T) {
	clock := NewManualClock(start)
	lim, err := New(clock).NewLimiter(coord.Rate{Burst: 3, Interval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 2000 {
		if _, err := lim.Allow(ctx, "ip:"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		if i == 999 {
			clock.Advance(10 * time.Second) // the first thousand are full again
		}
	}
	lim.mu.Lock()
	n := len(lim.tat)
	lim.mu.Unlock()
	if n > 1024 {
		t.Fatalf("limiter keeps %d keys, want the full buckets swept", n)
	}
}

func TestInvalidRate(t *testing.T) {
	c := New(nil)
	for _, r := range []coord.Rate{{}, {Burst: 1}, {Burst: 0, Interval: time.Second}, {Burst: 2, Interval: -time.Second}} {
		if _, err := c.NewLimiter(r); err == nil {
			t.Errorf("NewLimiter(%+v) accepted", r)
		}
	}
}

func TestContextDone(t *testing.T) {
	c := New(NewManualClock(start))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Acquire(ctx, "n", time.Second, coord.Owner{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a done context: %v", err)
	}
}

func TestListForgetsExpiredSessions(t *testing.T) {
	clock := NewManualClock(start)
	c := New(clock)
	ctx := context.Background()
	if err := c.Heartbeat(ctx, coord.Session{ID: "s", Slot: "slot:cam-1"}, time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if ss, err := c.List(ctx, "slot:cam-1"); err != nil || len(ss) != 0 {
		t.Fatalf("List after expiry = %v, %v; want none", ss, err)
	}
	c.mu.Lock()
	n := len(c.sessions)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d slots kept after their sessions expired", n)
	}
}
