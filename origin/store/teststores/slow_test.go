package teststores

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func put(ctx context.Context, st store.Store, key string) error {
	_, err := st.Put(ctx, key, strings.NewReader("x"), store.Meta{Class: store.ClassSegment})
	return err
}

// TestDelay: a write takes at least its delay, and a cancelled one stores
// nothing.
func TestDelay(t *testing.T) {
	st := Delay(Disk(t), 50*time.Millisecond)
	start := time.Now()
	if err := put(t.Context(), st, "a"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Put took %v, want ≥ 50ms", d)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := put(ctx, st, "b"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Put: %v", err)
	}
	if _, err := st.Stat(t.Context(), "b"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("the cancelled Put stored b: %v", err)
	}
}

// TestP99: 10,000 draws of a seed are the same every time; about 1 % of
// them (the tail a p99 measures) take 200–300 ms, the rest 20–60 ms.
func TestP99(t *testing.T) {
	draw := func() []time.Duration {
		s := P99(nil, 14)
		out := make([]time.Duration, 10000)
		for i := range out {
			out[i] = s.delay()
		}
		return out
	}
	a := draw()
	if !slices.Equal(a, draw()) {
		t.Fatal("two stores of one seed drew different delays")
	}
	slow := 0
	for _, d := range a {
		switch {
		case d >= 200*time.Millisecond && d < 300*time.Millisecond:
			slow++
		case d < 20*time.Millisecond || d >= 60*time.Millisecond:
			t.Fatalf("a delay of %v, outside 20–60 ms and 200–300 ms", d)
		}
	}
	if slow < 50 || slow > 200 {
		t.Errorf("%d of %d delays ≥ 200 ms, want about 1 %%", slow, len(a))
	}
}

// TestGate: a blocked gate holds writes (counted) until Release, or until
// their ctx ends; reads pass.
func TestGate(t *testing.T) {
	g := NewGate(Disk(t))
	if err := put(t.Context(), g, "a"); err != nil {
		t.Fatal(err)
	}
	g.Block()
	done := make(chan error, 1)
	go func() { done <- put(t.Context(), g, "b") }()
	deadline := time.Now().Add(10 * time.Second)
	for g.Waiting() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the write is not held")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := g.Stat(t.Context(), "a"); err != nil {
		t.Errorf("a read waited at the gate: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := put(ctx, g, "c"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("held write past its deadline: %v", err)
	}
	g.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := g.Stat(t.Context(), "b"); err != nil {
		t.Errorf("b after the release: %v", err)
	}
}
