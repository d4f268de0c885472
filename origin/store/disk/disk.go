// Package disk is the embedded store.Store backend: objects are files under
// one root directory. It is the default for dev mode and single-machine runs.
//
// Layout: the object "live/cam/seg1.m4s" is the file <root>/live/cam/seg1.m4s.
// Each file holds the object's bytes followed by a small JSON trailer (ETag,
// content type, cache control, class, write time) and a fixed-size footer,
// so one rename makes data and metadata visible together. Puts are written to
// <root>/.tmp first; a leading dot can never start a valid key segment (see
// keys.ParseRelPath), so temporary files never collide with objects and List
// never reports them.
//
// Every path is resolved through an os.Root, so neither a key nor a symbolic
// link planted inside the root can reach a file outside it; every key and
// prefix is also checked with keys.ValidateObjectKey / keys.ValidatePrefix.
//
// One process, one Store per root: conditional Puts are made race-free by
// locks inside the Store value, not by the file system, so two processes (or
// two Store values) writing the same root can both win a conditional Put.
//
// ETags are the quoted hex MD5 of the data, as S3 computes them for
// single-part objects; a Put of the same bytes keeps the ETag.
//
// Unlike S3, a key cannot be both an object and the parent of objects: with
// "a/b" stored, a Put of "a" fails (and vice versa) with an error that says
// so.
package disk

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

// tmpDir holds Puts in progress. Its leading dot keeps it out of the key space.
const tmpDir = ".tmp"

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

	// stripes serialise the commit (condition check + rename) and the
	// removal of one key, which makes conditional Puts race-free.
	stripes [lockStripes]sync.Mutex

	// dirs: Puts hold it shared while they create parent directories and
	// rename into them; Delete holds it exclusively while it prunes empty
	// directories, so a prune never removes a directory a Put just made.
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
	if err := root.Mkdir(tmpDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		root.Close()
		return nil, fmt.Errorf("disk: create %s: %w", tmpDir, err)
	}
	s := &Store{root: root}
	s.removeStaleTemps()
	return s, nil
}

// Close releases the root directory. Readers returned by Get stay usable.
func (s *Store) Close() error { return s.root.Close() }

// removeStaleTemps deletes temporary files a crashed process left behind.
// Best effort: a failure here only costs disk space.
func (s *Store) removeStaleTemps() {
	d, err := s.root.Open(tmpDir)
	if err != nil {
		return
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			_ = s.root.Remove(path.Join(tmpDir, e.Name()))
		}
	}
}

func (s *Store) stripe(key string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return &s.stripes[h.Sum32()%lockStripes]
}

// Put implements store.Store. The body goes to a temporary file that is
// fsynced and then renamed over the key; the rename is the moment the object
// becomes visible. On any error the temporary file is removed.
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
	tmpName := path.Join(tmpDir, rand.Text())
	f, err := s.root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return store.Info{}, fmt.Errorf("disk: put %q: create temporary file: %w", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = f.Close() // may already be closed; the error is then harmless
			_ = s.root.Remove(tmpName)
		}
	}()

	info, err := writeObject(ctx, f, r, m)
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
	if err := s.commit(ctx, tmpName, key, m); err != nil {
		return store.Info{}, fmt.Errorf("disk: put %q: %w", key, err)
	}
	committed = true
	return info, nil
}

// writeObject streams r into f followed by the trailer and footer, and
// returns the Info the object will have (without Key).
func writeObject(ctx context.Context, f io.Writer, r io.Reader, m store.Meta) (store.Info, error) {
	h := md5.New()
	src := r
	if m.Size > 0 {
		// One byte more than announced is enough to detect a long body.
		src = io.LimitReader(r, m.Size+1)
	}
	n, err := copyCtx(ctx, f, h, src)
	if err != nil {
		return store.Info{}, err
	}
	if m.Size > 0 && n != m.Size {
		if n > m.Size {
			return store.Info{}, fmt.Errorf("%w: body longer than Meta.Size %d", store.ErrSize, m.Size)
		}
		return store.Info{}, fmt.Errorf("%w: body has %d bytes, Meta.Size is %d", store.ErrSize, n, m.Size)
	}
	info := store.Info{
		Size:         n,
		ETag:         `"` + hex.EncodeToString(h.Sum(nil)) + `"`,
		Modified:     time.Now().UTC(),
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
	if err := writeTrailer(f, info); err != nil {
		return store.Info{}, err
	}
	return info, nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyCtx copies r to w, feeding h, and stops when ctx is done. It checks ctx
// between reads: a reader that blocks forever is the caller's to unblock.
func copyCtx(ctx context.Context, w io.Writer, h hash.Hash, r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		nr, rerr := r.Read(buf)
		if nr > 0 {
			if _, err := w.Write(buf[:nr]); err != nil {
				return n, fmt.Errorf("write temporary file: %w", err)
			}
			h.Write(buf[:nr])
			n += int64(nr)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("read body: %w", rerr)
		}
	}
}

// errConflict explains a key that collides with the directory structure.
func errConflict(key string) error {
	return fmt.Errorf("key %q conflicts with stored objects: the disk store cannot hold both an object and objects below the same name", key)
}

// commit checks m's condition against the current object and renames the
// temporary file over key, all under the key's lock.
func (s *Store) commit(ctx context.Context, tmpName, key string, m store.Meta) error {
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	// A Put cancelled while it waited for the lock must not become visible.
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.IfNoneMatch != "" || m.IfMatch != "" {
		cur, err := s.stat(key)
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

	s.dirs.RLock()
	defer s.dirs.RUnlock()
	if dir := path.Dir(key); dir != "." {
		if err := s.root.MkdirAll(dir, 0o755); err != nil {
			if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
				return errConflict(key)
			}
			return fmt.Errorf("create directory: %w", err)
		}
	}
	if fi, err := s.root.Lstat(key); err == nil && fi.IsDir() {
		return errConflict(key)
	}
	if err := s.root.Rename(tmpName, key); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	// Make the rename durable; the object is already visible, so a failure
	// here is not an error of the Put.
	if d, err := s.root.Open(path.Dir(key)); err == nil {
		_ = d.Sync()
		_ = d.Close()
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
// directory or a non-regular file is ErrNotExist.
func (s *Store) open(key string) (*os.File, store.Info, error) {
	f, err := s.root.Open(key)
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
	info.Key = key
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
