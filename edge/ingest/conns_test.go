package ingest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// fakeConn ends when released or aborted.
type fakeConn struct {
	end     chan struct{}
	aborted atomic.Bool
}

func (c *fakeConn) Abort() {
	if c.aborted.CompareAndSwap(false, true) {
		close(c.end)
	}
}

func TestConnsCloseWaitsThenAborts(t *testing.T) {
	s := NewConns[int, *fakeConn]()
	graceful := &fakeConn{end: make(chan struct{})}
	stuck := &fakeConn{end: make(chan struct{})}
	for i, c := range []*fakeConn{graceful, stuck} {
		if !s.Add(i, c) {
			t.Fatal("Add refused before Close")
		}
	}
	// A graceful connection ends when the server closes; the stuck one
	// only when aborted.
	go func() { <-s.Closed(); s.Done(0) }()
	go func() { <-stuck.end; s.Done(1) }()
	loopEnded := make(chan struct{})
	if !s.Go(func() { <-s.Closed(); close(loopEnded) }) {
		t.Fatal("Go refused before Close")
	}
	if got, ok := s.Get(1); !ok || got != stuck {
		t.Fatal("Get does not find a live connection")
	}

	stops := 0
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s.Close(ctx, func() { stops++ })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the deadline", err)
	}
	select {
	case <-loopEnded:
	default:
		t.Error("Close returned before a Go goroutine ended")
	}
	if graceful.aborted.Load() || !stuck.aborted.Load() {
		t.Errorf("aborted: graceful %v, stuck %v", graceful.aborted.Load(), stuck.aborted.Load())
	}
	if _, ok := s.Get(1); ok {
		t.Error("an ended connection is still listed")
	}
	if err := s.Close(context.Background(), func() { stops++ }); err != nil || stops != 1 {
		t.Errorf("second Close = %v, stop ran %d times", err, stops)
	}
	if !s.Closing() || s.Add(2, &fakeConn{}) || s.Go(func() {}) {
		t.Error("a closed set takes new connections or goroutines")
	}
}
