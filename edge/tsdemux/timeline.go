package tsdemux

import "time"

// MPEG-TS timestamps are 33-bit counts of a 90 kHz clock (ISO/IEC 13818-1
// §2.4.3.7).
const (
	clockRate = 90000
	tsMask    = 1<<33 - 1
)

// originSlack is how far before the earliest timestamp Open buffered the
// output timeline starts: units the multiplexer placed after the first
// keyframe but stamped before everything Open saw (audio interleaved late,
// within the T-STD buffer delay, §2.4.2) still land at DTS ≥ 0. The output
// therefore starts near 1 s, not 0.
const originSlack = time.Second

// maxFrameDuration caps a measured video frame duration (a frame rate
// below 1 fps is a gap, not a frame).
const maxFrameDuration = time.Second

// ticks converts a count of 90 kHz ticks to a duration without overflow.
func ticks(t int64) time.Duration {
	return time.Duration(t/clockRate)*time.Second + time.Duration(t%clockRate)*time.Second/clockRate
}

// ptsOffset returns pts − dts for two 33-bit timestamps, across a wrap.
func ptsOffset(pts, dts int64) int64 {
	d := (pts - dts) & tsMask
	if d > tsMask/2 {
		d -= tsMask + 1
	}
	return d
}

// pending is an access unit between the reader's callback and Next: its
// timestamps still on the decoded 90 kHz clock.
type pending struct {
	track  int           // index into Demuxer.trk
	dts    int64         // the PES DTS, unwrapped (mpegts.TimeDecoder), 90 kHz
	ptsOff int64         // PTS − DTS, 90 kHz
	extra  time.Duration // audio: the frame's position after the PES timestamp
	dur    time.Duration // audio: the frame's duration
	key    bool
	data   [][]byte
}

// trackTime is one track's output clock.
type trackTime struct {
	video    bool
	last     time.Duration // the last output DTS
	has      bool          // whether a unit was output
	frameDur time.Duration // last measured (video) or computed (audio) frame duration
}

// timeline maps the decoded clock onto the output clock: one offset for all
// tracks (they share the program clock, so a discontinuity moves them
// alike), re-based when a track's DTS jumps.
type timeline struct {
	origin  int64         // decoded 90 kHz tick that becomes output time originSlack
	offset  time.Duration // added to every output timestamp
	maxOut  time.Duration // the largest DTS output so far, on any track
	maxGap  time.Duration
	jitter  time.Duration
	trk     []trackTime
	rebased int64 // discontinuities
	dropped int64 // units dropped for their timestamps
}

// stamp computes q's output timestamps. ok is false when q is dropped: its
// DTS went backwards by less than the jitter tolerance, or the track's
// first unit would start before zero. A step back by more than the jitter
// tolerance, or forward by more than maxGap past both the track's last DTS
// and the largest DTS output on any track, re-bases the timeline so q lands
// one frame (of its track) after the largest DTS output so far. The other
// tracks then continue near their own last DTS and do not re-base again.
func (tl *timeline) stamp(q *pending) (dts, pts time.Duration, ok bool) {
	t := &tl.trk[q.track]
	dts = ticks(q.dts-tl.origin) + q.extra + tl.offset
	switch {
	case !t.has && dts < 0:
		tl.dropped++
		return 0, 0, false
	case !t.has:
	case dts < t.last-tl.jitter || dts > max(t.last, tl.maxOut)+tl.maxGap:
		// Forward, the track is measured against the other tracks too: one
		// that was silent for a while (muted audio) and resumes where the
		// others are has not jumped — the program clock has not.
		fd := t.frameDur
		if fd <= 0 {
			fd = videoFallbackFrame
		}
		target := tl.maxOut + fd
		tl.offset += target - dts
		dts = target
		tl.rebased++
	case dts < t.last:
		tl.dropped++
		return 0, 0, false
	}
	switch {
	case !t.video:
		t.frameDur = q.dur
	case t.has && dts > t.last && dts-t.last <= maxFrameDuration:
		t.frameDur = dts - t.last
	}
	t.last, t.has = dts, true
	tl.maxOut = max(tl.maxOut, dts)
	pts = dts
	if q.ptsOff > 0 {
		pts += ticks(q.ptsOff)
	}
	return dts, pts, true
}
