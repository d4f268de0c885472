package disk

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
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
	if err := s.walk(ctx, dir, base, fn); err != nil {
		return fmt.Errorf("disk: list %q: %w", prefix, err)
	}
	return nil
}

// walk reports the objects in dir (recursively) whose names start with base.
func (s *Store) walk(ctx context.Context, dir, base string, fn func(store.Info) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d, err := s.root.Open(dir)
	if err != nil {
		if notExist(err) {
			return nil
		}
		return err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		if notExist(err) { // dir was a file, or went away
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
		key := e.de.Name()
		if dir != "." {
			key = dir + "/" + key
		}
		if keys.ValidateObjectKey(key) != nil {
			continue // not a name this store could have written
		}
		if e.de.IsDir() {
			if err := s.walk(ctx, key, "", fn); err != nil {
				return err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := s.stat(key)
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

// remove deletes the object file of key under the key's lock.
func (s *Store) remove(key string) (bool, error) {
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	fi, err := s.root.Lstat(key)
	if err != nil {
		if notExist(err) {
			return false, nil
		}
		return false, err
	}
	if fi.IsDir() {
		return false, nil
	}
	if err := s.root.Remove(key); err != nil && !notExist(err) {
		return false, err
	}
	return true, nil
}

// prune removes the given directories and their parents while they are
// empty. It holds dirs exclusively, so no Put is between creating a
// directory and renaming into it.
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
		}
	}
}
