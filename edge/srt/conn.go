package srt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosrt "github.com/datarhei/gosrt"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/ingest"
	"github.com/liveingest/liveingest/edge/tsdemux"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/slots"
)

// Handshake rejections. libsrt puts a reject reason on the wire as
// 1000 + the code its API reports (srt_getrejectreason): the SRT_REJ_*
// codes 0–15 travel as 1000–1015 (gosrt's REJ_* constants are these wire
// values), and the access-control codes 1400–1599 (SRT_REJX_*) travel as
// 2400–2599. gosrt's REJX_* constants are the codes, not the wire values,
// so they go through accessControl.
const (
	rejBadSecret = gosrt.REJ_BADSECRET // the caller reports SRT_REJ_BADSECRET: wrong passphrase
	rejUnsecure  = gosrt.REJ_UNSECURE  // SRT_REJ_UNSECURE: passphrase required, or given where none is set
)

// accessControl is the handshake value that makes a libsrt caller report
// the access-control code (e.g. 1401).
func accessControl(code int) gosrt.RejectionReason {
	return gosrt.RejectionReason(1000 + code)
}

// Access-control codes beside admit's (admit.SRT*).
const (
	codeBadMode = 1405 // REJX_BAD_MODE: the stream id asks to play
)

// Bounds of what a client's stream can put in a log line.
const (
	maxErrText      = 512 // an error's text (a demuxer's, the library's)
	maxTracksLogged = 8   // ignored MPEG-TS tracks named
)

// conn is one SRT caller, from its connection request to close.
type conn struct {
	s       *Server
	req     gosrt.ConnRequest
	remote  netip.AddrPort
	log     *slog.Logger
	started time.Time

	// ctx is cancelled by abort: the server's Close ran out of time.
	ctx    context.Context
	cancel context.CancelFunc

	// answered is set once the request was rejected or accepted (by the
	// connection's goroutine, which alone reads it).
	answered bool

	sc gosrt.Conn // set once accepted
	wd *watchdog  // reads of sc
	dm *tsdemux.Demuxer

	// live is set while the connection writes segments; slot and role are
	// its metrics labels, fixed before live is set.
	live       atomic.Bool
	slot, role string

	statsMu sync.Mutex
	stats   gosrt.Statistics
}

func newConn(s *Server, req gosrt.ConnRequest) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	var remote netip.AddrPort
	if a, ok := req.RemoteAddr().(*net.UDPAddr); ok {
		remote = a.AddrPort()
	}
	return &conn{
		s: s, req: req, remote: remote, ctx: ctx, cancel: cancel, started: time.Now(),
		log: s.log.With("remote", remote.String()),
	}
}

// Abort cuts the connection's pending work (the final flush included).
func (c *conn) Abort() {
	c.cancel()
	c.statsMu.Lock()
	wd := c.wd
	c.statsMu.Unlock()
	if wd != nil {
		safely(func() { wd.stop(errClosing) })
	}
}

// closeReason is why a connection ended; exactly one is logged per
// connection.
type closeReason struct {
	msg   string
	rej   *admit.Rejection // the reason given to the caller or the live status, if any
	code  int              // the handshake rejection code sent, if any
	err   error            // the cause, for the log
	level slog.Level
}

// run serves the connection and logs why it ended, once. A panic in any
// of the connection's goroutines ends this connection only (see panicked).
func (c *conn) run() {
	defer c.s.conns.Done(c)
	defer c.cancel()
	defer c.recoverPanic("close") // the close line reads the library's statistics
	c.logClose(c.serve())
}

// serve is runInner with a panic turned into the connection's end: a
// request not answered yet is rejected with REJX_ISE, an accepted
// connection is closed. runInner's deferred steps (the session's close,
// which releases the lease) have run by then.
func (c *conn) serve() (r closeReason) {
	defer func() {
		if v := recover(); v != nil {
			r = c.panicked("connection", v)
			if !c.answered {
				code := admit.ReasonInternal.SRTCode()
				safely(func() { c.req.Reject(accessControl(code)) })
				c.answered = true
				r.code = code
			}
		}
	}()
	return c.runInner()
}

// recoverPanic is deferred by every goroutine of the connection but the
// one serve guards: a panic ends the connection, not the server.
func (c *conn) recoverPanic(where string) {
	if v := recover(); v != nil {
		c.panicked(where, v)
	}
}

// panicked counts and logs (rate-limited, with the stack) a panic
// recovered in the connection's goroutine where, closes the connection if
// it was accepted, and returns the reason it ended. It is called from the
// recovering deferred function.
func (c *conn) panicked(where string, v any) closeReason {
	c.s.metrics.connPanics.Inc()
	logPanic(&c.s.connPanicLog, c.log.With("in", where), "SRT connection panicked; ending it, the server goes on", v)
	c.statsMu.Lock()
	wd := c.wd
	c.statsMu.Unlock()
	if wd != nil {
		safely(func() { wd.stop(errInternal) })
	}
	return closeReason{msg: "internal error", err: errInternal, level: slog.LevelError}
}

// logClose logs the line that says why the connection ended.
func (c *conn) logClose(r closeReason) {
	attrs := []any{"reason", r.msg, "duration", time.Since(c.started).Round(time.Millisecond)}
	if r.rej != nil {
		attrs = append(attrs, "end", string(r.rej.Reason), "message", r.rej.Message)
	}
	if r.code != 0 {
		attrs = append(attrs, "reject_code", r.code)
	}
	if c.sc != nil {
		st := c.linkStats()
		attrs = append(attrs, "packets", st.PacketsReceived, "lost", st.PacketsLost,
			"retransmitted", st.PacketsRetransmitted, "dropped", st.PacketsDropped, "rtt_ms", st.RTTMs)
	}
	if c.dm != nil {
		ds := c.dm.Stats()
		attrs = append(attrs, "ts_decode_errors", ds.DecodeErrors, "ts_discontinuities", ds.Discontinuities)
		c.s.metrics.decodeErrors.Add(float64(ds.DecodeErrors))
		c.s.metrics.discontinuities.Add(float64(ds.Discontinuities))
	}
	if r.err != nil {
		attrs = append(attrs, "err", capText(r.err.Error(), maxErrText))
	}
	c.log.Log(context.Background(), r.level, "srt connection closed", attrs...)
}

// reject answers the request with a refusal.
func (c *conn) reject(r gosrt.RejectionReason) {
	c.req.Reject(r)
	c.answered = true
}

func (c *conn) runInner() closeReason {
	raw := c.req.StreamId()
	id, err := ParseStreamID(raw)
	if err != nil {
		// The id may hold a key anywhere: only its fingerprint is logged
		// (and the error, which quotes nothing of it).
		c.log = c.log.With("streamid_fp", secret.Fingerprint(raw))
		code := admit.SRTBadRequest
		if errors.Is(err, ErrPlayMode) {
			code = codeBadMode
		}
		c.reject(accessControl(code))
		c.s.metrics.handshakes.WithLabelValues("bad-streamid").Inc()
		return closeReason{msg: "stream id refused", code: code, err: err, level: slog.LevelInfo}
	}
	key := id.Key.Reveal()
	c.log = c.log.With("key_fp", id.Key.Fingerprint())
	role := c.s.cfg.Role
	if id.Role == keys.Backup {
		role = keys.Backup
	}

	// The slot's passphrase is checked inside admission, before the rate
	// limit and the lease: a wrong one is a failed authentication.
	var secretRej gosrt.RejectionReason
	verify := func(sl *slots.Slot) error {
		want := sl.SRTPassphrase.Reveal()
		switch {
		case want == "" && c.req.IsEncrypted():
			secretRej = rejUnsecure
			return errors.New("this slot has no SRT passphrase; connect without one")
		case want != "" && !c.req.IsEncrypted():
			secretRej = rejUnsecure
			return errors.New("this slot requires an SRT passphrase")
		case want != "":
			// Unwrapping the caller's key material with the passphrase is
			// the check: it fails unless both sides hold the same one.
			if err := c.req.SetPassphrase(want); err != nil {
				secretRej = rejBadSecret
				return errors.New("wrong SRT passphrase")
			}
		}
		return nil
	}
	actx, cancel := context.WithTimeout(c.ctx, c.s.cfg.AdmitTimeout)
	sess, err := c.s.deps.Admitter.Admit(actx, admit.Request{
		Protocol: admit.ProtocolSRT, StreamKey: id.Key, Role: role, Remote: c.remote, Verify: verify,
	})
	cancel()
	if err != nil {
		rej := admit.AsRejection(err)
		wire, code := accessControl(rej.Reason.SRTCode()), rej.Reason.SRTCode()
		if rej.Reason == admit.ReasonUnauthorized && secretRej != 0 {
			wire, code = secretRej, int(secretRej)-1000
		}
		c.reject(wire)
		c.s.metrics.handshakes.WithLabelValues("rejected").Inc()
		return closeReason{msg: "publish rejected", rej: rej, code: code, level: slog.LevelInfo}
	}
	// The session is ours until the pipeline takes it; Close is idempotent.
	// A panic unwinding through here ends it as internal first, so that the
	// slot's live status says why.
	returned := false
	defer func() {
		if !returned {
			sess.End(admit.ReasonInternal, "internal error")
		}
		_ = sess.Close(context.WithoutCancel(c.ctx))
	}()
	c.log = c.log.With("slot", string(sess.Slot().ID), "role", string(role), "session", sess.ID())
	// The user name is the caller's (bounded and printable already); one
	// that carries the key is not logged.
	if id.User != "" && !strings.Contains(id.User, key) {
		c.log = c.log.With("srt_user", id.User)
	}
	r := c.admitted(sess, role)
	returned = true
	return r
}

// admitted serves an admitted caller: the accept, discovery, the pipeline.
func (c *conn) admitted(sess *admit.Session, role keys.Role) closeReason {
	sc, err := c.req.Accept()
	c.answered = true
	if err != nil {
		return closeReason{msg: "accept failed", err: err, level: slog.LevelWarn}
	}
	c.s.metrics.handshakes.WithLabelValues("accepted").Inc()
	c.statsMu.Lock()
	c.sc = sc
	c.wd = newWatchdog(sc, c.s.cfg.ReadTimeout, func(v any) { c.panicked("watchdog", v) }) // Abort reads it from another goroutine
	c.statsMu.Unlock()
	defer c.wd.stop(nil)
	if c.closing() { // Close ran before the connection existed
		c.wd.stop(errClosing)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer c.recoverPanic("watch")
		select {
		case <-c.s.conns.Closed():
			c.wd.stop(errClosing)
		case <-sess.Done(): // lease lost, bitrate, GOP: stop reading now
			c.wd.stop(errSessionEnded)
		case <-stop:
		}
	}()

	// Discovery: the program, the video's parameter sets and a keyframe.
	c.wd.deadline(c.s.cfg.DiscoveryTimeout)
	dm, err := tsdemux.Open(bufio.NewReaderSize(c.wd, 64<<10), tsdemux.Options{
		// Room for a long first GOP at a contribution bitrate (6 s at
		// 40 Mb/s); what is held meanwhile is audio, not these bytes.
		MaxDiscovery:  32 << 20,
		OnDecodeError: func(err error) { c.log.Debug("MPEG-TS decode error", "err", capText(err.Error(), maxErrText)) },
	})
	c.wd.deadline(0)
	if err != nil {
		return c.discoveryEnd(sess, err)
	}
	c.dm = dm
	if ig := dm.Ignored(); len(ig) > 0 {
		if len(ig) > maxTracksLogged { // a PMT may list many
			ig = append(ig[:maxTracksLogged:maxTracksLogged], "…")
		}
		c.log.Info("ignoring extra MPEG-TS tracks", "tracks", ig)
	}
	tracks := dm.Tracks()
	pipe, err := ingest.Start(c.ctx, sess, c.s.deps.Segmenter, tracks)
	if err != nil {
		return closeReason{msg: "session ended", rej: admit.AsRejection(err), level: slog.LevelWarn}
	}
	return c.publish(sess, pipe, role)
}

// discoveryEnd ends the session for a stream that never showed usable
// media, with the reason for the live status, or quietly when the caller
// simply left.
func (c *conn) discoveryEnd(sess *admit.Session, err error) closeReason {
	var msg string
	var ue *tsdemux.UnsupportedError
	switch {
	case errors.Is(err, errClosing):
		return closeReason{msg: "server shutting down", level: slog.LevelInfo}
	case errors.Is(err, errSessionEnded):
		return closeReason{msg: "session ended", rej: admit.AsRejection(sess.Err()), level: slog.LevelWarn}
	case errors.As(err, &ue):
		msg = ue.Error() // names the codec and what to send instead
	case errors.Is(err, errDiscovery) && errors.Is(err, tsdemux.ErrNoProgram):
		msg = fmt.Sprintf("no MPEG-TS program (PAT/PMT) within %s; send MPEG-TS", c.s.cfg.DiscoveryTimeout)
	case errors.Is(err, errDiscovery):
		msg = fmt.Sprintf("no H.264 or H.265 video (parameter sets and a keyframe) within %s", c.s.cfg.DiscoveryTimeout)
	case errors.Is(err, tsdemux.ErrNoVideo) && !isReadEnd(err):
		msg = "the MPEG-TS program has no usable video track; send H.264 or H.265 video"
	default:
		return c.readEnd("publisher left before sending media", err)
	}
	sess.End(admit.ReasonBadCodec, msg)
	return closeReason{msg: "session ended", rej: admit.AsRejection(sess.Err()), level: slog.LevelWarn}
}

// publish reads access units into pipe until the caller or the session
// ends, then flushes.
func (c *conn) publish(sess *admit.Session, pipe *ingest.Pipeline, role keys.Role) closeReason {
	c.slot, c.role = string(sess.Slot().ID), string(role)
	sess.SetLinkStats(c.linkStats)
	c.live.Store(true)
	c.s.metrics.publishers.Inc()
	defer c.s.metrics.publishers.Dec()
	defer c.live.Store(false)
	c.log.Info("publishing", "tracks", trackNames(c.dm))

	var r closeReason
	for {
		au, err := c.dm.Next()
		if err != nil {
			r = c.readEnd("publisher disconnected", err)
			if perr := pipe.Err(); perr != nil && !errors.Is(perr, admit.ErrClosed) {
				r = closeReason{msg: "session ended", rej: admit.AsRejection(perr), level: slog.LevelWarn}
			}
			break
		}
		if werr := pipe.Write(c.ctx, au); werr != nil {
			r = closeReason{msg: "session ended", rej: admit.AsRejection(werr), level: slog.LevelWarn}
			break
		}
	}
	// Stop reading (a session that ended while the caller still sends):
	// the caller sees the connection close.
	c.wd.stop(errSessionEnded)
	// Flush the segment in flight before the lease is released (R-OPS-3).
	if err := pipe.CloseWithin(c.ctx, c.s.cfg.CloseTimeout); err != nil {
		r.err = errors.Join(r.err, err)
		r.level = slog.LevelWarn
	}
	st := pipe.Stats()
	c.log.Debug("publish stats", "segments", st.Segments, "bytes", st.Bytes, "avg_bitrate", st.AverageBitrate)
	return r
}

func (c *conn) closing() bool { return c.s.conns.Closing() }

// readEnd classifies the error that ended reading.
func (c *conn) readEnd(step string, err error) closeReason {
	switch {
	case errors.Is(err, errClosing) || c.closing():
		return closeReason{msg: "server shutting down", level: slog.LevelInfo}
	case errors.Is(err, errSilent):
		return closeReason{msg: fmt.Sprintf("%s: %s for %s", step, errSilent, c.s.cfg.ReadTimeout), level: slog.LevelWarn}
	case isReadEnd(err):
		return closeReason{msg: step, level: slog.LevelInfo}
	}
	return closeReason{msg: step, err: err, level: slog.LevelWarn}
}

// isReadEnd reports whether err is the connection ending rather than a
// problem with what it carried.
func isReadEnd(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, errSilent) || errors.Is(err, errClosing) || errors.Is(err, errSessionEnded)
}

// linkStats reads the connection's SRT statistics (safe from any
// goroutine; the heartbeat and the metrics scrape call it). A panic in the
// library gives zero statistics, not a dead process.
func (c *conn) linkStats() (ls coord.LinkStats) {
	defer func() {
		if v := recover(); v != nil {
			c.s.metrics.connPanics.Inc()
			logPanic(&c.s.connPanicLog, c.log.With("in", "stats"), "reading SRT statistics panicked", v)
			ls = coord.LinkStats{}
		}
	}()
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	if c.sc == nil {
		return coord.LinkStats{}
	}
	c.sc.Stats(&c.stats)
	a, in := c.stats.Accumulated, c.stats.Instantaneous
	return coord.LinkStats{
		RTTMs: in.MsRTT, ReceiveRateKbps: int64(in.MbpsRecvRate * 1000),
		PacketsReceived: a.PktRecv, PacketsLost: a.PktRecvLoss,
		PacketsRetransmitted: a.PktRecvRetrans, PacketsDropped: a.PktRecvDrop,
	}
}

func trackNames(dm *tsdemux.Demuxer) []string {
	var out []string
	for _, t := range dm.Tracks() {
		out = append(out, t.Name())
	}
	return out
}
