package segment_test

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

func queueSegmenter(t *testing.T, w *ingesttest.World, q segment.QueueConfig, reg prometheus.Registerer) *segment.Segmenter {
	t.Helper()
	s, err := segment.New(segment.Config{SegmentDuration: 2 * time.Second, DVRWindow: 60 * time.Second, Queue: q},
		segment.Deps{Store: w.Store, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWriteDoesNotWaitForStore: with every store write held, a whole
// 10 s input (5 segments, under the queue's 8) is written without a Write
// waiting: nothing is listed meanwhile. Once the store answers, Close
// stores and lists every segment — each after the files it names, in cut
// order — and then ends the stream.
func TestWriteDoesNotWaitForStore(t *testing.T) {
	in := genInput(t, 10, 50)
	gate := teststores.NewGate(teststores.Disk(t))
	log := teststores.NewLog(gate)
	w := &ingesttest.World{Store: log}
	reg := prometheus.NewRegistry()
	ctx := t.Context()
	wr, err := queueSegmenter(t, w, segment.QueueConfig{}, reg).Start(ctx, segment.Stream{Slot: slotID, Role: keys.Primary, Token: 1}, in.tracks)
	if err != nil {
		t.Fatal(err)
	}
	gate.Block()
	if err := feed(ctx, wr, in.aus); err != nil {
		t.Fatal(err)
	}
	if exists(t, log, "video.m3u8") {
		t.Fatal("a playlist was written while the store held every write")
	}
	ingesttest.WaitFor(t, "the first segment held at the store", 10*time.Second, func() bool { return gate.Waiting() > 0 })
	if v, _ := ingesttest.Metric(t, reg, "liveingest_segment_queue_segments", nil); v != 4 {
		// The fifth segment is cut by Close (its keyframe never came).
		t.Errorf("liveingest_segment_queue_segments = %v with the store held, want 4", v)
	}
	gate.Release()
	if err := wr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	validate(t, log, 2*time.Second, 0)
	if p := parseMedia(t, get(t, log, "video.m3u8")); len(p.uris) != 5 || !p.ended {
		t.Errorf("video.m3u8 lists %d segments (ended %v), want 5 and EXT-X-ENDLIST", len(p.uris), p.ended)
	}
	if n := ingesttest.CheckUploadOrder(t, log, slotID); n != 10 {
		t.Errorf("%d segment files stored, want 10", n)
	}
	if v, _ := ingesttest.Metric(t, reg, "liveingest_segment_queue_segments", nil); v != 0 {
		t.Errorf("liveingest_segment_queue_segments = %v after Close, want 0", v)
	}
	if n, _ := ingesttest.Metric(t, reg, "liveingest_segment_commit_seconds", nil); n != 5 {
		t.Errorf("liveingest_segment_commit_seconds has %v observations, want 5", n)
	}
}

// TestQueueFull: the store hangs after the first segment is listed. With
// a queue of 2 segments, the third cut's Write blocks for the queue's Wait
// and fails with ErrStorageSlow, which sticks. Then either the store
// answers again and Close stores the queued segments and ends the stream,
// or it never does and Close gives up at its deadline — cancelling the
// writes in flight and ending its goroutine — with the listed segment
// still listed and stored.
func TestQueueFull(t *testing.T) {
	in := genInput(t, 14, 50)
	for _, release := range []bool{true, false} {
		name := map[bool]string{true: "store-recovers", false: "store-hangs"}[release]
		t.Run(name, func(t *testing.T) {
			gate := teststores.NewGate(teststores.Disk(t))
			w := &ingesttest.World{Store: gate}
			reg := prometheus.NewRegistry()
			const wait = 300 * time.Millisecond
			ctx := t.Context()
			wr, err := queueSegmenter(t, w, segment.QueueConfig{Segments: 2, Wait: wait}, reg).Start(ctx,
				segment.Stream{Slot: slotID, Role: keys.Primary, Token: 1}, in.tracks)
			if err != nil {
				t.Fatal(err)
			}
			// Up to the first listed segment, synced every 10 units.
			i := 0
			for ; wr.Stats().Segments == 0; i++ {
				if err := wr.Write(ctx, in.aus[i]); err != nil {
					t.Fatal(err)
				}
				if i%10 == 0 {
					if err := wr.Sync(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			gate.Block()
			listed := get(t, gate, "video.m3u8")

			var werr error
			var longest time.Duration
			for ; i < len(in.aus) && werr == nil; i++ {
				start := time.Now()
				werr = wr.Write(ctx, in.aus[i])
				longest = max(longest, time.Since(start))
			}
			if !errors.Is(werr, segment.ErrStorageSlow) {
				t.Fatalf("Write with the store hung: %v, want ErrStorageSlow", werr)
			}
			if longest < wait || longest > wait+5*time.Second {
				t.Errorf("the longest Write blocked %v, want the queue's wait %v (plus scheduling)", longest, wait)
			}
			if err := wr.Write(ctx, in.aus[i]); !errors.Is(err, segment.ErrStorageSlow) {
				t.Errorf("next Write: %v, want ErrStorageSlow (sticky)", err)
			}
			if n, _ := ingesttest.Metric(t, reg, "liveingest_segment_queue_wait_seconds", nil); n == 0 {
				t.Error("the wait was not measured")
			}

			if release {
				gate.Release()
				if err := wr.Close(ctx); err != nil {
					t.Fatal(err)
				}
				p := parseMedia(t, get(t, gate, "video.m3u8"))
				before := parseMedia(t, listed)
				if !p.ended || len(p.uris) != len(before.uris)+2 || p.uris[0] != before.uris[0] {
					t.Errorf("after the drain video.m3u8 lists %v (ended %v); want %v and the 2 queued segments, ended", p.uris, p.ended, before.uris)
				}
				validate(t, gate, 2*time.Second, 0)
				return
			}
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			start := time.Now()
			err = wr.Close(cctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Close with the store hung: %v, want the deadline's error", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Close took %v past its 1 s deadline", d)
			}
			gate.Release() // nothing may be waiting at it any more
			if got := get(t, gate, "video.m3u8"); got != listed {
				t.Errorf("video.m3u8 changed after the hang:\n%s\nwas:\n%s", got, listed)
			}
			for _, u := range parseMedia(t, listed).uris {
				if !exists(t, gate, u) {
					t.Errorf("listed %s is not in the store", u)
				}
			}
			if v, _ := ingesttest.Metric(t, reg, "liveingest_segment_queue_segments", nil); v != 0 {
				t.Errorf("liveingest_segment_queue_segments = %v after Close, want 0", v)
			}
		})
	}
}

// TestMultivariantRewrittenOnDrift: the multivariant playlist's
// AVERAGE-BANDWIDTH is republished only when it moved by more than 5 %,
// so a steady stream does not rewrite index.m3u8 at every segment — and
// what it lists stays within 5 % of the session's true average.
func TestMultivariantRewrittenOnDrift(t *testing.T) {
	in := genInput(t, 30, 50)
	log := teststores.NewLog(teststores.Disk(t))
	w := &ingesttest.World{Store: log}
	ctx := t.Context()
	wr, err := queueSegmenter(t, w, segment.QueueConfig{}, nil).Start(ctx, segment.Stream{Slot: slotID, Role: keys.Primary, Token: 1}, in.tracks)
	if err != nil {
		t.Fatal(err)
	}
	if err := feed(ctx, wr, in.aus); err != nil {
		t.Fatal(err)
	}
	if err := wr.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	st := wr.Stats()
	if err := wr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var multivariant, media int
	for _, p := range log.Puts() {
		switch {
		case strings.HasSuffix(p.Key, "/index.m3u8"):
			multivariant++
		case strings.HasSuffix(p.Key, "/video.m3u8"):
			media++
		}
	}
	if st.Segments < 10 {
		t.Fatalf("%d segments committed before Close, want ≥ 10", st.Segments)
	}
	if multivariant*2 > media {
		t.Errorf("index.m3u8 written %d times for %d video playlist writes: rewritten at (nearly) every segment", multivariant, media)
	}
	m := regexp.MustCompile(`AVERAGE-BANDWIDTH=(\d+)`).FindStringSubmatch(get(t, log, "index.m3u8"))
	if m == nil {
		t.Fatal("index.m3u8 has no AVERAGE-BANDWIDTH")
	}
	avg, _ := strconv.Atoi(m[1])
	if d := float64(avg-st.AverageBitrate) / float64(st.AverageBitrate); d > 0.05 || d < -0.05 {
		t.Errorf("AVERAGE-BANDWIDTH %d is %.1f %% off the session average %d", avg, 100*d, st.AverageBitrate)
	}
	t.Logf("%d segments: index.m3u8 written %d times, video.m3u8 %d; AVERAGE-BANDWIDTH %d, session average %d", st.Segments, multivariant, media, avg, st.AverageBitrate)
}
