// Package storetest is the conformance suite every store.Store backend
// passes. A backend's test calls Run with a constructor of empty stores:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return newEmptyStore(t) })
//	}
//
// The subtests run one after another (the large-object test measures the
// heap), each with a fresh store from newStore, which must register its own
// cleanup with t. Nothing here sleeps to hope for timing: goroutines are
// synchronised with channels and every wait has a deadline.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/store"
)

// opTimeout bounds every wait of the suite; a backend that hangs fails
// instead of stalling the test binary until its global timeout.
const opTimeout = 2 * time.Minute

// Run runs the conformance suite against the stores newStore returns.
// newStore is called once per subtest and must return an empty store.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"NotVisibleBeforePutReturns", testNotVisibleBeforePut},
		{"ReaderSeesOneVersion", testReaderSeesOneVersion},
		{"NotExist", testNotExist},
		{"Overwrite", testOverwrite},
		{"Metadata", testMetadata},
		{"EmptyObject", testEmptyObject},
		{"ConditionalPut", testConditionalPut},
		{"ConditionalPutLargeBody", testConditionalLarge},
		{"ConditionalCreateRace", testCreateRace},
		{"ConditionalReplaceRace", testReplaceRace},
		{"List", testList},
		{"ListStopsOnError", testListStops},
		{"ListInfo", testListInfo},
		{"Delete", testDelete},
		{"DeleteMoreThan1000", testDeleteMany},
		{"ConcurrentPutsOfDifferentKeys", testConcurrentPuts},
		{"InvalidKeys", testInvalidKeys},
		{"InvalidMeta", testInvalidMeta},
		{"SizeMismatch", testSizeMismatch},
		{"CancelledPut", testCancelledPut},
		{"FailingReader", testFailingReader},
		{"GetRange", testGetRange},
		{"LargeObjectStreams", testLargeObject},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// testCtx is the context of one subtest: cancelled when the subtest ends or
// after opTimeout.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

// put stores data under key and checks the Info that Put returns.
func put(t *testing.T, st store.Store, key string, data []byte, m store.Meta) store.Info {
	t.Helper()
	info, err := st.Put(testCtx(t), key, bytes.NewReader(data), m)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if info.Key != key || info.Size != int64(len(data)) || info.ETag == "" {
		t.Fatalf("Put(%q) returned %+v, want Key %q, Size %d and an ETag", key, info, key, len(data))
	}
	return info
}

// get reads the whole object.
func get(t *testing.T, st store.Store, key string) ([]byte, store.Info) {
	t.Helper()
	rc, info, err := st.Get(testCtx(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	return b, info
}

// wantContent checks that key holds exactly want.
func wantContent(t *testing.T, st store.Store, key string, want []byte) store.Info {
	t.Helper()
	got, info := get(t, st, key)
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes %q…, want %d bytes %q…", key, len(got), head(got), len(want), head(want))
	}
	if info.Size != int64(len(want)) {
		t.Fatalf("Get(%q) Info.Size = %d, want %d", key, info.Size, len(want))
	}
	return info
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

// wantErrIs fails unless err wraps target.
func wantErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want one wrapping %v", what, err, target)
	}
}

// wantAbsent checks that key is visible through none of Get, GetRange, Stat
// and List.
func wantAbsent(t *testing.T, st store.Store, key string) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := st.Stat(ctx, key); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("Stat(%q): error %v, want ErrNotExist", key, err)
	}
	if rc, _, err := st.Get(ctx, key); !errors.Is(err, store.ErrNotExist) {
		if err == nil {
			rc.Close()
		}
		t.Fatalf("Get(%q): error %v, want ErrNotExist", key, err)
	}
	if rc, _, err := st.GetRange(ctx, key, 0, 1); !errors.Is(err, store.ErrNotExist) {
		if err == nil {
			rc.Close()
		}
		t.Fatalf("GetRange(%q): error %v, want ErrNotExist", key, err)
	}
	if slices.Contains(listKeys(t, st, ""), key) {
		t.Fatalf("List lists %q", key)
	}
}

// listKeys returns the keys List reports for prefix, in the order reported.
func listKeys(t *testing.T, st store.Store, prefix string) []string {
	t.Helper()
	var got []string
	err := st.List(testCtx(t), prefix, func(i store.Info) error {
		got = append(got, i.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

// recv waits for one value from ch, failing the test after opTimeout.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(opTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// pattern returns n bytes that differ between seeds and positions.
func pattern(seed string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed[i%len(seed)] ^ byte(i/len(seed))
	}
	return b
}

func testNotVisibleBeforePut(t *testing.T, st store.Store) {
	for _, known := range []bool{false, true} {
		t.Run(fmt.Sprintf("knownSize=%v", known), func(t *testing.T) {
			dir := fmt.Sprintf("vis/%v/", known)
			key := dir + "obj.m4s"
			other := put(t, st, dir+"other", []byte("x"), store.Meta{})
			data := pattern("visibility", 2<<20)
			m := store.Meta{ContentType: "video/mp4"}
			if known {
				m.Size = int64(len(data))
			}
			pr, pw := io.Pipe()
			defer pr.Close()
			done := make(chan error, 1)
			go func() {
				_, err := st.Put(testCtx(t), key, pr, m)
				done <- err
			}()
			// Once Write returns, Put has read the first half.
			if _, err := pw.Write(data[:len(data)/2]); err != nil {
				t.Fatalf("write first half: %v", err)
			}
			wantAbsent(t, st, key)
			if got := listKeys(t, st, dir); !slices.Equal(got, []string{other.Key}) {
				t.Fatalf("List(%q) during Put = %q, want only %q", dir, got, other.Key)
			}
			// The whole store: only objects Puts returned, no temporary or
			// internal ones.
			for _, k := range listKeys(t, st, "") {
				if !strings.HasPrefix(k, "vis/") || !strings.HasSuffix(k, "/other") && !strings.HasSuffix(k, "/obj.m4s") {
					t.Fatalf("List(\"\") during Put reports %q, which no Put wrote", k)
				}
				if k == key {
					t.Fatalf("List(\"\") during Put reports the key being written")
				}
			}
			if _, err := pw.Write(data[len(data)/2:]); err != nil {
				t.Fatalf("write second half: %v", err)
			}
			pw.Close()
			if err := recv(t, done, "Put"); err != nil {
				t.Fatalf("Put: %v", err)
			}
			wantContent(t, st, key, data)
			if got := listKeys(t, st, ""); !slices.Contains(got, key) {
				t.Fatalf("List after Put = %q, missing %q", got, key)
			}
		})
	}
}

// testReaderSeesOneVersion overwrites an object while a reader opened before
// the overwrite is still reading it; the reader keeps reading meanwhile, as
// a viewer's download does (a reader that stalls may hold up or lose to the
// overwrite on some services, see the s3 package).
func testReaderSeesOneVersion(t *testing.T, st store.Store) {
	const key = "version/obj"
	const n = 8 << 20
	v1, v2 := bytes.Repeat([]byte{'1'}, n), bytes.Repeat([]byte{'2'}, n)
	put(t, st, key, v1, store.Meta{})
	rc, _, err := st.Get(testCtx(t), key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	first := make([]byte, 4096)
	if _, err := io.ReadFull(rc, first); err != nil {
		t.Fatalf("read start: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := st.Put(testCtx(t), key, bytes.NewReader(v2), store.Meta{})
		done <- err
	}()
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read during overwrite: %v", err)
	}
	if err := recv(t, done, "overwriting Put"); err != nil {
		t.Fatalf("overwriting Put: %v", err)
	}
	got := append(first, rest...)
	if !bytes.Equal(got, v1) && !bytes.Equal(got, v2) {
		t.Fatalf("reader opened before an overwrite read a mix of versions (%d bytes, %d of them '1')",
			len(got), bytes.Count(got, []byte{'1'}))
	}
	wantContent(t, st, key, v2)
}

func testNotExist(t *testing.T, st store.Store) {
	wantAbsent(t, st, "missing/obj")
	if got := listKeys(t, st, ""); len(got) != 0 {
		t.Fatalf("List of an empty store = %q", got)
	}
	put(t, st, "missing/there", []byte("x"), store.Meta{})
	if err := st.Delete(testCtx(t), "missing/there"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantAbsent(t, st, "missing/there")
	// A prefix of an existing key is not an object.
	put(t, st, "missing/dir/obj", []byte("x"), store.Meta{})
	wantAbsent(t, st, "missing/dir")
}

func testOverwrite(t *testing.T, st store.Store) {
	const key = "over/obj"
	first := put(t, st, key, []byte("first version"), store.Meta{
		ContentType: "text/plain", CacheControl: "max-age=60", Class: store.ClassManifest,
	})
	second := put(t, st, key, []byte("second, longer version"), store.Meta{Class: store.ClassInit})
	if second.ETag == first.ETag {
		t.Fatalf("ETag unchanged by an overwrite with other content: %s", second.ETag)
	}
	info := wantContent(t, st, key, []byte("second, longer version"))
	if info.ETag != second.ETag {
		t.Fatalf("Get ETag %s, want the ETag Put returned, %s", info.ETag, second.ETag)
	}
	if info.ContentType != "application/octet-stream" || info.CacheControl != "" || info.Class != store.ClassInit {
		t.Fatalf("metadata not replaced by the overwrite: %+v", info)
	}
}

func testMetadata(t *testing.T, st store.Store) {
	ctx := testCtx(t)
	cases := []struct {
		key  string
		m    store.Meta
		want store.Info // only the Meta fields
	}{
		{"meta/playlist.m3u8",
			store.Meta{ContentType: "application/vnd.apple.mpegurl", CacheControl: "max-age=1, public", Class: store.ClassManifest},
			store.Info{ContentType: "application/vnd.apple.mpegurl", CacheControl: "max-age=1, public", Class: store.ClassManifest}},
		{"meta/init.mp4",
			store.Meta{ContentType: "video/mp4", CacheControl: "max-age=31536000, immutable", Class: store.ClassInit},
			store.Info{ContentType: "video/mp4", CacheControl: "max-age=31536000, immutable", Class: store.ClassInit}},
		{"meta/slot.json",
			store.Meta{ContentType: "application/json", Class: store.ClassConfig},
			store.Info{ContentType: "application/json", Class: store.ClassConfig}},
		{"meta/_state.json",
			store.Meta{ContentType: "application/json", Class: store.ClassState},
			store.Info{ContentType: "application/json", Class: store.ClassState}},
		{"meta/defaults",
			store.Meta{},
			store.Info{ContentType: "application/octet-stream", Class: store.ClassSegment}},
	}
	for _, c := range cases {
		before := time.Now().Add(-2 * time.Second)
		data := pattern(c.key, 1000)
		pinfo := put(t, st, c.key, data, c.m)
		after := time.Now().Add(2 * time.Second)
		sinfo, err := st.Stat(ctx, c.key)
		if err != nil {
			t.Fatalf("Stat(%q): %v", c.key, err)
		}
		ginfo := wantContent(t, st, c.key, data)
		for name, got := range map[string]store.Info{"Put": pinfo, "Stat": sinfo, "Get": ginfo} {
			if got.Key != c.key || got.Size != int64(len(data)) || got.ETag != pinfo.ETag ||
				got.ContentType != c.want.ContentType || got.CacheControl != c.want.CacheControl || got.Class != c.want.Class {
				t.Errorf("%s(%q) Info = %+v; want Key, Size %d, ETag %s, and %+v", name, c.key, got, len(data), pinfo.ETag, c.want)
			}
			if got.Modified.Before(before) || got.Modified.After(after) {
				t.Errorf("%s(%q) Modified = %v, want between %v and %v", name, c.key, got.Modified, before, after)
			}
		}
		if !ginfo.Modified.Equal(sinfo.Modified) {
			t.Errorf("Get Modified %v != Stat Modified %v", ginfo.Modified, sinfo.Modified)
		}
	}
}

func testEmptyObject(t *testing.T, st store.Store) {
	for _, key := range []string{"empty/a", "empty/b"} {
		info, err := st.Put(testCtx(t), key, bytes.NewReader(nil), store.Meta{})
		if err != nil {
			t.Fatalf("Put empty: %v", err)
		}
		if info.Size != 0 || info.ETag == "" {
			t.Fatalf("Put empty returned %+v", info)
		}
		wantContent(t, st, key, nil)
	}
	if got := listKeys(t, st, "empty/"); !slices.Equal(got, []string{"empty/a", "empty/b"}) {
		t.Fatalf("List = %q", got)
	}
}
