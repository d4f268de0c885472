package push

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
)

// Basic Auth (RFC 7617) with two cheap guards in front of bcrypt:
//
//   - a per-source budget of FAILED logins (coord.Limiter, shared by all
//     edges). The source is the IPv4 address or the IPv6 /64, as edge
//     admission counts (edge/admit), so rotating through the addresses of
//     one /64 buys no fresh budget. A failure spends one unit; when none is
//     left the answer is 429. The last refusal is remembered in-process
//     (blockList), so a flood from a blocked source costs neither bcrypt nor
//     a coordination round trip.
//   - a cache of SUCCESSFUL checks, so an encoder PUTting a segment every 2 s
//     pays bcrypt (~50 ms) about once per authCacheTTL. The key is an HMAC of
//     slot id, user and password under a per-process random key: a memory
//     dump shows no password and nothing that can be brute-forced offline
//     without the key. The value is the slot version seen at the check: any
//     configuration write (credentials cleared or changed) bumps the version
//     and so invalidates the entry. A failed check is never cached.

const (
	authCacheTTL    = 30 * time.Second
	maxAuthEntries  = 10000
	maxBlockEntries = 10000
	// maxCredLen bounds what an unauthenticated client can make us hash.
	maxCredLen = 256
)

type authCache struct {
	key []byte
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]authEntry
}

type authEntry struct {
	version int64
	expires time.Time
}

func newAuthCache(ttl time.Duration, now func() time.Time) *authCache {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand.Read never fails (Go 1.24+)
	return &authCache{key: k, ttl: ttl, now: now, m: map[[sha256.Size]byte]authEntry{}}
}

func (c *authCache) sum(id keys.SlotID, user, pw string) [sha256.Size]byte {
	h := hmac.New(sha256.New, c.key)
	// Length-prefix-free but unambiguous: neither id nor user may hold NUL
	// (ids are [a-z0-9-]; a user with NUL never matches a stored one).
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(pw))
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}

// version returns the slot version cached for these credentials, if fresh.
func (c *authCache) version(k [sha256.Size]byte) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !c.now().Before(e.expires) {
		return 0, false
	}
	return e.version, true
}

func (c *authCache) put(k [sha256.Size]byte, version int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxAuthEntries {
		clear(c.m) // a flood of distinct valid logins is rare; start over
	}
	c.m[k] = authEntry{version: version, expires: c.now().Add(c.ttl)}
}

// blockList remembers, per source (sourceOf), until when the limiter
// refuses its failed logins.
type blockList struct {
	now func() time.Time

	mu sync.Mutex
	m  map[netip.Prefix]time.Time
}

func newBlockList(now func() time.Time) *blockList {
	return &blockList{now: now, m: map[netip.Prefix]time.Time{}}
}

// until returns how long src stays blocked (0: not blocked).
func (b *blockList) until(src netip.Prefix) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.m[src]
	if !ok {
		return 0
	}
	if d := t.Sub(b.now()); d > 0 {
		return d
	}
	delete(b.m, src)
	return 0
}

func (b *blockList) block(src netip.Prefix, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if len(b.m) >= maxBlockEntries {
		for k, t := range b.m {
			if !t.After(now) {
				delete(b.m, k)
			}
		}
		if len(b.m) >= maxBlockEntries {
			clear(b.m) // the shared limiter still holds the truth
		}
	}
	b.m[src] = now.Add(d)
}

// sourceOf is the unit the failed-login budget counts per: the IPv4
// address, or the IPv6 /64 (one subscriber's LAN), the grouping of edge
// admission's failed-auth limit. IPv4-mapped IPv6 counts as IPv4.
func sourceOf(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// limiterKey names the failed-login budget of one source
// ("push-auth:192.0.2.1/32", "push-auth:2001:db8:1:2::/64").
func limiterKey(src netip.Prefix) string { return "push-auth:" + src.String() }

// sourceLabel is how a source is named to the client and in the log: the
// address for IPv4, the /64 for IPv6.
func sourceLabel(src netip.Prefix) string {
	if src.Addr().Is4() {
		return src.Addr().String()
	}
	return src.String()
}

// authenticate checks the request's Basic credentials for slot id and
// returns the slot and the user name. It never logs or returns the
// password.
func (s *Server) authenticate(ctx context.Context, r *http.Request, id keys.SlotID, ip netip.Addr) (*slots.Slot, string, *rejection) {
	user, pw, ok := r.BasicAuth()
	if !ok || user == "" {
		// A client without credentials is usually asking for the challenge
		// (RFC 7617 §2); it costs nothing, so it is not counted.
		// ffmpeg sends every request without credentials first: logged at
		// Debug, or each segment would cost an Info line.
		rej := reject(http.StatusUnauthorized, ErrUnauthorized, "credentials required (Basic)")
		rej.level = slog.LevelDebug
		return nil, "", rej
	}
	src := sourceOf(ip)
	if d := s.blocked.until(src); d > 0 {
		rej := reject(http.StatusTooManyRequests, ErrTooManyFailures, "too many failed logins from %s; retry later", sourceLabel(src))
		rej.retryAfter = d
		return nil, "", rej
	}
	if len(user) > maxCredLen || len(pw) > maxCredLen {
		return nil, "", s.failedLogin(ctx, src, "credentials too long")
	}
	k := s.auth.sum(id, user, pw)
	if v, ok := s.auth.version(k); ok {
		sl, err := s.slots.Lookup(ctx, id)
		if err == nil && sl.Version == v {
			return sl, user, nil
		}
	}
	sl, err := s.slots.CheckPassword(ctx, id, user, pw)
	switch {
	case err == nil:
		s.auth.put(k, sl.Version)
		return sl, user, nil
	case errors.Is(err, slots.ErrBadCredentials):
		return nil, "", s.failedLogin(ctx, src, "wrong user name or password for slot "+string(id))
	case errors.Is(err, slots.ErrNotFound):
		// Counted too: probing for slot ids is a failed login.
		if rej := s.failedLogin(ctx, src, ""); rej.status == http.StatusTooManyRequests {
			return nil, "", rej
		}
		return nil, "", reject(http.StatusNotFound, ErrUnknownSlot, "no slot %s", id)
	default:
		rej := reject(http.StatusServiceUnavailable, ErrUnavailable, "slot lookup failed; retry")
		rej.retryAfter = time.Second
		return nil, "", rej
	}
}

// failedLogin spends one unit of src's failure budget: 401 while some is
// left, 429 with Retry-After once it is used up.
func (s *Server) failedLogin(ctx context.Context, src netip.Prefix, detail string) *rejection {
	wait, err := s.lim.Allow(ctx, limiterKey(src))
	if err != nil && !errors.Is(err, coord.ErrUnavailable) {
		s.log.Warn("push auth limiter failed", "err", err)
	}
	// A limiter that cannot be reached fails open for the 401 itself: the
	// credentials were wrong either way, and bcrypt bounds the rate.
	if wait > 0 {
		s.blocked.block(src, wait)
		rej := reject(http.StatusTooManyRequests, ErrTooManyFailures, "too many failed logins from %s; retry later", sourceLabel(src))
		rej.retryAfter = wait
		return rej
	}
	return reject(http.StatusUnauthorized, ErrUnauthorized, "%s", detail)
}
