package tsdemux

import (
	"github.com/liveingest/liveingest/edge/media"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// TestCodecNames: the names of codecs both packages know agree with
// edge/media.CodecName, so rejections read alike across protocols.
func TestCodecNames(t *testing.T) {
	for _, c := range []struct {
		ts  tscodecs.Codec
		mp4 codecs.Codec
	}{
		{&tscodecs.H264{}, &codecs.H264{SPS: []byte{1}, PPS: []byte{1}}},
		{&tscodecs.H265{}, &codecs.H265{VPS: []byte{1}, SPS: []byte{1}, PPS: []byte{1}}},
		{&tscodecs.MPEG4Audio{}, &codecs.MPEG4Audio{}},
		{&tscodecs.Opus{}, &codecs.Opus{}},
		{&tscodecs.MPEG4Video{}, &codecs.MPEG4Video{}},
		{&tscodecs.MPEG1Video{}, &codecs.MPEG1Video{}},
		{&tscodecs.MPEG1Audio{}, &codecs.MPEG1Audio{}},
		{&tscodecs.AC3{}, &codecs.AC3{}},
	} {
		if got, want := codecName(c.ts), media.CodecName(c.mp4); got != want {
			t.Errorf("codecName(%T) = %q, media.CodecName says %q", c.ts, got, want)
		}
	}
}

// tick is one 25 fps video frame on the 90 kHz clock.
const tick = 3600

// run stamps units and returns the output DTS of each (-1 when dropped).
func run(tl *timeline, units []pending) []time.Duration {
	out := make([]time.Duration, len(units))
	for i := range units {
		dts, pts, ok := tl.stamp(&units[i])
		switch {
		case !ok:
			out[i] = -1
		case pts < dts:
			panic("PTS before DTS")
		default:
			out[i] = dts
		}
	}
	return out
}

func newTimeline() *timeline {
	return &timeline{maxGap: DefaultMaxGap, jitter: DefaultJitterTolerance,
		trk: []trackTime{{video: true}, {}}}
}

// audio is a 40 ms audio frame at t, video a 25 fps video frame.
func audio(t int64) pending { return pending{track: 1, dts: t, dur: 40 * time.Millisecond, key: true} }
func video(t int64) pending { return pending{track: 0, dts: t, ptsOff: 2 * tick} }

func TestTimelineOneDiscontinuityForAllTracks(t *testing.T) {
	tl := newTimeline()
	var units []pending
	// Two tracks for 2 s, then the encoder restarts at -20 s (timestamps
	// go back by 22 s) and runs on for 1 s.
	for i := range int64(50) {
		units = append(units, video(i*tick), audio(i*tick+tick/2))
	}
	for i := range int64(25) {
		units = append(units, video(-20*clockRate+i*tick), audio(-20*clockRate+i*tick-tick/3))
	}
	out := run(tl, units)
	if tl.rebased != 1 || tl.dropped != 0 {
		t.Fatalf("rebased %d dropped %d, want 1 and 0", tl.rebased, tl.dropped)
	}
	last := map[int]time.Duration{}
	for i, d := range out {
		tr := units[i].track
		if d < last[tr] {
			t.Fatalf("unit %d track %d: %v after %v", i, tr, d, last[tr])
		}
		last[tr] = d
	}
	// The first unit after the restart lands one frame after the latest
	// output (the audio at 1.98 s): at 2.02 s.
	if got, want := out[100], out[99]+40*time.Millisecond; got != want {
		t.Errorf("first unit after the restart at %v, want %v", got, want)
	}
}

func TestTimelineJitterAndGaps(t *testing.T) {
	tl := newTimeline()
	out := run(tl, []pending{
		video(0), video(tick), video(2 * tick),
		video(tick + tick/2), // 60 ms back: jitter, dropped
		video(3 * tick),
		video(3*tick + 5*clockRate),               // 5 s gap: kept as a gap
		video(3*tick + 5*clockRate - 2*clockRate), // 2 s back: discontinuity
	})
	if out[3] != -1 || tl.dropped != 1 {
		t.Errorf("jitter not dropped: %v", out)
	}
	if out[5]-out[4] != 5*time.Second {
		t.Errorf("5 s gap became %v", out[5]-out[4])
	}
	if tl.rebased != 1 || out[6] != out[5]+40*time.Millisecond {
		t.Errorf("rebased %d, back step landed at %v after %v", tl.rebased, out[6], out[5])
	}
}

// TestTimelineSilentTrack: audio that stops for longer than MaxGap while
// video goes on, then resumes in step with the video, is not a
// discontinuity.
func TestTimelineSilentTrack(t *testing.T) {
	tl := newTimeline()
	var units []pending
	for i := range int64(25 * 30) {
		units = append(units, video(i*tick))
		if i < 25 || i > 25*20 {
			units = append(units, audio(i*tick+tick/2))
		}
	}
	run(tl, units)
	if tl.rebased != 0 || tl.dropped != 0 {
		t.Errorf("rebased %d dropped %d, want none", tl.rebased, tl.dropped)
	}
}

func TestTimelineNegativeStart(t *testing.T) {
	tl := newTimeline()
	tl.origin = 0
	out := run(tl, []pending{video(0), audio(-tick), audio(tick)})
	if out[1] != -1 || out[2] < 0 || tl.dropped != 1 {
		t.Errorf("audio before the origin: %v, dropped %d", out, tl.dropped)
	}
}

func TestTimelinePTSBeforeDTS(t *testing.T) {
	tl := newTimeline()
	v := video(0)
	v.ptsOff = -tick
	dts, pts, ok := tl.stamp(&v)
	if !ok || pts != dts {
		t.Errorf("PTS %v DTS %v, want PTS raised to DTS", pts, dts)
	}
}

func TestPTSOffsetWraps(t *testing.T) {
	for _, c := range []struct{ pts, dts, want int64 }{
		{100, 50, 50},
		{50, 100, -50},
		{10, tsMask - 9, 20},  // PTS wrapped, DTS not yet
		{tsMask - 9, 10, -20}, // the other way round
	} {
		if got := ptsOffset(c.pts, c.dts); got != c.want {
			t.Errorf("ptsOffset(%d, %d) = %d, want %d", c.pts, c.dts, got, c.want)
		}
	}
	var td mpegts.TimeDecoder
	if a, b := td.Decode(tsMask+1-tick), td.Decode(tick); b-a != 2*tick {
		t.Errorf("TimeDecoder across the wrap: %d then %d", a, b)
	}
}

func TestTicks(t *testing.T) {
	// 2^40 ticks = 12216795.864177777 s: more than a naive t*1e9 holds.
	if got, want := ticks(1<<40), 12216795*time.Second+864_177_777; got != want {
		t.Errorf("ticks(1<<40) = %v", got)
	}
	if got := ticks(-clockRate / 2); got != -500*time.Millisecond {
		t.Errorf("ticks(-0.5 s) = %v", got)
	}
}
