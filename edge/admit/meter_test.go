package admit

import (
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/coord/memory"
)

// TestMeterWindow checks the window arithmetic on a manual clock: the check
// needs a whole window, averages over it (a burst shorter than the window
// does not trip it), and runs once per bucket.
func TestMeterWindow(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	clock := memory.NewManualClock(start)
	var m meter
	m.init(clock, start, 10*time.Second, 1_200_000) // 1000 kbps × 1.2

	// A 5 s burst at 2000 kbps then silence: 10 Mbit over 10 s = 1000 kbps.
	for range 50 {
		if _, over := m.add(25_000); over {
			t.Fatal("over before a whole window")
		}
		clock.Advance(100 * time.Millisecond)
	}
	clock.Advance(5 * time.Second)
	if bps, over := m.add(0); over || bps < 990_000 || bps > 1_010_000 {
		t.Fatalf("after burst: %v bps, over=%v; want about 1 Mbps, not over", bps, over)
	}
	if _, over := m.add(0); over {
		t.Fatal("checked twice in one bucket")
	}
	if kbps := m.kbps(clock.Now()); kbps < 990 || kbps > 1010 {
		t.Fatalf("kbps = %d", kbps)
	}
	// Sustained 2000 kbps for a whole window trips it.
	tripped := false
	for range 110 {
		if _, over := m.add(25_000); over {
			tripped = true
			break
		}
		clock.Advance(100 * time.Millisecond)
	}
	if !tripped {
		t.Fatal("sustained overload not detected")
	}
	// A long silence empties the window: stale buckets count as zero.
	clock.Advance(time.Minute)
	if kbps := m.kbps(clock.Now()); kbps != 0 {
		t.Fatalf("kbps after silence = %d", kbps)
	}
}

// BenchmarkObserveAU measures the per-access-unit cost on the hot path
// (system clock, as in production), sequential and from parallel tracks.
func BenchmarkObserveAU(b *testing.B) {
	s := &Session{slot: nil, done: make(chan struct{})}
	s.meter.init(coord.SystemClock{}, time.Now(), 10*time.Second, 0)
	au := media.AccessUnit{Track: 1, Data: [][]byte{make([]byte, 1200), make([]byte, 300)}}
	tr := media.Track{ID: 1}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.ObserveAU(au, tr)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.ObserveAU(au, tr)
			}
		})
	})
}
