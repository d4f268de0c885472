package tsdemux_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/edge/tsdemux"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

// TestSegmenterTakesOutput feeds the demuxer's output to the segmenter,
// its consumer: it takes the tracks and every unit (no ErrBadInput), also
// across a restart and a clock wrap, and cuts the expected segments.
func TestSegmenterTakesOutput(t *testing.T) {
	h264aac := func(t *testing.T) []byte { return encode(t, 4, args(x264, aac)...) }
	for _, c := range []struct {
		name     string
		raw      func(t *testing.T) []byte
		segments int // at 1 s: one per GOP
	}{
		{"h264 aac", h264aac, 4},
		{"h265 opus", func(t *testing.T) []byte { return encode(t, 4, args(x265, opus)...) }, 4},
		{"restart", func(t *testing.T) []byte { return splice(h264aac(t), encode(t, 3, args(x264, aac)...)) }, 7},
		{"wrap", func(t *testing.T) []byte {
			return encode(t, 4, args(x264, aac, []string{"-output_ts_offset", "95442"})...)
		}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			d, err := tsdemux.Open(bytes.NewReader(c.raw(t)), tsdemux.Options{})
			if err != nil {
				t.Fatal(err)
			}
			seg, err := segment.New(segment.Config{SegmentDuration: time.Second}, segment.Deps{Store: teststores.Disk(t)})
			if err != nil {
				t.Fatal(err)
			}
			w, err := seg.Start(ctx, segment.Stream{Slot: "cam", Role: keys.Primary, Token: 1}, d.Tracks())
			if err != nil {
				t.Fatal(err)
			}
			for {
				au, err := d.Next()
				if err != nil {
					break
				}
				if err := w.Write(ctx, au); err != nil {
					t.Fatalf("Write(track %d DTS %v): %v", au.Track, au.DTS, err)
				}
			}
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if s := w.Stats(); s.Segments != c.segments {
				t.Errorf("%d segments, want %d", s.Segments, c.segments)
			}
		})
	}
}
