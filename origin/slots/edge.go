package slots

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

// The edge-facing reads run on every publish (and, for live-push, on every
// PUT), so they go through a small TTL cache. This process's writes
// invalidate it at once; writes by other processes are seen within the TTL
// (pub/sub invalidation through coord can come later).

// maxStreamKeyLen bounds what an unauthenticated client can make us hash.
const maxStreamKeyLen = 256

// ByStreamKey returns the slot whose current stream key is key, or
// ErrNotFound (unknown, rotated away, or deleted). The key is checked against
// the hash in the slot record, so index objects left by a crash grant
// nothing.
func (r *Repo) ByStreamKey(ctx context.Context, key string) (*Slot, error) {
	if key == "" || len(key) > maxStreamKeyLen {
		return nil, ErrNotFound
	}
	hash := hashStreamKey(key)
	if s := r.cache.byKey(hash); s != nil && s.HasStreamKey(key) {
		return s, nil
	}
	ikey, err := keys.SlotKeyIndex(hash)
	if err != nil {
		return nil, err
	}
	b, _, err := r.getBytes(ctx, ikey)
	if errors.Is(err, store.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var idx keyIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, err
	}
	s, _, err := r.read(ctx, idx.SlotID)
	if err != nil {
		return nil, err
	}
	if !s.HasStreamKey(key) {
		return nil, ErrNotFound
	}
	r.cache.put(s)
	return s.clone(), nil
}

// Lookup returns the slot like Get, but may answer from the cache (stale by
// at most CacheTTL). For edges and playback, not for the API.
func (r *Repo) Lookup(ctx context.Context, id keys.SlotID) (*Slot, error) {
	if s := r.cache.byID(id); s != nil {
		return s, nil
	}
	s, _, err := r.read(ctx, id)
	if err != nil {
		return nil, err
	}
	r.cache.put(s)
	return s.clone(), nil
}

// CheckPassword verifies live-push Basic Auth credentials for the slot id
// (RFC 7617) and returns the slot. Unknown user and wrong password are both
// ErrBadCredentials; an unknown slot is ErrNotFound.
func (r *Repo) CheckPassword(ctx context.Context, id keys.SlotID, username, password string) (*Slot, error) {
	s, err := r.Lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.CheckPassword(username, password); err != nil {
		return nil, err
	}
	return s, nil
}

func (r *Repo) invalidate(id keys.SlotID) { r.cache.drop(id) }

// cache maps slot ids and stream key hashes to recently read slots. A nil
// *cache is a disabled cache: every method is a no-op.
type cache struct {
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	ids   map[keys.SlotID]cacheEntry
	hashs map[string]keys.SlotID
}

type cacheEntry struct {
	s       *Slot
	expires time.Time
}

// maxCacheEntries bounds the memory a flood of distinct slots could use; the
// cache is simply emptied when it fills.
const maxCacheEntries = 10000

func newCache(ttl time.Duration, now func() time.Time) *cache {
	return &cache{ttl: ttl, now: now, ids: map[keys.SlotID]cacheEntry{}, hashs: map[string]keys.SlotID{}}
}

func (c *cache) byID(id keys.SlotID) *Slot {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.ids[id]
	if !ok || !c.now().Before(e.expires) {
		return nil
	}
	return e.s.clone()
}

func (c *cache) byKey(hash string) *Slot {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	id, ok := c.hashs[hash]
	c.mu.Unlock()
	if !ok {
		return nil
	}
	return c.byID(id)
}

func (c *cache) put(s *Slot) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids) >= maxCacheEntries || len(c.hashs) >= maxCacheEntries {
		clear(c.ids)
		clear(c.hashs)
	}
	c.ids[s.ID] = cacheEntry{s: s.clone(), expires: c.now().Add(c.ttl)}
	c.hashs[s.streamKeyHash] = s.ID
}

func (c *cache) drop(id keys.SlotID) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.ids, id)
	for h, hid := range c.hashs {
		if hid == id {
			delete(c.hashs, h)
		}
	}
}
