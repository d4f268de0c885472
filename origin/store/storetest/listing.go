package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/store"
)

// listKeySet holds names whose lexical order differs from a naive
// directory-by-directory walk: '+', ',', '-' and '.' sort before '/'.
var listKeySet = []string{
	"list/a-c", "list/a/b", "list/a/c/d", "list/a.b", "list/a+b", "list/a,b",
	"list/a0", "list/a~", "list/a_b", "list/aB", "list/b",
	"list/seg1.m4s", "list/seg10.m4s", "list/seg2.m4s", "list/segment/x",
	"listing/q", "other/z", "l",
}

func testList(t *testing.T, st store.Store) {
	for _, k := range listKeySet {
		put(t, st, k, []byte(k), store.Meta{})
	}
	for _, prefix := range []string{
		"", "list/", "list", "l", "list/a", "list/a/", "list/a/c", "list/a/c/d",
		"list/seg", "list/seg1", "list/segment/", "list/b", "list/b/", "nothing/", "zzz",
	} {
		var want []string
		for _, k := range listKeySet {
			if strings.HasPrefix(k, prefix) {
				want = append(want, k)
			}
		}
		slices.Sort(want)
		if got := listKeys(t, st, prefix); !slices.Equal(got, want) {
			t.Errorf("List(%q) =\n\t%q\nwant\n\t%q", prefix, got, want)
		}
	}
}

func testListStops(t *testing.T, st store.Store) {
	for i := range 10 {
		put(t, st, fmt.Sprintf("stop/%02d", i), []byte("x"), store.Meta{})
	}
	errStop := errors.New("enough")
	calls := 0
	err := st.List(testCtx(t), "stop/", func(store.Info) error {
		calls++
		if calls == 3 {
			return errStop
		}
		return nil
	})
	wantErrIs(t, "List stopped by fn", err, errStop)
	if calls != 3 {
		t.Fatalf("fn called %d times after returning an error on call 3", calls)
	}
}

func testListInfo(t *testing.T, st store.Store) {
	before := time.Now().Add(-2 * time.Second)
	want := map[string]store.Info{}
	for i, size := range []int{0, 1, 1000, 100_000} {
		k := fmt.Sprintf("info/%d", i)
		want[k] = put(t, st, k, pattern(k, size), store.Meta{
			ContentType: "video/mp4", CacheControl: "no-cache", Class: store.ClassInit,
		})
	}
	after := time.Now().Add(2 * time.Second)
	n := 0
	err := st.List(testCtx(t), "info/", func(got store.Info) error {
		n++
		w, ok := want[got.Key]
		switch {
		case !ok:
			t.Errorf("List reported unknown key %q", got.Key)
		case got.Size != w.Size || got.ETag != w.ETag:
			t.Errorf("List Info %+v: want Size %d, ETag %s", got, w.Size, w.ETag)
		case got.Modified.Before(before) || got.Modified.After(after):
			t.Errorf("List Info %q: Modified %v not between %v and %v", got.Key, got.Modified, before, after)
		case got.ContentType != "" || got.CacheControl != "" || got.Class != "":
			t.Errorf("List Info %q: Meta fields set (%+v); the contract says they are zero", got.Key, got)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if n != len(want) {
		t.Fatalf("List reported %d objects, want %d", n, len(want))
	}
}

func testDelete(t *testing.T, st store.Store) {
	ctx := testCtx(t)
	for _, k := range []string{"del/a", "del/b", "del/c/d", "del/e", "keep/f"} {
		put(t, st, k, []byte(k), store.Meta{})
	}
	if err := st.Delete(ctx, "del/a", "del/never", "del/c/d", "del/b", "nowhere/x/y"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, k := range []string{"del/a", "del/b", "del/c/d"} {
		wantAbsent(t, st, k)
	}
	if got := listKeys(t, st, ""); !slices.Equal(got, []string{"del/e", "keep/f"}) {
		t.Fatalf("List after Delete = %q", got)
	}
	if err := st.Delete(ctx); err != nil {
		t.Fatalf("Delete of no keys: %v", err)
	}
	if err := st.Delete(ctx, "del/a", "del/a"); err != nil {
		t.Fatalf("Delete of deleted keys: %v", err)
	}
	// A key can be written again after deletion, in a directory a deletion
	// may have pruned.
	put(t, st, "del/c/d", []byte("again"), store.Meta{})
	wantContent(t, st, "del/c/d", []byte("again"))
}

func testDeleteMany(t *testing.T, st store.Store) {
	const n = 1010
	keyList := make([]string, n)
	for i := range keyList {
		keyList[i] = fmt.Sprintf("bulk/%02d/%04d.m4s", i%7, i)
	}
	putAll(t, st, keyList, func(string) []byte { return []byte("b") })
	if got := len(listKeys(t, st, "bulk/")); got != n {
		t.Fatalf("listed %d of %d objects", got, n)
	}
	all := append(slices.Clone(keyList), "bulk/missing-1", "bulk/missing-2")
	if err := st.Delete(testCtx(t), all...); err != nil {
		t.Fatalf("Delete of %d keys: %v", len(all), err)
	}
	if got := listKeys(t, st, ""); len(got) != 0 {
		t.Fatalf("%d objects left after Delete, first %q", len(got), got[0])
	}
}

// putAll stores the keys with 16 writers.
func putAll(t *testing.T, st store.Store, keyList []string, body func(string) []byte) {
	t.Helper()
	work := make(chan string)
	errs := make(chan error, len(keyList))
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for k := range work {
				_, err := st.Put(testCtx(t), k, bytes.NewReader(body(k)), store.Meta{})
				errs <- err
			}
		})
	}
	for _, k := range keyList {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
}

func testConcurrentPuts(t *testing.T, st store.Store) {
	var keyList []string
	for w := range 16 {
		for i := range 8 {
			keyList = append(keyList, fmt.Sprintf("conc/w%02d/seg%d.m4s", w, i))
		}
	}
	body := func(k string) []byte { return pattern(k, 64<<10) }
	putAll(t, st, keyList, body)
	for _, k := range keyList {
		wantContent(t, st, k, body(k))
	}
	slices.Sort(keyList)
	if got := listKeys(t, st, "conc/"); !slices.Equal(got, keyList) {
		t.Fatalf("List = %d keys, want %d", len(got), len(keyList))
	}
}
