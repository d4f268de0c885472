package disk_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/disk"
	"github.com/liveingest/liveingest/origin/store/storetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newStore(t testing.TB, dir string) *disk.Store {
	t.Helper()
	st, err := disk.New(dir)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newStore(t, t.TempDir()) })
}

// tempFiles lists the temporary files anywhere under the store at dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), ".tmp") {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return names
}

// failAfter yields n bytes, then fails.
type failAfter struct{ n int }

var errSource = errors.New("source gone")

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errSource
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

func TestFailedPutRemovesTempFile(t *testing.T) {
	dir := t.TempDir()
	st := newStore(t, dir)
	ctx := t.Context()
	cases := map[string]func() error{
		"reader error": func() error {
			_, err := st.Put(ctx, "a/b", &failAfter{n: 1 << 20}, store.Meta{})
			return err
		},
		"size mismatch": func() error {
			_, err := st.Put(ctx, "a/b", bytes.NewReader([]byte("short")), store.Meta{Size: 10})
			return err
		},
		"precondition": func() error {
			if _, err := st.Put(ctx, "a/c", bytes.NewReader([]byte("x")), store.Meta{}); err != nil {
				return nil // reported as "succeeded" below
			}
			_, err := st.Put(ctx, "a/c", bytes.NewReader([]byte("y")), store.Meta{IfNoneMatch: "*"})
			return err
		},
		"cancelled": func() error {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := st.Put(ctx, "a/d", bytes.NewReader([]byte("x")), store.Meta{})
			return err
		},
	}
	for name, put := range cases {
		if err := put(); err == nil {
			t.Fatalf("%s: Put succeeded", name)
		}
		if tmp := tempFiles(t, dir); len(tmp) != 0 {
			t.Fatalf("%s: temporary files left: %q", name, tmp)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a/b exists after failed Puts: %v", err)
	}
}

// TestSymlinkEscape plants links inside the root that point outside; no
// operation may read or write through them.
func TestSymlinkEscape(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("do not serve"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := newStore(t, root)
	ctx := t.Context()
	if err := os.Symlink(outside, filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}

	if _, err := st.Put(ctx, "evil/planted", bytes.NewReader([]byte("x")), store.Meta{}); err == nil {
		t.Error("Put through a directory link to outside the root succeeded")
	}
	if _, _, err := st.Get(ctx, "evil/secret"); err == nil {
		t.Error("Get through a directory link to outside the root succeeded")
	}
	if _, err := st.Stat(ctx, "link"); err == nil {
		t.Error("Stat of a file link to outside the root succeeded")
	}
	if err := st.Delete(ctx, "evil/secret"); err != nil {
		t.Logf("Delete through the link: %v", err)
	}
	// A Put of the link's own name replaces the link, not its target.
	if _, err := st.Put(ctx, "link", bytes.NewReader([]byte("replaced")), store.Meta{}); err != nil {
		t.Fatalf("Put over a link: %v", err)
	}
	var listed []string
	if err := st.List(ctx, "", func(i store.Info) error { listed = append(listed, i.Key); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(listed, []string{"link"}) {
		t.Errorf("List = %q, want only the object that replaced the link", listed)
	}

	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "secret" {
		t.Fatalf("outside directory changed: %v", entries)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "do not serve" {
		t.Fatalf("outside file changed: %q, %v", b, err)
	}
}

// TestInvalidKeysTouchNothing checks the file system, not just the store's
// view, after traversal attempts.
func TestInvalidKeysTouchNothing(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	st := newStore(t, root)
	for _, k := range []string{"../x", "../../x", "/abs", "a//b", "%2e%2e", ".tmp/x", `..\x`} {
		if _, err := st.Put(t.Context(), k, bytes.NewReader([]byte("x")), store.Meta{}); !errors.Is(err, keys.ErrInvalid) {
			t.Errorf("Put(%q): %v, want ErrInvalid", k, err)
		}
	}
	var files []string
	_ = filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Fatalf("files written: %q", files)
	}
}

func TestDirectoryConflicts(t *testing.T) {
	st := newStore(t, t.TempDir())
	ctx := t.Context()
	if _, err := st.Put(ctx, "a/b", bytes.NewReader([]byte("x")), store.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "a", bytes.NewReader([]byte("y")), store.Meta{}); err == nil {
		t.Error("Put of a key that is a directory succeeded")
	} else {
		t.Logf("Put(a): %v", err)
	}
	if _, err := st.Put(ctx, "a/b/c", bytes.NewReader([]byte("y")), store.Meta{}); err == nil {
		t.Error("Put below an object succeeded")
	} else {
		t.Logf("Put(a/b/c): %v", err)
	}
	if _, err := st.Stat(ctx, "a"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat of a directory: %v, want ErrNotExist", err)
	}
	if err := st.Delete(ctx, "a"); err != nil {
		t.Errorf("Delete of a directory name: %v", err)
	}
	if _, err := st.Stat(ctx, "a/b"); err != nil {
		t.Errorf("Delete of the directory name removed its objects: %v", err)
	}
}

func TestForeignFilesAreSkipped(t *testing.T) {
	dir := t.TempDir()
	st := newStore(t, dir)
	ctx := t.Context()
	if _, err := st.Put(ctx, "live/ok", bytes.NewReader([]byte("x")), store.Meta{}); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"live/foreign":       "not an object file", // no footer
		".tmp/inflight":      "partial",
		"live/.hidden":       "x",
		"live/bad name":      "x",
		"live/.tmp/whatever": "x",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var listed []string
	if err := st.List(ctx, "", func(i store.Info) error { listed = append(listed, i.Key); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(listed, []string{"live/ok"}) {
		t.Fatalf("List = %q, want only live/ok", listed)
	}
	if _, err := st.Stat(ctx, "live/foreign"); err == nil {
		t.Fatal("Stat of a foreign file succeeded")
	}
}

func TestGetIsSeekable(t *testing.T) {
	st := newStore(t, t.TempDir())
	ctx := t.Context()
	if _, err := st.Put(ctx, "s", bytes.NewReader([]byte("0123456789")), store.Meta{}); err != nil {
		t.Fatal(err)
	}
	rc, _, err := st.Get(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sk, ok := rc.(io.ReadSeeker)
	if !ok {
		t.Fatalf("Get reader %T is not an io.Seeker", rc)
	}
	if end, err := sk.Seek(0, io.SeekEnd); err != nil || end != 10 {
		t.Fatalf("Seek end = %d, %v; want 10 (the data only, not the trailer)", end, err)
	}
	if _, err := sk.Seek(7, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(sk); string(b) != "789" {
		t.Fatalf("read after Seek = %q", b)
	}
}

// TestStalledReaderKeepsOldVersion is stricter than the conformance suite:
// a reader that pauses across a whole overwrite (and a delete) still reads
// the version it opened, because it holds that file open.
func TestStalledReaderKeepsOldVersion(t *testing.T) {
	st := newStore(t, t.TempDir())
	ctx := t.Context()
	v1, v2 := bytes.Repeat([]byte{'1'}, 1<<20), bytes.Repeat([]byte{'2'}, 1<<20)
	if _, err := st.Put(ctx, "v", bytes.NewReader(v1), store.Meta{}); err != nil {
		t.Fatal(err)
	}
	rc, _, err := st.Get(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	first := make([]byte, 1000)
	if _, err := io.ReadFull(rc, first); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "v", bytes.NewReader(v2), store.Meta{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(first, rest...); !bytes.Equal(got, v1) {
		t.Fatalf("stalled reader read %d bytes, not the version it opened", len(got))
	}
}

func TestDeletePrunesDirectories(t *testing.T) {
	dir := t.TempDir()
	st := newStore(t, dir)
	ctx := t.Context()
	for _, k := range []string{"live/s/primary/seg1", "live/s/primary/seg2", "live/t/x"} {
		if _, err := st.Put(ctx, k, bytes.NewReader([]byte("x")), store.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete(ctx, "live/s/primary/seg1", "live/s/primary/seg2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "live", "s")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty directory live/s not pruned: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "live", "t", "x")); err != nil {
		t.Fatalf("unrelated object gone: %v", err)
	}
}

func TestNewRequiresDir(t *testing.T) {
	if _, err := disk.New(""); err == nil {
		t.Fatal("New(\"\") succeeded")
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := disk.New(f); err == nil {
		t.Fatal("New on a regular file succeeded")
	}
}
