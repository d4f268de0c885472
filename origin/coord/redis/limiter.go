package redis

import (
	"context"
	"fmt"
	"math"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
)

var _ coord.Limiter = (*Limiter)(nil)

// kindRate is the record of one limiter key: its theoretical arrival time.
const kindRate = "rate"

// allowScript is GCRA on Redis's clock, in microseconds.
//
//	KEYS[1] the key's TAT; ARGV[1] interval µs, ARGV[2] burst
//	→ 0 if allowed, else µs until the next event would be
//
// Each allowed event pushes the theoretical arrival time (TAT) one interval
// on; an event is allowed while the TAT stays within burst intervals of now.
// A rejected event writes nothing. The key expires when the TAT is reached,
// which is when the bucket is full again and a missing key means the same.
var allowScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local next = tat + interval
local allow_at = next - burst * interval
if now < allow_at then
  return allow_at - now
end
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000))
return 0
`)

// Limiter is a GCRA rate limiter shared by every edge using the same Redis
// and namespace. Limiters with different rates must be given different keys
// (a per-purpose prefix such as "ingest:ip:"), as they share key space.
type Limiter struct {
	c    *Coord
	rate coord.Rate
}

// NewLimiter returns a Limiter allowing rate.Burst events at once, then one
// per rate.Interval, per key. The interval has microsecond resolution.
func (c *Coord) NewLimiter(rate coord.Rate) (*Limiter, error) {
	if rate.Burst < 1 {
		return nil, fmt.Errorf("coord/redis: limiter burst %d is below 1", rate.Burst)
	}
	// The bound keeps burst × interval in µs far inside a double's exact range.
	if rate.Interval < time.Microsecond || rate.Interval > time.Duration(math.MaxInt64/int64(rate.Burst)) {
		return nil, fmt.Errorf("coord/redis: limiter interval %v is below 1µs or overflows with burst %d", rate.Interval, rate.Burst)
	}
	return &Limiter{c: c, rate: rate}, nil
}

// Allow records one event for key; see coord.Limiter.
func (l *Limiter) Allow(ctx context.Context, key string) (time.Duration, error) {
	if err := keys.ValidateCoordName(key); err != nil {
		return 0, fmt.Errorf("coord/redis: allow: %w", err)
	}
	ctx, cancel := l.c.opContext(ctx)
	defer cancel()
	us, err := allowScript.Run(ctx, l.c.client, []string{l.c.key(kindRate, key)},
		int64(l.rate.Interval/time.Microsecond), l.rate.Burst).Int64()
	if err != nil {
		return 0, l.c.fail("allow", key, err)
	}
	return time.Duration(us) * time.Microsecond, nil
}
