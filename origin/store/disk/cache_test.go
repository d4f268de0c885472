package disk_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/disk"
)

func mustPut(t *testing.T, st *disk.Store, key, body string) store.Info {
	t.Helper()
	info, err := st.Put(t.Context(), key, strings.NewReader(body), store.Meta{})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

// TestPutResolvesDirectoryOnce: the Puts of a stream into its directory
// resolve the directory's path once; reads use the open directory too.
func TestPutResolvesDirectoryOnce(t *testing.T) {
	st := newStore(t, t.TempDir())
	const dir = "live/slot/primary/v/tok"
	for i := range 10 {
		mustPut(t, st, fmt.Sprintf("%s/seg%d.m4s", dir, i), "x")
	}
	if _, err := st.Stat(t.Context(), dir+"/seg3.m4s"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(t.Context(), dir+"/seg0.m4s"); err != nil {
		t.Fatal(err)
	}
	hits, misses, open := disk.DirCacheStats(st)
	if misses != 1 || hits != 11 || open != 1 {
		t.Fatalf("after 10 Puts, a Stat and a Delete in one directory: %d hits, %d misses, %d open; want 11, 1, 1", hits, misses, open)
	}
	mustPut(t, st, "live/slot/primary/a/tok/seg0.m4s", "x")
	if _, misses, open := disk.DirCacheStats(st); misses != 2 || open != 2 {
		t.Fatalf("a Put into a second directory: %d misses, %d open; want 2, 2", misses, open)
	}
}

// TestDirCacheBounded: the cache holds at most its size in directories, and
// Close closes them all.
func TestDirCacheBounded(t *testing.T) {
	st, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	disk.SetDirCacheSize(st, 2)
	for i := range 5 {
		mustPut(t, st, fmt.Sprintf("live/s%d/obj", i), "x")
		if _, _, open := disk.DirCacheStats(st); open > 2 {
			t.Fatalf("after %d directories: %d open, want at most 2", i+1, open)
		}
		if n := disk.OpenDirEntries(st); n > 2 {
			t.Fatalf("after %d directories: %d entries not closed, want at most 2", i+1, n)
		}
	}
	// An evicted directory is resolved again and still works.
	mustPut(t, st, "live/s0/obj2", "y")
	if _, misses, _ := disk.DirCacheStats(st); misses != 6 {
		t.Fatalf("%d misses, want 6", misses)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if n := disk.OpenDirEntries(st); n != 0 {
		t.Fatalf("after Close: %d directory entries open", n)
	}
	if _, err := st.Put(t.Context(), "live/s1/late", strings.NewReader("x"), store.Meta{}); err == nil {
		t.Fatal("Put after Close succeeded")
	}
}

// TestPruneDropsCachedDirectory: a directory Delete prunes is dropped from
// the cache, so the next Put makes it again instead of writing into the
// removed one.
func TestPruneDropsCachedDirectory(t *testing.T) {
	dir := t.TempDir()
	st := newStore(t, dir)
	mustPut(t, st, "live/s/primary/seg1", "x")
	if err := st.Delete(t.Context(), "live/s/primary/seg1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "live")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty directories not pruned: %v", err)
	}
	if _, _, open := disk.DirCacheStats(st); open != 0 {
		t.Fatalf("%d directories cached after the prune, want 0", open)
	}
	mustPut(t, st, "live/s/primary/seg2", "y")
	if b, err := os.ReadFile(filepath.Join(dir, "live", "s", "primary", "seg2")); err != nil || !bytes.HasPrefix(b, []byte("y")) {
		t.Fatalf("object after the prune: %q, %v", b, err)
	}

	// A directory removed behind the Store's back is resolved again too.
	if err := os.RemoveAll(filepath.Join(dir, "live")); err != nil {
		t.Fatal(err)
	}
	mustPut(t, st, "live/s/primary/seg3", "z")
	if _, err := os.Stat(filepath.Join(dir, "live", "s", "primary", "seg3")); err != nil {
		t.Fatalf("Put after an outside removal: %v", err)
	}
}

// TestGroupCommit: Puts that rename while a directory fsync runs wait for
// the next one, which starts after all their renames and covers them all.
func TestGroupCommit(t *testing.T) {
	st := newStore(t, t.TempDir())
	const (
		dir     = "live/g"
		writers = 8
	)
	var (
		mu      sync.Mutex
		gated   bool
		entered = make(chan struct{})
		release = make(chan struct{})
		arrived = make(chan string, writers+2)
	)
	disk.SetSyncHooks(st,
		func(string) { arrived <- "" },
		func(string) {
			mu.Lock()
			g := gated
			gated = false // only the first fsync after arming is held
			mu.Unlock()
			if g {
				entered <- struct{}{}
				<-release
			}
		})
	mustPut(t, st, dir+"/warm", "w") // fsync 1
	<-arrived
	mu.Lock()
	gated = true
	mu.Unlock()

	finishedAt := func(key string, done chan<- uint64) {
		if _, err := st.Put(t.Context(), key, strings.NewReader(key), store.Meta{}); err != nil {
			t.Errorf("Put(%q): %v", key, err)
		}
		_, finished, _ := disk.DirSyncs(st, dir)
		done <- finished
	}
	aDone := make(chan uint64, 1)
	go finishedAt(dir+"/a", aDone)
	<-arrived
	<-entered // fsync 2 runs for a, held

	bDone := make(chan uint64, writers)
	for i := range writers {
		go finishedAt(fmt.Sprintf("%s/b%d", dir, i), bDone)
	}
	for range writers {
		<-arrived // renamed, waiting for an fsync
	}
	select {
	case <-aDone:
		t.Fatal("Put returned before the directory fsync covering its rename completed")
	default:
	}
	close(release)

	if f := <-aDone; f < 2 {
		t.Errorf("a returned with %d directory fsyncs finished, want at least 2", f)
	}
	for range writers {
		if f := <-bDone; f < 3 {
			t.Errorf("b returned with %d directory fsyncs finished; fsync 2 started before its rename, so want at least 3", f)
		}
	}
	started, finished, _ := disk.DirSyncs(st, dir)
	if started != 3 || finished != 3 {
		t.Fatalf("%d Puts: %d directory fsyncs started, %d finished; want 3 (warm, a, all b together)", writers+2, started, finished)
	}
}

// TestSymlinkSwapAfterCaching: replacing a cached directory with a link to
// outside the root does not lead a Put outside; the open directory is still
// the one inside.
func TestSymlinkSwapAfterCaching(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	st := newStore(t, root)
	mustPut(t, st, "live/s/seg1", "x")
	if err := os.Rename(filepath.Join(root, "live", "s"), filepath.Join(root, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "live", "s")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(t.Context(), "live/s/seg2", strings.NewReader("y"), store.Meta{}); err != nil {
		t.Logf("Put after the swap: %v", err)
	}
	// A directory first used after the link was planted is refused.
	if err := os.Symlink(outside, filepath.Join(root, "live", "t")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(t.Context(), "live/t/seg1", strings.NewReader("y"), store.Meta{}); err == nil {
		t.Error("Put through a link planted before first use succeeded")
	}
	if entries, err := os.ReadDir(outside); err != nil || len(entries) != 0 {
		t.Fatalf("outside directory written: %v, %v", entries, err)
	}
}

// TestSameBytesNewETag: the disk store does not hash; every Put is a new
// version with a new ETag, even of the same bytes.
func TestSameBytesNewETag(t *testing.T) {
	st := newStore(t, t.TempDir())
	a, b := mustPut(t, st, "k", "same"), mustPut(t, st, "k", "same")
	if a.ETag == b.ETag {
		t.Fatalf("two Puts share ETag %s", a.ETag)
	}
	if _, err := st.Put(t.Context(), "k", strings.NewReader("same"), store.Meta{IfMatch: a.ETag}); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("If-Match the replaced version's ETag: %v, want ErrPrecondition", err)
	}
}

// writeLegacy writes an object file as versions before the binary trailer
// did: data, JSON trailer, footer with magic "liveobj1".
func writeLegacy(t *testing.T, p string, data []byte, etag string, written time.Time) {
	t.Helper()
	tr, err := json.Marshal(map[string]any{
		"size": len(data), "etag": etag, "written": written,
		"content_type": "video/mp4", "cache_control": "max-age=5", "class": "init",
	})
	if err != nil {
		t.Fatal(err)
	}
	var foot [16]byte
	binary.BigEndian.PutUint64(foot[:8], uint64(len(tr)))
	copy(foot[8:], "liveobj1")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, slices.Concat(data, tr, foot[:]), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLegacyTrailerReadable: a data directory written before the binary
// trailer stays readable, and such an object can be replaced If-Match its
// old (MD5) ETag.
func TestLegacyTrailerReadable(t *testing.T) {
	dir := t.TempDir()
	written := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	const etag = `"5d41402abc4b2a76b9719d911017c592"`
	writeLegacy(t, filepath.Join(dir, "live", "s", "init.mp4"), []byte("hello"), etag, written)
	st := newStore(t, dir)
	ctx := t.Context()

	want := store.Info{Key: "live/s/init.mp4", Size: 5, ETag: etag, Modified: written,
		ContentType: "video/mp4", CacheControl: "max-age=5", Class: store.ClassInit}
	info, err := st.Stat(ctx, "live/s/init.mp4")
	if err != nil || info != want {
		t.Fatalf("Stat = %+v, %v; want %+v", info, err, want)
	}
	rc, _, err := st.Get(ctx, "live/s/init.mp4")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "hello" {
		t.Fatalf("Get = %q", b)
	}
	var listed []store.Info
	if err := st.List(ctx, "live/", func(i store.Info) error { listed = append(listed, i); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ETag != etag || listed[0].Size != 5 || !listed[0].Modified.Equal(written) {
		t.Fatalf("List = %+v", listed)
	}
	if _, err := st.Put(ctx, "live/s/init.mp4", strings.NewReader("new"), store.Meta{IfMatch: etag}); err != nil {
		t.Fatalf("Put If-Match the legacy ETag: %v", err)
	}
}

// TestLongMetadata: metadata longer than the one read of a file's tail takes
// the second read.
func TestLongMetadata(t *testing.T) {
	st := newStore(t, t.TempDir())
	cc := strings.Repeat("x", 2000)
	if _, err := st.Put(t.Context(), "k", strings.NewReader("body"), store.Meta{CacheControl: cc}); err != nil {
		t.Fatal(err)
	}
	info, err := st.Stat(t.Context(), "k")
	if err != nil || info.CacheControl != cc || info.Size != 4 {
		t.Fatalf("Stat: Size %d, CacheControl of %d bytes, %v", info.Size, len(info.CacheControl), err)
	}
}

// TestBodyFillingTheBuffer: a body whose last write leaves no room for the
// trailer in the copy buffer still gets its trailer.
func TestBodyFillingTheBuffer(t *testing.T) {
	st := newStore(t, t.TempDir())
	for _, n := range []int{256<<10 - 20, 256 << 10, 256<<10 + 1, 512<<10 - 1} {
		data := bytes.Repeat([]byte{'q'}, n)
		if _, err := st.Put(t.Context(), "k", bytes.NewReader(data), store.Meta{}); err != nil {
			t.Fatal(err)
		}
		rc, info, err := st.Get(t.Context(), "k")
		if err != nil {
			t.Fatalf("%d bytes: Get: %v", n, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(b, data) || info.Size != int64(n) {
			t.Fatalf("%d bytes: read back %d (Info.Size %d)", n, len(b), info.Size)
		}
	}
}

// TestStaleTempsRemoved: New removes old temporary files of crashed Puts
// wherever they are (and in the .tmp directory of earlier versions) and
// keeps young ones, which may belong to a running Put.
func TestStaleTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	files := map[string]bool{ // path → removed by New
		"live/s/.tmp-dead-1": true,
		"live/s/.tmp-live-2": false,
		".tmp/legacy":        true,
		"live/s/seg1":        false,
		"live/.other":        false,
	}
	for name, stale := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if stale || name == "live/s/seg1" || name == "live/.other" {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	newStore(t, dir)
	for name, removed := range files {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name)))
		if gone := errors.Is(err, os.ErrNotExist); gone != removed {
			t.Errorf("%s: removed %v, want %v (%v)", name, gone, removed, err)
		}
	}
}
