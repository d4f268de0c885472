package memory

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
)

var _ coord.Limiter = (*Limiter)(nil)

// Limiter is an in-process GCRA rate limiter (see coord.Limiter) on the
// clock of the Coord that made it. It is safe for concurrent use.
type Limiter struct {
	clock coord.Clock
	rate  coord.Rate

	mu      sync.Mutex
	tat     map[string]time.Time // theoretical arrival time of the next event, per key
	sweepAt int                  // map size at which expired keys are dropped
}

// NewLimiter returns a Limiter allowing rate.Burst events at once, then one
// per rate.Interval, per key. Limiters are independent of one another.
func (c *Coord) NewLimiter(rate coord.Rate) (*Limiter, error) {
	if rate.Burst < 1 {
		return nil, fmt.Errorf("coord/memory: limiter burst %d is below 1", rate.Burst)
	}
	if rate.Interval <= 0 || rate.Interval > time.Duration(math.MaxInt64/int64(rate.Burst)) {
		return nil, fmt.Errorf("coord/memory: limiter interval %v is not positive or overflows with burst %d", rate.Interval, rate.Burst)
	}
	return &Limiter{clock: c.clock, rate: rate, tat: map[string]time.Time{}, sweepAt: 1024}, nil
}

// Allow records one event for key (GCRA): each allowed event pushes the
// key's theoretical arrival time (TAT) one interval further; an event is
// allowed while the TAT is at most burst intervals ahead of now. A rejected
// event leaves the TAT as it was, so retrying does not dig the hole deeper.
func (l *Limiter) Allow(ctx context.Context, key string) (time.Duration, error) {
	if err := keys.ValidateCoordName(key); err != nil {
		return 0, fmt.Errorf("coord/memory: allow: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("coord/memory: allow %q: %w", key, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	tat := l.tat[key]
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(l.rate.Interval)
	allowAt := next.Add(-time.Duration(l.rate.Burst) * l.rate.Interval)
	if now.Before(allowAt) {
		return allowAt.Sub(now), nil
	}
	l.tat[key] = next
	if len(l.tat) >= l.sweepAt {
		l.sweepLocked(now)
	}
	return 0, nil
}

// sweepLocked drops keys whose bucket is full again (TAT passed): they
// behave exactly like keys never seen. It runs when the map doubled since
// the last sweep, so its cost is amortised over the events that grew it.
func (l *Limiter) sweepLocked(now time.Time) {
	for k, tat := range l.tat {
		if !tat.After(now) {
			delete(l.tat, k)
		}
	}
	l.sweepAt = max(1024, 2*len(l.tat))
}
