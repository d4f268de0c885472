package rtmp

import (
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

// readClock is the server's side of a connection, measuring how long the
// server leaves the socket unread: from one Read's return to the next
// Read's call. (Time inside Read is time reading: waiting there is
// waiting for the publisher, not the publisher waiting for the server.)
type readClock struct {
	net.Conn
	mu   sync.Mutex
	last time.Time // when the previous Read returned
	gaps []readGap
}

type readGap struct {
	from time.Time // the previous Read's return
	d    time.Duration
}

func (c *readClock) Read(p []byte) (int, error) {
	now := time.Now()
	c.mu.Lock()
	if !c.last.IsZero() {
		c.gaps = append(c.gaps, readGap{from: c.last, d: now.Sub(c.last)})
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.last = time.Now()
	c.mu.Unlock()
	return n, err
}

// readClocks wraps every connection a server accepts.
type readClocks struct {
	mu    sync.Mutex
	conns []*readClock
}

func (r *readClocks) wrap(s *Server) {
	s.wrapConn = func(nc net.Conn) net.Conn {
		c := &readClock{Conn: nc}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.mu.Unlock()
		return c
	}
}

// gapsAfter are the gaps of every connection that began after t.
func (r *readClocks) gapsAfter(t time.Time) []readGap {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []readGap
	for _, c := range r.conns {
		c.mu.Lock()
		for _, g := range c.gaps {
			if g.from.After(t) {
				out = append(out, g)
			}
		}
		c.mu.Unlock()
	}
	return out
}

// maxReadGap is the acceptance bound: at a cut the publisher's socket is
// never left unread longer than this.
const maxReadGap = 50 * time.Millisecond

// TestSlowStoreKeepsReading: with a store that delays every write by
// 50 ms, and with one whose writes take 20–60 ms with a 200 ms p99, an
// ffmpeg publisher's socket is never left unread for more than 50 ms once
// the session is publishing — a cut's seven-odd writes happen on the
// upload queue, not on the read loop. Every segment still reaches the
// store in order, each manifest and state commit after every segment it
// names, the playlists pass the validator checks and end with
// EXT-X-ENDLIST.
//
// The bound is about the read loop not waiting for the store: the stores'
// delays (50 ms for every write, ≥ 20 ms for each of a cut's ~7) are what
// the synchronous path would add to a cut's gap (~350 ms and ~250 ms), far
// above what scheduling on a loaded machine adds (muxing a segment costs
// a few ms).
func TestSlowStoreKeepsReading(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	for _, tc := range []struct {
		name string
		slow func(store.Store) store.Store
	}{
		{"delay-50ms", func(st store.Store) store.Store { return teststores.Delay(st, 50*time.Millisecond) }},
		{"p99-200ms", func(st store.Store) store.Store { return teststores.P99(st, 14) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := teststores.NewLog(tc.slow(teststores.Disk(t)))
			w := newWorld(t, log)
			var clocks readClocks
			e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t), clocks.wrap)
			id, key := w.Slot(t, "cam")
			f := publish(t, e.url(key), publishSeconds)
			if stderr, err := f.Wait(t); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, stderr)
			}
			ingesttest.WaitFor(t, "the session to leave the registry", 30*time.Second, func() bool {
				return len(ingesttest.Live(t, e.co.Registry, id)) == 0
			})

			n := w.CheckPlaylist(t, id, "video.m3u8", 2*time.Second, 0.1, true)
			if n < publishSeconds/2-1 {
				t.Errorf("video.m3u8 lists %d segments for %d s", n, publishSeconds)
			}
			w.CheckPlaylist(t, id, "audio.m3u8", 2*time.Second, 0.1, true)
			if stored := ingesttest.CheckUploadOrder(t, log, id); stored != 2*n {
				t.Errorf("%d segment files stored, the playlists list %d video segments (and as many audio)", stored, n)
			}

			// Publishing began once the session's init files were stored
			// (Start: admission and the stream's claim wait for the store
			// before the first frame is taken).
			var started time.Time
			var cuts []time.Time // when each segment's Put was called
			prefix := keys.RolePrefix(id, keys.Primary)
			for _, p := range log.Puts() {
				switch {
				case strings.HasPrefix(p.Key, prefix) && strings.HasSuffix(p.Key, "/init.mp4"):
					started = p.End
				case strings.HasPrefix(p.Key, prefix+"v/") && p.Class == store.ClassSegment:
					cuts = append(cuts, p.Start)
				}
			}
			gaps := clocks.gapsAfter(started)
			if len(gaps) < 100 {
				t.Fatalf("only %d reads measured after the start", len(gaps))
			}
			worst := slices.MaxFunc(gaps, func(a, b readGap) int { return int(a.d - b.d) })
			// The gap around each cut: the longest one that began within
			// a second before the cut's first write.
			var atCuts []string
			for _, c := range cuts {
				var m time.Duration
				for _, g := range gaps {
					if !g.from.After(c) && c.Sub(g.from) < time.Second {
						m = max(m, g.d)
					}
				}
				atCuts = append(atCuts, m.Round(100*time.Microsecond).String())
			}
			t.Logf("%s: %d reads after the start; longest time unread %v (%.1f s in); at the %d cuts: %s",
				tc.name, len(gaps), worst.d.Round(100*time.Microsecond), worst.from.Sub(started).Seconds(), len(cuts), strings.Join(atCuts, " "))
			if worst.d > maxReadGap {
				t.Errorf("the publisher's socket was left unread for %v (bound %v)", worst.d, maxReadGap)
			}
		})
	}
}

// TestStorageSlow: the store stops answering writes mid-publish. The
// upload queue (2 segments here) fills, the read loop waits its bounded
// second, and the session ends storage-slow: ffmpeg is told so, the live
// status's recent ends and the rejection metric carry it, and the queue's
// wait is measured. Nothing that was listed before is lost: once the store
// answers again, the queued segments are stored and listed after them and
// the stream ends with EXT-X-ENDLIST; every listed segment is in the
// store.
func TestStorageSlow(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	gate := teststores.NewGate(teststores.Disk(t))
	log := teststores.NewLog(gate)
	w := newWorld(t, log)
	w.Queue.Segments, w.Queue.Wait = 2, time.Second
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t))
	id, key := w.Slot(t, "cam")
	f := publish(t, e.url(key), 40)

	var acked []string
	ingesttest.WaitFor(t, "two listed segments", 60*time.Second, func() bool {
		if !w.Exists(t, id, "video.m3u8") {
			return false
		}
		acked = w.CheckListedStored(t, id)
		return len(acked) >= 2
	})
	gate.Block()
	// Re-read: a commit may have landed between the check and the block.
	acked = w.CheckListedStored(t, id)
	blocked := time.Now()

	stderr, err := f.Wait(t)
	if err == nil {
		t.Fatalf("ffmpeg published on against a hung store:\n%s", stderr)
	}
	ingesttest.MustContain(t, "ffmpeg stderr", stderr, "Server error: storage-slow: segment storage too slow for the stream; retry")
	t.Logf("the session ended %.1f s after the store stopped answering", time.Since(blocked).Seconds())

	ingesttest.WaitFor(t, "storage-slow in the live status's recent ends", 20*time.Second, func() bool {
		for _, s := range ingesttest.Ended(t, e.co.Registry, id) {
			if strings.HasPrefix(s.EndReason, "storage-slow: ") {
				return true
			}
		}
		return false
	})
	if v, _ := ingesttest.Metric(t, e.metrics, "liveingest_ingest_rejections_total", map[string]string{"protocol": "rtmp", "reason": "storage-slow"}); v != 1 {
		t.Errorf("liveingest_ingest_rejections_total{reason=storage-slow} = %v, want 1", v)
	}
	if v, _ := ingesttest.Metric(t, e.metrics, "liveingest_segment_queue_segments", nil); v < 1 {
		t.Errorf("liveingest_segment_queue_segments = %v while the store hangs, want the queued segments", v)
	}
	if n, _ := ingesttest.Metric(t, e.metrics, "liveingest_segment_queue_wait_seconds", nil); n < 1 {
		t.Error("no read-loop wait measured in liveingest_segment_queue_wait_seconds")
	}
	if got := w.CheckListedStored(t, id); !slices.Equal(got, acked) {
		t.Errorf("while the store hangs the playlist changed: %v, then %v", acked, got)
	}

	// The session's close is draining; let the store answer.
	gate.Release()
	ingesttest.WaitFor(t, "the session to leave the registry", 40*time.Second, func() bool {
		return len(ingesttest.Live(t, e.co.Registry, id)) == 0
	})
	final := w.CheckListedStored(t, id)
	if len(final) <= len(acked) || !slices.Equal(final[:len(acked)], acked) {
		t.Errorf("after the drain video.m3u8 lists %v; want %v and the queued segments after them", final, acked)
	}
	ingesttest.MustContain(t, "video.m3u8", w.Get(t, id, "video.m3u8"), "#EXT-X-ENDLIST")
	ingesttest.CheckUploadOrder(t, log, id)
	if v, _ := ingesttest.Metric(t, e.metrics, "liveingest_segment_queue_segments", nil); v != 0 {
		t.Errorf("liveingest_segment_queue_segments = %v after the session, want 0", v)
	}
}
