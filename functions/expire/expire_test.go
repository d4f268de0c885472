package expire_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/functions/expire"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type fakeSlots []*slots.Slot

func (f fakeSlots) List(context.Context, slots.ListOptions) ([]*slots.Slot, error) { return f, nil }

func slot(id keys.SlotID, expiry int) *slots.Slot {
	return &slots.Slot{ID: id, SegmentDuration: 2, FileExpiry: expiry, DVRWindow: 2}
}

// clock is an injected clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func put(t *testing.T, st store.Store, id keys.SlotID, role keys.Role, rel string) time.Time {
	t.Helper()
	key := keys.Media(id, role, keys.RelPath(rel))
	if _, err := st.Put(t.Context(), key, strings.NewReader("x"), store.Meta{Class: lifecycle.ClassOf(rel)}); err != nil {
		t.Fatal(err)
	}
	// Modified as the listing reports it, which is what the sweeper sees
	// (S3's HeadObject truncates to seconds, its listing does not).
	var modified time.Time
	err := st.List(t.Context(), key, func(i store.Info) error {
		if i.Key == key {
			modified = i.Modified
		}
		return nil
	})
	if err != nil || modified.IsZero() {
		t.Fatalf("list %s: %v (modified %v)", key, err, modified)
	}
	return modified
}

func listAll(t *testing.T, st store.Store) []string {
	t.Helper()
	var out []string
	if err := st.List(t.Context(), "live/", func(i store.Info) error { out = append(out, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func backends(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("disk", func(t *testing.T) { fn(t, teststores.Disk(t)) })
	t.Run("minio", func(t *testing.T) { fn(t, teststores.MinIO(t)) })
}

// gap separates write phases by more than S3's one-second Modified
// granularity, so that the injected clock can sit between them.
const gap = 1100 * time.Millisecond

func TestSweep(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		const expiry = 300 * time.Second
		clk := &clock{}
		reg := prometheus.NewRegistry()
		sw, err := expire.New(expire.Config{BatchSize: 2}, expire.Deps{
			Slots: fakeSlots{slot("cam", 300), slot("long", 3600)}, Store: st, Now: clk.Now, Registerer: reg,
		})
		if err != nil {
			t.Fatal(err)
		}
		sweep := func(at time.Time, want int) {
			t.Helper()
			clk.Set(at)
			n, err := sw.Sweep(t.Context())
			if err != nil || n != want {
				t.Fatalf("Sweep at %v = %d, %v; want %d", at, n, err, want)
			}
		}
		expect := func(want ...string) {
			t.Helper()
			if got := listAll(t, st); !slices.Equal(got, want) {
				t.Fatalf("left:\n%q\nwant:\n%q", got, want)
			}
		}
		const p = "live/cam/primary/"
		longKeys := []string{"live/long/primary/index.m3u8", "live/long/primary/seg1.m4s"}

		// Phase A: old segments of both roles, and the long-lived slot.
		a := latest(put(t, st, "cam", keys.Primary, "seg1.m4s"), put(t, st, "cam", keys.Primary, "seg2.m4s"),
			put(t, st, "cam", keys.Backup, "seg1.m4s"))
		put(t, st, "long", keys.Primary, "seg1.m4s")
		put(t, st, "long", keys.Primary, "index.m3u8")
		time.Sleep(gap)
		// Phase B: the stream goes on: manifest, init, a newer segment.
		put(t, st, "cam", keys.Primary, "index.m3u8")
		put(t, st, "cam", keys.Primary, "init.mp4")
		bt := put(t, st, "cam", keys.Primary, "seg3.m4s")
		time.Sleep(gap)
		// Phase C: the manifest is rewritten once more.
		c := put(t, st, "cam", keys.Primary, "index.m3u8")

		sweep(a.Add(expiry-time.Second), 0)
		sweep(a.Add(expiry), 3) // at the boundary: the phase A segments
		expect(append([]string{p + "index.m3u8", p + "init.mp4", p + "seg3.m4s"}, longKeys...)...)

		// seg3 and the init file go together: no segment is left and the
		// init file is old; the manifest was rewritten later and stays.
		sweep(bt.Add(expiry), 2)
		expect(append([]string{p + "index.m3u8"}, longKeys...)...)
		sweep(c.Add(expiry-time.Second), 0)
		sweep(c.Add(expiry), 1)
		expect(longKeys...)

		if got := counter(t, reg, "liveingest_expire_deleted_objects_total"); got != 6 {
			t.Fatalf("deleted counter = %v, want 6", got)
		}
	})
}

// failingList fails listing one slot's media.
type failingList struct {
	store.Store
	prefix string
}

func (f failingList) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if prefix == f.prefix {
		return errors.New("listing broke")
	}
	return f.Store.List(ctx, prefix, fn)
}

func TestSweepErrorOfOneSlotDoesNotStopOthers(t *testing.T) {
	disk := teststores.Disk(t)
	put(t, disk, "bad", keys.Primary, "seg1.m4s")
	m := put(t, disk, "good", keys.Primary, "seg1.m4s")
	st := failingList{Store: disk, prefix: keys.MediaPrefix("bad")}
	sw, err := expire.New(expire.Config{}, expire.Deps{
		Slots: fakeSlots{slot("bad", 10), slot("good", 10)}, Store: st,
		Now: func() time.Time { return m.Add(time.Hour) },
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := sw.Sweep(t.Context())
	if n != 1 || err == nil || !strings.Contains(err.Error(), "bad") || !strings.Contains(err.Error(), "listing broke") {
		t.Fatalf("Sweep = %d, %v; want 1 and the bad slot's error", n, err)
	}
	if got := listAll(t, disk); !slices.Equal(got, []string{"live/bad/primary/seg1.m4s"}) {
		t.Fatalf("left %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   expire.Config
		field string
	}{
		{expire.Config{Interval: -1}, "Interval"},
		{expire.Config{BatchSize: -1}, "BatchSize"},
		{expire.Config{BatchSize: 1001}, "BatchSize"},
		{expire.Config{Rescan: -time.Second}, "Rescan"},
		{expire.Config{SlotRefresh: -time.Second}, "SlotRefresh"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
	if _, err := expire.New(expire.Config{}, expire.Deps{}); err == nil {
		t.Error("New without deps succeeded")
	}
}

// TestRunRealTime runs the loop on the real clock, as dev does: a segment
// with a 6 s file_expiry written through the observed store after the
// rebuild must be gone within 2 s of its due time.
func TestRunRealTime(t *testing.T) {
	disk := teststores.Disk(t)
	sw, err := expire.New(expire.Config{Interval: 250 * time.Millisecond}, expire.Deps{
		Slots: fakeSlots{slot("cam", 6)}, Store: disk,
	})
	if err != nil {
		t.Fatal(err)
	}
	st := expire.Observe(disk, sw)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); sw.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()

	modified := put(t, st, "cam", keys.Primary, "seg1.m4s")
	due := modified.Add(6 * time.Second)
	key := keys.Media("cam", keys.Primary, "seg1.m4s")
	deadline := due.Add(5 * time.Second)
	for {
		_, err := st.Stat(t.Context(), key)
		now := time.Now()
		if errors.Is(err, store.ErrNotExist) {
			if now.Before(due) {
				t.Fatalf("segment deleted %v before its due time", due.Sub(now))
			}
			lag := now.Sub(due)
			t.Logf("deleted %v after its due time", lag)
			if lag > 2*time.Second {
				t.Fatalf("deleted %v after its due time, want <= 2s", lag)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if now.After(deadline) {
			t.Fatalf("segment still there %v after its due time", now.Sub(due))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counter reads one counter or gauge from the registry (prometheus/testutil would
// need a module go.mod does not carry).
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter or gauge %s", name)
	return 0
}

func latest(ts ...time.Time) time.Time {
	return slices.MaxFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
}

// TestSweepKeepsStreamState: the stream state (and the tombstone at its
// legacy name) lives as long as the stream has segments, however old its
// own write, and goes in the pass that removes the last files.
func TestSweepKeepsStreamState(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		const expiry = 300 * time.Second
		clk := &clock{}
		sw, err := expire.New(expire.Config{}, expire.Deps{Slots: fakeSlots{slot("cam", 300)}, Store: st, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		old := latest(put(t, st, "cam", keys.Primary, string(keys.StreamStateName)),
			put(t, st, "cam", keys.Primary, string(keys.LegacyStreamStateName)))
		time.Sleep(gap)
		seg := latest(put(t, st, "cam", keys.Primary, "v/1/0.m4s"), put(t, st, "cam", keys.Primary, "index.m3u8"))

		clk.Set(old.Add(expiry))
		if n, err := sw.Sweep(t.Context()); err != nil || n != 0 {
			t.Fatalf("Sweep with a live segment = %d, %v; want the old state kept", n, err)
		}
		clk.Set(seg.Add(expiry))
		if n, err := sw.Sweep(t.Context()); err != nil || n != 4 {
			t.Fatalf("Sweep after the last segment = %d, %v; want 4 (segment, manifest, state, tombstone)", n, err)
		}
		if left := listAll(t, st); len(left) != 0 {
			t.Fatalf("left after the last files went: %q", left)
		}
	})
}
