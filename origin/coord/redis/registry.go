package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
)

// The registry keeps, per slot, a sorted set of session ids scored by expiry
// (ms on Redis's clock) and one key per session holding its JSON with the
// same ttl. Both are named after the slot, so they share a cluster slot; the
// session id goes into the kind.
const (
	kindSessions      = "sessions"
	kindSessionPrefix = "session:"
)

// heartbeatScript stores a session and (re)sets its expiry.
//
//	KEYS[1] slot index, KEYS[2] session; ARGV[1] id, ARGV[2] ttl ms, ARGV[3] JSON
//
// The index itself expires with its longest-lived member, so a slot nobody
// publishes to leaves nothing behind.
var heartbeatScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
`)

// listScript drops expired ids from a slot's index and returns the rest.
//
//	KEYS[1] slot index → ids
var listScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)

// Heartbeat adds s or refreshes it, and keeps it listed for ttl (rounded up
// to whole milliseconds). It sets s.Updated from this process's clock.
func (c *Coord) Heartbeat(ctx context.Context, s coord.Session, ttl time.Duration) error {
	if err := s.ValidateKey(); err != nil {
		return fmt.Errorf("coord/redis: heartbeat: %w", err)
	}
	if ttl <= 0 {
		return fmt.Errorf("coord/redis: heartbeat %q: ttl %v is not positive", s.ID, ttl)
	}
	s.Updated = c.clock.Now()
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("coord/redis: heartbeat %q: %w", s.ID, err)
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	err = heartbeatScript.Run(ctx, c.client,
		[]string{c.key(kindSessions, s.Slot), c.key(kindSessionPrefix+s.ID, s.Slot)},
		s.ID, millis(ttl), b).Err()
	if err != nil {
		return c.fail("heartbeat", s.ID, err)
	}
	return nil
}

// Remove takes the session off the list at once.
func (c *Coord) Remove(ctx context.Context, slot, id string) error {
	if err := (coord.Session{Slot: slot, ID: id}).ValidateKey(); err != nil {
		return fmt.Errorf("coord/redis: remove: %w", err)
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	_, err := c.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZRem(ctx, c.key(kindSessions, slot), id)
		p.Del(ctx, c.key(kindSessionPrefix+id, slot))
		return nil
	})
	if err != nil {
		return c.fail("remove", id, err)
	}
	return nil
}

// List returns the live sessions of slot, oldest Started first (ties by ID).
// It drops expired entries from the slot's index on the way.
func (c *Coord) List(ctx context.Context, slot string) ([]coord.Session, error) {
	if err := keys.ValidateCoordName(slot); err != nil {
		return nil, fmt.Errorf("coord/redis: list: %w", err)
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	ids, err := listScript.Run(ctx, c.client, []string{c.key(kindSessions, slot)}).StringSlice()
	if err != nil {
		return nil, c.fail("list", slot, err)
	}
	if len(ids) == 0 {
		return []coord.Session{}, nil
	}
	sessionKeys := make([]string, len(ids))
	for i, id := range ids {
		sessionKeys[i] = c.key(kindSessionPrefix+id, slot)
	}
	vals, err := c.client.MGet(ctx, sessionKeys...).Result()
	if err != nil {
		return nil, c.fail("list", slot, err)
	}
	out := make([]coord.Session, 0, len(vals))
	for _, v := range vals {
		// A nil value is a session that expired or was removed between the
		// two reads; an undecodable one was not written by this package.
		// Neither is a live session to show.
		str, ok := v.(string)
		if !ok {
			continue
		}
		var s coord.Session
		if json.Unmarshal([]byte(str), &s) == nil {
			out = append(out, s)
		}
	}
	coord.SortSessions(out)
	return out, nil
}
