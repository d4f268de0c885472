package ingest

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

// writeUntilListed writes frames from i on until the pipeline's first
// segment is listed, and returns the next frame's index.
func writeUntilListed(t *testing.T, p *Pipeline, i int) int {
	t.Helper()
	for ; p.Stats().Segments == 0; i++ {
		if err := p.Write(t.Context(), aacFrame(i)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if i%10 == 0 {
			if err := p.w.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return i
}

func (f *fixture) playlist(t *testing.T) string {
	t.Helper()
	rc, _, err := f.st.Get(t.Context(), keys.Media(f.id, f.role, "audio.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, rc)
}

// TestStorageSlow: the store hangs; with a queue of one segment the
// second cut's Write blocks for the queue's wait, then the session ends
// storage-slow — in the Write's rejection, the session and the live
// status's recent ends. A close bounded while the store still hangs gives
// up at its deadline, yet releases the lease and leaves the registry; the
// segment listed before is listed and stored.
func TestStorageSlow(t *testing.T) {
	gate := teststores.NewGate(teststores.Disk(t))
	f := newFixtureOn(t, gate, segment.QueueConfig{Segments: 1, Wait: 200 * time.Millisecond})
	sess := f.admit(t)
	p, err := Start(t.Context(), sess, f.seg, []media.Track{aacTrack})
	if err != nil {
		t.Fatal(err)
	}
	i := writeUntilListed(t, p, 0)
	listed := f.playlist(t)
	gate.Block()
	for ; err == nil && i < 47*10; i++ {
		err = p.Write(t.Context(), aacFrame(i))
	}
	rej := admit.AsRejection(err)
	if rej.Reason != admit.ReasonStorageSlow {
		t.Fatalf("Write with the store hung: %v, want storage-slow", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("the session did not end")
	}
	var ended bool
	ls, _ := f.co.List(t.Context(), string(f.id))
	for _, s := range ls {
		ended = ended || !s.Ended.IsZero() && strings.HasPrefix(s.EndReason, "storage-slow: ")
	}
	if !ended {
		t.Errorf("the registry has no storage-slow end: %+v", ls)
	}

	start := time.Now()
	err = p.CloseWithin(t.Context(), 500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "close deadline") {
		t.Errorf("CloseWithin with the store hung: %v, want the flush's deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("CloseWithin(500ms) took %v", d)
	}
	if !f.leaseFree(t) {
		t.Error("the lease is held after the close")
	}
	gate.Release()
	if got := f.playlist(t); got != listed {
		t.Errorf("audio.m3u8 changed:\n%s\nwas:\n%s", got, listed)
	}
	for _, l := range strings.Split(listed, "\n") {
		if strings.HasSuffix(l, ".m4s") {
			if _, err := f.st.Stat(t.Context(), keys.Media(f.id, f.role, keys.RelPath(l))); err != nil {
				t.Errorf("listed %s: %v", l, err)
			}
		}
	}
}

// failingStore fails segment writes with store.ErrUnavailable while fail
// is set.
type failingStore struct {
	store.Store
	fail atomic.Bool
}

func (s *failingStore) Put(ctx context.Context, key string, r io.Reader, m store.Meta) (store.Info, error) {
	if s.fail.Load() && m.Class == store.ClassSegment {
		return store.Info{}, fmt.Errorf("test: %w", store.ErrUnavailable)
	}
	return s.Store.Put(ctx, key, r, m)
}

// TestUploadFailureEndsSession: a segment write fails on the upload
// queue after the last Write returned; the session ends
// storage-unavailable at once, without waiting for another Write (a
// protocol watching Done stops reading).
func TestUploadFailureEndsSession(t *testing.T) {
	st := &failingStore{Store: teststores.Disk(t)}
	gate := teststores.NewGate(st)
	f := newFixtureOn(t, gate, segment.QueueConfig{})
	sess := f.admit(t)
	p, err := Start(t.Context(), sess, f.seg, []media.Track{aacTrack})
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseWithin(context.Background(), 5*time.Second)
	defer gate.Release()
	i := writeUntilListed(t, p, 0)
	// One more cut (the slot's segments are 2 s), held at the gate: every
	// Write returns nil.
	gate.Block()
	for range 47 * 3 {
		if err := p.Write(t.Context(), aacFrame(i)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		i++
	}
	waitUntil(t, "the cut's segment held at the store", func() bool { return gate.Waiting() > 0 })
	st.fail.Store(true)
	gate.Release()
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the session did not end after the failed upload")
	}
	if r := admit.ReasonOf(p.Err()); r != admit.ReasonStorageUnavailable {
		t.Errorf("session ended %v, want storage-unavailable", p.Err())
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
