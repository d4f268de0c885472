package segment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/manifest"
	"github.com/liveingest/liveingest/origin/store"
)

// Writer writes one publish session. Write and Close are not safe for
// concurrent use with each other; Stats is safe to call from any goroutine.
type Writer struct {
	seg    *Segmenter
	cfg    Config // the Segmenter's, with the stream's durations
	slot   keys.SlotID
	role   keys.Role
	token  uint64
	prefix string
	log    *slog.Logger

	tracks  []trackInfo
	byID    map[int]int // media.Track.ID → index in tracks
	video   int         // index of the video track, -1 when audio-only
	pending [][]pendingAU
	lastDTS []time.Duration

	ms *manifest.Stream // the stream's state and public manifests

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
	periodID    string        // this session's period, once its first segment is committed
	sessBytes   int64
	sessDur     time.Duration
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

	fenced bool
	gopErr error
	closed bool

	statsMu sync.Mutex
	stats   Stats
}

// Stats is what a Writer measured so far in its session.
type Stats struct {
	Bytes               int64         // media bytes stored in segments
	Segments            int           // segments committed
	LastSegmentDuration time.Duration // duration of the last committed segment
	LastSegmentBitrate  int           // bits/s of the last committed segment (all tracks)
	AverageBitrate      int           // bits/s over the session's committed segments
}

// Stats returns a snapshot of the session's measurements, for the edge's
// bitrate enforcement and live status. Safe for concurrent use.
func (w *Writer) Stats() Stats {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.stats
}

// Write adds one access unit. It returns ErrBadInput (wrapped) for input
// that breaks the media.AccessUnit contract (the unit is dropped and the
// Writer stays usable), ErrGOPTooLong once video keyframes are further apart
// than Config.MaxKeyframeInterval, ErrFenced once a newer writer took over,
// ErrClosed after Close, and store errors wrapped. When Write cuts a segment
// it returns only after the segment and the manifests listing it are
// stored. Video access units before the first keyframe are dropped.
func (w *Writer) Write(ctx context.Context, au media.AccessUnit) error {
	switch {
	case w.closed:
		return ErrClosed
	case w.fenced || w.ms.Fenced():
		return ErrFenced
	case w.gopErr != nil:
		return w.gopErr
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
			if au.PTS-w.segStartPTS >= cfg.SegmentDuration && len(w.pending[w.video]) > 0 {
				w.cuts, w.segStart, w.segStartPTS = append(w.cuts, au.DTS), au.DTS, au.PTS
			}
			w.lastKey = au.DTS
		} else if au.DTS-w.lastKey > maxGOP {
			return w.gop(au.DTS - w.lastKey)
		}
	} else if au.DTS-w.segStart >= cfg.SegmentDuration {
		w.cuts, w.segStart = append(w.cuts, au.DTS), au.DTS
	}
	w.enqueue(i, au)
	w.lastIn = max(w.lastIn, au.DTS)
	return w.flushCuts(ctx, false)
}

// maxAudioLag is how long a decided cut waits for audio to reach it before
// the segment is committed without the late audio (which then opens the
// next audio segment).
const maxAudioLag = time.Second

// flushCuts commits the decided segments whose audio has caught up (all of
// them with force).
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
		if err := w.cut(ctx, w.cutStart, c, true); err != nil {
			return err
		}
		w.cuts, w.cutStart = w.cuts[1:], c
	}
	return nil
}

// scale converts an input timestamp to the stream's media timeline in
// timescale units.
func (w *Writer) scale(d time.Duration, ts uint32) uint64 { return toScale(d-w.origin+w.shift, ts) }

func (w *Writer) enqueue(i int, au media.AccessUnit) {
	ti := w.tracks[i]
	ts := ti.rec.TimeScale
	w.pending[i] = append(w.pending[i], pendingAU{
		dts: w.scale(au.DTS, ts), pts: w.scale(au.PTS, ts),
		key: au.Key || !ti.video, data: au.Data, size: au.Size(),
	})
}

func (w *Writer) gop(d time.Duration) error {
	w.gopErr = fmt.Errorf("%w: no keyframe for %v (maximum %v)", ErrGOPTooLong, d, w.cfg.MaxKeyframeInterval)
	w.log.Warn("keyframe interval too long", "interval", d)
	return w.gopErr
}

// Close flushes the last (short) segment, marks the stream ended (HLS
// EXT-X-ENDLIST, a static MPD) and writes the final manifests. It returns
// ErrFenced when a newer writer took over (then it writes nothing), and
// store errors wrapped; the Writer is closed either way.
func (w *Writer) Close(ctx context.Context) error {
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	if w.fenced || w.ms.Fenced() {
		return ErrFenced
	}
	if err := w.flushCuts(ctx, true); err != nil {
		return err
	}
	if w.started && w.video >= 0 && len(w.pending[w.video]) > 0 || w.started && w.video < 0 && w.anyPending() {
		if err := w.cut(ctx, w.cutStart, 0, false); err != nil {
			return err
		}
	}
	ns := w.ms.State().Clone()
	ns.Ended = true
	if err := w.ms.Commit(ctx, ns); err != nil {
		return err
	}
	w.log.Info("segment writer closed", "segments", w.Stats().Segments)
	return nil
}

func (w *Writer) anyPending() bool {
	for _, p := range w.pending {
		if len(p) > 0 {
			return true
		}
	}
	return false
}

// cut turns the pending access units before cutAt (input DTS; the segment
// started at start) into one
// segment per track, stores them, then commits the state and manifests.
// haveCut false flushes everything (Close).
func (w *Writer) cut(ctx context.Context, start, cutAt time.Duration, haveCut bool) error {
	seq := w.ms.State().NextSeq
	tok := strconv.FormatUint(w.token, 10)
	rec := manifest.Segment{Seq: seq, PDT: w.wallAnchor.Add(start - w.origin)}
	var written []string
	var segBytes int
	var segDur time.Duration
	for i, ti := range w.tracks {
		ts := ti.rec.TimeScale
		var take []pendingAU
		if !haveCut {
			take, w.pending[i] = w.pending[i], nil
		} else {
			limit := w.scale(cutAt, ts)
			n := 0
			for n < len(w.pending[i]) && w.pending[i][n].dts < limit {
				n++
			}
			take = w.pending[i][:n]
			w.pending[i] = append([]pendingAU(nil), w.pending[i][n:]...)
		}
		st := manifest.SegmentTrack{Kind: ti.rec.Kind}
		if len(take) > 0 {
			var next uint64
			haveNext := false
			if ti.video && haveCut {
				next, haveNext = w.scale(cutAt, ts), true
			} else if len(w.pending[i]) > 0 {
				next, haveNext = w.pending[i][0].dts, true
			}
			body, d, err := mediaSegment(ti, seq, take, next, haveNext)
			if err != nil {
				return err
			}
			uri := string(ti.rec.Kind) + "/" + tok + "/" + strconv.FormatUint(seq, 10) + ".m4s"
			if err := w.putNew(ctx, uri, body, store.ClassSegment, contentType(ti.rec.Kind)); err != nil {
				return err
			}
			written = append(written, w.prefix+uri)
			st.URI, st.T, st.D, st.Bytes = uri, take[0].dts, d, len(body)
			segBytes += len(body)
			segDur = max(segDur, time.Duration(d*uint64(time.Second)/uint64(ts)))
		}
		rec.Tracks = append(rec.Tracks, st)
	}

	ns := w.ms.State().Clone()
	if w.periodID == "" {
		w.periodID = "p" + tok
		ns.Periods = append(ns.Periods, ns.OpenPeriod(w.periodID, w.token, w.trackRecs(), rec))
		rec.Disc = len(ns.Segments) > 0 || seq > 0
	}
	rec.Period = w.periodID
	ns.Segments = append(ns.Segments, rec)
	ns.NextSeq = seq + 1
	ns.Slide(w.cfg.DVRWindow)

	bps := 0
	if segDur > 0 {
		bps = int(int64(segBytes) * 8 * int64(time.Second) / int64(segDur))
	}
	w.sessBytes += int64(segBytes)
	w.sessDur += segDur
	avg := 0
	if w.sessDur > 0 {
		avg = int(w.sessBytes * 8 * int64(time.Second) / int64(w.sessDur))
	}
	ns.PeakBandwidth = max(ns.PeakBandwidth, bps)
	ns.AvgBandwidth = avg

	if err := w.ms.Commit(ctx, ns); err != nil {
		if errors.Is(err, ErrFenced) {
			// Nobody references these; removing them early is a courtesy
			// (the expiry would take them anyway).
			_ = w.seg.store.Delete(context.WithoutCancel(ctx), written...)
		}
		return err
	}
	w.statsMu.Lock()
	w.stats.Bytes += int64(segBytes)
	w.stats.Segments++
	w.stats.LastSegmentDuration = segDur
	w.stats.LastSegmentBitrate = bps
	w.stats.AverageBitrate = avg
	w.statsMu.Unlock()
	w.log.Debug("segment stored", "seq", seq, "duration", segDur, "bytes", segBytes)
	return nil
}

// trackRecs are the session's tracks as the manifests describe them.
func (w *Writer) trackRecs() []manifest.Track {
	out := make([]manifest.Track, len(w.tracks))
	for i, ti := range w.tracks {
		out[i] = ti.rec
	}
	return out
}

// putNew creates an object that must not exist yet. A collision means
// another writer used this writer's token: treated as fenced.
func (w *Writer) putNew(ctx context.Context, rel string, body []byte, class store.Class, ctype string) error {
	_, err := w.seg.store.Put(ctx, w.prefix+rel, bytes.NewReader(body), store.Meta{
		ContentType: ctype, Class: class, Size: int64(len(body)), IfNoneMatch: "*",
	})
	if errors.Is(err, store.ErrPrecondition) {
		w.fenced = true
		return fmt.Errorf("%w: %s already exists", ErrFenced, rel)
	}
	if err != nil {
		return fmt.Errorf("segment: put %s: %w", rel, err)
	}
	return nil
}
