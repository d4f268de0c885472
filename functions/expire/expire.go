// Package expire is the sweeper of R-EXPIRE-1 / R-FN-2: it deletes media
// objects at second granularity by the policy in origin/lifecycle (segments
// file_expiry seconds after they were written; manifests and init files
// only when they are all that is left of a slot and are old themselves).
// The S3 lifecycle backstop (lifecycle.S3Rules) catches what it misses at
// day granularity.
//
// Sweep is one pass and holds no state between calls, so it is the body of
// a Lambda handler as it is; Run is the local worker's loop around it.
package expire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// Interval is the pause between passes of Run. Expiry is late by at
	// most one interval plus the time of a pass. Default: 1s.
	Interval time.Duration

	// BatchSize is the number of keys per Store.Delete call (S3's
	// DeleteObjects takes at most 1000). Default: 1000.
	BatchSize int
}

// Defaults of Config.
const (
	DefaultInterval  = time.Second
	DefaultBatchSize = 1000
	maxBatchSize     = 1000
)

// Validate checks the configuration, naming the field at fault.
func (c Config) Validate() error {
	switch {
	case c.Interval < 0:
		return fmt.Errorf("expire: Interval must not be negative, got %v", c.Interval)
	case c.BatchSize < 0 || c.BatchSize > maxBatchSize:
		return fmt.Errorf("expire: BatchSize must be 1-%d, got %d", maxBatchSize, c.BatchSize)
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
	return c
}

// SlotLister lists every slot; slots.Repo.List is meant.
type SlotLister interface {
	List(ctx context.Context, o slots.ListOptions) ([]*slots.Slot, error)
}

// Deps are the sweeper's collaborators.
type Deps struct {
	Slots  SlotLister  // required
	Store  store.Store // required
	Logger *slog.Logger
	// Now is the clock expiry is measured on. Default: time.Now.
	Now func() time.Time
	// Registerer, when set, receives the liveingest_expire_* metrics.
	Registerer prometheus.Registerer
}

// Sweeper deletes expired media. Sweep and Run are safe for concurrent use
// (two passes at once only repeat deletions, which are idempotent).
type Sweeper struct {
	cfg     Config
	slots   SlotLister
	store   store.Store
	log     *slog.Logger
	now     func() time.Time
	deleted prometheus.Counter
	failed  prometheus.Counter
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
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveingest_expire_deleted_objects_total",
			Help: "Media objects deleted by the expiry sweeper.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveingest_expire_slot_errors_total",
			Help: "Slots whose sweep failed (listing or deleting).",
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
	}
	return s, nil
}

// Sweep makes one pass over every slot: it lists the slot's media (both
// roles), plans with the slot's file_expiry at Now, and deletes the plan in
// batches. A failing slot does not stop the others; the errors are joined.
// deleted counts the objects whose Delete succeeded.
//
// Media of a slot that no longer exists is not seen here (the pass walks
// slots, not the media prefix); the S3 backstop rule removes its segments.
func (s *Sweeper) Sweep(ctx context.Context) (deleted int, err error) {
	all, err := s.slots.List(ctx, slots.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("expire: list slots: %w", err)
	}
	var errs []error
	for _, sl := range all {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		n, err := s.sweepSlot(ctx, sl)
		deleted += n
		if err != nil {
			s.failed.Inc()
			errs = append(errs, fmt.Errorf("expire: slot %s: %w", sl.ID, err))
		}
	}
	return deleted, errors.Join(errs...)
}

func (s *Sweeper) sweepSlot(ctx context.Context, sl *slots.Slot) (int, error) {
	if sl.FileExpiry <= 0 {
		// Validation forbids it; never read it as "expire at once".
		return 0, fmt.Errorf("file_expiry %d is not positive; skipped", sl.FileExpiry)
	}
	var objects []store.Info
	err := s.store.List(ctx, keys.MediaPrefix(sl.ID), func(i store.Info) error {
		objects = append(objects, i)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list media: %w", err)
	}
	// Now is read after the listing, so nothing listed is judged against
	// a time before it was seen.
	plan := lifecycle.Plan(objects, time.Duration(sl.FileExpiry)*time.Second, s.now())
	deleted := 0
	for len(plan) > 0 {
		n := min(len(plan), s.cfg.BatchSize)
		if err := s.store.Delete(ctx, plan[:n]...); err != nil {
			return deleted, fmt.Errorf("delete: %w", err)
		}
		deleted += n
		s.deleted.Add(float64(n))
		plan = plan[n:]
	}
	return deleted, nil
}

// Run sweeps at once and then every Interval until ctx ends, and returns
// then (it starts no goroutine). A pass that deleted something logs one
// line with the count; a failed pass logs its error and the next pass
// tries again.
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
