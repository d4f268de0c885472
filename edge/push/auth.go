package push

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
)

// Basic Auth (RFC 7617) is Live Push's credential, checked by admission as
// the protocol's second credential (admit.Request.Verify) once the slot is
// known by id. Admission puts its cheap guards in front of bcrypt: a source
// (IPv4 address or IPv6 /64) that spent its failed-auth budget — shared with
// every protocol and every edge — is refused before the slot is even looked
// up, and the address allow-list is applied first.
//
// What is left here is a cache of SUCCESSFUL checks, so an encoder PUTting a
// segment every 2 s pays bcrypt (~50 ms) about once per authCacheTTL. The
// key is an HMAC of slot id, user and password under a per-process random
// key: a memory dump shows no password and nothing that can be brute-forced
// offline without the key. The value is the slot version seen at the check:
// any configuration write (credentials cleared or changed) bumps the
// version and so invalidates the entry. A failed check is never cached.

const (
	authCacheTTL   = 30 * time.Second
	maxAuthEntries = 10000
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

// verifier is the admit.Request.Verify of a request with Basic credentials
// user and pw: bcrypt (slots.Slot.CheckPassword, constant time in the
// password and the same cost for an unknown user), skipped when the same
// credentials passed for the same slot version within authCacheTTL. Its
// errors never hold the user name or the password.
func (s *Server) verifier(user, pw string) func(*slots.Slot) error {
	return func(sl *slots.Slot) error {
		if len(user) > maxCredLen || len(pw) > maxCredLen {
			return errCredentialsTooLong
		}
		k := s.auth.sum(sl.ID, user, pw)
		if v, ok := s.auth.version(k); ok && v == sl.Version {
			return nil
		}
		if err := s.checkPassword(sl, user, pw); err != nil {
			return errWrongCredentials
		}
		s.auth.put(k, sl.Version)
		return nil
	}
}

var (
	errCredentialsTooLong = errors.New("credentials too long")
	errWrongCredentials   = errors.New("wrong user name or password")
)
