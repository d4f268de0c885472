package expire_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/functions/expire"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// wantOps fails unless the store saw exactly the operations in want.
func wantOps(t *testing.T, c *counting, want map[string]int) [][]string {
	t.Helper()
	ops, dels := c.take()
	if !maps.Equal(ops, want) {
		t.Fatalf("store operations %v, want %v", ops, want)
	}
	return dels
}

func mustSweep(t *testing.T, sw *expire.Sweeper, want int) {
	t.Helper()
	if n, err := sw.Sweep(t.Context()); err != nil || n != want {
		t.Fatalf("Sweep = %d, %v; want %d", n, err, want)
	}
}

func newSweeper(t *testing.T, cfg expire.Config, sl expire.SlotLister, st store.Store, clk *clock, reg prometheus.Registerer) *expire.Sweeper {
	t.Helper()
	sw, err := expire.New(cfg, expire.Deps{Slots: sl, Store: st, Now: clk.Now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

// TestSweepCostsWhatIsDue is the store-operation count of issue 15: with
// 10,000 stored segments of which 10 are due, the rebuild lists each slot
// once and reads no object, and a pass after it makes one Delete call with
// exactly the 10 due keys and nothing else; a pass with nothing due makes
// no call at all. (The slot list comes from a SlotLister, slots.Repo in
// the binary, which reads the store every SlotRefresh, not every pass.)
func TestSweepCostsWhatIsDue(t *testing.T) {
	const expiry = 300 * time.Second
	clk := &clock{}
	clk.Set(t0)
	mem := newMemStore(clk.Now)
	ids := []keys.SlotID{"a", "b", "c", "d"}
	var due []string
	for i := range 10_000 {
		id := ids[i%len(ids)]
		key := keys.Media(id, keys.Primary, keys.RelPath(fmt.Sprintf("v/%05d.m4s", i)))
		modified := t0.Add(time.Hour + time.Duration(i)*time.Millisecond)
		if i%1000 == 7 { // spread over all four slots
			modified = t0.Add(-time.Duration(i) * time.Millisecond)
			due = append(due, key)
		}
		mem.putAt(key, modified)
	}
	var fs fakeSlots
	for _, id := range ids {
		fs = append(fs, slot(id, int(expiry/time.Second)))
		// Old, but kept: the slot has segments.
		mem.putAt(keys.Media(id, keys.Primary, "index.m3u8"), t0.Add(-time.Hour))
		mem.putAt(keys.Media(id, keys.Primary, "init.mp4"), t0.Add(-time.Hour))
	}
	st := newCounting(mem)
	reg := prometheus.NewRegistry()
	sw := newSweeper(t, expire.Config{}, fs, st, clk, reg)

	clk.Set(t0.Add(expiry - 10*time.Second)) // nothing due yet; the first due at expiry-9s
	mustSweep(t, sw, 0)
	wantOps(t, st, map[string]int{"list": len(ids)})
	if got := counter(t, reg, "liveingest_expire_indexed_objects"); got != 10_000 {
		t.Fatalf("indexed after the rebuild = %v, want 10000", got)
	}

	clk.Set(t0.Add(expiry))
	mustSweep(t, sw, 10)
	dels := wantOps(t, st, map[string]int{"delete": 1})
	slices.Sort(dels[0])
	slices.Sort(due)
	if !slices.Equal(dels[0], due) {
		t.Fatalf("deleted %q, want %q", dels[0], due)
	}
	if got := counter(t, reg, "liveingest_expire_indexed_objects"); got != 9_990 {
		t.Fatalf("indexed after the pass = %v, want 9990", got)
	}
	if got := len(mem.keys()); got != 10_000-10+2*len(ids) {
		t.Fatalf("%d objects left, want %d", got, 10_000-10+2*len(ids))
	}

	clk.Set(t0.Add(expiry + time.Second))
	mustSweep(t, sw, 0)
	wantOps(t, st, map[string]int{})
}

// phase is the span of Modified times of a group of writes, as both the
// Put and the listing report them (on S3 they differ: the Put's is the
// local clock, the listing's the service's).
type phase struct{ lo, hi time.Time }

func (p *phase) add(ts ...time.Time) {
	for _, t := range ts {
		if p.lo.IsZero() || t.Before(p.lo) {
			p.lo = t
		}
		if t.After(p.hi) {
			p.hi = t
		}
	}
}

// putVia writes through w (the observed store) and returns the Put's
// Modified and the listing's, read from r.
func putVia(t *testing.T, w, r store.Store, id keys.SlotID, role keys.Role, rel string) (put, listed time.Time) {
	t.Helper()
	key := keys.Media(id, role, keys.RelPath(rel))
	info, err := w.Put(t.Context(), key, strings.NewReader("x"), store.Meta{Class: lifecycle.ClassOf(rel)})
	if err != nil {
		t.Fatal(err)
	}
	err = r.List(t.Context(), key, func(i store.Info) error {
		if i.Key == key {
			listed = i.Modified
		}
		return nil
	})
	if err != nil || listed.IsZero() {
		t.Fatalf("list %s: %v (modified %v)", key, err, listed)
	}
	return info.Modified, listed
}

// TestStreamExpiry: a stream written through the observed store, on disk
// and on MinIO, loses exactly its due segments pass by pass without any
// listing; its manifest, init file and state stay while a segment is left
// and go, by one listing each time the rest can be due, when only they are
// left and are old; a slot with a longer expiry is untouched.
func TestStreamExpiry(t *testing.T) {
	backends(t, func(t *testing.T, real store.Store) {
		const expiry = 300 * time.Second
		clk := &clock{}
		clk.Set(time.Now())
		st := newCounting(real)
		sw := newSweeper(t, expire.Config{Rescan: time.Hour}, fakeSlots{slot("cam", 300), slot("long", 3600)}, st, clk, nil)
		mustSweep(t, sw, 0) // the rebuild, of nothing
		w := expire.Observe(real, sw)
		const p = "live/cam/primary/"

		var one, two, three phase
		for _, o := range []struct {
			role keys.Role
			rel  string
		}{
			{keys.Primary, "init.mp4"}, {keys.Primary, "seg1.m4s"}, {keys.Primary, "seg2.m4s"},
			{keys.Backup, "seg1.m4s"}, {keys.Primary, "index.m3u8"}, {keys.Primary, string(keys.StreamStateName)},
		} {
			one.add(putVia(t, w, real, "cam", o.role, o.rel))
		}
		putVia(t, w, real, "long", keys.Primary, "seg1.m4s")
		time.Sleep(gap)
		two.add(putVia(t, w, real, "cam", keys.Primary, "seg3.m4s"))
		two.add(putVia(t, w, real, "cam", keys.Primary, "index.m3u8"))
		two.add(putVia(t, w, real, "cam", keys.Primary, string(keys.StreamStateName)))
		time.Sleep(gap)
		three.add(putVia(t, w, real, "cam", keys.Primary, "index.m3u8")) // the stream's last playlist
		st.take()

		expect := func(want ...string) {
			t.Helper()
			want = append(want, "live/long/primary/seg1.m4s")
			if got := listAll(t, real); !slices.Equal(got, want) {
				t.Fatalf("left:\n%q\nwant:\n%q", got, want)
			}
		}
		sweepAt := func(at time.Time, want int, ops map[string]int) {
			t.Helper()
			clk.Set(at)
			mustSweep(t, sw, want)
			wantOps(t, st, ops)
		}
		const before = time.Millisecond
		sweepAt(one.lo.Add(expiry-before), 0, map[string]int{})
		sweepAt(one.hi.Add(expiry), 3, map[string]int{"delete": 1})
		expect(p+string(keys.StreamStateName), p+"index.m3u8", p+"init.mp4", p+"seg3.m4s")

		sweepAt(two.lo.Add(expiry-before), 0, map[string]int{})
		// The last segment goes: one listing decides the rest. The init
		// file (phase one) and the state (two) are old; the playlist
		// (three) is not. Segments and the rest are deleted apart.
		sweepAt(two.hi.Add(expiry), 3, map[string]int{"list": 1, "delete": 2})
		expect(p + "index.m3u8")

		// The listing said when the playlist is due: no listing before.
		sweepAt(three.lo.Add(expiry-before), 0, map[string]int{})
		sweepAt(three.hi.Add(expiry), 1, map[string]int{"list": 1, "delete": 1})
		expect()
		// An empty slot costs nothing from then on.
		sweepAt(three.hi.Add(expiry+time.Minute), 0, map[string]int{})
	})
}

// TestObservedPutIsSweptWithoutListing: a segment Put through the observed
// store after the rebuild is deleted when due by the pass alone; a segment
// another process wrote (straight into the store) is found by the listing
// made when the slot's last indexed segment goes, and deleted with it.
func TestObservedPutIsSweptWithoutListing(t *testing.T) {
	const expiry = 300 * time.Second
	clk := &clock{}
	clk.Set(t0)
	mem := newMemStore(clk.Now)
	st := newCounting(mem)
	sw := newSweeper(t, expire.Config{Rescan: time.Hour}, fakeSlots{slot("cam", 300)}, st, clk, nil)
	mustSweep(t, sw, 0)
	st.take()
	w := expire.Observe(mem, sw)

	clk.Set(t0.Add(time.Second))
	putVia(t, w, mem, "cam", keys.Primary, "seg1.m4s")
	mem.putAt("live/cam/primary/other.m4s", t0.Add(time.Second)) // not observed
	clk.Set(t0.Add(100 * time.Second))
	putVia(t, w, mem, "cam", keys.Primary, "seg2.m4s")
	st.take()

	clk.Set(t0.Add(time.Second + expiry))
	mustSweep(t, sw, 1)
	if dels := wantOps(t, st, map[string]int{"delete": 1}); !slices.Equal(dels[0], []string{"live/cam/primary/seg1.m4s"}) {
		t.Fatalf("deleted %q", dels[0])
	}
	if got := mem.keys(); !slices.Equal(got, []string{"live/cam/primary/other.m4s", "live/cam/primary/seg2.m4s"}) {
		t.Fatalf("left %q", got)
	}
	clk.Set(t0.Add(100*time.Second + expiry))
	mustSweep(t, sw, 2)
	wantOps(t, st, map[string]int{"list": 1, "delete": 1})
	if got := mem.keys(); len(got) != 0 {
		t.Fatalf("left %q", got)
	}
}

// TestRescanFindsWhatWasNotNoted: a segment written by another process
// while the slot's index is not empty is deleted by the rescan, Rescan
// after the last one, and not before.
func TestRescanFindsWhatWasNotNoted(t *testing.T) {
	clk := &clock{}
	clk.Set(t0)
	mem := newMemStore(clk.Now)
	st := newCounting(mem)
	sw := newSweeper(t, expire.Config{Rescan: time.Minute}, fakeSlots{slot("cam", 10)}, st, clk, nil)
	mustSweep(t, sw, 0) // the rebuild at t0
	w := expire.Observe(mem, sw)
	mem.putAt("live/cam/backup/lost.m4s", t0.Add(time.Second))
	clk.Set(t0.Add(55 * time.Second))
	putVia(t, w, mem, "cam", keys.Primary, "live.m4s") // due at t0+65s
	st.take()

	clk.Set(t0.Add(time.Minute - time.Millisecond))
	mustSweep(t, sw, 0)
	wantOps(t, st, map[string]int{})
	clk.Set(t0.Add(time.Minute))
	mustSweep(t, sw, 1)
	if dels := wantOps(t, st, map[string]int{"list": 1, "delete": 1}); !slices.Equal(dels[0], []string{"live/cam/backup/lost.m4s"}) {
		t.Fatalf("deleted %q", dels[0])
	}
	if got := mem.keys(); !slices.Equal(got, []string{"live/cam/primary/live.m4s"}) {
		t.Fatalf("left %q", got)
	}
}

// TestNoteKeepsTheLatestVersion: a segment key written again is due from
// its last write, and counted once.
func TestNoteKeepsTheLatestVersion(t *testing.T) {
	clk := &clock{}
	clk.Set(t0)
	mem := newMemStore(clk.Now)
	reg := prometheus.NewRegistry()
	sw := newSweeper(t, expire.Config{Rescan: time.Hour}, fakeSlots{slot("cam", 10)}, mem, clk, reg)
	mustSweep(t, sw, 0)
	w := expire.Observe(mem, sw)
	putVia(t, w, mem, "cam", keys.Primary, "seg1.m4s")
	clk.Set(t0.Add(5 * time.Second))
	putVia(t, w, mem, "cam", keys.Primary, "seg1.m4s")
	putVia(t, w, mem, "cam", keys.Primary, "index.m3u8") // not a segment: not indexed
	if got := counter(t, reg, "liveingest_expire_indexed_objects"); got != 1 {
		t.Fatalf("indexed = %v, want 1", got)
	}
	clk.Set(t0.Add(10 * time.Second))
	mustSweep(t, sw, 0)
	clk.Set(t0.Add(15 * time.Second))
	mustSweep(t, sw, 2) // the segment, then the playlist it leaves alone
	if got := mem.keys(); len(got) != 0 {
		t.Fatalf("left %q", got)
	}
}

// slotList is a slot list the test changes, counting its reads.
type slotList struct {
	mu    sync.Mutex
	list  []*slots.Slot
	reads int
}

func (l *slotList) List(context.Context, slots.ListOptions) ([]*slots.Slot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	out := make([]*slots.Slot, len(l.list))
	for i, s := range l.list {
		c := *s
		out[i] = &c
	}
	return out, nil
}

func (l *slotList) set(list ...*slots.Slot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = list
}

func (l *slotList) readCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reads
}

// TestSlotRefresh: the slot list is read every SlotRefresh, not every
// pass, so a changed file_expiry applies within SlotRefresh; a segment of
// a slot the sweeper does not know yet makes the next pass read the list
// (once), so a new slot is swept from its first segment; a slot that left
// the list is not swept and leaves the index.
func TestSlotRefresh(t *testing.T) {
	clk := &clock{}
	clk.Set(t0)
	mem := newMemStore(clk.Now)
	reg := prometheus.NewRegistry()
	sl := &slotList{}
	sl.set(slot("cam", 300))
	sw := newSweeper(t, expire.Config{Rescan: time.Hour, SlotRefresh: 10 * time.Second}, sl, mem, clk, reg)
	mustSweep(t, sw, 0)
	w := expire.Observe(mem, sw)
	putVia(t, w, mem, "cam", keys.Primary, "seg1.m4s") // at t0
	clk.Set(t0.Add(time.Hour))
	putVia(t, w, mem, "cam", keys.Primary, "seg2.m4s") // keeps the slot's index from running out
	clk.Set(t0)
	if n := sl.readCount(); n != 1 {
		t.Fatalf("slot list read %d times by the rebuild, want 1", n)
	}

	// file_expiry 300 → 5 s: not before the refresh is due.
	sl.set(slot("cam", 5))
	clk.Set(t0.Add(9 * time.Second))
	mustSweep(t, sw, 0)
	if n := sl.readCount(); n != 1 {
		t.Fatalf("slot list read %d times within SlotRefresh, want 1", n)
	}
	clk.Set(t0.Add(10 * time.Second))
	mustSweep(t, sw, 1)
	if n := sl.readCount(); n != 2 {
		t.Fatalf("slot list read %d times after SlotRefresh, want 2", n)
	}

	// A new slot: its first segment makes the next pass read the list.
	sl.set(slot("cam", 5), slot("new", 5))
	clk.Set(t0.Add(11 * time.Second))
	putVia(t, w, mem, "new", keys.Primary, "seg1.m4s")
	putVia(t, w, mem, "gone", keys.Primary, "seg1.m4s") // a slot that is in no list
	clk.Set(t0.Add(12 * time.Second))
	mustSweep(t, sw, 0)
	if n := sl.readCount(); n != 3 {
		t.Fatalf("slot list read %d times after a new slot's segment, want 3", n)
	}
	clk.Set(t0.Add(13 * time.Second))
	mustSweep(t, sw, 0)
	if n := sl.readCount(); n != 3 {
		t.Fatalf("slot list read %d times: an unknown slot asked twice", n)
	}
	clk.Set(t0.Add(16 * time.Second))
	mustSweep(t, sw, 1) // new's segment; gone's stays (not a slot)
	if got := mem.keys(); !slices.Equal(got, []string{"live/cam/primary/seg2.m4s", "live/gone/primary/seg1.m4s"}) {
		t.Fatalf("left %q", got)
	}

	// cam is deleted: its media stays (the S3 backstop removes it) and
	// leaves the index at the next refresh; so does gone's.
	sl.set(slot("new", 5))
	clk.Set(t0.Add(2 * time.Hour))
	mustSweep(t, sw, 0)
	if got := counter(t, reg, "liveingest_expire_indexed_objects"); got != 0 {
		t.Fatalf("indexed = %v after the slots left, want 0", got)
	}
	if got := mem.keys(); !slices.Equal(got, []string{"live/cam/primary/seg2.m4s", "live/gone/primary/seg1.m4s"}) {
		t.Fatalf("left %q", got)
	}
}

// TestNoteDuringSweeps: writers note segments while passes run (-race);
// every segment is deleted once due, and none before.
func TestNoteDuringSweeps(t *testing.T) {
	clk := &clock{}
	clk.Set(t0)
	mem := newMemStore(clk.Now)
	sw := newSweeper(t, expire.Config{Rescan: time.Hour}, fakeSlots{slot("a", 10), slot("b", 10)}, mem, clk, nil)
	w := expire.Observe(mem, sw)
	var wg sync.WaitGroup
	for _, id := range []keys.SlotID{"a", "b"} {
		for role := range 2 {
			wg.Go(func() {
				r := []keys.Role{keys.Primary, keys.Backup}[role]
				for i := range 200 {
					key := keys.Media(id, r, keys.RelPath(fmt.Sprintf("s%03d.m4s", i)))
					if _, err := w.Put(t.Context(), key, strings.NewReader("x"), store.Meta{}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		if _, err := sw.Sweep(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(mem.keys()); got != 800 {
		t.Fatalf("%d objects before their due time, want 800", got)
	}
	clk.Set(t0.Add(10 * time.Second))
	mustSweep(t, sw, 800)
}
