package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
)

type sessionEntry struct {
	s       coord.Session
	expires time.Time // listed while now < expires
}

// Heartbeat adds s or refreshes it, and keeps it listed for ttl from now. It
// sets s.Updated to now.
func (c *Coord) Heartbeat(ctx context.Context, s coord.Session, ttl time.Duration) error {
	if err := s.ValidateKey(); err != nil {
		return fmt.Errorf("coord/memory: heartbeat: %w", err)
	}
	if ttl <= 0 {
		return fmt.Errorf("coord/memory: heartbeat %q: ttl %v is not positive", s.ID, ttl)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("coord/memory: heartbeat %q: %w", s.ID, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	s.Updated = now
	m := c.sessions[s.Slot]
	if m == nil {
		m = map[string]sessionEntry{}
		c.sessions[s.Slot] = m
	}
	m[s.ID] = sessionEntry{s: s, expires: now.Add(ttl)}
	return nil
}

// Remove takes the session off the list.
func (c *Coord) Remove(ctx context.Context, slot, id string) error {
	if err := (coord.Session{Slot: slot, ID: id}).ValidateKey(); err != nil {
		return fmt.Errorf("coord/memory: remove: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.sessions[slot]; m != nil {
		delete(m, id)
		if len(m) == 0 {
			delete(c.sessions, slot)
		}
	}
	return nil
}

// List returns the live sessions of slot, oldest Started first (ties by ID),
// and forgets the expired ones.
func (c *Coord) List(ctx context.Context, slot string) ([]coord.Session, error) {
	if err := keys.ValidateCoordName(slot); err != nil {
		return nil, fmt.Errorf("coord/memory: list: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("coord/memory: list %q: %w", slot, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	m := c.sessions[slot]
	out := make([]coord.Session, 0, len(m))
	for id, e := range m {
		if !now.Before(e.expires) {
			delete(m, id)
			continue
		}
		out = append(out, e.s)
	}
	if len(m) == 0 {
		delete(c.sessions, slot)
	}
	coord.SortSessions(out)
	return out, nil
}
