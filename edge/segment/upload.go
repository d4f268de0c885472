package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/liveingest/liveingest/origin/manifest"
	"github.com/liveingest/liveingest/origin/store"
)

// QueueConfig bounds a Writer's upload queue: the segments cut but not yet
// stored and listed, which a Writer holds in memory while its own goroutine
// stores them (see the package documentation, Upload queue).
type QueueConfig struct {
	// Segments is how many segments may wait, counting the one being
	// stored. A segment is one cut: every track's file of one sequence
	// number. Default: 8.
	Segments int

	// Bytes bounds the media bytes of the waiting segments together. A
	// segment larger than Bytes is still taken when nothing else waits, so
	// a high bitrate slows a stream down rather than ending it. Default:
	// 64 MiB.
	Bytes int64

	// Wait is how long Write may block its caller — the protocol's read
	// loop, and for TCP protocols the publisher's socket with it — for room
	// in a full queue; after it the session ends with ErrStorageSlow.
	// Default: 2 × the stream's SegmentDuration.
	Wait time.Duration
}

// Queue defaults.
const (
	DefaultQueueSegments = 8
	DefaultQueueBytes    = 64 << 20
)

func (q QueueConfig) validate() error {
	switch {
	case q.Segments < 0:
		return fmt.Errorf("segment: Queue.Segments must not be negative, got %d", q.Segments)
	case q.Bytes < 0:
		return fmt.Errorf("segment: Queue.Bytes must not be negative, got %d", q.Bytes)
	case q.Wait < 0:
		return fmt.Errorf("segment: Queue.Wait must not be negative, got %v", q.Wait)
	}
	return nil
}

func (q QueueConfig) withDefaults(segDur time.Duration) QueueConfig {
	if q.Segments == 0 {
		q.Segments = DefaultQueueSegments
	}
	if q.Bytes == 0 {
		q.Bytes = DefaultQueueBytes
	}
	if q.Wait == 0 {
		q.Wait = 2 * segDur
	}
	return q
}

// part is one track's share of a cut: its samples, which the uploader
// stores as the track's media segment.
type part struct {
	track    int // index in the Writer's tracks
	seg      *trackSeg
	next     uint64 // the decode time after the last unit, when haveNext
	haveNext bool
	rel      string // the segment's key, relative to the role prefix
}

// job is one cut handed to the queue: its tracks' access units and the
// segment entry the state gains once their segments are stored.
type job struct {
	parts []part
	// rec has one SegmentTrack per track, with Kind, and URI and T for the
	// tracks in parts; the uploader sets D and Bytes when it muxes, and
	// Period and Disc when it commits.
	rec   manifest.Segment
	bytes int       // the samples' bytes: what the queue's bound counts
	cut   time.Time // when it was cut (commit latency)
}

// uploader is a Writer's ordered upload queue. The Writer (on the
// protocol's read loop) hands it cuts — the access units of each track up
// to the cut — and returns; the uploader's goroutine takes them oldest
// first, muxes and stores the cut's track segments in parallel and then
// commits the state listing them, so:
//
//   - a segment is listed (acknowledged) only once every file it names is
//     stored (R-STORE-2), and nothing listed is removed by the writer;
//   - cut N+1's files are stored and its state committed only after cut
//     N's commit: commits never go out of order;
//   - the first failure (ErrFenced, a store error) is sticky: nothing is
//     stored after it, Failed closes and Err says why; the Writer's
//     next Write returns it.
//
// Everything the goroutine uses of the stream (the manifest.Stream above
// all, which is single-threaded) is its own once run started; the fields
// under mu are shared with the Writer.
type uploader struct {
	store  store.Store
	ms     *manifest.Stream
	prefix string
	token  uint64
	period string // this session's DASH period id
	tracks []trackInfo
	dvr    time.Duration
	lim    QueueConfig
	log    *slog.Logger
	m      *metrics

	// ctx is the context of every store operation; cancel aborts them
	// (Close's ctx ended before the queue was drained).
	ctx    context.Context
	cancel context.CancelFunc

	// used by run only
	opened    bool // the session's period is in the state
	sessBytes int64
	sessDur   time.Duration

	mu      sync.Mutex
	queue   []*job        // accepted, not yet committed; queue[0] is being stored
	bytes   int64         // of queue
	changed chan struct{} // closed and replaced whenever queue, closed or err change
	closed  bool          // no more jobs: run drains the queue, ends the stream and returns
	err     error         // the first failure
	failed  chan struct{} // closed when err is set
	done    chan struct{} // closed when run returned

	statsMu sync.Mutex
	stats   Stats
}

func newUploader(ctx context.Context, w *Writer, ms *manifest.Stream, m *metrics) *uploader {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	u := &uploader{
		store: w.seg.store, ms: ms, prefix: w.prefix, token: w.token, period: "p" + fmtUint(w.token),
		tracks: w.tracks, dvr: w.cfg.DVRWindow, lim: w.cfg.Queue, log: w.log, m: m,
		ctx: ctx, cancel: cancel,
		changed: make(chan struct{}), failed: make(chan struct{}), done: make(chan struct{}),
	}
	go u.run()
	return u
}

// notifyLocked wakes everyone waiting for a change (u.mu held).
func (u *uploader) notifyLocked() {
	close(u.changed)
	u.changed = make(chan struct{})
}

// enqueue hands j over. With bounded set it waits, up to the queue's Wait
// and while ctx lasts, for room; then it returns ErrStorageSlow (or ctx's
// error) and j is not taken. Unbounded (Close's last segments) it always
// takes j. It returns the uploader's failure instead once there is one.
func (u *uploader) enqueue(ctx context.Context, j *job, bounded bool) error {
	start := time.Now()
	var timeout <-chan time.Time
	u.mu.Lock()
	for {
		if u.err != nil {
			u.mu.Unlock()
			return u.err
		}
		if !bounded || len(u.queue) == 0 || (len(u.queue) < u.lim.Segments && u.bytes+int64(j.bytes) <= u.lim.Bytes) {
			break
		}
		if timeout == nil {
			t := time.NewTimer(u.lim.Wait)
			defer t.Stop()
			timeout = t.C
		}
		changed, n, b := u.changed, len(u.queue), u.bytes
		u.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			u.m.waited(time.Since(start))
			return fmt.Errorf("%w: %d segments (%d bytes) still waiting for the store after %v", ErrStorageSlow, n, b, u.lim.Wait)
		case <-ctx.Done():
			u.m.waited(time.Since(start))
			return ctx.Err()
		}
		u.mu.Lock()
	}
	u.queue = append(u.queue, j)
	u.bytes += int64(j.bytes)
	u.m.queued(1, j.bytes)
	u.notifyLocked()
	u.mu.Unlock()
	u.m.waited(time.Since(start))
	return nil
}

// run stores and commits the queued cuts in order until Close, then
// drains the queue and commits the end of the stream.
func (u *uploader) run() {
	defer close(u.done)
	for {
		j := u.next()
		if j == nil {
			break
		}
		err := u.put(j)
		u.mu.Lock()
		u.queue = u.queue[1:]
		u.bytes -= int64(j.bytes)
		u.m.queued(-1, -j.bytes)
		if err != nil {
			u.failLocked(err)
		}
		u.notifyLocked()
		u.mu.Unlock()
	}
	u.mu.Lock()
	err := u.err
	u.mu.Unlock()
	if errors.Is(err, ErrFenced) {
		return // a newer writer owns the stream: nothing more of ours
	}
	// After a store failure the end is still worth a try: the listed
	// segments stay playable as a finished stream.
	ns := u.ms.State().Clone()
	ns.Ended = true
	if cerr := u.ms.Commit(u.ctx, ns); cerr != nil {
		u.mu.Lock()
		u.failLocked(cerr)
		u.notifyLocked()
		u.mu.Unlock()
	}
}

// next waits for the oldest queued job; nil once the uploader is closed
// and has nothing (more) to store.
func (u *uploader) next() *job {
	u.mu.Lock()
	defer u.mu.Unlock()
	for {
		switch {
		case u.err == nil && len(u.queue) > 0:
			return u.queue[0]
		case u.closed:
			return nil
		}
		changed := u.changed
		u.mu.Unlock()
		<-changed
		u.mu.Lock()
	}
}

// failLocked records the first failure and drops what waits: after a
// failure nothing is stored, so nothing waiting will ever be listed.
func (u *uploader) failLocked(err error) {
	if u.err != nil {
		return
	}
	u.err = err
	close(u.failed)
	if n := len(u.queue); n > 0 {
		u.log.Warn("upload queue stopped; the segments waiting are not stored", "segments", n, "bytes", u.bytes, "err", err)
		u.m.queued(-n, -int(u.bytes))
		u.queue, u.bytes = nil, 0
	}
}

// put muxes and stores j's track segments — in parallel: they are
// independent objects — and then commits the state that lists them.
func (u *uploader) put(j *job) error {
	errs := make([]error, len(j.parts))
	durs := make([]time.Duration, len(j.parts))
	sizes := make([]int, len(j.parts))
	var wg sync.WaitGroup
	for i, p := range j.parts {
		wg.Go(func() {
			// Stored or not, the bytes are not needed again: a failure
			// stops the queue.
			defer p.seg.release()
			ti := u.tracks[p.track]
			head, d, err := moofHead(ti, j.rec.Seq, p.seg, p.next, p.haveNext)
			if err != nil {
				errs[i] = err
				return
			}
			size := len(head) + p.seg.size
			st := &j.rec.Tracks[p.track]
			st.D, st.Bytes = d, size
			durs[i], sizes[i] = time.Duration(d*uint64(time.Second)/uint64(ti.rec.TimeScale)), size
			errs[i] = putNew(u.ctx, u.store, u.prefix, p.rel, p.seg.reader(head), int64(size), store.ClassSegment, contentType(ti.rec.Kind))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var dur time.Duration
	size := 0
	for i := range j.parts {
		dur, size = max(dur, durs[i]), size+sizes[i]
	}

	ns := u.ms.State().Clone()
	rec := j.rec
	if !u.opened {
		recs := make([]manifest.Track, len(u.tracks))
		for i, ti := range u.tracks {
			recs[i] = ti.rec
		}
		ns.Periods = append(ns.Periods, ns.OpenPeriod(u.period, u.token, recs, rec))
		rec.Disc = len(ns.Segments) > 0 || rec.Seq > 0
		u.opened = true
	}
	rec.Period = u.period
	ns.Segments = append(ns.Segments, rec)
	ns.NextSeq = rec.Seq + 1
	ns.Slide(u.dvr)

	bps := 0
	if dur > 0 {
		bps = int(int64(size) * 8 * int64(time.Second) / int64(dur))
	}
	u.sessBytes += int64(size)
	u.sessDur += dur
	avg := 0
	if u.sessDur > 0 {
		avg = int(u.sessBytes * 8 * int64(time.Second) / int64(u.sessDur))
	}
	ns.PeakBandwidth = max(ns.PeakBandwidth, bps)
	// AVERAGE-BANDWIDTH has to be close to the truth, not exact (Apple's
	// HLS authoring specification allows 10 %): republished only once it
	// drifted by more than 5 %, it spares the multivariant playlist a
	// rewrite at every segment.
	if prev := ns.AvgBandwidth; prev == 0 || 20*abs(avg-prev) > prev {
		ns.AvgBandwidth = avg
	}

	if err := u.ms.Commit(u.ctx, ns); err != nil {
		if errors.Is(err, ErrFenced) {
			// Nobody references these; removing them early is a courtesy
			// (the expiry would take them anyway).
			written := make([]string, len(j.parts))
			for i, p := range j.parts {
				written[i] = u.prefix + p.rel
			}
			_ = u.store.Delete(u.ctx, written...)
		}
		return err
	}
	u.m.committed(time.Since(j.cut))
	u.statsMu.Lock()
	u.stats.Bytes += int64(size)
	u.stats.Segments++
	u.stats.LastSegmentDuration = dur
	u.stats.LastSegmentBitrate = bps
	u.stats.AverageBitrate = avg
	u.statsMu.Unlock()
	u.log.Debug("segment stored", "seq", rec.Seq, "duration", dur, "bytes", size)
	return nil
}

// putNew creates an object of size bytes that must not exist yet. A
// collision means another writer used this writer's token: treated as
// fenced.
func putNew(ctx context.Context, st store.Store, prefix, rel string, body io.Reader, size int64, class store.Class, ctype string) error {
	_, err := st.Put(ctx, prefix+rel, body, store.Meta{
		ContentType: ctype, Class: class, Size: size, IfNoneMatch: "*",
	})
	if errors.Is(err, store.ErrPrecondition) {
		return fmt.Errorf("%w: %s already exists", ErrFenced, rel)
	}
	if err != nil {
		return fmt.Errorf("segment: put %s: %w", rel, err)
	}
	return nil
}

// sync waits until every job handed over so far is committed, or the
// uploader failed, or ctx ends.
func (u *uploader) sync(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	for u.err == nil && len(u.queue) > 0 {
		changed := u.changed
		u.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			u.mu.Lock()
			return ctx.Err()
		}
		u.mu.Lock()
	}
	return u.err
}

// close takes no more jobs, lets run drain the queue and end the stream,
// and waits for it while ctx lasts; when ctx ends first it aborts the
// store operations in flight and returns ctx's error. It returns the
// uploader's failure otherwise.
func (u *uploader) close(ctx context.Context) error {
	u.mu.Lock()
	u.closed = true
	u.notifyLocked()
	u.mu.Unlock()
	defer u.cancel()
	select {
	case <-u.done:
	case <-ctx.Done():
		u.mu.Lock()
		n, b := len(u.queue), u.bytes
		u.mu.Unlock()
		u.cancel()
		<-u.done // the store honours the cancellation
		if n > 0 {
			return fmt.Errorf("segment: %d segments (%d bytes) not stored before the close deadline: %w", n, b, ctx.Err())
		}
		return fmt.Errorf("segment: end of stream not committed before the close deadline: %w", ctx.Err())
	}
	return u.err
}

// fail is the uploader's failure, or nil.
func (u *uploader) fail() error {
	select {
	case <-u.failed:
	default:
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *uploader) snapshot() Stats {
	u.statsMu.Lock()
	defer u.statsMu.Unlock()
	return u.stats
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
