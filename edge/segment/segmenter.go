// Package segment is the Segmenter (R-SEG-1): it cuts one publish
// session's access units into CMAF fMP4 init and media segments, stores
// them, and feeds origin/manifest, which commits the stream state and
// writes the HLS media playlists, the HLS multivariant playlist and the
// DASH MPD over the same files.
//
// # Output layout
//
// Under keys.RolePrefix(slot, role):
//
//	v/<token>/init.mp4      video CMAF header of the session with that fencing token
//	v/<token>/<seq>.m4s     video CMAF segment number seq
//	a/<token>/…             the same for audio
//
// and origin/manifest's objects beside them: index.m3u8, video.m3u8,
// audio.m3u8, manifest.mpd and the internal stream state (keys.StreamState).
//
// One track per file (rather than muxed segments) because DASH wants one
// AdaptationSet per media type and HLS serves the same files as a video
// playlist with an EXT-X-MEDIA audio rendition: one set of bytes, two
// manifests. Segment numbers (the HLS media sequence, the DASH $Number$)
// continue across sessions; the token in the directory keeps the keys of
// two writers apart, so a stale writer can never overwrite a newer one's
// segment, and lets each session carry its own init file (codec parameters
// may change on reconnect).
//
// # Visibility (R-STORE-2)
//
// A segment is Put (IfNoneMatch "*", class segment) before the state that
// lists it is committed (manifest.Stream.Commit), and the state before any
// public manifest is written; init files are Put at Start, before anything
// references them. A segment is acknowledged — listed in a playlist — only
// once the store confirmed every file of it, and the writer never removes
// a listed one.
//
// # Upload queue
//
// Write runs on a protocol's read loop, and a store takes tens to hundreds
// of milliseconds per write: at one cut, its track segments, the state, the
// media playlists, the MPD and the multivariant playlist are about seven
// writes. So Write only cuts and muxes; the cut goes to the Writer's upload
// queue and Write returns. The queue's goroutine takes the cuts oldest
// first: it stores a cut's track segments in parallel, then commits the
// state and the manifests that list them — so cut N+1's commit never
// precedes cut N's, and nothing is listed before it is stored.
//
// The queue is bounded (Config.Queue: 8 segments, 64 MiB by default). When
// it is full, Write blocks the read loop — back-pressure, which for a TCP
// protocol reaches the publisher's socket — for up to Queue.Wait (default
// 2 × SegmentDuration), and then fails with ErrStorageSlow: the edge ends
// the session with reason storage-slow rather than drop segments silently
// or hold unbounded memory. Close drains the queue within its ctx and
// commits the end of the stream after everything before it (R-OPS-3: the
// last segment is stored before the lease is released). A failed upload
// (ErrFenced, a store error) stops the queue; Failed closes so that the
// session ends without waiting for the next Write.
//
// # Fencing (R-COORD-1)
//
// Start opens the stream with the caller's lease token (manifest.Open);
// from then on every state commit and manifest write is conditional, and a
// newer writer's token fences this one (ErrFenced, which is
// manifest.ErrFenced). A segment key that already exists means another
// writer used this token: that is treated as fenced too.
package segment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/manifest"
	"github.com/liveingest/liveingest/origin/store"
)

// Config is the segmenter's configuration, usually from the slot.
type Config struct {
	// SegmentDuration is the target segment duration: a segment is cut at
	// the first video keyframe at or after it (audio-only: at it).
	// Default: 2s.
	SegmentDuration time.Duration

	// DVRWindow is how much media the live playlists and the MPD list
	// (the slot's dvr_window). Default: 60s.
	DVRWindow time.Duration

	// MaxKeyframeInterval is the longest accepted gap between video
	// keyframes; a longer one ends the session with ErrGOPTooLong
	// (R-EDGE-5). Default: max(4s, 2 × SegmentDuration).
	MaxKeyframeInterval time.Duration

	// Queue bounds each Writer's upload queue (segments and bytes cut but
	// not yet stored) and how long Write may block on a full one. It is
	// the segmenter's setting rather than the ingest pipeline's or a
	// protocol's because the segmenter is what cuts, holds and stores the
	// bytes: every protocol then gets the same bound from the one
	// Segmenter an edge builds, and the wait scales with the stream's own
	// segment duration. Defaults: see QueueConfig (8 segments, 64 MiB,
	// 2 × SegmentDuration).
	Queue QueueConfig
}

// Defaults.
const (
	DefaultSegmentDuration = 2 * time.Second
	DefaultDVRWindow       = 60 * time.Second
)

// Validate checks the configuration, naming the field at fault.
func (c Config) Validate() error {
	switch {
	case c.SegmentDuration < 0:
		return fmt.Errorf("segment: SegmentDuration must not be negative, got %v", c.SegmentDuration)
	case c.SegmentDuration > 0 && c.SegmentDuration < 100*time.Millisecond:
		return fmt.Errorf("segment: SegmentDuration must be at least 100ms, got %v", c.SegmentDuration)
	case c.DVRWindow < 0:
		return fmt.Errorf("segment: DVRWindow must not be negative, got %v", c.DVRWindow)
	case c.MaxKeyframeInterval < 0:
		return fmt.Errorf("segment: MaxKeyframeInterval must not be negative, got %v", c.MaxKeyframeInterval)
	}
	if err := c.Queue.validate(); err != nil {
		return err
	}
	d := c.withDefaults()
	switch {
	case d.DVRWindow < d.SegmentDuration:
		return fmt.Errorf("segment: DVRWindow (%v) must be at least SegmentDuration (%v)", d.DVRWindow, d.SegmentDuration)
	case d.MaxKeyframeInterval < d.SegmentDuration:
		return fmt.Errorf("segment: MaxKeyframeInterval (%v) must be at least SegmentDuration (%v)", d.MaxKeyframeInterval, d.SegmentDuration)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.SegmentDuration == 0 {
		c.SegmentDuration = DefaultSegmentDuration
	}
	if c.DVRWindow == 0 {
		c.DVRWindow = DefaultDVRWindow
	}
	if c.MaxKeyframeInterval == 0 {
		c.MaxKeyframeInterval = max(4*time.Second, 2*c.SegmentDuration)
	}
	c.Queue = c.Queue.withDefaults(c.SegmentDuration)
	return c
}

// Deps are the segmenter's collaborators.
type Deps struct {
	Store  store.Store      // required
	Logger *slog.Logger     // default: discard
	Now    func() time.Time // wall clock for EXT-X-PROGRAM-DATE-TIME and the MPD; default: time.Now
	// Metrics registers the upload queues' gauges and histograms
	// (liveingest_segment_queue_segments, _queue_bytes, _queue_wait_seconds,
	// liveingest_segment_commit_seconds); a collector already registered by
	// another Segmenter is shared. Default: nil (none).
	Metrics prometheus.Registerer
}

// Stream names one publish session's output and its timing.
type Stream struct {
	Slot  keys.SlotID
	Role  keys.Role
	Token uint64 // the fencing token of the session's lease
	// SegmentDuration and DVRWindow are the slot's settings; zero takes the
	// Segmenter's Config. MaxKeyframeInterval follows SegmentDuration unless
	// the Config set it.
	SegmentDuration time.Duration
	DVRWindow       time.Duration
}

// Segmenter starts Writers. It holds no per-stream state and is safe for
// concurrent use.
type Segmenter struct {
	raw   Config // as given, to tell explicit settings from defaults
	cfg   Config
	store store.Store
	log   *slog.Logger
	now   func() time.Time
	m     *metrics
}

// New checks cfg and deps and returns a ready Segmenter.
func New(cfg Config, deps Deps) (*Segmenter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, errors.New("segment: Deps.Store is required")
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("segment: Deps.Metrics: %w", err)
	}
	s := &Segmenter{raw: cfg, cfg: cfg.withDefaults(), store: deps.Store, log: deps.Logger, now: deps.Now, m: m}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Start begins writing one publish session of slot/role. token is the
// session lease's fencing token (strictly larger for every newer grant).
//
// Start validates the tracks (ErrUnsupportedCodec naming the codec; at most
// one video and one audio track), claims the stream's state with token
// (ErrFenced when the state already carries a token ≥ token), and stores
// the session's init files. When the state holds an earlier session's
// segments the new session continues its numbering after an
// EXT-X-DISCONTINUITY (a new DASH Period). Start returns store errors
// wrapped; nothing public changes before the first segment. Start itself
// waits for the store (the claim and the init files); from the Writer on,
// only a full upload queue makes a caller wait.
func (s *Segmenter) Start(ctx context.Context, stream Stream, tracks []media.Track) (*Writer, error) {
	slot, role, token := stream.Slot, stream.Role, stream.Token
	cfg := s.raw
	if stream.SegmentDuration > 0 {
		cfg.SegmentDuration = stream.SegmentDuration
	}
	if stream.DVRWindow > 0 {
		cfg.DVRWindow = stream.DVRWindow
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if _, err := keys.ParseSlotID(string(slot)); err != nil {
		return nil, fmt.Errorf("segment: slot: %w", err)
	}
	if _, err := keys.ParseRole(string(role)); err != nil {
		return nil, fmt.Errorf("segment: role: %w", err)
	}
	if len(tracks) == 0 {
		return nil, fmt.Errorf("%w: no tracks", ErrUnsupportedCodec)
	}
	w := &Writer{
		seg: s, cfg: cfg, slot: slot, role: role, token: token, prefix: keys.RolePrefix(slot, role),
		byID: map[int]int{}, video: -1,
		log: s.log.With("component", "segment", "slot", string(slot), "role", string(role)),
	}
	tok := fmtUint(token)
	for _, t := range tracks {
		ti, err := describeTrack(t)
		if err != nil {
			return nil, err
		}
		if _, dup := w.byID[t.ID]; dup {
			return nil, fmt.Errorf("%w: duplicate track id %d", ErrUnsupportedCodec, t.ID)
		}
		for _, o := range w.tracks {
			if o.rec.Kind == ti.rec.Kind {
				return nil, fmt.Errorf("%w: a second %s track (%s)", ErrUnsupportedCodec, kindName(ti.rec.Kind), t.Name())
			}
		}
		ti.rec.Init = string(ti.rec.Kind) + "/" + tok + "/init.mp4"
		w.byID[t.ID] = len(w.tracks)
		if ti.video {
			w.video = len(w.tracks)
		}
		w.tracks = append(w.tracks, ti)
		w.open = append(w.open, nil)
		w.lastDTS = append(w.lastDTS, -1<<63)
	}
	inits := make([][]byte, len(w.tracks))
	for i, ti := range w.tracks {
		b, err := initFile(ti)
		if err != nil {
			return nil, err
		}
		inits[i] = b
	}
	ms, err := manifest.Open(ctx, manifest.Config{
		Slot: slot, Role: role, Token: token,
		Timing: manifest.Timing{SegmentDuration: cfg.SegmentDuration, DVRWindow: cfg.DVRWindow},
	}, manifest.Deps{Store: s.store, Logger: w.log, Now: s.now})
	if err != nil {
		return nil, err
	}
	w.shift = ms.State().TimelineEnd()
	w.nextSeq = ms.State().NextSeq
	for i, ti := range w.tracks {
		if err := putNew(ctx, s.store, w.prefix, ti.rec.Init, bytes.NewReader(inits[i]), int64(len(inits[i])), store.ClassInit, contentType(ti.rec.Kind)); err != nil {
			return nil, err
		}
	}
	w.up = newUploader(ctx, w, ms, s.m)
	w.log.Info("segment writer started", "tracks", len(w.tracks), "continues", len(ms.State().Segments) > 0)
	return w, nil
}

func kindName(k manifest.Kind) string {
	if k == manifest.Video {
		return "video"
	}
	return "audio"
}

func contentType(kind manifest.Kind) string {
	if kind == manifest.Video {
		return "video/mp4"
	}
	return "audio/mp4"
}
