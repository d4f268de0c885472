// Package ingest is the protocol-neutral media pipeline that every segmenting
// protocol (RTMP, SRT and WHIP; PULL later) runs after admission: it
// checks the codecs, starts the segment writer with the session's fencing
// token, feeds access units through the session's input rules (bitrate) and
// the writer's (keyframe interval), and turns every failure into the one
// admission Reason the protocol reports to its client (R-EDGE-4, R-EDGE-5).
//
// A protocol package therefore does three things only: admit, translate its
// tracks and access units into edge/media, and map a *admit.Rejection to its
// own wire rejection.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"time"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/origin/store"
)

// Segmenter starts segment writers; *segment.Segmenter implements it.
type Segmenter interface {
	// Start begins writing one session of slot/role fenced by token; see
	// segment.Segmenter.Start for its errors.
	Start(ctx context.Context, stream segment.Stream, tracks []media.Track) (*segment.Writer, error)
}

var _ Segmenter = (*segment.Segmenter)(nil)

// Pipeline is one admitted session's media path: session rules, then the
// segment writer, whose upload queue stores the segments off the caller's
// goroutine. Write and Close may be called from any goroutine but are
// serialized (the writer is single-threaded); Done may be watched
// concurrently.
//
// Write returns without waiting for the store unless the writer's upload
// queue is full; then it blocks the caller (the protocol's read loop) for
// at most the queue's wait, and the session ends storage-slow. A failed
// upload (fenced, store error) ends the session at once, with its reason,
// whether or not a Write is in progress.
type Pipeline struct {
	sess *admit.Session
	w    *segment.Writer
	trk  map[int]media.Track
	stop chan struct{} // closed by Close: ends the watch goroutine

	mu     sync.Mutex
	closed bool
}

// Start checks tracks and starts the segment writer for sess.
//
// An unsupported codec (anything but H.264, H.265, AAC and Opus, or no
// track at all) ends the session with ReasonBadCodec and a message that
// names the codec; a failing writer start ends it with the mapped reason
// (ErrFenced → busy, store unavailable → storage-unavailable). On error the
// returned error is the session's *admit.Rejection and the session is ended
// but not closed: the caller closes it, as it would without a pipeline. On
// success the Pipeline owns the session: Pipeline.Close closes it.
func Start(ctx context.Context, sess *admit.Session, seg Segmenter, tracks []media.Track) (*Pipeline, error) {
	if len(tracks) == 0 {
		return nil, end(sess, admit.ReasonBadCodec, "no audio or video track")
	}
	byID := make(map[int]media.Track, len(tracks))
	for _, t := range tracks {
		if !media.Supported(t.Codec) {
			return nil, end(sess, admit.ReasonBadCodec, media.Refusal(media.CodecName(t.Codec)))
		}
		byID[t.ID] = t
	}
	sl := sess.Slot()
	// The slot's own timing (R-SEG-1): segments cut at its segment duration,
	// playlists listing its DVR window.
	w, err := seg.Start(ctx, segment.Stream{
		Slot: sl.ID, Role: sess.Role(), Token: sess.Token(),
		SegmentDuration: time.Duration(sl.SegmentDuration) * time.Second,
		DVRWindow:       time.Duration(sl.DVRWindow) * time.Second,
	}, tracks)
	if err != nil {
		reason, msg := reasonOf(err)
		return nil, end(sess, reason, msg)
	}
	p := &Pipeline{sess: sess, w: w, trk: byID, stop: make(chan struct{})}
	go p.watch()
	return p, nil
}

// watch ends the session when the writer's upload queue fails, so that the
// protocol stops reading (it watches Done) even between Writes.
func (p *Pipeline) watch() {
	select {
	case <-p.w.Failed():
		reason, msg := reasonOf(p.w.Err())
		p.sess.End(reason, msg)
	case <-p.stop:
	}
}

// Write passes au through the session's input rules and into the segment
// writer. When the session has ended (lease lost, bitrate over the limit)
// or the writer refuses the unit, the session is ended once with the mapped
// reason and Write returns its *admit.Rejection; the caller stops reading
// and calls Close. A Write after the end returns the same rejection.
func (p *Pipeline) Write(ctx context.Context, au media.AccessUnit) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return admit.AsRejection(p.sessErr())
	}
	select {
	case <-p.sess.Done():
		return admit.AsRejection(p.sessErr())
	default:
	}
	p.sess.ObserveAU(au, p.trk[au.Track])
	select {
	case <-p.sess.Done(): // ObserveAU ended it: bitrate over the limit
		return admit.AsRejection(p.sessErr())
	default:
	}
	if err := p.w.Write(ctx, au); err != nil {
		reason, msg := reasonOf(err)
		return end(p.sess, reason, msg)
	}
	return nil
}

// Done is closed when the session must end (the session's Done).
func (p *Pipeline) Done() <-chan struct{} { return p.sess.Done() }

// Err is nil while the session is live; then why it ended (see
// admit.Session.Err).
func (p *Pipeline) Err() error { return p.sessErr() }

// Stats are the segment writer's measurements.
func (p *Pipeline) Stats() segment.Stats { return p.w.Stats() }

// Close flushes the writer — the last, short segment, every segment still
// in its upload queue, then the final manifests with EXT-X-ENDLIST — and
// then closes the session (lease release, registry removal). The order
// matters: the slot is free only once the last segment is stored, so a
// graceful shutdown finishes the segment in flight (R-OPS-3) and a
// reconnecting publisher continues after it. ctx bounds both steps: the
// session is closed even when the flush ran out of time. A writer fenced
// by a newer publisher has nothing to flush and is not an error. Close is
// idempotent.
func (p *Pipeline) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	werr := p.w.Close(ctx)
	close(p.stop)
	p.mu.Unlock()
	if errors.Is(werr, segment.ErrFenced) || errors.Is(werr, segment.ErrClosed) {
		werr = nil
	}
	if werr != nil {
		werr = fmt.Errorf("ingest: flush segments: %w", werr)
	}
	if ctx.Err() != nil {
		// The flush used up the budget (a store that hangs): release the
		// lease now rather than let it lapse, so the publisher may come
		// back at once.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), sessionReleaseTimeout)
		defer cancel()
	}
	return errors.Join(werr, p.sess.Close(ctx))
}

// sessionReleaseTimeout bounds the session's close (lease release, registry
// removal) when the flush before it used up the caller's deadline.
const sessionReleaseTimeout = 2 * time.Second

// CloseWithin is Close bounded by d on top of ctx: how a protocol ends a
// session that ended on its own, so that a store that hangs cannot hold the
// connection (and the slot) for ever.
func (p *Pipeline) CloseWithin(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return p.Close(ctx)
}

func (p *Pipeline) sessErr() error {
	if err := p.sess.Err(); err != nil {
		return err
	}
	return admit.ErrClosed
}

// end ends sess with reason (unless it already ended) and returns the
// rejection it ended with: the first end wins, so a lease lost just before
// a writer error reports the lease.
func end(sess *admit.Session, reason admit.Reason, msg string) error {
	sess.End(reason, msg)
	return admit.AsRejection(sess.Err())
}

// reasonOf maps a segmenter error to the reason and the client message.
// Messages never carry store internals: they go to the publisher.
func reasonOf(err error) (admit.Reason, string) {
	switch {
	case errors.Is(err, segment.ErrGOPTooLong):
		return admit.ReasonGOPTooLong, clientText(err, segment.ErrGOPTooLong)
	case errors.Is(err, segment.ErrFenced):
		return admit.ReasonBusy, "taken over by a newer publisher"
	case errors.Is(err, segment.ErrStorageSlow):
		return admit.ReasonStorageSlow, "segment storage too slow for the stream; retry"
	case errors.Is(err, segment.ErrUnsupportedCodec):
		return admit.ReasonBadCodec, clientText(err, segment.ErrUnsupportedCodec)
	case errors.Is(err, segment.ErrBadInput):
		return admit.ReasonBadCodec, "invalid media: " + clientText(err, segment.ErrBadInput)
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return admit.ReasonStorageUnavailable, "segment storage unavailable; retry"
	}
	return admit.ReasonInternal, "internal error writing segments"
}

// clientText is err's text without the package prefix, e.g. "keyframe
// interval too long: no keyframe for 5s (maximum 4s)".
func clientText(err, sentinel error) string {
	s := strings.TrimPrefix(err.Error(), "segment: ")
	if s == "" {
		s = strings.TrimPrefix(sentinel.Error(), "segment: ")
	}
	return s
}
