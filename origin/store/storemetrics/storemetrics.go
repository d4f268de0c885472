// Package storemetrics measures a store.Store: the latency of every
// operation, by operation, object class and result, as the histogram
//
//	liveingest_store_operation_seconds{op, class, result}
//
// op is put, get, get_range, stat, list or delete. class is the object's
// class (segment, manifest, init, config, …) where the operation knows it —
// a Put from its Meta, a Get or Stat from the Info it returns — and "-"
// otherwise (List, Delete, a failed read). result is ok, not_found,
// precondition, canceled or error. A Put's time includes reading its body,
// so a body streamed from a slow client (Live Push) measures the client
// too; the segment writer's bodies are in memory.
package storemetrics

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/origin/metricsreg"

	"github.com/liveingest/liveingest/origin/store"
)

// Store is a store.Store that measures next. It is safe for concurrent use
// as next is, and changes nothing of next's behaviour.
type Store struct {
	next store.Store
	hist *prometheus.HistogramVec
}

var _ store.Store = (*Store)(nil)

// Wrap measures next into reg. Wrapping several stores into one reg shares
// the histogram (a second registration reuses the first collector).
func Wrap(next store.Store, reg prometheus.Registerer) (*Store, error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "liveingest_store_operation_seconds",
		Help: "Object store operation latency, by operation, object class and result.",
		// 1 ms to about 16 s: a local disk answers in the first buckets, S3
		// across a region in the middle ones, a failing store in the last.
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	}, []string{"op", "class", "result"})
	if reg != nil {
		var err error
		if h, err = metricsreg.Register(reg, h); err != nil {
			return nil, err
		}
	}
	return &Store{next: next, hist: h}, nil
}

// Unwrap is the measured store.
func (s *Store) Unwrap() store.Store { return s.next }

func (s *Store) observe(op string, class store.Class, start time.Time, err error) {
	c := string(class)
	if c == "" {
		c = "-"
	}
	s.hist.WithLabelValues(op, c, result(err)).Observe(time.Since(start).Seconds())
}

// result names how an operation ended.
func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, store.ErrPrecondition):
		return "precondition"
	case errors.Is(err, store.ErrNotExist):
		return "not_found"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "error"
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, m store.Meta) (store.Info, error) {
	start := time.Now()
	info, err := s.next.Put(ctx, key, r, m)
	class := m.Class
	if class == "" {
		class = store.ClassSegment
	}
	s.observe("put", class, start, err)
	return info, err
}

func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, store.Info, error) {
	start := time.Now()
	rc, info, err := s.next.Get(ctx, key)
	s.observe("get", info.Class, start, err)
	return rc, info, err
}

func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, store.Info, error) {
	start := time.Now()
	rc, info, err := s.next.GetRange(ctx, key, offset, length)
	s.observe("get_range", info.Class, start, err)
	return rc, info, err
}

func (s *Store) Stat(ctx context.Context, key string) (store.Info, error) {
	start := time.Now()
	info, err := s.next.Stat(ctx, key)
	s.observe("stat", info.Class, start, err)
	return info, err
}

func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	start := time.Now()
	err := s.next.List(ctx, prefix, fn)
	s.observe("list", "", start, err)
	return err
}

func (s *Store) Delete(ctx context.Context, keys ...string) error {
	start := time.Now()
	err := s.next.Delete(ctx, keys...)
	s.observe("delete", "", start, err)
	return err
}
