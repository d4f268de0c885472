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
	"github.com/liveingest/liveingest/origin/lifecycle"
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

	st      *state
	stETag  string
	pubETag map[string]string // ETag of each public manifest as last written or read
	pubLast map[string]string // content last written, to skip unchanged writes

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
	case w.fenced:
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
	if w.fenced {
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
	ns := w.st.clone()
	ns.Ended = true
	if err := w.commit(ctx, ns); err != nil {
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
	seq := w.st.NextSeq
	tok := strconv.FormatUint(w.token, 10)
	rec := segRec{Seq: seq, PDT: w.wallAnchor.Add(start - w.origin)}
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
		st := segTrack{Kind: ti.rec.Kind}
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
			uri := ti.rec.Kind + "/" + tok + "/" + strconv.FormatUint(seq, 10) + ".m4s"
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

	ns := w.st.clone()
	if w.periodID == "" {
		w.periodID = "p" + tok
		ns.Periods = append(ns.Periods, w.newPeriod(ns, rec))
		rec.Disc = len(ns.Segments) > 0 || seq > 0
	}
	rec.Period = w.periodID
	ns.Segments = append(ns.Segments, rec)
	ns.NextSeq = seq + 1
	slide(ns, w.cfg.DVRWindow)

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

	if err := w.commit(ctx, ns); err != nil {
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

// timelineEnd is where the stream's media timeline ends: the latest end
// of any track's last segment, rounded up to a millisecond.
func timelineEnd(s *state) time.Duration {
	var end time.Duration
	for _, seg := range s.Segments {
		p := s.periodByID(seg.Period)
		for j, tr := range seg.Tracks {
			if p != nil && j < len(p.Tracks) && tr.D > 0 {
				ts := uint64(p.Tracks[j].TimeScale)
				ms := ((tr.T+tr.D)*1000 + ts - 1) / ts
				end = max(end, time.Duration(ms)*time.Millisecond)
			}
		}
	}
	return end
}

// newPeriod places this session's DASH period: at its wall-clock offset
// from availabilityStartTime, but never before the previous period ends
// (ISO 23009-1 5.3.2.1: periods are ordered and do not overlap).
func (w *Writer) newPeriod(ns *state, first segRec) period {
	if ns.AvailabilityStart.IsZero() {
		ns.AvailabilityStart = first.PDT
	}
	start := max(first.PDT.Sub(ns.AvailabilityStart), periodsEnd(ns), 0)
	p := period{ID: w.periodID, Token: w.token, Start: start}
	for i, ti := range w.tracks {
		tr := ti.rec
		tr.PTO = first.Tracks[i].T
		p.Tracks = append(p.Tracks, tr)
	}
	return p
}

// slide drops the oldest segments while the rest still cover the DVR
// window (RFC 8216 6.2.2), counting removed discontinuities into
// EXT-X-DISCONTINUITY-SEQUENCE, and drops periods left without segments.
func slide(s *state, window time.Duration) {
	total := time.Duration(0)
	durs := make([]time.Duration, len(s.Segments))
	for i, seg := range s.Segments {
		p := s.periodByID(seg.Period)
		for j, tr := range seg.Tracks {
			if p != nil && j < len(p.Tracks) && tr.D > 0 {
				durs[i] = max(durs[i], time.Duration(tr.D*uint64(time.Second)/uint64(p.Tracks[j].TimeScale)))
			}
		}
		total += durs[i]
	}
	drop := 0
	for drop < len(s.Segments)-1 && total-durs[drop] >= window {
		total -= durs[drop]
		if s.Segments[drop].Disc {
			s.DiscSeq++
		}
		drop++
	}
	s.Segments = append([]segRec(nil), s.Segments[drop:]...)
	keep := s.Periods[:0:0]
	for _, p := range s.Periods {
		for _, seg := range s.Segments {
			if seg.Period == p.ID {
				keep = append(keep, p)
				break
			}
		}
	}
	s.Periods = keep
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

// putState writes ns conditionally on etag ("" = must not exist) and
// adopts it on success. It returns store.ErrPrecondition wrapped on a lost
// race.
func (w *Writer) putState(ctx context.Context, ns *state, etag string) error {
	body, err := ns.marshal()
	if err != nil {
		return err
	}
	m := store.Meta{ContentType: "application/vnd.apple.mpegurl", Class: lifecycle.ClassOf(stateName), Size: int64(len(body))}
	if etag == "" {
		m.IfNoneMatch = "*"
	} else {
		m.IfMatch = etag
	}
	info, err := w.seg.store.Put(ctx, w.prefix+stateName, bytes.NewReader(body), m)
	if err != nil {
		return fmt.Errorf("segment: put state: %w", err)
	}
	w.st, w.stETag = ns, info.ETag
	return nil
}

// fencedBy re-reads the state after a failed condition and reports whether
// a newer writer owns it (and marks this writer fenced), returning the
// state's current ETag otherwise.
func (w *Writer) fencedBy(ctx context.Context) (bool, string, error) {
	cur, etag, err := loadState(ctx, w.seg.store, w.prefix+stateName)
	if err != nil {
		return false, "", err
	}
	if cur != nil && cur.Token > w.token {
		w.fenced = true
		w.log.Warn("segment writer fenced by a newer writer")
		return true, "", nil
	}
	return false, etag, nil
}

// commit makes ns the stream's state, then writes the public manifests
// rendered from it: media playlists, the MPD, then the multivariant
// playlist that references the media playlists.
func (w *Writer) commit(ctx context.Context, ns *state) error {
	etag := w.stETag
	for attempt := 0; ; attempt++ {
		err := w.putState(ctx, ns, etag)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrPrecondition) || attempt >= maxCASRetries {
			return err
		}
		fenced, cur, rerr := w.fencedBy(ctx)
		if rerr != nil {
			return rerr
		}
		if fenced {
			return ErrFenced
		}
		etag = cur // an older writer raced us once; ours supersedes it
	}
	cfg := w.cfg
	docs := []struct{ name, body, ctype string }{
		{videoPlaylist, mediaPlaylist(ns, "v"), "application/vnd.apple.mpegurl"},
		{audioPlaylist, mediaPlaylist(ns, "a"), "application/vnd.apple.mpegurl"},
		{mpdName, mpdDoc(ns, cfg.SegmentDuration, cfg.DVRWindow, w.seg.now()), "application/dash+xml"},
		{multivariantName, multivariantPlaylist(ns), "application/vnd.apple.mpegurl"},
	}
	for _, d := range docs {
		if d.body == "" || d.body == w.pubLast[d.name] {
			continue
		}
		if err := w.putManifest(ctx, d.name, d.body, d.ctype); err != nil {
			return err
		}
	}
	return nil
}

// putManifest replaces a public manifest conditionally on the ETag this
// writer last wrote or read; on a lost race it checks the state's token
// and either stops (fenced) or retries on the current version.
func (w *Writer) putManifest(ctx context.Context, name, body, ctype string) error {
	for attempt := 0; ; attempt++ {
		m := store.Meta{ContentType: ctype, Class: lifecycle.ClassOf(name), Size: int64(len(body)), CacheControl: ""}
		if et := w.pubETag[name]; et == "" {
			m.IfNoneMatch = "*"
		} else {
			m.IfMatch = et
		}
		info, err := w.seg.store.Put(ctx, w.prefix+name, bytes.NewReader([]byte(body)), m)
		if err == nil {
			w.pubETag[name], w.pubLast[name] = info.ETag, body
			return nil
		}
		if !errors.Is(err, store.ErrPrecondition) || attempt >= maxCASRetries {
			return fmt.Errorf("segment: put %s: %w", name, err)
		}
		fenced, _, rerr := w.fencedBy(ctx)
		if rerr != nil {
			return rerr
		}
		if fenced {
			return ErrFenced
		}
		st, err := w.seg.store.Stat(ctx, w.prefix+name)
		switch {
		case errors.Is(err, store.ErrNotExist):
			w.pubETag[name] = ""
		case err != nil:
			return fmt.Errorf("segment: stat %s: %w", name, err)
		default:
			w.pubETag[name] = st.ETag
		}
	}
}
