package expire_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/liveingest/liveingest/origin/store"
)

// memStore is the smallest store.Store the index tests need: objects in a
// map, listed in key order, Modified as the writer dictates (putAt) so that
// ten thousand objects of chosen ages take no disk and no time. The real
// backends are tested with disk and MinIO.
type memStore struct {
	mu      sync.Mutex
	objects map[string]store.Info
	now     func() time.Time
}

var _ store.Store = (*memStore)(nil)

func newMemStore(now func() time.Time) *memStore {
	return &memStore{objects: map[string]store.Info{}, now: now}
}

// putAt stores key as written at modified.
func (m *memStore) putAt(key string, modified time.Time) store.Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := store.Info{Key: key, Size: 1, ETag: fmt.Sprintf(`"%d"`, modified.UnixNano()), Modified: modified}
	m.objects[key] = i
	return i
}

func (m *memStore) Put(_ context.Context, key string, r io.Reader, _ store.Meta) (store.Info, error) {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return store.Info{}, err
	}
	return m.putAt(key, m.now()), nil
}

func (m *memStore) Get(_ context.Context, key string) (io.ReadCloser, store.Info, error) {
	i, err := m.Stat(context.Background(), key)
	if err != nil {
		return nil, i, err
	}
	return io.NopCloser(bytes.NewReader([]byte("x"))), i, nil
}

func (m *memStore) GetRange(ctx context.Context, key string, _, _ int64) (io.ReadCloser, store.Info, error) {
	return m.Get(ctx, key)
}

func (m *memStore) Stat(_ context.Context, key string) (store.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.objects[key]
	if !ok {
		return i, fmt.Errorf("%s: %w", key, store.ErrNotExist)
	}
	return i, nil
}

func (m *memStore) List(_ context.Context, prefix string, fn func(store.Info) error) error {
	m.mu.Lock()
	var list []store.Info
	for k, i := range m.objects {
		if strings.HasPrefix(k, prefix) {
			list = append(list, i)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(list, func(a, b store.Info) int { return strings.Compare(a.Key, b.Key) })
	for _, i := range list {
		if err := fn(i); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Delete(_ context.Context, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.objects, k)
	}
	return nil
}

func (m *memStore) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.objects))
	for k := range m.objects {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// counting counts the operations that reach the store it wraps, and
// records the keys of every Delete call.
type counting struct {
	store.Store

	mu      sync.Mutex
	ops     map[string]int
	deletes [][]string
}

var _ store.Store = (*counting)(nil)

func newCounting(next store.Store) *counting { return &counting{Store: next, ops: map[string]int{}} }

func (c *counting) inc(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops[op]++
}

// take returns the counts and Delete calls so far and starts again.
func (c *counting) take() (map[string]int, [][]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ops, dels := c.ops, c.deletes
	c.ops, c.deletes = map[string]int{}, nil
	return ops, dels
}

func (c *counting) Put(ctx context.Context, key string, r io.Reader, m store.Meta) (store.Info, error) {
	c.inc("put")
	return c.Store.Put(ctx, key, r, m)
}

func (c *counting) Get(ctx context.Context, key string) (io.ReadCloser, store.Info, error) {
	c.inc("get")
	return c.Store.Get(ctx, key)
}

func (c *counting) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, store.Info, error) {
	c.inc("get_range")
	return c.Store.GetRange(ctx, key, off, n)
}

func (c *counting) Stat(ctx context.Context, key string) (store.Info, error) {
	c.inc("stat")
	return c.Store.Stat(ctx, key)
}

func (c *counting) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	c.inc("list")
	return c.Store.List(ctx, prefix, fn)
}

func (c *counting) Delete(ctx context.Context, keys ...string) error {
	c.mu.Lock()
	c.ops["delete"]++
	c.deletes = append(c.deletes, slices.Clone(keys))
	c.mu.Unlock()
	return c.Store.Delete(ctx, keys...)
}
