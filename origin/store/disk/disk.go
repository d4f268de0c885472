// Package disk is the embedded store.Store backend: objects are files under
// one root directory. It is the default for dev mode and single-machine runs.
//
// Layout: the object "live/cam/seg1.m4s" is the file <root>/live/cam/seg1.m4s.
// Each file holds the object's bytes followed by a small binary trailer
// (ETag, content type, cache control, class, write time) and a fixed-size
// footer, so one rename makes data and metadata visible together (files with
// the JSON trailer of earlier versions stay readable). A Put writes a
// temporary file ".tmp-…" in the object's own directory and renames it over
// the key; a leading dot can never start a valid key segment (see
// keys.ParseRelPath), so temporary files never collide with objects and List
// never reports them. New removes those a crashed process left behind.
//
// Every path is resolved through an os.Root, so neither a key nor a symbolic
// link planted inside the root can reach a file outside it; every key and
// prefix is also checked with keys.ValidateObjectKey / keys.ValidatePrefix.
// The directories Puts write into are resolved once and kept open (a bounded
// cache of sub-roots): a Put into a stream's directory then costs
// single-component system calls on that directory, never a walk of its path.
//
// Durability: once Put returns nil the object survives a crash of the
// process or of the machine, as far as the disk honours fsync. The
// temporary file (data and trailer) is fsynced before the rename, and Put
// returns only after an fsync of the directory that started after its
// rename has completed. Concurrent Puts into one directory share that
// directory fsync (group commit): while one runs, the Puts that renamed
// meanwhile wait for the next, which covers them all. A failed directory
// fsync is not reported, because the object is already visible and an error
// from Put means nothing new is. Delete does not fsync: a deletion a crash
// undoes is repeated by the next expiry sweep.
//
// One process, one Store per root: conditional Puts are made race-free by
// locks inside the Store value, not by the file system, so two processes (or
// two Store values) writing the same root can both win a conditional Put.
//
// ETags are unique per Put, made of the size, the write time and a per-Store
// random number with a counter; the body is not hashed. So, unlike S3
// (store.Info allows either), a Put of the same bytes gets a new ETag: every
// caller uses ETags to detect a change (If-Match fencing, HTTP validators),
// for which a new version with a new ETag is always correct, and hashing was
// a measurable share of a Put's CPU.
//
// Unlike S3, a key cannot be both an object and the parent of objects: with
// "a/b" stored, a Put of "a" fails (and vice versa) with an error that says
// so.
package disk

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

// tempPrefix starts the name of a Put in progress. Its leading dot keeps it
// out of the key space.
const tempPrefix = ".tmp-"

// legacyTmpDir held the Puts in progress of earlier versions; New still
// clears leftovers from it.
const legacyTmpDir = ".tmp"

// staleTemp is the age after which New removes leftovers of crashed Puts.
// Younger files may belong to a Put still running in another Store value.
const staleTemp = time.Hour

// lockStripes bounds the memory of the per-key locks; keys that share a
// stripe only serialise their commits, which take microseconds.
const lockStripes = 256

var _ store.Store = (*Store)(nil)

// Store is a store.Store on a local directory. It is safe for concurrent use
// by many goroutines of one process; see the package comment for the limits.
type Store struct {
	root *os.Root
	dirc *dirCache

	// id is random per Store value and seq counts its Puts: with the write
	// time they make ETags and temporary file names unique.
	id  uint64
	seq atomic.Uint64

	// stripes serialise the commit (condition check + rename) and the
	// removal of one key, which makes conditional Puts race-free.
	stripes [lockStripes]sync.Mutex

	// dirs: Puts hold it shared while they resolve (and create) a directory
	// and create their temporary file in it, after which that file keeps the
	// directory from being empty; Delete holds it exclusively while it prunes
	// empty directories and drops them from the cache, so a prune never
	// removes a directory a Put is about to write into.
	dirs sync.RWMutex
}

// New opens (creating it if needed) the store rooted at dir. The caller must
// Close the Store when done.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("disk: root directory is required")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("disk: create root: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("disk: open root: %w", err)
	}
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand)
	s := &Store{root: root, dirc: newDirCache(root), id: binary.LittleEndian.Uint64(id[:])}
	s.removeStaleTemps(root, 0, false)
	return s, nil
}

// Close releases the root directory and the cached directories. Readers
// returned by Get stay usable.
func (s *Store) Close() error {
	s.dirc.close()
	return s.root.Close()
}

// maxCleanDepth bounds the recursion of removeStaleTemps; keys are far
// shallower (keys.ValidateObjectKey).
const maxCleanDepth = 32

// removeStaleTemps deletes temporary files a crashed process left behind in
// r and the directories below it (in legacy, the old .tmp directory, every
// file is one). It runs once, in New: one directory read per directory, the
// cost of one List of everything. Best effort: a failure here only costs disk
// space.
func (s *Store) removeStaleTemps(r *os.Root, depth int, legacy bool) {
	d, err := r.Open(".")
	if err != nil {
		return
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir() && depth < maxCleanDepth && !legacy && (!strings.HasPrefix(name, ".") || depth == 0 && name == legacyTmpDir):
			if sub, err := r.OpenRoot(name); err == nil {
				s.removeStaleTemps(sub, depth+1, name == legacyTmpDir)
				sub.Close()
			}
		case e.Type().IsRegular() && (legacy || strings.HasPrefix(name, tempPrefix)):
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
				_ = r.Remove(name)
			}
		}
	}
}

// stripe is the lock of key: FNV-1a of the key, inline so it costs no
// allocation.
func (s *Store) stripe(key string) *sync.Mutex {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return &s.stripes[h%lockStripes]
}

// splitKey returns the directory of key ("." at the top) and its last
// segment.
func splitKey(key string) (dir, base string) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return ".", key
	}
	return key[:i], key[i+1:]
}

// Put implements store.Store. The body goes to a temporary file in the key's
// directory that is fsynced and then renamed over the key; the rename is the
// moment the object becomes visible, and Put returns once a directory fsync
// covering it has completed (see the package comment). On any error the
// temporary file is removed.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, m store.Meta) (store.Info, error) {
	if err := keys.ValidateObjectKey(key); err != nil {
		return store.Info{}, fmt.Errorf("disk: put: %w", err)
	}
	if err := m.Validate(); err != nil {
		return store.Info{}, fmt.Errorf("disk: put %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return store.Info{}, fmt.Errorf("disk: put %q: %w", key, err)
	}
	dir, base := splitKey(key)
	seq := s.seq.Add(1)
	d, tmpName, f, err := s.createTemp(dir, seq)
	if err != nil {
		if errors.Is(err, errDirConflict) {
			return store.Info{}, fmt.Errorf("disk: put %q: %w", key, errConflict(key))
		}
		return store.Info{}, fmt.Errorf("disk: put %q: create temporary file: %w", key, err)
	}
	defer s.dirc.release(d)
	committed := false
	defer func() {
		if !committed {
			_ = f.Close() // may already be closed; the error is then harmless
			_ = d.root.Remove(tmpName)
		}
	}()

	info, err := writeObject(ctx, f, r, m, s.id, seq)
	if err != nil {
		return store.Info{}, fmt.Errorf("disk: put %q: %w", key, err)
	}
	info.Key = key
	if err := f.Sync(); err != nil {
		return store.Info{}, fmt.Errorf("disk: put %q: sync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return store.Info{}, fmt.Errorf("disk: put %q: close: %w", key, err)
	}
	if err := s.commit(ctx, d, tmpName, key, base, m); err != nil {
		return store.Info{}, fmt.Errorf("disk: put %q: %w", key, err)
	}
	committed = true
	d.syncAfterRename()
	return info, nil
}

// createTemp creates the temporary file of Put number seq in dir (creating
// dir if needed) and returns it with dir's held cache entry. It holds dirs
// shared until the file exists, so a prune cannot remove the directory in
// between; afterwards the file keeps the directory non-empty.
func (s *Store) createTemp(dir string, seq uint64) (*dirEntry, string, *tempFile, error) {
	s.dirs.RLock()
	defer s.dirs.RUnlock()
	name := tempName(s.id, seq)
	for attempt := 0; ; attempt++ {
		d, err := s.dirc.acquire(dir)
		if err != nil {
			return nil, "", nil, err
		}
		f, err := createTemp(d, name)
		if err == nil {
			return d, name, f, nil
		}
		s.dirc.release(d)
		// The cached directory was removed behind the Store's back (prune
		// drops its own removals): resolve the path again, once.
		if attempt == 0 && errors.Is(err, fs.ErrNotExist) {
			s.dirc.drop(d)
			continue
		}
		return nil, "", nil, err
	}
}

func tempName(id, seq uint64) string {
	b := make([]byte, 0, len(tempPrefix)+16+1+13)
	b = append(b, tempPrefix...)
	b = strconv.AppendUint(b, id, 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 36)
	return string(b)
}

// newETag makes the ETag of Put number seq of the Store with id: unique per
// Put, so it changes whenever the content may have (see the package
// comment).
func newETag(size int64, written time.Time, id, seq uint64) string {
	b := make([]byte, 0, 2+16*4+3)
	b = append(b, '"')
	b = strconv.AppendUint(b, uint64(size), 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(written.UnixNano()), 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, id, 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 16)
	b = append(b, '"')
	return string(b)
}

// writeObject streams r into f followed by the trailer and footer, and
// returns the Info the object will have (without Key). The body is written
// in full buffers and the trailer goes out with the last one, so a small
// object is one write.
func writeObject(ctx context.Context, f io.Writer, r io.Reader, m store.Meta, id, seq uint64) (store.Info, error) {
	src := r
	if m.Size > 0 {
		// One byte more than announced is enough to detect a long body.
		src = &io.LimitedReader{R: r, N: m.Size + 1}
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	n, fill, err := copyCtx(ctx, f, src, buf)
	if err != nil {
		return store.Info{}, err
	}
	if m.Size > 0 && n != m.Size {
		if n > m.Size {
			return store.Info{}, fmt.Errorf("%w: body longer than Meta.Size %d", store.ErrSize, m.Size)
		}
		return store.Info{}, fmt.Errorf("%w: body has %d bytes, Meta.Size is %d", store.ErrSize, n, m.Size)
	}
	now := time.Now().UTC()
	info := store.Info{
		Size:         n,
		ETag:         newETag(n, now, id, seq),
		Modified:     now,
		ContentType:  m.ContentType,
		CacheControl: m.CacheControl,
		Class:        m.Class,
	}
	if info.ContentType == "" {
		info.ContentType = "application/octet-stream"
	}
	if info.Class == "" {
		info.Class = store.ClassSegment
	}
	if len(buf)-fill < trailerSize(info) { // keep the trailer in buf
		if _, err := f.Write(buf[:fill]); err != nil {
			return store.Info{}, fmt.Errorf("write temporary file: %w", err)
		}
		fill = 0
	}
	tail, err := appendTrailer(buf[:fill], info)
	if err != nil {
		return store.Info{}, err
	}
	if _, err := f.Write(tail); err != nil {
		return store.Info{}, fmt.Errorf("write temporary file: %w", err)
	}
	return info, nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyCtx copies r to w through buf, writing only full buffers, and stops
// when ctx is done. It returns the bytes read and how many of them are still
// in buf, unwritten. It checks ctx between reads: a reader that blocks
// forever is the caller's to unblock.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader, buf []byte) (n int64, fill int, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return n, fill, err
		}
		if fill == len(buf) {
			if _, err := w.Write(buf); err != nil {
				return n, fill, fmt.Errorf("write temporary file: %w", err)
			}
			fill = 0
		}
		nr, rerr := r.Read(buf[fill:])
		fill += nr
		n += int64(nr)
		if rerr == io.EOF {
			return n, fill, nil
		}
		if rerr != nil {
			return n, fill, fmt.Errorf("read body: %w", rerr)
		}
	}
}

// errConflict explains a key that collides with the directory structure.
func errConflict(key string) error {
	return fmt.Errorf("key %q conflicts with stored objects: the disk store cannot hold both an object and objects below the same name", key)
}

// commit checks m's condition against the current object and renames the
// temporary file tmpName of directory d over key (whose last segment is
// base), all under the key's lock. Both names are single components of d,
// so the rename resolves no path.
func (s *Store) commit(ctx context.Context, d *dirEntry, tmpName, key, base string, m store.Meta) error {
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	// A Put cancelled while it waited for the lock must not become visible.
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.IfNoneMatch != "" || m.IfMatch != "" {
		cur, err := statIn(d.root, base)
		exists := err == nil
		if err != nil && !errors.Is(err, store.ErrNotExist) {
			return fmt.Errorf("check condition: %w", err)
		}
		switch {
		case m.IfNoneMatch == "*" && exists:
			return fmt.Errorf("%w: If-None-Match *: object exists", store.ErrPrecondition)
		case m.IfMatch != "" && !exists:
			return fmt.Errorf("%w: If-Match %s: %w", store.ErrPrecondition, m.IfMatch, store.ErrNotExist)
		case m.IfMatch != "" && unquote(cur.ETag) != unquote(m.IfMatch):
			return fmt.Errorf("%w: If-Match %s: current ETag is %s", store.ErrPrecondition, m.IfMatch, cur.ETag)
		}
	}
	// A directory at base cannot be replaced: EISDIR from the kernel,
	// EEXIST from os.Root.
	if err := renameIn(d, tmpName, base); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.EISDIR) {
			return errConflict(key)
		}
		return fmt.Errorf("rename into place: %w", err)
	}
	return nil
}

func unquote(etag string) string {
	if len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"' {
		return etag[1 : len(etag)-1]
	}
	return etag
}

// notExist reports whether err means "no object at this path".
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Get implements store.Store. The reader is an *io.SectionReader over the
// object's data (so it also implements io.Seeker and io.ReaderAt) on a file
// handle opened before Get returns: a later Put or Delete of the key does not
// change what it reads. Read fails once ctx is done.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, store.Info, error) {
	if err := keys.ValidateObjectKey(key); err != nil {
		return nil, store.Info{}, fmt.Errorf("disk: get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Info{}, fmt.Errorf("disk: get %q: %w", key, err)
	}
	f, info, err := s.open(key)
	if err != nil {
		return nil, store.Info{}, fmt.Errorf("disk: get %q: %w", key, err)
	}
	return &objectReader{SectionReader: io.NewSectionReader(f, 0, info.Size), f: f, ctx: ctx}, info, nil
}

// GetRange implements store.Store. length beyond the end is cut at the end;
// offset >= the object's size (including 0 on an empty object) fails with
// ErrRange, as HTTP 416 does. The Info describes the whole object.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, store.Info, error) {
	if err := keys.ValidateObjectKey(key); err != nil {
		return nil, store.Info{}, fmt.Errorf("disk: get range: %w", err)
	}
	if offset < 0 {
		return nil, store.Info{}, fmt.Errorf("disk: get range %q: negative offset %d: %w", key, offset, store.ErrRange)
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Info{}, fmt.Errorf("disk: get range %q: %w", key, err)
	}
	f, info, err := s.open(key)
	if err != nil {
		return nil, store.Info{}, fmt.Errorf("disk: get range %q: %w", key, err)
	}
	if offset >= info.Size {
		f.Close()
		return nil, store.Info{}, fmt.Errorf("disk: get range %q: offset %d, size %d: %w", key, offset, info.Size, store.ErrRange)
	}
	if length < 0 || length > info.Size-offset {
		length = info.Size - offset
	}
	return &objectReader{SectionReader: io.NewSectionReader(f, offset, length), f: f, ctx: ctx}, info, nil
}

// Stat implements store.Store.
func (s *Store) Stat(ctx context.Context, key string) (store.Info, error) {
	if err := keys.ValidateObjectKey(key); err != nil {
		return store.Info{}, fmt.Errorf("disk: stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return store.Info{}, fmt.Errorf("disk: stat %q: %w", key, err)
	}
	info, err := s.stat(key)
	if err != nil {
		return store.Info{}, fmt.Errorf("disk: stat %q: %w", key, err)
	}
	return info, nil
}

func (s *Store) stat(key string) (store.Info, error) {
	f, info, err := s.open(key)
	if err != nil {
		return store.Info{}, err
	}
	f.Close()
	return info, nil
}

// open opens the object file of key and reads its trailer. A missing file, a
// directory or a non-regular file is ErrNotExist. It uses the cached
// directory of key when there is one and resolves the whole path otherwise;
// it never adds to the cache (see dirCache).
func (s *Store) open(key string) (*os.File, store.Info, error) {
	dir, base := splitKey(key)
	var (
		f    *os.File
		info store.Info
		err  error
	)
	if d := s.dirc.peek(dir); d != nil {
		f, info, err = openObject(d.root, base)
		s.dirc.release(d)
	} else {
		f, info, err = openObject(s.root, key)
	}
	if err != nil {
		return nil, store.Info{}, err
	}
	info.Key = key
	return f, info, nil
}

// statIn returns the Info (without Key) of the object file name in r.
func statIn(r *os.Root, name string) (store.Info, error) {
	f, info, err := openObject(r, name)
	if err != nil {
		return store.Info{}, err
	}
	f.Close()
	return info, nil
}

// openObject opens the object file name in r and reads its trailer; the
// Info has no Key.
func openObject(r *os.Root, name string) (*os.File, store.Info, error) {
	f, err := r.Open(name)
	if err != nil {
		if notExist(err) {
			return nil, store.Info{}, store.ErrNotExist
		}
		return nil, store.Info{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, store.Info{}, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, store.Info{}, store.ErrNotExist
	}
	info, err := readTrailer(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, store.Info{}, err
	}
	return f, info, nil
}

// objectReader is the data section of an open object file.
type objectReader struct {
	*io.SectionReader
	f   *os.File
	ctx context.Context
}

func (r *objectReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.SectionReader.Read(p)
}

func (r *objectReader) Close() error { return r.f.Close() }
