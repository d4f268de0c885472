package disk

import (
	"container/list"
	"errors"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// defaultDirCacheSize bounds the directories a Store keeps open (two
// descriptors each). A stream writes into a handful of directories, so this
// covers a few hundred live streams; a miss costs one resolution of the
// directory's path, as every Put cost before the cache.
const defaultDirCacheSize = 512

// errDirConflict: a parent of the directory is an object, not a directory.
var errDirConflict = errors.New("directory conflicts with an object")

// dirEntry is one open directory under the root: a sub-root for the
// single-component operations a Put or Get needs in it, and the directory
// itself for fsync. Both were resolved through the Store's os.Root, so they
// name a directory inside it; operations on them never look at the path
// again, which is what makes them cheap and why a symbolic link planted
// later on that path is never followed.
type dirEntry struct {
	name string   // the directory relative to the root, "." for the root
	root *os.Root // sub-root of the directory
	dir  *os.File // the directory, for fsync
	raw  syscall.RawConn

	// Guarded by dirCache.mu.
	refs    int           // holders, including the cache while cached
	elem    *list.Element // position in the LRU list; nil once dropped
	dropped bool

	// Group commit of the directory fsync; see syncAfterRename.
	syncMu   sync.Mutex
	syncCond sync.Cond
	syncing  bool
	started  uint64 // fsyncs started
	finished uint64 // the fsync with this number (and every earlier one) has completed
	hooks    *syncHooks
}

// syncHooks let tests see the group commit: wait is called (with syncMu
// held) when a Put starts waiting for a directory fsync, sync before each
// fsync.
type syncHooks struct {
	wait, sync func(dir string)
}

// syncAfterRename returns once an fsync of the directory that started after
// the caller's rename (which happened before the call) has completed, so the
// rename is durable. Concurrent callers share fsyncs: while one runs, the
// callers that arrive wait for the next one, which the first of them
// starts once the running one is done — one fsync covers all of them.
//
// Errors are not returned: the renamed object is already visible, and the
// Store contract says an error means nothing new is visible.
func (d *dirEntry) syncAfterRename() {
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	// A running fsync may have started before our rename: wait for the next.
	need := d.started + 1
	if d.hooks != nil && d.hooks.wait != nil {
		d.hooks.wait(d.name)
	}
	for d.finished < need {
		if d.syncing {
			d.syncCond.Wait()
			continue
		}
		d.syncing = true
		d.started++
		n := d.started
		d.syncMu.Unlock()
		if d.hooks != nil && d.hooks.sync != nil {
			d.hooks.sync(d.name)
		}
		_ = d.dir.Sync()
		d.syncMu.Lock()
		d.syncing = false
		d.finished = n
		d.syncCond.Broadcast()
	}
}

func (d *dirEntry) close() {
	_ = d.dir.Close()
	_ = d.root.Close()
}

// dirCache holds the directories Puts write into, least recently used first
// out. Only Puts add entries (under Store.dirs held shared, so a concurrent
// prune cannot remove a directory between its resolution and its first
// temporary file); Get, Stat and Delete use an entry when there is one, so a
// walk of many directories by readers never evicts the writers' entries.
//
// An entry is closed when it is dropped (evicted, pruned or at Close) and no
// operation holds it any more.
type dirCache struct {
	root *os.Root
	max  int

	mu     sync.Mutex
	m      map[string]*dirEntry
	lru    list.List // of *dirEntry, most recently used at the front
	closed bool
	live   int // entries made by acquire and not closed yet

	hits, misses atomic.Uint64
	hooks        *syncHooks // tests only
}

func newDirCache(root *os.Root) *dirCache {
	return &dirCache{root: root, max: defaultDirCacheSize, m: map[string]*dirEntry{}}
}

// peek returns the cached entry of dir, held, or nil. The caller must
// release a non-nil entry.
func (c *dirCache) peek(dir string) *dirEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.m[dir]
	if d == nil {
		return nil
	}
	d.refs++
	c.lru.MoveToFront(d.elem)
	c.hits.Add(1)
	return d
}

// acquire returns the entry of dir, held, creating the directory and its
// parents if they do not exist. The caller must hold Store.dirs shared and
// release the entry. A parent that is an object fails with errDirConflict.
func (c *dirCache) acquire(dir string) (*dirEntry, error) {
	if d := c.peek(dir); d != nil {
		return d, nil
	}
	c.misses.Add(1)
	d, err := c.open(dir)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		d.close()
		return nil, os.ErrClosed
	}
	if other := c.m[dir]; other != nil { // resolved concurrently: keep one
		d.close()
		other.refs++
		c.lru.MoveToFront(other.elem)
		return other, nil
	}
	d.refs = 2 // the cache's and the caller's
	c.live++
	d.elem = c.lru.PushFront(d)
	c.m[dir] = d
	for c.lru.Len() > c.max {
		c.dropLocked(c.lru.Back().Value.(*dirEntry))
	}
	return d, nil
}

// open resolves dir through the root, creating it if needed.
func (c *dirCache) open(dir string) (*dirEntry, error) {
	if dir != "." {
		if err := c.root.MkdirAll(dir, 0o755); err != nil {
			if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
				return nil, errDirConflict
			}
			return nil, err
		}
	}
	sub, err := c.root.OpenRoot(dir)
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return nil, errDirConflict
		}
		return nil, err
	}
	f, err := sub.Open(".")
	if err != nil {
		sub.Close()
		return nil, err
	}
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		sub.Close()
		return nil, err
	}
	d := &dirEntry{name: dir, root: sub, dir: f, raw: raw, hooks: c.hooks}
	d.syncCond.L = &d.syncMu
	return d, nil
}

// release gives back an entry from peek or acquire.
func (c *dirCache) release(d *dirEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unrefLocked(d)
}

func (c *dirCache) unrefLocked(d *dirEntry) {
	d.refs--
	if d.refs == 0 {
		c.live--
		d.close()
	}
}

// drop forgets dir's entry, if d is still it: the directory was removed (by
// Delete's prune, or behind the Store's back).
func (c *dirCache) drop(d *dirEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[d.name] == d {
		c.dropLocked(d)
	}
}

// dropName forgets the entry of dir, if any.
func (c *dirCache) dropName(dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.m[dir]; d != nil {
		c.dropLocked(d)
	}
}

func (c *dirCache) dropLocked(d *dirEntry) {
	if d.dropped {
		return
	}
	d.dropped = true
	c.lru.Remove(d.elem)
	delete(c.m, d.name)
	c.unrefLocked(d)
}

// close drops every entry; later acquires fail with os.ErrClosed.
func (c *dirCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for c.lru.Len() > 0 {
		c.dropLocked(c.lru.Front().Value.(*dirEntry))
	}
}
