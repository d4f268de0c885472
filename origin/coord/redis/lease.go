package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
)

var _ coord.Lease = (*lease)(nil)

// Record kinds (the last part of keys.Redis) used by leases.
const (
	kindLease = "lease" // hash {token, owner (JSON), since (µs)} with the lease's ttl
	kindFence = "fence" // last token granted on the name; never expires
)

// acquireScript grants the lease unless it is held.
//
//	KEYS[1] lease hash, KEYS[2] fence counter
//	ARGV[1] ttl in ms, ARGV[2] owner JSON
//	→ {0, token, owner, since} if held, {1, token, since} if granted
//
// Numbers are formatted with %.0f because Lua's tostring keeps only 14
// significant digits and microsecond timestamps have 16.
var acquireScript = goredis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'token', 'owner', 'since')
if cur[1] then
  return {0, cur[1], cur[2] or '', cur[3] or '0'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local token = last + 1
if now > token then token = now end
local tok = string.format('%.0f', token)
local since = string.format('%.0f', now)
redis.call('SET', KEYS[2], tok)
redis.call('HSET', KEYS[1], 'token', tok, 'owner', ARGV[2], 'since', since)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {1, tok, since}
`)

// renewScript extends the lease if this grant still holds it.
//
//	KEYS[1] lease hash; ARGV[1] token, ARGV[2] ttl in ms → 1 renewed, 0 lost
var renewScript = goredis.NewScript(`
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// releaseScript deletes the lease if this grant still holds it, so a holder
// that lapsed cannot release its successor's grant.
//
//	KEYS[1] lease hash; ARGV[1] token → 1 released, 0 not held by this grant
var releaseScript = goredis.NewScript(`
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
`)

// Acquire grants the lease on name to owner for ttl (see coord.Locker). The
// ttl is rounded up to whole milliseconds on the server; the holder's own
// deadline counts the exact ttl from before the request was sent, so it
// never outlives the server's.
func (c *Coord) Acquire(ctx context.Context, name string, ttl time.Duration, owner coord.Owner) (coord.Lease, error) {
	if err := keys.ValidateCoordName(name); err != nil {
		return nil, fmt.Errorf("coord/redis: acquire: %w", err)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("coord/redis: acquire %q: ttl %v is not positive", name, ttl)
	}
	ownerJSON, err := json.Marshal(owner)
	if err != nil {
		return nil, fmt.Errorf("coord/redis: acquire %q: owner: %w", name, err)
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	start := c.clock.Now()
	key := c.key(kindLease, name)
	res, err := acquireScript.Run(ctx, c.client, []string{key, c.key(kindFence, name)}, millis(ttl), ownerJSON).Slice()
	if err != nil {
		return nil, c.fail("acquire", name, err)
	}
	if len(res) < 3 {
		return nil, fmt.Errorf("coord/redis: acquire %q: unexpected reply %v", name, res)
	}
	if granted, _ := res[0].(int64); granted != 1 {
		held := &coord.HeldError{Name: name}
		if len(res) >= 4 {
			if s, ok := res[2].(string); ok {
				// A holder written by a broken client still blocks the name;
				// the error then names what could be decoded.
				_ = json.Unmarshal([]byte(s), &held.Holder)
			}
			if us, err := parseUint(res[3]); err == nil {
				held.Since = time.UnixMicro(int64(us))
			}
		}
		return nil, held
	}
	token, err := parseUint(res[1])
	if err != nil {
		return nil, fmt.Errorf("coord/redis: acquire %q: token: %w", name, err)
	}
	l := &lease{c: c, name: name, key: key, token: token, ttl: ttl, deadline: coord.NewDeadline(c.clock)}
	// Counted from before the request was sent, so the holder's deadline
	// never outlives the server's.
	l.deadline.Extend(start.Add(ttl))
	return l, nil
}

// lease is one grant held through Redis.
type lease struct {
	c     *Coord
	name  string
	key   string
	token uint64
	ttl   time.Duration

	deadline *coord.Deadline // on c.clock; backs Lost

	mu       sync.Mutex
	released bool // a Release reached Redis
}

func (l *lease) Token() uint64 { return l.token }

func (l *lease) Lost() <-chan struct{} { return l.deadline.Done() }

// Renew extends the grant by its ttl. When Redis cannot be reached it
// returns an ErrUnavailable error and leaves Lost alone: the grant is still
// good until its deadline, and the deadline timer closes Lost if no later
// Renew gets through.
func (l *lease) Renew(ctx context.Context) error {
	if l.deadline.Expired() {
		return fmt.Errorf("coord/redis: renew %q: %w", l.name, coord.ErrLeaseLost)
	}
	ctx, cancel := l.c.opContext(ctx)
	defer cancel()
	start := l.c.clock.Now()
	ok, err := renewScript.Run(ctx, l.c.client, []string{l.key}, l.tokenArg(), millis(l.ttl)).Int()
	if err != nil {
		return l.c.fail("renew", l.name, err)
	}
	// Either Redis no longer has this grant, or the deadline passed on this
	// clock while the request was out: too late either way.
	if ok != 1 || !l.deadline.Extend(start.Add(l.ttl)) {
		l.deadline.Expire()
		return fmt.Errorf("coord/redis: renew %q: %w", l.name, coord.ErrLeaseLost)
	}
	return nil
}

// Release deletes the grant in Redis if it still holds the name and closes
// Lost, even when Redis cannot be reached (the grant then lapses by its
// ttl). Once a Release got through, later calls return nil at once.
func (l *lease) Release(ctx context.Context) error {
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released {
		return nil
	}
	ctx, cancel := l.c.opContext(ctx)
	defer cancel()
	err := releaseScript.Run(ctx, l.c.client, []string{l.key}, l.tokenArg()).Err()
	l.deadline.Expire()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		return l.c.fail("release", l.name, err)
	}
	l.released = true
	return nil
}

func (l *lease) tokenArg() string { return strconv.FormatUint(l.token, 10) }

// millis is d in whole milliseconds, rounded up (PEXPIRE's unit; at least 1).
func millis(d time.Duration) int64 {
	return max(1, int64((d+time.Millisecond-1)/time.Millisecond))
}

// parseUint reads a number a script returned either as an integer or as a
// string.
func parseUint(v any) (uint64, error) {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return 0, fmt.Errorf("negative %d", v)
		}
		return uint64(v), nil
	case string:
		return strconv.ParseUint(v, 10, 64)
	}
	return 0, fmt.Errorf("unexpected %T", v)
}
