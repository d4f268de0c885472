package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

// badKeys must be refused by every method. They are the shapes of traversal
// and confusion that reach a store when a caller forgets to validate.
var badKeys = []string{
	"", "../x", "a/../../x", "/abs", "a//b", "a/", "%2e%2e", "%2e%2e/x", "a/%2fb",
	".", "..", "a/./b", ".tmp/x", "a/.hidden", `a\b`, `..\x`, "a\x00b", "a\nb", "a b",
}

func testInvalidKeys(t *testing.T, st store.Store) {
	ctx := testCtx(t)
	for _, k := range badKeys {
		_, err := st.Put(ctx, k, bytes.NewReader([]byte("evil")), store.Meta{})
		wantErrIs(t, fmt.Sprintf("Put(%q)", k), err, keys.ErrInvalid)
		_, err = st.Put(ctx, k, bytes.NewReader([]byte("evil")), store.Meta{IfNoneMatch: "*"})
		wantErrIs(t, fmt.Sprintf("Put(%q, IfNoneMatch)", k), err, keys.ErrInvalid)
		rc, _, err := st.Get(ctx, k)
		if err == nil {
			rc.Close()
		}
		wantErrIs(t, fmt.Sprintf("Get(%q)", k), err, keys.ErrInvalid)
		rc, _, err = st.GetRange(ctx, k, 0, 1)
		if err == nil {
			rc.Close()
		}
		wantErrIs(t, fmt.Sprintf("GetRange(%q)", k), err, keys.ErrInvalid)
		_, err = st.Stat(ctx, k)
		wantErrIs(t, fmt.Sprintf("Stat(%q)", k), err, keys.ErrInvalid)
		if k != "" {
			err = st.Delete(ctx, "fine/key", k)
			wantErrIs(t, fmt.Sprintf("Delete(%q)", k), err, keys.ErrInvalid)
		}
	}
	for _, p := range []string{"/", "../", "..", "%2e%2e/", "a//", "/abs", ".tmp/", ".", "a/../"} {
		err := st.List(ctx, p, func(store.Info) error { return nil })
		wantErrIs(t, fmt.Sprintf("List(%q)", p), err, keys.ErrInvalid)
	}
	if got := listKeys(t, st, ""); len(got) != 0 {
		t.Fatalf("objects visible after refused Puts: %q", got)
	}

	// A Delete with one invalid key deletes none of the others.
	put(t, st, "fine/key", []byte("x"), store.Meta{})
	err := st.Delete(ctx, "fine/key", "../x")
	wantErrIs(t, "Delete with an invalid key", err, keys.ErrInvalid)
	wantContent(t, st, "fine/key", []byte("x"))
}

func testInvalidMeta(t *testing.T, st store.Store) {
	ctx := testCtx(t)
	for _, m := range []store.Meta{
		{IfNoneMatch: `"abc"`},
		{IfNoneMatch: "*", IfMatch: `"abc"`},
		{Class: "video"},
		{Size: -1},
	} {
		if _, err := st.Put(ctx, "meta/bad", bytes.NewReader([]byte("x")), m); err == nil {
			t.Errorf("Put with Meta %+v succeeded, want an error", m)
		}
	}
	wantAbsent(t, st, "meta/bad")
}

func testSizeMismatch(t *testing.T, st store.Store) {
	ctx := testCtx(t)
	for _, c := range []struct {
		name string
		body int
		size int64
	}{
		{"short", 9, 10},
		{"long", 11, 10},
		{"shortLarge", 3 << 20, 4 << 20},
		{"longLarge", 4<<20 + 1, 4 << 20},
		{"longBeyondPart", 24 << 20, 20 << 20},
		{"shortBeyondPart", 20 << 20, 24 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := "size/" + c.name
			_, err := st.Put(ctx, key, readerOnly(pattern(c.name, c.body)), store.Meta{Size: c.size})
			wantErrIs(t, "Put", err, store.ErrSize)
			wantAbsent(t, st, key)

			// A failed overwrite leaves the old version.
			old := put(t, st, key, []byte("old"), store.Meta{})
			_, err = st.Put(ctx, key, readerOnly(pattern(c.name, c.body)), store.Meta{Size: c.size})
			wantErrIs(t, "overwriting Put", err, store.ErrSize)
			if info := wantContent(t, st, key, []byte("old")); info.ETag != old.ETag {
				t.Fatalf("ETag changed by a failed Put")
			}
		})
	}
	// The exact size works, in both ways of sending.
	for _, n := range []int{10, 4 << 20, 20 << 20} {
		data := pattern("exact", n)
		key := fmt.Sprintf("size/exact-%d", n)
		if _, err := st.Put(ctx, key, readerOnly(data), store.Meta{Size: int64(n)}); err != nil {
			t.Fatalf("Put with the exact size %d: %v", n, err)
		}
		wantContent(t, st, key, data)
	}
}

// chunkReader yields chunks of a pattern; after `after` bytes it calls hook
// once (if set) and, if fail is set, returns fail instead of more data. It
// ends after total bytes.
type chunkReader struct {
	n, after, total int
	hook            func()
	fail            error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.n >= r.after {
		if r.hook != nil {
			r.hook()
			r.hook = nil
		}
		if r.fail != nil {
			return 0, r.fail
		}
	}
	if r.n >= r.total {
		return 0, io.EOF
	}
	k := min(len(p), 32<<10, r.total-r.n)
	for i := range k {
		p[i] = byte(r.n + i)
	}
	r.n += k
	return k, nil
}

// failureSizes are the body shapes a failure is tried with: small and large
// bodies, with and without a known size.
var failureSizes = []struct {
	name         string
	after, total int
	known        bool
}{
	{"small", 100 << 10, 1 << 20, false},
	{"smallKnownSize", 100 << 10, 1 << 20, true},
	{"large", 12 << 20, 24 << 20, false},
	{"largeKnownSize", 12 << 20, 24 << 20, true},
}

func testCancelledPut(t *testing.T, st store.Store) {
	for _, c := range failureSizes {
		t.Run(c.name, func(t *testing.T) {
			for _, overwrite := range []bool{false, true} {
				key := fmt.Sprintf("cancel/%s-%v", c.name, overwrite)
				var old store.Info
				if overwrite {
					old = put(t, st, key, []byte("old"), store.Meta{})
				}
				ctx, cancel := context.WithCancel(testCtx(t))
				r := &chunkReader{after: c.after, total: c.total, hook: cancel}
				m := store.Meta{}
				if c.known {
					m.Size = int64(c.total)
				}
				_, err := st.Put(ctx, key, r, m)
				cancel()
				wantErrIs(t, "Put with a context cancelled mid-body", err, context.Canceled)
				if overwrite {
					if info := wantContent(t, st, key, []byte("old")); info.ETag != old.ETag {
						t.Fatalf("ETag changed by a cancelled Put")
					}
				} else {
					wantAbsent(t, st, key)
				}
			}
		})
	}
	// A context cancelled before Put writes nothing.
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	_, err := st.Put(ctx, "cancel/before", bytes.NewReader([]byte("x")), store.Meta{})
	wantErrIs(t, "Put with a cancelled context", err, context.Canceled)
	wantAbsent(t, st, "cancel/before")
}

func testFailingReader(t *testing.T, st store.Store) {
	errBoom := errors.New("source connection reset")
	for _, c := range failureSizes {
		t.Run(c.name, func(t *testing.T) {
			for _, overwrite := range []bool{false, true} {
				key := fmt.Sprintf("fail/%s-%v", c.name, overwrite)
				var old store.Info
				if overwrite {
					old = put(t, st, key, []byte("old"), store.Meta{})
				}
				r := &chunkReader{after: c.after, total: c.total, fail: errBoom}
				m := store.Meta{}
				if c.known {
					m.Size = int64(c.total)
				}
				_, err := st.Put(testCtx(t), key, r, m)
				wantErrIs(t, "Put with a failing body", err, errBoom)
				if overwrite {
					if info := wantContent(t, st, key, []byte("old")); info.ETag != old.ETag {
						t.Fatalf("ETag changed by a failed Put")
					}
				} else {
					wantAbsent(t, st, key)
				}
			}
		})
	}
}
