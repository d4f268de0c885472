package teststores

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/liveingest/liveingest/origin/store"
)

// The stores below wrap a real backend and slow its writes down (Put and
// Delete), to test what a slow object store does to the layers above it:
// a remote S3 region, a store at its request limit, a hung one. Reads pass
// straight through. Each is safe for concurrent use as the wrapped store is,
// and honours ctx: a cancelled wait returns ctx's error and writes nothing.

// Delayed delays every write by a fixed time before passing it on.
type Delayed struct {
	store.Store
	delay func() time.Duration
}

var _ store.Store = (*Delayed)(nil)

// Delay returns next with every write delayed by d.
func Delay(next store.Store, d time.Duration) *Delayed {
	return &Delayed{Store: next, delay: func() time.Duration { return d }}
}

// P99 returns next with writes delayed as a loaded remote store answers:
// 99 % of writes take 20–60 ms (uniform), 1 % take 200–300 ms, so the p99
// is 200 ms. The delays follow a fixed seed: the same sequence every run
// (which write gets which delay depends on the order writes arrive in).
func P99(next store.Store, seed uint64) *Delayed {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return &Delayed{Store: next, delay: func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		if rng.IntN(100) == 0 {
			return 200*time.Millisecond + time.Duration(rng.Int64N(int64(100*time.Millisecond)))
		}
		return 20*time.Millisecond + time.Duration(rng.Int64N(int64(40*time.Millisecond)))
	}}
}

func (s *Delayed) wait(ctx context.Context) error {
	t := time.NewTimer(s.delay())
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Put waits its delay, then stores.
func (s *Delayed) Put(ctx context.Context, key string, r io.Reader, m store.Meta) (store.Info, error) {
	if err := s.wait(ctx); err != nil {
		return store.Info{}, err
	}
	return s.Store.Put(ctx, key, r, m)
}

// Delete waits its delay, then deletes.
func (s *Delayed) Delete(ctx context.Context, keys ...string) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.Store.Delete(ctx, keys...)
}

// Gate is a store whose writes can be held: while blocked, every Put and
// Delete waits until Release (or its ctx ends: then it returns ctx's error
// and writes nothing). It starts open.
type Gate struct {
	store.Store

	mu      sync.Mutex
	open    chan struct{} // closed while writes pass
	waiting int           // writes held now
}

var _ store.Store = (*Gate)(nil)

// NewGate returns next behind an open gate.
func NewGate(next store.Store) *Gate {
	open := make(chan struct{})
	close(open)
	return &Gate{Store: next, open: open}
}

// Block holds every write from now on until Release. Writes already past
// the gate finish.
func (g *Gate) Block() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default: // already blocked
	}
}

// Release lets the held writes and every later one through.
func (g *Gate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// Waiting is the number of writes held at the gate now.
func (g *Gate) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

func (g *Gate) pass(ctx context.Context) error {
	g.mu.Lock()
	open := g.open
	g.waiting++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.waiting--
		g.mu.Unlock()
	}()
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Put waits for the gate, then stores.
func (g *Gate) Put(ctx context.Context, key string, r io.Reader, m store.Meta) (store.Info, error) {
	if err := g.pass(ctx); err != nil {
		return store.Info{}, err
	}
	return g.Store.Put(ctx, key, r, m)
}

// Delete waits for the gate, then deletes.
func (g *Gate) Delete(ctx context.Context, keys ...string) error {
	if err := g.pass(ctx); err != nil {
		return err
	}
	return g.Store.Delete(ctx, keys...)
}

// PutRecord is one successful Put as a Log saw it.
type PutRecord struct {
	Key   string
	Class store.Class
	// Body is the object's bytes for manifests and state (what a test
	// parses to learn which segments a commit names); nil for media.
	Body       []byte
	Start, End time.Time // when Put was called and when it returned
}

// Log records every successful Put to the store it wraps, in the order
// the Puts returned.
type Log struct {
	store.Store

	mu   sync.Mutex
	puts []PutRecord
}

var _ store.Store = (*Log)(nil)

// NewLog returns next recording its Puts.
func NewLog(next store.Store) *Log { return &Log{Store: next} }

// Put stores and, when that succeeded, records the Put.
func (l *Log) Put(ctx context.Context, key string, r io.Reader, m store.Meta) (store.Info, error) {
	rec := PutRecord{Key: key, Class: m.Class, Start: time.Now()}
	if rec.Class == "" {
		rec.Class = store.ClassSegment
	}
	if rec.Class == store.ClassManifest || rec.Class == store.ClassState {
		b, err := io.ReadAll(r)
		if err != nil {
			return store.Info{}, err
		}
		rec.Body = b
		r = bytes.NewReader(b)
	}
	info, err := l.Store.Put(ctx, key, r, m)
	if err == nil {
		rec.End = time.Now()
		l.mu.Lock()
		l.puts = append(l.puts, rec)
		l.mu.Unlock()
	}
	return info, err
}

// Puts is a copy of the records so far.
func (l *Log) Puts() []PutRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]PutRecord(nil), l.puts...)
}
