package coordtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
)

// base is a fixed start time, so sessions order the same on every run.
var base = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func session(slot, id string, started time.Time) coord.Session {
	return coord.Session{
		ID: id, Slot: slot, Role: "primary", Protocol: "rtmp", Edge: "edge-a",
		Remote: "192.0.2.10:50000", Started: started, BitrateKbps: 4500,
	}
}

func heartbeat(t *testing.T, im Impl, s coord.Session, ttl time.Duration) {
	t.Helper()
	if err := im.Registry.Heartbeat(testCtx(t), s, ttl); err != nil {
		t.Fatalf("Heartbeat(%s/%s): %v", s.Slot, s.ID, err)
	}
}

func list(t *testing.T, im Impl, slot string) []coord.Session {
	t.Helper()
	ss, err := im.Registry.List(testCtx(t), slot)
	if err != nil {
		t.Fatalf("List(%s): %v", slot, err)
	}
	return ss
}

func ids(ss []coord.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

// expectList checks the listed sessions, in order, field by field (Updated
// only for being set: it is the implementation's clock).
func expectList(t *testing.T, im Impl, slot string, want ...coord.Session) []coord.Session {
	t.Helper()
	got := list(t, im, slot)
	if len(got) != len(want) {
		t.Fatalf("List(%s) = %v, want %v", slot, ids(got), ids(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Updated.IsZero() {
			t.Fatalf("List(%s)[%d] = %s: Updated not set", slot, i, g.ID)
		}
		if !g.Started.Equal(w.Started) {
			t.Fatalf("List(%s)[%d] = %s started %v, want %s started %v", slot, i, g.ID, g.Started, w.ID, w.Started)
		}
		g.Updated, g.Started, w.Updated, w.Started = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if g != w {
			t.Fatalf("List(%s)[%d] = %+v, want %+v", slot, i, g, w)
		}
	}
	return got
}

func testRegistryHeartbeatListRemove(t *testing.T, im Impl) {
	slot, other := uniq("slot"), uniq("slot")
	long := 20 * im.TTL
	newer := session(slot, "s-newer", base.Add(time.Minute))
	older := session(slot, "s-older", base)
	older.Role, older.Protocol, older.Edge, older.BitrateKbps = "backup", "srt", "edge-b", 2500
	heartbeat(t, im, newer, long)
	heartbeat(t, im, older, long)
	first := expectList(t, im, slot, older, newer)

	// A heartbeat refreshes the listed session in place.
	im.Advance(im.TTL / 10)
	newer.BitrateKbps = 6000
	heartbeat(t, im, newer, long)
	got := expectList(t, im, slot, older, newer)
	if got[1].Updated.Before(first[1].Updated) {
		t.Fatalf("Updated went back from %v to %v on refresh", first[1].Updated, got[1].Updated)
	}

	if ss := list(t, im, other); len(ss) != 0 {
		t.Fatalf("List of another slot = %v, want none", ids(ss))
	}
	if err := im.Registry.Remove(testCtx(t), slot, newer.ID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	expectList(t, im, slot, older)
	for _, id := range []string{newer.ID, "never-there"} {
		if err := im.Registry.Remove(testCtx(t), slot, id); err != nil {
			t.Fatalf("Remove of absent %s: %v", id, err)
		}
	}
	if err := im.Registry.Remove(testCtx(t), slot, older.ID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	expectList(t, im, slot)
}

func testRegistryOrder(t *testing.T, im Impl) {
	slot := uniq("slot")
	offsets := []int{3, 0, 4, 1, 2} // heartbeat order differs from start order
	want := make([]coord.Session, len(offsets))
	for _, off := range offsets {
		s := session(slot, fmt.Sprintf("s-%d", off), base.Add(time.Duration(off)*time.Second))
		want[off] = s
		heartbeat(t, im, s, 20*im.TTL)
	}
	// Equal start times fall back to the id, so the order is total.
	var ties []coord.Session
	for _, id := range []string{"s-2c", "s-2a", "s-2d", "s-2b"} {
		s := session(slot, id, base.Add(2*time.Second))
		heartbeat(t, im, s, 20*im.TTL)
		ties = append(ties, s)
	}
	slices.SortFunc(ties, func(a, b coord.Session) int { return strings.Compare(a.ID, b.ID) })
	want = slices.Insert(want, 3, ties...)
	expectList(t, im, slot, want...)
}

func testRegistryExpiry(t *testing.T, im Impl) {
	slot := uniq("slot")
	short := session(slot, "s-short", base)
	long := session(slot, "s-long", base.Add(time.Second))
	heartbeat(t, im, short, im.TTL)
	heartbeat(t, im, long, 20*im.TTL)
	expectList(t, im, slot, short, long)
	if im.Exact {
		im.Advance(im.TTL - time.Nanosecond)
		expectList(t, im, slot, short, long)
		im.Advance(time.Nanosecond)
		expectList(t, im, slot, long)
	} else {
		waitFor(t, im, 3*im.TTL, "expired session dropped from List", func() bool {
			return len(list(t, im, slot)) == 1
		})
		expectList(t, im, slot, long)
	}
	// An expired session comes back with its next heartbeat.
	heartbeat(t, im, short, im.TTL)
	expectList(t, im, slot, short, long)
}

func testRegistryHeartbeatKeepsListed(t *testing.T, im Impl) {
	slot := uniq("slot")
	s := session(slot, "s-live", base)
	heartbeat(t, im, s, im.TTL)
	step := im.TTL / 3
	for elapsed := time.Duration(0); elapsed < 4*im.TTL; elapsed += step {
		im.Advance(step)
		heartbeat(t, im, s, im.TTL)
		expectList(t, im, slot, s)
	}
}

func testRegistryInvalid(t *testing.T, im Impl) {
	slot := uniq("slot")
	for _, s := range []coord.Session{
		session("", "id", base),
		session("bad slot", "id", base),
		session(slot, "", base),
		session(slot, "bad{id}", base),
	} {
		err := im.Registry.Heartbeat(testCtx(t), s, im.TTL)
		checkRejected(t, fmt.Sprintf("Heartbeat(slot %q, id %q)", s.Slot, s.ID), err)
	}
	checkRejected(t, "Heartbeat with ttl 0", im.Registry.Heartbeat(testCtx(t), session(slot, "id", base), 0))
	_, err := im.Registry.List(testCtx(t), "bad slot")
	checkRejected(t, `List("bad slot")`, err)
	checkRejected(t, `Remove("bad slot")`, im.Registry.Remove(testCtx(t), "bad slot", "id"))
}
