// Package expire is the sweeper of R-EXPIRE-1 / R-FN-2: it deletes media
// objects at second granularity by the policy in origin/lifecycle (segments
// file_expiry seconds after they were written; manifests, init files and
// stream state only when they are all that is left of a slot and are old
// themselves). The S3 lifecycle backstop (lifecycle.S3Rules) catches what
// it misses at day granularity.
//
// The sweeper keeps an index of every slot's stored segments ordered by
// Modified, so that a pass costs what is due, not what is stored:
//
//   - a pass (Sweep) pops the due segments of every slot and deletes them
//     in batches of BatchSize keys, across slots: O(due / BatchSize)
//     Delete calls and O(due·log stored + slots) memory work, and no List,
//     Get or Stat;
//   - when a slot's last indexed segment goes, one listing of that slot
//     (keys.MediaPrefix) applies lifecycle.Plan to the rest, so manifests,
//     init files and state are decided exactly as a full sweep would. The
//     same listing says when the rest can next be due; until then, or until
//     a new segment of the slot is noted, the slot costs nothing: an
//     observed stream costs one such listing at the end of its life (more
//     only while its manifests are rewritten without segments). Where the
//     writers are not observed, this listing is also how a live slot's
//     newer segments are found: one per slot about every file_expiry,
//     when that is shorter than Rescan;
//   - every Rescan each slot's media is listed in full (List only, using
//     its Modified; no object is read) and the index of the slot is
//     replaced by what the listing says, plus what was noted meanwhile: the
//     rescan costs O(stored) every Rescan. A Sweeper's first pass is such a
//     rescan of every slot: the rebuild;
//   - every SlotRefresh the slot list is read again (slots.Repo.List: one
//     List of the configurations and one Get per slot; Repo does not cache
//     it), so a changed file_expiry applies within SlotRefresh plus one
//     Interval. A noted segment of a slot not in the list makes the next
//     pass read it (once per such slot), so a new slot is swept from its
//     first segment on.
//
// The index learns of new segments from Note, which Observe calls for
// every segment Put through the store it wraps (when writers share the
// process, as in dev), and from the listings above. Segments written by
// other processes (edges in the functions role) are indexed by the next
// rescan, or by the listing when the slot's indexed segments run out,
// whichever comes first; the listing finds the newer ones before they are
// due, so only the segments written after a slot's last listing and due
// before the next are late, by at most Rescan.
//
// Media of a slot that is not in the slot list (deleted) is not swept,
// as before the index: its entries are dropped at the next slot refresh
// and the S3 backstop rule removes its segments.
//
// Run is the local worker's loop around Sweep. Sweep keeps the index in
// the Sweeper between calls, so a Lambda handler would keep the Sweeper
// in its warm container; a cold one rebuilds in its first pass.
package expire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/origin/metricsreg"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
)

// Config is the sweeper's configuration.
type Config struct {
	// Interval is the pause between passes of Run. A segment the index
	// holds is deleted at most one interval plus the time of a pass after
	// it is due. Default: 1s.
	Interval time.Duration

	// BatchSize is the number of keys per Store.Delete call (S3's
	// DeleteObjects takes at most 1000). Default: 1000.
	BatchSize int

	// Rescan is how often each slot's media is listed in full to
	// reconcile the index with the store: what other processes wrote, or
	// a Put the index missed. It bounds how late such a segment can be
	// deleted, and costs one listing of everything stored per Rescan.
	// Default: 1m.
	Rescan time.Duration

	// SlotRefresh is how often the slot list is read again; a changed
	// file_expiry applies within it. A Note for a slot the sweeper does
	// not know reads the list at the next pass (once per such slot), so a
	// new slot's media is swept from its first segment on. Default: 10s.
	SlotRefresh time.Duration
}

// Defaults of Config.
const (
	DefaultInterval    = time.Second
	DefaultBatchSize   = 1000
	DefaultRescan      = time.Minute
	DefaultSlotRefresh = 10 * time.Second
	maxBatchSize       = 1000
)

// Validate checks the configuration, naming the field at fault.
func (c Config) Validate() error {
	switch {
	case c.Interval < 0:
		return fmt.Errorf("expire: Interval must not be negative, got %v", c.Interval)
	case c.BatchSize < 0 || c.BatchSize > maxBatchSize:
		return fmt.Errorf("expire: BatchSize must be 1-%d, got %d", maxBatchSize, c.BatchSize)
	case c.Rescan < 0:
		return fmt.Errorf("expire: Rescan must not be negative, got %v", c.Rescan)
	case c.SlotRefresh < 0:
		return fmt.Errorf("expire: SlotRefresh must not be negative, got %v", c.SlotRefresh)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Rescan == 0 {
		c.Rescan = DefaultRescan
	}
	if c.SlotRefresh == 0 {
		c.SlotRefresh = DefaultSlotRefresh
	}
	return c
}

// SlotLister lists every slot; slots.Repo.List is meant.
type SlotLister interface {
	List(ctx context.Context, o slots.ListOptions) ([]*slots.Slot, error)
}

// Deps are the sweeper's collaborators.
type Deps struct {
	Slots  SlotLister  // required
	Store  store.Store // required; the sweeper Lists and Deletes only
	Logger *slog.Logger
	// Now is the clock expiry, Rescan and SlotRefresh are measured on.
	// Default: time.Now.
	Now func() time.Time
	// Registerer, when set, receives the liveingest_expire_* metrics.
	Registerer prometheus.Registerer
}

// Sweeper deletes expired media. Sweep, Run and Note are safe for
// concurrent use; passes are serialised, and Note never waits for one.
type Sweeper struct {
	cfg     Config
	slots   SlotLister
	store   store.Store
	log     *slog.Logger
	now     func() time.Time
	deleted prometheus.Counter
	failed  prometheus.Counter
	indexed prometheus.Gauge

	pass sync.Mutex // held by Sweep: one pass at a time

	mu          sync.Mutex // guards what follows; never held during I/O
	idx         map[keys.SlotID]*slotIndex
	seq         uint64 // Notes so far
	total       int    // indexed keys over all slots (the gauge)
	refreshedAt time.Time
	refreshed   bool
	askRefresh  bool // a Note named a slot not in the list
}

// New checks cfg and deps and returns a Sweeper.
func New(cfg Config, deps Deps) (*Sweeper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Slots == nil {
		return nil, errors.New("expire: Deps.Slots is required")
	}
	if deps.Store == nil {
		return nil, errors.New("expire: Deps.Store is required")
	}
	s := &Sweeper{
		cfg:   cfg.withDefaults(),
		slots: deps.Slots,
		store: deps.Store,
		log:   deps.Logger,
		now:   deps.Now,
		idx:   map[keys.SlotID]*slotIndex{},
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveingest_expire_deleted_objects_total",
			Help: "Media objects deleted by the expiry sweeper.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveingest_expire_slot_errors_total",
			Help: "Slots whose sweep failed (listing or deleting).",
		}),
		indexed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveingest_expire_indexed_objects",
			Help: "Stored segments in the expiry index, which passes delete when due.",
		}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "expire")
	if s.now == nil {
		s.now = time.Now
	}
	if deps.Registerer != nil {
		var err error
		if s.deleted, err = metricsreg.Register(deps.Registerer, s.deleted); err != nil {
			return nil, fmt.Errorf("expire: register metrics: %w", err)
		}
		if s.failed, err = metricsreg.Register(deps.Registerer, s.failed); err != nil {
			return nil, fmt.Errorf("expire: register metrics: %w", err)
		}
		if s.indexed, err = metricsreg.Register(deps.Registerer, s.indexed); err != nil {
			return nil, fmt.Errorf("expire: register metrics: %w", err)
		}
	}
	return s, nil
}

// Note tells the index that a segment version was stored under key at
// modified (the Info.Modified its Put returned; zero: now). Keys that are
// not media (keys.MediaSlot) or not segments (lifecycle.ClassOf, the class
// Plan decides by) are ignored. Note does no I/O and never blocks on a
// pass: writers call it on their Put path (Observe).
func (s *Sweeper) Note(key string, modified time.Time) {
	id, ok := keys.MediaSlot(key)
	if !ok || lifecycle.ClassOf(key) != store.ClassSegment {
		return
	}
	if modified.IsZero() {
		modified = s.now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	si := s.slot(id)
	si.lastNote = s.seq
	si.tailKnown = false
	s.count(si.add(entry{key: key, modified: modified, seq: s.seq}))
	if si.expiry == 0 && !si.asked {
		si.asked, s.askRefresh = true, true
	}
}

// slot returns the index of id, creating it. s.mu must be held.
func (s *Sweeper) slot(id keys.SlotID) *slotIndex {
	si := s.idx[id]
	if si == nil {
		si = newSlotIndex()
		s.idx[id] = si
	}
	return si
}

// count adds delta to the number of indexed keys. s.mu must be held.
func (s *Sweeper) count(delta int) {
	s.total += delta
	s.indexed.Set(float64(s.total))
}

// scan is one slot a pass lists.
type scan struct {
	id      keys.SlotID
	expiry  time.Duration
	seq0    uint64  // Notes before the listing began
	popped  []entry // taken from the index by this pass; back on failure
	objects []store.Info
	plan    []string
	err     error
}

// pending is one key a pass deletes, with the slot it is of.
type pending struct {
	id keys.SlotID
	e  entry
	sc *scan // nil: popped from the index, not planned on a listing
}

// Sweep makes one pass. For every slot in the slot list it pops the
// indexed segments due at Now; a slot whose index is incomplete (never
// listed), whose Rescan is due, or whose last indexed segment is going is
// listed instead and planned with lifecycle.Plan. Segments are deleted
// first, in batches across slots; the other files a plan names only once
// every segment of their slot was deleted, so that manifests never go
// while a segment is left. A failing slot does not stop the others; the
// errors are joined. deleted counts the objects whose Delete succeeded.
//
// Deleting a key that was overwritten since it was indexed deletes the new
// version too (as a listing-based pass would); segment keys are written
// once.
func (s *Sweeper) Sweep(ctx context.Context) (deleted int, err error) {
	s.pass.Lock()
	defer s.pass.Unlock()
	var errs []error
	if err := s.refreshSlots(ctx); err != nil {
		if !s.refreshedOnce() {
			return 0, err
		}
		errs = append(errs, err) // sweep on the list we have
	}

	// Decide, under the lock, what each slot needs.
	var due []pending
	var scans []*scan
	s.mu.Lock()
	now := s.now()
	for _, id := range s.sortedIDs() {
		si := s.idx[id]
		if si.expiry <= 0 {
			continue // not in the slot list
		}
		var popped []entry
		if !si.scanned.IsZero() && now.Sub(si.scanned) < s.cfg.Rescan {
			popped = si.popDue(now)
			s.count(-len(popped))
			if len(si.latest) > 0 || !si.tailWanted(now) {
				for _, e := range popped {
					due = append(due, pending{id: id, e: e})
				}
				continue
			}
			// The last indexed segments are due: the listing decides the
			// rest (and lists these too).
		}
		scans = append(scans, &scan{id: id, expiry: si.expiry, seq0: s.seq, popped: popped})
	}
	s.mu.Unlock()

	for _, sc := range scans {
		if err := ctx.Err(); err != nil {
			sc.err = err
			continue
		}
		sc.err = s.store.List(ctx, keys.MediaPrefix(sc.id), func(i store.Info) error {
			sc.objects = append(sc.objects, i)
			return nil
		})
		// Now is read after the listing, so nothing listed is judged
		// against a time before it was seen.
		if sc.err == nil {
			sc.plan = lifecycle.Plan(sc.objects, sc.expiry, s.now())
		}
	}

	// Segments first: the popped ones and those the plans name.
	segs := due
	var rest []pending
	for _, sc := range scans {
		for _, k := range sc.plan {
			p := pending{id: sc.id, e: entry{key: k}, sc: sc}
			if lifecycle.ClassOf(k) == store.ClassSegment {
				segs = append(segs, p)
			} else {
				rest = append(rest, p)
			}
		}
	}
	gone := map[string]bool{}
	failed := map[keys.SlotID]error{}
	deleted += s.deleteBatches(ctx, segs, gone, failed)
	// The other files of a slot go only when all its segments did.
	rest = slices.DeleteFunc(rest, func(p pending) bool { return failed[p.id] != nil })
	deleted += s.deleteBatches(ctx, rest, gone, failed)

	// Put back what was not deleted; replace the listed slots' index.
	s.mu.Lock()
	for _, p := range due {
		if !gone[p.e.key] {
			s.count(s.idx[p.id].add(p.e))
		}
	}
	for _, sc := range scans {
		si := s.idx[sc.id]
		if sc.err != nil {
			for _, e := range sc.popped {
				s.count(si.add(e))
			}
			failed[sc.id] = fmt.Errorf("list media: %w", sc.err)
			continue
		}
		s.count(si.replace(sc.objects, gone, sc.seq0, now))
	}
	s.mu.Unlock()

	ids := make([]keys.SlotID, 0, len(failed))
	for id := range failed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		s.failed.Inc()
		errs = append(errs, fmt.Errorf("expire: slot %s: %w", id, failed[id]))
	}
	return deleted, errors.Join(errs...)
}

// deleteBatches deletes the keys of ps in batches of BatchSize, adding
// the deleted keys to gone and the first error of each slot with a key in
// a failed batch to failed. It returns how many keys were deleted.
func (s *Sweeper) deleteBatches(ctx context.Context, ps []pending, gone map[string]bool, failed map[keys.SlotID]error) int {
	deleted := 0
	for len(ps) > 0 {
		batch := ps[:min(len(ps), s.cfg.BatchSize)]
		ps = ps[len(batch):]
		list := make([]string, len(batch))
		for i, p := range batch {
			list[i] = p.e.key
		}
		if err := s.store.Delete(ctx, list...); err != nil {
			for _, p := range batch {
				if failed[p.id] == nil {
					failed[p.id] = fmt.Errorf("delete: %w", err)
				}
			}
			continue
		}
		for _, k := range list {
			gone[k] = true
		}
		deleted += len(list)
		s.deleted.Add(float64(len(list)))
	}
	return deleted
}

// refreshSlots reads the slot list when SlotRefresh has passed since the
// last read, or a Note named a slot not in it. Slots that left the list
// lose their index, unless a Note came for them while the list was read
// (a slot created since is then read at the next refresh).
func (s *Sweeper) refreshSlots(ctx context.Context) error {
	s.mu.Lock()
	now := s.now()
	if s.refreshed && !s.askRefresh && now.Sub(s.refreshedAt) < s.cfg.SlotRefresh {
		s.mu.Unlock()
		return nil
	}
	asked := s.askRefresh
	s.askRefresh = false // a Note during the read asks again
	seq0 := s.seq
	s.mu.Unlock()

	all, err := s.slots.List(ctx, slots.ListOptions{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.askRefresh = s.askRefresh || asked
		return fmt.Errorf("expire: list slots: %w", err)
	}
	var errs []error
	listed := make(map[keys.SlotID]bool, len(all))
	for _, sl := range all {
		listed[sl.ID] = true
		si := s.slot(sl.ID)
		si.asked = false
		expiry := time.Duration(sl.FileExpiry) * time.Second
		if sl.FileExpiry <= 0 {
			// Validation forbids it; never read it as "expire at once".
			errs = append(errs, fmt.Errorf("expire: slot %s: file_expiry %d is not positive; skipped", sl.ID, sl.FileExpiry))
			s.failed.Inc()
			expiry = 0
		}
		if si.expiry != expiry {
			si.expiry = expiry
			si.tailKnown = false // its tailAt was measured with the old expiry
		}
	}
	for id, si := range s.idx {
		switch {
		case listed[id]:
		case si.lastNote > seq0:
			si.expiry = 0
		default:
			s.count(-len(si.latest))
			delete(s.idx, id)
		}
	}
	s.refreshedAt, s.refreshed = now, true
	return errors.Join(errs...)
}

func (s *Sweeper) refreshedOnce() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshed
}

// sortedIDs are the indexed slots in id order. s.mu must be held.
func (s *Sweeper) sortedIDs() []keys.SlotID {
	ids := make([]keys.SlotID, 0, len(s.idx))
	for id := range s.idx {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Run sweeps at once (the rebuild of the index) and then every Interval
// until ctx ends, and returns then (it starts no goroutine). A pass that
// deleted something logs one line with the count; a failed pass logs its
// error and the next pass tries again.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		start := time.Now()
		n, err := s.Sweep(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Warn("expiry pass failed", "deleted", n, "err", err)
		case n > 0:
			s.log.Info("expired media objects", "deleted", n, "took", time.Since(start).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
