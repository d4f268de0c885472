package disk

// Hooks into the directory cache for the tests of package disk_test.

// DirCacheStats reports the cache's hits and misses (a miss is a resolution
// of a directory's path) and how many directories it holds open.
func DirCacheStats(s *Store) (hits, misses uint64, open int) {
	s.dirc.mu.Lock()
	defer s.dirc.mu.Unlock()
	return s.dirc.hits.Load(), s.dirc.misses.Load(), len(s.dirc.m)
}

// SetDirCacheSize bounds the cache to n directories; call it before any Put.
func SetDirCacheSize(s *Store, n int) { s.dirc.max = n }

// SetSyncHooks makes every Put call wait(dir) when it starts waiting for a
// directory fsync (with the directory's sync lock held: wait must not block)
// and every directory fsync call sync(dir) first. Call it before any Put.
func SetSyncHooks(s *Store, wait, sync func(dir string)) {
	s.dirc.hooks = &syncHooks{wait: wait, sync: sync}
}

// DirSyncs reports how many fsyncs of the cached directory dir started and
// finished; ok is false if dir is not cached.
func DirSyncs(s *Store, dir string) (started, finished uint64, ok bool) {
	s.dirc.mu.Lock()
	defer s.dirc.mu.Unlock()
	d := s.dirc.m[dir]
	if d == nil {
		return 0, 0, false
	}
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	return d.started, d.finished, true
}

// OpenDirEntries counts the cache's entries that are not closed yet,
// including dropped ones still held by an operation.
func OpenDirEntries(s *Store) int {
	s.dirc.mu.Lock()
	defer s.dirc.mu.Unlock()
	return s.dirc.live
}
