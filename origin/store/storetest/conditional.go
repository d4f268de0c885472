package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/liveingest/liveingest/origin/store"
)

func testConditionalPut(t *testing.T, st store.Store) {
	ctx := testCtx(t)
	const key = "cond/slot.json"

	// If-Match on a missing key: a precondition failure that says why.
	_, err := st.Put(ctx, key, bytes.NewReader([]byte("x")), store.Meta{IfMatch: `"0123456789abcdef0123456789abcdef"`})
	wantErrIs(t, "Put IfMatch on a missing key", err, store.ErrPrecondition)
	wantErrIs(t, "Put IfMatch on a missing key", err, store.ErrNotExist)
	wantAbsent(t, st, key)

	// If-None-Match "*": create only.
	v1 := put(t, st, key, []byte("v1"), store.Meta{IfNoneMatch: "*", Class: store.ClassConfig})
	_, err = st.Put(ctx, key, bytes.NewReader([]byte("v1b")), store.Meta{IfNoneMatch: "*"})
	wantErrIs(t, "second Put IfNoneMatch *", err, store.ErrPrecondition)
	wantContent(t, st, key, []byte("v1"))

	// If-Match with the current ETag replaces; the ETag then changes.
	v2 := put(t, st, key, []byte("v2"), store.Meta{IfMatch: v1.ETag, Class: store.ClassConfig})
	if v2.ETag == v1.ETag {
		t.Fatalf("ETag unchanged after a conditional replace: %s", v2.ETag)
	}
	info := wantContent(t, st, key, []byte("v2"))
	if info.ETag != v2.ETag || info.Class != store.ClassConfig {
		t.Fatalf("after IfMatch Put: Info %+v, want ETag %s, class config", info, v2.ETag)
	}

	// A stale ETag fails and changes nothing.
	_, err = st.Put(ctx, key, bytes.NewReader([]byte("v3")), store.Meta{IfMatch: v1.ETag})
	wantErrIs(t, "Put IfMatch with a stale ETag", err, store.ErrPrecondition)
	if errors.Is(err, store.ErrNotExist) {
		t.Fatalf("Put IfMatch with a stale ETag on an existing key wraps ErrNotExist: %v", err)
	}
	if got := wantContent(t, st, key, []byte("v2")); got.ETag != v2.ETag {
		t.Fatalf("ETag changed by a failed Put: %s, want %s", got.ETag, v2.ETag)
	}

	// After a Delete, create-only works again.
	if err := st.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	put(t, st, key, []byte("v4"), store.Meta{IfNoneMatch: "*"})
	wantContent(t, st, key, []byte("v4"))
}

// testConditionalLarge checks conditions on bodies too large for one
// buffered request: of unknown size (the s3 backend's multipart path) and of
// known size (its streaming path).
func testConditionalLarge(t *testing.T, st store.Store) {
	for _, known := range []bool{false, true} {
		t.Run(fmt.Sprintf("knownSize=%v", known), func(t *testing.T) {
			ctx := testCtx(t)
			key := fmt.Sprintf("cond/large-%v.m4s", known)
			const n = 12 << 20
			v1, v2, v3 := pattern("large-one", n), pattern("large-two", n), pattern("large-three", n)
			m := func(m store.Meta) store.Meta {
				if known {
					m.Size = n
				}
				return m
			}

			i1, err := st.Put(ctx, key, readerOnly(v1), m(store.Meta{IfNoneMatch: "*"}))
			if err != nil {
				t.Fatalf("first large Put IfNoneMatch *: %v", err)
			}
			_, err = st.Put(ctx, key, readerOnly(v2), m(store.Meta{IfNoneMatch: "*"}))
			wantErrIs(t, "second large Put IfNoneMatch *", err, store.ErrPrecondition)
			wantContent(t, st, key, v1)

			i2, err := st.Put(ctx, key, readerOnly(v2), m(store.Meta{IfMatch: i1.ETag}))
			if err != nil {
				t.Fatalf("large Put IfMatch current: %v", err)
			}
			_, err = st.Put(ctx, key, readerOnly(v3), m(store.Meta{IfMatch: i1.ETag}))
			wantErrIs(t, "large Put IfMatch stale", err, store.ErrPrecondition)
			if info := wantContent(t, st, key, v2); info.ETag != i2.ETag {
				t.Fatalf("ETag %s, want %s", info.ETag, i2.ETag)
			}
			missing := key + "-missing"
			_, err = st.Put(ctx, missing, readerOnly(v3), m(store.Meta{IfMatch: i1.ETag}))
			wantErrIs(t, "large Put IfMatch on a missing key", err, store.ErrPrecondition)
			wantErrIs(t, "large Put IfMatch on a missing key", err, store.ErrNotExist)
			wantAbsent(t, st, missing)
		})
	}
}

// readerOnly hides every method but Read, as a network body would.
func readerOnly(b []byte) *onlyReader { return &onlyReader{r: bytes.NewReader(b)} }

type onlyReader struct{ r *bytes.Reader }

func (o *onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

const racers = 16

// gate lines racing Puts up: each body is read to its end and then holds
// back its EOF until every racer got there, so that the commits (the
// condition check and the moment of visibility) overlap as much as the
// backend allows.
type gate struct {
	arrived sync.WaitGroup
	open    chan struct{}
}

func newGate(n int) *gate {
	g := &gate{open: make(chan struct{})}
	g.arrived.Add(n)
	return g
}

// gated is a racer's body. A Put that returns without reading it to the
// end (a backend may check a condition first) must call arrive.
type gated struct {
	io.Reader
	arrive func()
}

// body returns a reader of b that waits at its end for the gate.
func (g *gate) body(b []byte) gated {
	arrive := sync.OnceFunc(g.arrived.Done)
	return gated{
		Reader: io.MultiReader(bytes.NewReader(b), readerFunc(func([]byte) (int, error) {
			arrive()
			<-g.open
			return 0, io.EOF
		})),
		arrive: arrive,
	}
}

// release waits (with a deadline) for all bodies to arrive and opens the
// gate.
func (g *gate) release(t *testing.T) {
	t.Helper()
	all := make(chan struct{})
	go func() { g.arrived.Wait(); close(all) }()
	defer close(g.open)
	recv(t, all, "racing Puts to read their bodies")
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func testCreateRace(t *testing.T, st store.Store) {
	for round := range 5 {
		key := fmt.Sprintf("race/create-%d", round)
		g := newGate(racers)
		errs := make(chan error, racers)
		for i := range racers {
			go func() {
				body := g.body([]byte(fmt.Sprintf("writer %d", i)))
				_, err := st.Put(testCtx(t), key, body, store.Meta{IfNoneMatch: "*"})
				body.arrive()
				if err == nil {
					err = winner(i)
				}
				errs <- err
			}()
		}
		g.release(t)
		won := -1
		for range racers {
			err := recv(t, errs, "racing Put")
			var w winner
			switch {
			case errors.As(err, &w):
				if won >= 0 {
					t.Fatalf("round %d: writers %d and %d both created %q", round, won, int(w), key)
				}
				won = int(w)
			case !errors.Is(err, store.ErrPrecondition):
				t.Fatalf("round %d: losing Put: %v, want ErrPrecondition", round, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no writer created %q", round, key)
		}
		wantContent(t, st, key, []byte(fmt.Sprintf("writer %d", won)))
	}
}

// winner marks the Put that succeeded in a race.
type winner int

func (w winner) Error() string { return fmt.Sprintf("writer %d won", int(w)) }

// testReplaceRace: writers read the ETag, all of them before any writes, then
// each replaces the object If-Match that ETag. One per round must win.
func testReplaceRace(t *testing.T, st store.Store) {
	const key = "race/replace.json"
	cur := put(t, st, key, []byte("round start"), store.Meta{Class: store.ClassConfig})
	seen := map[string]bool{cur.ETag: true}
	for round := range 5 {
		var read sync.WaitGroup
		read.Add(racers)
		write := make(chan struct{})
		g := newGate(racers)
		errs := make(chan error, racers)
		for i := range racers {
			go func() {
				info, err := st.Stat(testCtx(t), key)
				read.Done()
				<-write
				if err != nil {
					g.arrived.Done()
					errs <- fmt.Errorf("Stat: %w", err)
					return
				}
				body := g.body([]byte(fmt.Sprintf("round %d writer %d", round, i)))
				_, err = st.Put(testCtx(t), key, body, store.Meta{IfMatch: info.ETag, Class: store.ClassConfig})
				body.arrive()
				if err == nil {
					err = winner(i)
				}
				errs <- err
			}()
		}
		read.Wait() // every writer holds the same ETag now
		close(write)
		g.release(t)
		won := -1
		for range racers {
			err := recv(t, errs, "racing Put")
			var w winner
			switch {
			case errors.As(err, &w):
				if won >= 0 {
					t.Fatalf("round %d: writers %d and %d both replaced version %s", round, won, int(w), cur.ETag)
				}
				won = int(w)
			case !errors.Is(err, store.ErrPrecondition):
				t.Fatalf("round %d: losing Put: %v, want ErrPrecondition", round, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no writer replaced the object", round)
		}
		cur = wantContent(t, st, key, []byte(fmt.Sprintf("round %d writer %d", round, won)))
		if seen[cur.ETag] {
			t.Fatalf("round %d: ETag %s was seen before", round, cur.ETag)
		}
		seen[cur.ETag] = true
	}
}
