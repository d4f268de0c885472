package expire

import (
	"container/heap"
	"time"

	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/store"
)

// entry is one indexed version of a segment.
type entry struct {
	key      string
	modified time.Time // the version's Modified, as its Put or a listing reported it
	seq      uint64    // the Note that indexed it; 0: a listing
}

// same reports whether e and o are the one version (a heap entry that is
// not the key's latest is stale: the key was noted again or removed).
func (e entry) same(o entry) bool { return e.seq == o.seq && e.modified.Equal(o.modified) }

// byModified is a min-heap of entries by Modified (container/heap).
type byModified []entry

func (h byModified) Len() int { return len(h) }
func (h byModified) Less(i, j int) bool {
	if c := h[i].modified.Compare(h[j].modified); c != 0 {
		return c < 0
	}
	return h[i].key < h[j].key
}
func (h byModified) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *byModified) Push(x any)   { *h = append(*h, x.(entry)) }
func (h *byModified) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = entry{} // let the key string go
	*h = old[:len(old)-1]
	return e
}

// slotIndex is what the sweeper knows of one slot's media: its segments in
// the order they fall due, and whether anything else of the slot may be
// due once they are gone. It does no I/O; the Sweeper's mu guards it.
type slotIndex struct {
	// expiry is the slot's file_expiry; 0 while the slot is not in the
	// slot list (created since the last refresh, or deleted): not swept.
	expiry time.Duration

	// queue holds every indexed segment version by Modified, and stale
	// versions too (superseded or removed keys), which popDue skips.
	queue byModified
	// latest is the indexed version of each segment key: the index proper.
	latest map[string]entry

	// scanned is when the slot's media was last listed in full; zero:
	// never, so the index of the slot is not complete yet.
	scanned time.Time

	// tailKnown says that, when latest is empty, a listing finds nothing
	// to delete before tailAt (zero: nothing at all: the slot is empty). A
	// Note clears it, as does a change of expiry.
	tailKnown bool
	tailAt    time.Time

	lastNote uint64 // seq of the latest Note for the slot
	asked    bool   // a Note for the unknown slot asked for a slot refresh
}

func newSlotIndex() *slotIndex { return &slotIndex{latest: map[string]entry{}} }

// add indexes e unless a later version of its key is indexed already, and
// returns by how much the number of indexed keys grew (0 or 1).
func (si *slotIndex) add(e entry) int {
	cur, ok := si.latest[e.key]
	if ok && cur.modified.After(e.modified) {
		return 0
	}
	si.latest[e.key] = e
	heap.Push(&si.queue, e)
	if ok {
		return 0
	}
	return 1
}

// popDue removes and returns the indexed segments due at now, oldest
// first. Its cost is the number of entries it pops, due or stale.
func (si *slotIndex) popDue(now time.Time) (due []entry) {
	for len(si.queue) > 0 {
		top := si.queue[0]
		if cur, ok := si.latest[top.key]; !ok || !cur.same(top) {
			heap.Pop(&si.queue)
			continue
		}
		if !lifecycle.Due(top.modified, si.expiry, now) {
			break
		}
		heap.Pop(&si.queue)
		delete(si.latest, top.key)
		due = append(due, top)
	}
	return due
}

// tailWanted reports whether, with no segment indexed, a listing of the
// slot could find something to delete at now.
func (si *slotIndex) tailWanted(now time.Time) bool {
	return !si.tailKnown || (!si.tailAt.IsZero() && !now.Before(si.tailAt))
}

// replace makes the index of the slot what a full listing (objects, taken
// after Note number seq0) says, less the keys in gone (deleted since the
// listing): the segments it lists, and every version noted after seq0,
// which the listing may have missed. It returns by how much the number of
// indexed keys changed.
//
// When no segment is left, the tail is known from the same listing: the
// earliest due time of the other files. When segments are left it is not:
// manifests are rewritten while a stream runs, so the listing that
// matters is the one made when the last segment has gone.
func (si *slotIndex) replace(objects []store.Info, gone map[string]bool, seq0 uint64, scanned time.Time) int {
	before := len(si.latest)
	latest := make(map[string]entry, before)
	for k, e := range si.latest {
		if e.seq > seq0 {
			latest[k] = e
		}
	}
	var tailAt time.Time
	for _, o := range objects {
		if gone[o.Key] {
			continue
		}
		if lifecycle.ClassOf(o.Key) != store.ClassSegment {
			if due := o.Modified.Add(si.expiry); tailAt.IsZero() || due.Before(tailAt) {
				tailAt = due
			}
			continue
		}
		if _, ok := latest[o.Key]; !ok {
			latest[o.Key] = entry{key: o.Key, modified: o.Modified}
		}
	}
	si.latest = latest
	si.queue = make(byModified, 0, len(latest))
	for _, e := range latest {
		si.queue = append(si.queue, e)
	}
	heap.Init(&si.queue)
	si.scanned = scanned
	si.tailKnown = len(latest) == 0
	si.tailAt = tailAt
	return len(latest) - before
}
