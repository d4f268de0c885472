// Package memory implements the coordination contracts of origin/coord inside
// one process, for development and single-node deployments, and as the
// reference the redis implementation is checked against (both pass
// coordtest).
//
// All state lives in the Coord value and dies with the process. Time comes
// from an injected coord.Clock; tests use ManualClock to make leases lapse
// and limiters refill without sleeping.
//
// Fencing tokens: a grant's token is max(last token on the name + 1,
// microseconds since the epoch on the Clock). Within one Coord tokens on a
// name increase strictly, whatever the clock does. After a restart of the
// process (all state lost) the first token still exceeds every earlier one
// provided the clock has advanced past the last token granted (in practice:
// reads later than at the last grant) — the same guarantee the redis
// implementation gives across a data loss.
package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
)

var (
	_ coord.Locker   = (*Coord)(nil)
	_ coord.Registry = (*Coord)(nil)
	_ coord.Lease    = (*lease)(nil)
)

// Coord is an in-process Locker and Registry, and the factory of Limiters
// sharing its clock. It is safe for concurrent use.
type Coord struct {
	clock coord.Clock

	mu       sync.Mutex
	names    map[string]*nameState
	sessions map[string]map[string]sessionEntry // slot → id → entry
}

// nameState is what the Locker keeps per name. It is kept after a release so
// that the token counter survives; it costs a few words per name ever leased,
// and lease names (slot × role) are few.
type nameState struct {
	lastToken uint64
	holder    *lease    // nil when released
	since     time.Time // when holder's grant began
	expires   time.Time // holder is valid while now < expires
}

// New returns an empty Coord on clock; nil means the system clock.
func New(clock coord.Clock) *Coord {
	if clock == nil {
		clock = coord.SystemClock{}
	}
	return &Coord{
		clock:    clock,
		names:    map[string]*nameState{},
		sessions: map[string]map[string]sessionEntry{},
	}
}

// Acquire grants the lease on name to owner for ttl (see coord.Locker). A
// holder whose ttl passed is taken over, and its Lost is closed at once.
func (c *Coord) Acquire(ctx context.Context, name string, ttl time.Duration, owner coord.Owner) (coord.Lease, error) {
	if err := keys.ValidateCoordName(name); err != nil {
		return nil, fmt.Errorf("coord/memory: acquire: %w", err)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("coord/memory: acquire %q: ttl %v is not positive", name, ttl)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("coord/memory: acquire %q: %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	st := c.names[name]
	if st == nil {
		st = &nameState{}
		c.names[name] = st
	}
	if st.holder != nil {
		if now.Before(st.expires) {
			return nil, &coord.HeldError{Name: name, Holder: st.holder.owner, Since: st.since}
		}
		// Taken over: the old holder must stop writing now, not when its own
		// timer gets round to it.
		st.holder.deadline.Expire()
	}
	token := st.lastToken + 1
	if us := now.UnixMicro(); us > 0 && uint64(us) > token {
		token = uint64(us)
	}
	st.lastToken = token
	l := &lease{c: c, name: name, owner: owner, token: token, ttl: ttl, deadline: coord.NewDeadline(c.clock)}
	st.holder, st.since, st.expires = l, now, now.Add(ttl)
	l.deadline.Extend(st.expires)
	return l, nil
}

// lease is one grant. Its mutable fields are guarded by c.mu: the Coord and
// its leases form one small state machine and one lock keeps it simple.
type lease struct {
	c     *Coord
	name  string
	owner coord.Owner
	token uint64
	ttl   time.Duration

	deadline *coord.Deadline // backs Lost
}

func (l *lease) Token() uint64 { return l.token }

func (l *lease) Lost() <-chan struct{} { return l.deadline.Done() }

// Renew extends the grant by its ttl from now, on the Coord's clock.
func (l *lease) Renew(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("coord/memory: renew %q: %w", l.name, err)
	}
	c := l.c
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	st := c.names[l.name]
	if l.deadline.Expired() || st.holder != l || !now.Before(st.expires) {
		l.deadline.Expire()
		return fmt.Errorf("coord/memory: renew %q: %w", l.name, coord.ErrLeaseLost)
	}
	st.expires = now.Add(l.ttl)
	l.deadline.Extend(st.expires)
	return nil
}

// Release gives the name up if this grant still holds it. It never fails:
// there is no service to be unavailable.
func (l *lease) Release(ctx context.Context) error {
	c := l.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.names[l.name]; st.holder == l {
		st.holder = nil
	}
	l.deadline.Expire()
	return nil
}
