package segment

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/manifest"
)

// Writer writes one publish session: it applies the cut policy, keeps the
// session's timeline and muxes each cut into one CMAF segment per track;
// its uploader stores them and commits the manifests, on a goroutine of its
// own, so that Write never waits for the store unless the upload queue is
// full (see the package documentation, Upload queue).
//
// Write, Sync and Close are not safe for concurrent use with each other;
// Stats, Failed and Err are safe to call from any goroutine. Close must be
// called: it ends the uploader's goroutine.
type Writer struct {
	seg    *Segmenter
	cfg    Config // the Segmenter's, with the stream's durations
	slot   keys.SlotID
	role   keys.Role
	token  uint64
	prefix string
	log    *slog.Logger

	tracks []trackInfo
	byID   map[int]int // media.Track.ID → index in tracks
	video  int         // index of the video track, -1 when audio-only
	// open holds, per track, the segments not yet handed to the upload
	// queue, oldest first: the one the next cut takes, and one more per
	// cut decided since (audio up to maxAudioLag behind the video still
	// goes into the segment before the cut).
	open    [][]*trackSeg
	lastDTS []time.Duration

	up      *uploader // stores the cuts and commits the manifests
	nextSeq uint64    // the number of the next cut: the stream state's NextSeq at Start, then counted here

	started    bool          // origin is set
	origin     time.Duration // input DTS of the session's first segment start
	firstSeen  time.Duration // input DTS of the first access unit (GOP check before a keyframe)
	seenAny    bool
	wallAnchor time.Time     // wall clock at origin
	segStart   time.Duration // input DTS of the current segment's start
	// segStartPTS is the presentation time of the keyframe that started the
	// current segment. Cuts compare keyframe PTS, not DTS: with B-frames the
	// first GOP's decode delay differs from later ones, so the DTS gap
	// between the first two keyframes falls short of the GOP length and a
	// DTS comparison would skip the cut.
	segStartPTS time.Duration
	lastKey     time.Duration // input DTS of the last video keyframe
	// shift places the session on the stream's media timeline: the end of
	// the previous session's segments, so timestamps keep increasing across
	// a reconnect (players that ignore EXT-X-DISCONTINUITY still play).
	shift    time.Duration
	preStart []media.AccessUnit // audio that arrived before the first video keyframe
	// cuts are decided segment boundaries (input DTS) waiting for the audio
	// to catch up: muxers interleave audio up to a few hundred ms behind
	// the video, and the audio before a cut belongs to the segment before.
	cuts     []time.Duration
	cutStart time.Duration // input DTS where the oldest uncommitted segment starts
	lastIn   time.Duration // the largest input DTS seen

	gopErr error
	cutErr error // the queue refused a cut (full for too long, ctx ended): nothing more is cut
	closed bool
}

// Stats is what a Writer measured so far in its session.
type Stats struct {
	Bytes               int64         // media bytes stored in segments
	Segments            int           // segments committed
	LastSegmentDuration time.Duration // duration of the last committed segment
	LastSegmentBitrate  int           // bits/s of the last committed segment (all tracks)
	AverageBitrate      int           // bits/s over the session's committed segments
}

// Stats returns a snapshot of the session's measurements (of committed
// segments), for the edge's bitrate enforcement and live status. Safe for
// concurrent use.
func (w *Writer) Stats() Stats { return w.up.snapshot() }

// Failed is closed when storing or committing a segment failed (a newer
// writer fenced this one, a store error): nothing more will be stored, and
// Err says why. The session should end without waiting for its next Write.
func (w *Writer) Failed() <-chan struct{} { return w.up.failed }

// Err is nil until Failed is closed, then the failure: ErrFenced or a
// store error, wrapped.
func (w *Writer) Err() error { return w.up.fail() }

// Write adds one access unit. When it completes a segment it hands the
// segment's access units to the upload queue, which muxes and stores them,
// and returns without waiting for either — unless the queue is full
// (Config.Queue): then it blocks until there is room, for at most
// Queue.Wait and while ctx lasts, and returns ErrStorageSlow (wrapped) when
// the wait runs out, or ctx's error. The access units' Data is kept until
// their segment is stored.
//
// It returns ErrBadInput (wrapped) for input that breaks the
// media.AccessUnit contract (the unit is dropped and the Writer stays
// usable), ErrGOPTooLong once video keyframes are further apart than
// Config.MaxKeyframeInterval, ErrClosed after Close, and, once the upload
// queue failed (Failed), its error: ErrFenced when a newer writer took
// over, or a store error wrapped. ErrGOPTooLong, ErrStorageSlow (and
// ctx's error from a wait for room) and upload failures are sticky. Video
// access units before the first keyframe are dropped.
func (w *Writer) Write(ctx context.Context, au media.AccessUnit) error {
	switch {
	case w.closed:
		return ErrClosed
	case w.cutErr != nil:
		return w.cutErr
	case w.gopErr != nil:
		return w.gopErr
	}
	if err := w.up.fail(); err != nil {
		return err
	}
	i, ok := w.byID[au.Track]
	if !ok {
		return fmt.Errorf("%w: unknown track %d", ErrBadInput, au.Track)
	}
	ti := w.tracks[i]
	switch {
	case len(au.Data) == 0 || au.Size() == 0:
		return fmt.Errorf("%w: empty access unit on track %d", ErrBadInput, au.Track)
	case au.PTS < au.DTS:
		return fmt.Errorf("%w: PTS %v before DTS %v on track %d", ErrBadInput, au.PTS, au.DTS, au.Track)
	case au.DTS < w.lastDTS[i]:
		return fmt.Errorf("%w: DTS went backwards on track %d (%v after %v)", ErrBadInput, au.Track, au.DTS, w.lastDTS[i])
	}
	w.lastDTS[i] = au.DTS
	if !w.seenAny {
		w.seenAny, w.firstSeen = true, au.DTS
	}
	maxGOP := w.cfg.MaxKeyframeInterval
	if !w.started {
		if w.video >= 0 && !(ti.video && au.Key) {
			if au.DTS-w.firstSeen > maxGOP {
				return w.gop(au.DTS - w.firstSeen)
			}
			if !ti.video {
				// Interleaving may put audio ahead of the keyframe it
				// belongs after; kept until the origin is known.
				w.preStart = append(w.preStart, au)
			}
			return nil // wait for the first keyframe: a segment starts with one
		}
		w.started, w.origin, w.segStart, w.lastKey, w.cutStart = true, au.DTS, au.DTS, au.DTS, au.DTS
		w.segStartPTS = au.PTS
		w.wallAnchor = w.seg.now()
		w.openSegments(au.DTS)
		for _, p := range w.preStart {
			if p.DTS >= w.origin {
				w.enqueue(w.byID[p.Track], p)
			}
		}
		w.preStart = nil
	}
	if au.DTS < w.origin {
		return nil // audio from before the first keyframe
	}
	cfg := w.cfg
	if w.video >= 0 {
		if ti.video && au.Key {
			if au.PTS-w.segStartPTS >= cfg.SegmentDuration && w.hasSamples(w.video) {
				w.cuts, w.segStart, w.segStartPTS = append(w.cuts, au.DTS), au.DTS, au.PTS
				w.openSegments(au.DTS)
			}
			w.lastKey = au.DTS
		} else if au.DTS-w.lastKey > maxGOP {
			return w.gop(au.DTS - w.lastKey)
		}
	} else if au.DTS-w.segStart >= cfg.SegmentDuration {
		w.cuts, w.segStart = append(w.cuts, au.DTS), au.DTS
		w.openSegments(au.DTS)
	}
	w.enqueue(i, au)
	w.lastIn = max(w.lastIn, au.DTS)
	return w.flushCuts(ctx, false)
}

// Sync waits until every segment cut so far is stored and listed, and
// returns the upload queue's failure if there is one, or ctx's error.
func (w *Writer) Sync(ctx context.Context) error { return w.up.sync(ctx) }

// maxAudioLag is how long a decided cut waits for audio to reach it before
// the segment is committed without the late audio (which then opens the
// next audio segment).
const maxAudioLag = time.Second

// flushCuts hands the decided segments whose audio has caught up to the
// upload queue (all of them with force, beyond the queue's bounds: Close).
func (w *Writer) flushCuts(ctx context.Context, force bool) error {
	for len(w.cuts) > 0 {
		c := w.cuts[0]
		ready := force || w.lastIn-c >= maxAudioLag
		if !ready {
			ready = true
			for i, ti := range w.tracks {
				if !ti.video && w.lastDTS[i] < c {
					ready = false
				}
			}
		}
		if !ready {
			return nil
		}
		if err := w.cut(ctx, w.cutStart, c, true, !force); err != nil {
			return err
		}
		w.cuts, w.cutStart = w.cuts[1:], c
	}
	return nil
}

// scale converts an input timestamp to the stream's media timeline in
// timescale units.
func (w *Writer) scale(d time.Duration, ts uint32) uint64 { return toScale(d-w.origin+w.shift, ts) }

// enqueue copies au into the open segment of its track that its DTS
// belongs to: the newest that starts at or before it (late audio before the
// oldest open one goes into that one).
func (w *Writer) enqueue(i int, au media.AccessUnit) {
	ti := w.tracks[i]
	ts := ti.rec.TimeScale
	segs := w.open[i]
	seg := segs[0]
	for k := len(segs) - 1; k > 0; k-- {
		if segs[k].start <= au.DTS {
			seg = segs[k]
			break
		}
	}
	dts := w.scale(au.DTS, ts)
	var off int32
	if ti.video {
		off = int32(w.scale(au.PTS, ts) - dts)
	}
	seg.add(dts, off, au.Key || !ti.video, ti.video, au.Data)
}

// openSegments starts a segment at the input DTS at on every track.
func (w *Writer) openSegments(at time.Duration) {
	for i := range w.open {
		w.open[i] = append(w.open[i], &trackSeg{start: at})
	}
}

// hasSamples reports whether track i has media not yet handed over.
func (w *Writer) hasSamples(i int) bool {
	for _, s := range w.open[i] {
		if len(s.samples) > 0 {
			return true
		}
	}
	return false
}

func (w *Writer) gop(d time.Duration) error {
	w.gopErr = fmt.Errorf("%w: no keyframe for %v (maximum %v)", ErrGOPTooLong, d, w.cfg.MaxKeyframeInterval)
	w.log.Warn("keyframe interval too long", "interval", d)
	return w.gopErr
}

// Close cuts the last (short) segment, lets the upload queue store and
// list everything cut, then marks the stream ended (HLS EXT-X-ENDLIST, a
// static MPD) and writes the final manifests, in that order, and ends the
// uploader's goroutine. ctx bounds it all: when ctx ends first the store
// operations in flight are cancelled and Close returns an error wrapping
// ctx's (what was listed before stays listed). After ErrStorageSlow or an
// upload failure no more segments are cut; the queued ones are still
// stored (not after a failure) and the end is committed (not when fenced).
//
// It returns ErrFenced when a newer writer took over (then it writes
// nothing), store errors wrapped; the Writer is closed either way.
func (w *Writer) Close(ctx context.Context) error {
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	if w.cutErr == nil && w.up.fail() == nil {
		// Unbounded hand-overs: they fail only when the queue failed, and
		// then up.close reports it.
		err := w.flushCuts(ctx, true)
		if err == nil && (w.started && w.video >= 0 && w.hasSamples(w.video) || w.started && w.video < 0 && w.anyPending()) {
			_ = w.cut(ctx, w.cutStart, 0, false, false)
		}
	}
	err := w.up.close(ctx)
	if err == nil {
		w.log.Info("segment writer closed", "segments", w.Stats().Segments)
	}
	return err
}

func (w *Writer) anyPending() bool {
	for i := range w.open {
		if w.hasSamples(i) {
			return true
		}
	}
	return false
}

// cut takes the pending access units before cutAt (input DTS; the segment
// started at start) of every track and hands them to the upload queue as
// one segment, which the queue muxes (one file per track) and stores:
// muxing a segment takes milliseconds, which the read loop does not wait
// for either. The queue is bounded unless this is Close's flush. haveCut
// false takes everything (Close). A cut the queue refuses is dropped and
// ends the cutting (ErrStorageSlow or ctx's error, sticky).
func (w *Writer) cut(ctx context.Context, start, cutAt time.Duration, haveCut, bounded bool) error {
	seq := w.nextSeq
	tok := fmtUint(w.token)
	j := &job{rec: manifest.Segment{Seq: seq, PDT: w.wallAnchor.Add(start - w.origin)}}
	for i, ti := range w.tracks {
		ts := ti.rec.TimeScale
		// The oldest open segment is this cut's: video after the cut and
		// audio at or after it went into a newer one as they arrived.
		// Without a cut (Close) everything left is taken.
		take := w.open[i][0]
		w.open[i] = w.open[i][1:]
		if !haveCut {
			for _, o := range w.open[i] {
				take.merge(o)
			}
			w.open[i] = nil
		}
		st := manifest.SegmentTrack{Kind: ti.rec.Kind}
		if len(take.samples) > 0 {
			p := part{track: i, seg: take, rel: string(ti.rec.Kind) + "/" + tok + "/" + fmtUint(seq) + ".m4s"}
			if ti.video && haveCut {
				p.next, p.haveNext = w.scale(cutAt, ts), true
			} else if len(w.open[i]) > 0 && len(w.open[i][0].samples) > 0 {
				p.next, p.haveNext = w.open[i][0].samples[0].dts, true
			}
			j.parts = append(j.parts, p)
			st.URI, st.T = p.rel, take.samples[0].dts
			j.bytes += take.size
		}
		j.rec.Tracks = append(j.rec.Tracks, st)
	}
	j.cut = time.Now()
	if err := w.up.enqueue(ctx, j, bounded); err != nil {
		if w.up.fail() == nil {
			// Refused, not failed: this cut's media is gone from the
			// timeline, so no later cut could follow on from the last one.
			w.cutErr = err
			w.log.Warn("segment not queued; no more segments are cut", "seq", seq, "err", err)
		}
		return err
	}
	w.nextSeq++
	return nil
}

func fmtUint(v uint64) string { return strconv.FormatUint(v, 10) }
