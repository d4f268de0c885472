package whip

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/ingest"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
)

// gatherTimeout bounds gathering the answer's candidates. On a UDP mux
// they are the mux's own addresses, known at once; the bound only guards
// against a stuck gatherer holding the request.
const gatherTimeout = 3 * time.Second

// session is one WHIP publish, from the 201 to its end.
type session struct {
	s       *Server
	id      string
	etag    string
	slot    keys.SlotID
	keyHash [sha256.Size]byte // of the stream key that created it, for DELETE/PATCH
	ufrag   string            // the offer's ICE ufrag: another one in a PATCH is a restart
	role    keys.Role
	log     *slog.Logger
	created time.Time

	adm  *admit.Session
	pc   *webrtc.PeerConnection
	link *linkMeter // closes pc (see linkMeter)

	// ctx is cancelled by abort: the server's Close ran out of time.
	ctx    context.Context
	cancel context.CancelFunc

	stopOnce sync.Once
	stopc    chan struct{} // closed by stop: run ends the session
	why      closeReason   // set once, before stopc closes
	done     chan struct{} // closed when the session ended (flushed, lease released)

	// lastRTP is the arrival of the last RTP packet (unix ns); 0 before one.
	lastRTP atomic.Int64

	// pipe is set when the first keyframe started the segment writer;
	// every audio packet and video frame reads it.
	pipe atomic.Pointer[ingest.Pipeline]

	audio bool // an Opus track was negotiated

	mu        sync.Mutex
	ended     bool           // no new track readers after this
	readers   sync.WaitGroup // track readers
	t0        time.Time      // arrival of the session's first packet: the timeline's origin
	video     *videoTrack    // the one video track read
	audioRead bool           // an Opus track has its reader
}

// closeReason is why a session ended; exactly one is logged per session.
type closeReason struct {
	msg   string
	label string           // the liveingest_whip_session_ends_total reason, unless rej says it
	rej   *admit.Rejection // the reason in the live status, if any
	err   error
	level slog.Level
}

// startSession builds the PeerConnection for an admitted publish, answers
// the offer and starts the session. It owns sess from here: on error it
// closes it.
func (s *Server) startSession(api *webrtc.API, sess *admit.Session, off offer, key secret.String, remote netip.AddrPort) (*session, string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	ss := &session{
		s: s, id: newID(), etag: `"` + newID() + `"`, slot: sess.Slot().ID, ufrag: off.ufrag,
		keyHash: sha256.Sum256([]byte(key.Reveal())), role: sess.Role(), created: time.Now(),
		adm: sess, ctx: ctx, cancel: cancel,
		stopc: make(chan struct{}), done: make(chan struct{}),
	}
	ss.log = s.log.With("remote", remote.String(),
		"slot", string(ss.slot), "role", string(ss.role), "session", sess.ID())
	fail := func(err error) (*session, string, error) {
		if ss.link != nil {
			_ = ss.link.close()
		}
		cancel()
		_ = sess.Close(context.Background())
		return nil, "", err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return fail(err)
	}
	ss.pc, ss.link = pc, &linkMeter{pc: pc}
	sess.SetLinkStats(ss.link.stats)
	pc.OnTrack(ss.onTrack)
	pc.OnConnectionStateChange(ss.onState)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: off.sdp}); err != nil {
		return fail(badRequest(http.StatusBadRequest, "the SDP offer was refused: %v", err))
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(badRequest(http.StatusBadRequest, "no answer to this offer: %v", err))
	}
	video, audio := answered(answer.SDP)
	if !video {
		return fail(badRequest(http.StatusUnprocessableEntity,
			"no acceptable video codec offered: send H.264 (packetization-mode=1, baseline, main or high profile) video"))
	}
	ss.audio = audio
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(err)
	}
	select {
	case <-gathered:
	case <-time.After(gatherTimeout):
		return fail(errors.New("ICE gathering did not complete"))
	}
	if !s.sessions.Add(ss.id, ss) {
		return fail(badRequest(http.StatusServiceUnavailable, "this edge is shutting down; retry"))
	}
	s.metrics.sessions.Inc()
	go ss.run()
	return ss, pc.LocalDescription().SDP, nil
}

// answered reports whether the answer accepted a video and an audio
// section (port not 0, a codec listed).
func answered(answer string) (video, audio bool) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(answer); err != nil {
		return false, false
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Port.Value == 0 || len(sectionCodecs(md)) == 0 {
			continue
		}
		switch md.MediaName.Media {
		case "video":
			video = true
		case "audio":
			audio = true
		}
	}
	return video, audio
}

// stop asks run to end the session with r; the first reason wins.
func (ss *session) stop(r closeReason) {
	ss.stopOnce.Do(func() {
		ss.why = r
		close(ss.stopc)
	})
}

// Abort cuts the session's pending work (the final flush included).
func (ss *session) Abort() { ss.cancel() }

func (ss *session) onState(st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		ss.log.Debug("WebRTC connected", "after", time.Since(ss.created).Round(time.Millisecond))
	case webrtc.PeerConnectionStateFailed:
		ss.stop(closeReason{msg: "ICE or DTLS failed", label: "ice-failed", level: slog.LevelWarn})
	case webrtc.PeerConnectionStateClosed:
		ss.stop(closeReason{msg: "publisher closed the connection", label: "closed", level: slog.LevelInfo})
	}
}

// run waits for the session's end, then tears it down in order: stop
// reading, flush the last segment, release the lease (Pipeline.Close).
func (ss *session) run() {
	defer ss.s.sessions.Done(ss.id)
	defer close(ss.done)
	defer ss.cancel()
	defer ss.s.metrics.sessions.Dec()
	r := ss.wait()

	ss.mu.Lock()
	ss.ended = true
	ss.mu.Unlock()
	_ = ss.link.close() // ends the readers' ReadRTP
	ss.readers.Wait()
	pipe := ss.pipe.Load() // final: the readers are gone

	ctx, cancel := context.WithTimeout(ss.ctx, ss.s.cfg.CloseTimeout)
	defer cancel()
	var err error
	if pipe != nil {
		err = pipe.Close(ctx) // last segment, then the lease
	} else {
		err = ss.adm.Close(ctx)
	}
	if err != nil {
		r.err = errors.Join(r.err, err)
		r.level = slog.LevelWarn
	}
	ss.s.metrics.ends.WithLabelValues(endLabel(r)).Inc()
	attrs := []any{"reason", r.msg, "duration", time.Since(ss.created).Round(time.Millisecond)}
	if r.rej != nil {
		attrs = append(attrs, "end", string(r.rej.Reason), "message", r.rej.Message)
	}
	if pipe != nil {
		st := pipe.Stats()
		attrs = append(attrs, "segments", st.Segments, "bytes", st.Bytes)
	}
	if v := ss.video; v != nil {
		attrs = append(attrs, "keyframe_requests", v.plis.Load(), "frames", v.frames.Load())
	}
	if r.err != nil {
		attrs = append(attrs, "err", r.err.Error())
	}
	ss.log.Log(context.Background(), r.level, "whip session closed", attrs...)
}

// wait blocks until something ends the session and says what.
func (ss *session) wait() closeReason {
	tick := time.NewTicker(max(ss.s.cfg.MediaTimeout/8, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ss.stopc:
			return ss.why
		case <-ss.s.sessions.Closed():
			return closeReason{msg: "server shutting down", label: "shutdown", level: slog.LevelInfo}
		case <-ss.adm.Done(): // lease lost, bitrate, keyframe interval
			return closeReason{msg: "session ended", rej: admit.AsRejection(ss.adm.Err()), level: slog.LevelWarn}
		case now := <-tick.C:
			if r, ok := ss.check(now); !ok {
				return r
			}
		}
	}
}

// check applies the media timeout and the discovery timeout at now.
func (ss *session) check(now time.Time) (closeReason, bool) {
	last := ss.created
	if ns := ss.lastRTP.Load(); ns != 0 {
		last = time.Unix(0, ns)
	}
	if silent := now.Sub(last); silent >= ss.s.cfg.MediaTimeout {
		return closeReason{msg: fmt.Sprintf("no media for %s", silent.Round(time.Millisecond)), label: "media-timeout", level: slog.LevelWarn}, false
	}
	if ss.pipe.Load() == nil && now.Sub(ss.created) >= ss.s.cfg.DiscoveryTimeout {
		ss.adm.End(admit.ReasonBadCodec, fmt.Sprintf(
			"no H.264 keyframe with SPS and PPS within %s of the answer", ss.s.cfg.DiscoveryTimeout))
		return closeReason{msg: "session ended", rej: admit.AsRejection(ss.adm.Err()), level: slog.LevelWarn}, false
	}
	return closeReason{}, true
}

func endLabel(r closeReason) string {
	if r.rej != nil {
		return string(r.rej.Reason)
	}
	return r.label
}
