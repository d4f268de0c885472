package disk

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

// List implements store.Store. It walks the directories below prefix in
// lexical key order; entries whose names start with '.', that are not regular
// files or directories (symbolic links are never followed), that are not
// valid keys, or that are not object files of this package are skipped.
// Objects put or deleted during the walk may or may not be reported.
//
// Each directory is opened once, as a sub-root of its parent, and its objects
// are opened by name in it: a listed object costs an open, an fstat and one
// pread of its tail, not a walk of its path.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := keys.ValidatePrefix(prefix); err != nil {
		return fmt.Errorf("disk: list: %w", err)
	}
	// "live/cam/seg" walks directory "live/cam" for names starting "seg";
	// "live/cam/" walks the same directory for every name.
	dir, base := ".", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir, base = prefix[:i], prefix[i+1:]
	}
	r := s.root
	if dir != "." {
		sub, err := openSubdir(s.root, dir)
		if err != nil {
			if notExist(err) {
				return nil
			}
			return fmt.Errorf("disk: list %q: %w", prefix, err)
		}
		defer sub.Close()
		r = sub
	}
	if err := s.walk(ctx, r, dir, base, fn); err != nil {
		return fmt.Errorf("disk: list %q: %w", prefix, err)
	}
	return nil
}

// walk reports the objects in r, the directory dir, (recursively) whose
// names start with base.
func (s *Store) walk(ctx context.Context, r *os.Root, dir, base string, fn func(store.Info) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d, err := r.Open(".")
	if err != nil {
		if notExist(err) {
			return nil
		}
		return err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		if notExist(err) { // dir went away
			return nil
		}
		return err
	}
	// Sort a directory as "name/" so that its keys fall where they belong
	// among its siblings: "a-b" < "a/c" because '-' < '/'.
	type entry struct {
		sortName string
		de       fs.DirEntry
	}
	list := make([]entry, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasPrefix(name, base) {
			continue
		}
		switch {
		case e.IsDir():
			list = append(list, entry{name + "/", e})
		case e.Type().IsRegular():
			list = append(list, entry{name, e})
		}
	}
	slices.SortFunc(list, func(a, b entry) int { return cmp.Compare(a.sortName, b.sortName) })

	for _, e := range list {
		name := e.de.Name()
		key := name
		if dir != "." {
			key = dir + "/" + name
		}
		if keys.ValidateObjectKey(key) != nil {
			continue // not a name this store could have written
		}
		if e.de.IsDir() {
			sub, err := openSubdir(r, name)
			if err != nil {
				if notExist(err) {
					continue // deleted (or replaced by a file) during the walk
				}
				return err
			}
			err = s.walk(ctx, sub, key, "", fn)
			sub.Close()
			if err != nil {
				return err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := statIn(r, name)
		switch {
		case errors.Is(err, store.ErrNotExist), errors.Is(err, errCorrupt):
			continue // deleted during the walk, or not ours
		case err != nil:
			return err
		}
		if err := fn(store.Info{Key: key, Size: info.Size, ETag: info.ETag, Modified: info.Modified}); err != nil {
			return err
		}
	}
	return nil
}

// openSubdir opens the directory name in r as a sub-root. A name that does
// not exist or is not a directory fails with an error wrapping
// fs.ErrNotExist.
func openSubdir(r *os.Root, name string) (*os.Root, error) {
	sub, err := r.OpenRoot(name)
	if err != nil && !notExist(err) {
		// os.Root reports a file as "not a directory" without an errno.
		if fi, serr := r.Stat(name); serr == nil && !fi.IsDir() {
			return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
	}
	return sub, err
}

// Delete implements store.Store. All keys are validated before any is
// removed. Directories left empty are removed too (best effort). A key that
// names a directory holds no object, so it is left alone like a missing key.
func (s *Store) Delete(ctx context.Context, keyList ...string) error {
	for _, key := range keyList {
		if err := keys.ValidateObjectKey(key); err != nil {
			return fmt.Errorf("disk: delete: %w", err)
		}
	}
	var errs []error
	parents := map[string]bool{}
	for _, key := range keyList {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("disk: delete: %w", err)
		}
		removed, err := s.remove(key)
		if err != nil {
			errs = append(errs, fmt.Errorf("disk: delete %q: %w", key, err))
		}
		if removed {
			if dir := path.Dir(key); dir != "." {
				parents[dir] = true
			}
		}
	}
	s.prune(parents)
	return errors.Join(errs...)
}

// remove deletes the object file of key under the key's lock, in the
// cached directory of key when there is one.
func (s *Store) remove(key string) (bool, error) {
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	r, name := s.root, key
	dir, base := splitKey(key)
	if d := s.dirc.peek(dir); d != nil {
		defer s.dirc.release(d)
		r, name = d.root, base
	}
	fi, err := r.Lstat(name)
	if err != nil {
		if notExist(err) {
			return false, nil
		}
		return false, err
	}
	if fi.IsDir() {
		return false, nil
	}
	if err := r.Remove(name); err != nil && !notExist(err) {
		return false, err
	}
	return true, nil
}

// prune removes the given directories and their parents while they are
// empty, and drops them from the directory cache. It holds dirs exclusively,
// so no Put is between resolving a directory and creating its temporary
// file in it, and no Put can pick up the entry of a removed directory.
func (s *Store) prune(dirs map[string]bool) {
	if len(dirs) == 0 {
		return
	}
	// Deepest first, so a parent is tried after its children.
	list := make([]string, 0, len(dirs))
	for d := range dirs {
		list = append(list, d)
	}
	slices.SortFunc(list, func(a, b string) int {
		return cmp.Or(-cmp.Compare(strings.Count(a, "/"), strings.Count(b, "/")), cmp.Compare(a, b))
	})
	s.dirs.Lock()
	defer s.dirs.Unlock()
	for _, d := range list {
		for ; d != "."; d = path.Dir(d) {
			fi, err := s.root.Lstat(d)
			if err != nil || !fi.IsDir() {
				break
			}
			if s.root.Remove(d) != nil { // not empty (or gone): stop climbing
				break
			}
			s.dirc.dropName(d)
		}
	}
}
