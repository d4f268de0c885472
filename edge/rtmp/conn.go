package rtmp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/message"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/flv"
	"github.com/liveingest/liveingest/edge/ingest"
	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
)

// onStatus codes (Adobe's NetStream/NetConnection vocabulary, as encoders
// know it); see the package comment for the mapping.
const (
	codeBadName       = "NetStream.Publish.BadName"
	codeBadConnection = "NetStream.Publish.BadConnection"
	codeFailed        = "NetStream.Publish.Failed"
	codePlayFailed    = "NetStream.Play.Failed"
	codeClosed        = "NetConnection.Connect.Closed"
)

// StatusCode is the onStatus code an RTMP publisher receives for reason.
func StatusCode(reason admit.Reason) string {
	switch reason {
	case admit.ReasonUnauthorized, admit.ReasonForbidden, admit.ReasonForbiddenIP:
		return codeBadName
	case admit.ReasonBusy, admit.ReasonRateLimited, admit.ReasonStorageUnavailable, admit.ReasonStorageSlow:
		return codeBadConnection
	}
	return codeFailed
}

// lingerTimeout is how long a rejected connection stays open so that the
// publisher reads the status before it sees the connection close (ffmpeg
// checks for incoming messages between writes; closing at once would show
// it a broken pipe instead of the reason).
const lingerTimeout = 3 * time.Second

// aLongTimeAgo is a read deadline that makes a blocked read return now.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one RTMP connection, from handshake to close.
type conn struct {
	s        *Server
	nc       net.Conn
	protocol string
	remote   netip.AddrPort
	log      *slog.Logger
	started  time.Time

	// ctx is cancelled by abort: the server's Close ran out of time.
	ctx    context.Context
	cancel context.CancelFunc

	g     *guard // what gortmplib reads: the client's bytes, checked
	sc    *gortmplib.ServerConn
	keyFP string // the stream key's fingerprint once known, for the log

	dmu         sync.Mutex
	interrupted bool // no read may wait any longer (session ended, server closing)
}

func newConn(s *Server, nc net.Conn, protocol string) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	var remote netip.AddrPort
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		remote = a.AddrPort()
	}
	return &conn{
		s: s, nc: nc, protocol: protocol, remote: remote, ctx: ctx, cancel: cancel, started: time.Now(),
		log: s.log.With("proto", protocol, "remote", remote.String()),
	}
}

// Abort cuts the connection's pending work (the final flush included).
func (c *conn) Abort() {
	c.cancel()
	c.interrupt()
}

// interrupt makes the blocked read return and keeps later reads from
// waiting. Deadlines are set under dmu so that the read loop's renewal can
// never undo an interrupt.
func (c *conn) interrupt() {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.interrupted = true
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
}

// deadlines arms the read and write deadlines for the next step, unless
// the connection was interrupted.
func (c *conn) deadlines(read time.Duration) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if c.interrupted {
		return
	}
	now := time.Now()
	_ = c.nc.SetReadDeadline(now.Add(read))
	_ = c.nc.SetWriteDeadline(now.Add(c.s.cfg.WriteTimeout))
}

// closeReason is why a connection ended; exactly one is logged per
// connection.
type closeReason struct {
	msg   string
	rej   *admit.Rejection // the reason sent to the publisher, if any
	cause string           // the cause, for the log: never client text (safeErr)
	stack string           // a recovered panic's stack
	level slog.Level
}

func (r closeReason) Error() string { return r.msg }

// run serves the connection and logs why it ended, once.
func (c *conn) run() {
	defer c.s.conns.Done(c)
	defer c.cancel()
	defer c.nc.Close()
	// A server Close interrupts the connection in whatever step it is.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-c.s.conns.Closed():
			c.interrupt()
		case <-stop:
		}
	}()

	r := c.serve()
	attrs := []any{"reason", r.msg, "duration", time.Since(c.started).Round(time.Millisecond)}
	if c.g != nil {
		attrs = append(attrs, "bytes_in", c.g.total)
	}
	if c.keyFP != "" {
		attrs = append(attrs, "key_fp", c.keyFP)
	}
	if r.rej != nil {
		attrs = append(attrs, "end", string(r.rej.Reason))
	}
	if r.cause != "" {
		attrs = append(attrs, "err", r.cause)
	}
	if r.stack != "" {
		attrs = append(attrs, "stack", r.stack)
	}
	c.log.Log(context.Background(), r.level, "rtmp connection closed", attrs...)
}

// serve is runInner with a panic turned into the connection's end: the
// deferred steps of runInner (session and pipeline close) have run by
// then, run closes the connection, and the server goes on.
func (c *conn) serve() (r closeReason) {
	defer func() {
		if p := recover(); p != nil {
			r = closeReason{msg: "internal error", cause: "panic: " + panicText(p),
				stack: capStack(debug.Stack()), level: slog.LevelError}
		}
	}()
	return c.runInner()
}

func (c *conn) runInner() closeReason {
	c.deadlines(c.s.cfg.ReadTimeout)
	c.g = newGuard(c.nc, limitsOf(c.s.cfg))
	c.sc = &gortmplib.ServerConn{RW: c.g}
	if err := c.sc.Initialize(); err != nil {
		return c.ioEnd("handshake failed", err)
	}
	if err := c.sc.AcceptConn(); err != nil {
		return c.ioEnd("no publish command", err)
	}
	if !c.sc.Publish {
		c.sendStatus(codePlayFailed, "this edge takes publishers only; play the stream from its HLS or DASH URL")
		c.linger()
		return closeReason{msg: "play refused", level: slog.LevelInfo}
	}
	app, key := splitPath(c.sc.URL.Path)
	c.keyFP = secret.Fingerprint(key)
	role := c.s.cfg.Role
	switch app {
	case "live":
	case "backup":
		role = keys.Backup
	default:
		// The application is client text and may be the key itself
		// (rtmp://host/<key>): it is neither echoed nor logged.
		rej := &admit.Rejection{Reason: admit.ReasonUnauthorized,
			Message: "unknown application; publish to rtmp://<host>/live/<stream_key>"}
		return c.reject(rej)
	}

	actx, cancel := context.WithTimeout(c.ctx, c.s.cfg.ReadTimeout)
	sess, err := c.s.deps.Admitter.Admit(actx, admit.Request{
		Protocol: c.protocol, StreamKey: secret.String(key), Role: role, Remote: c.remote,
	})
	cancel()
	if err != nil {
		return c.reject(admit.AsRejection(err))
	}
	// Admitted: from here the guard's per-message limits apply.
	c.g.admitted()
	// The session is ours until the pipeline takes it; Close is idempotent.
	defer func() { _ = sess.Close(context.WithoutCancel(c.ctx)) }()
	c.log = c.log.With("slot", string(sess.Slot().ID), "role", string(role), "session", sess.ID())

	// Track discovery reads up to ~2 s of media (gortmplib's analysis
	// period) before it returns; it accepts the publish first.
	c.deadlines(c.s.cfg.ReadTimeout + 5*time.Second)
	rd := &gortmplib.Reader{Conn: c.sc}
	if err := rd.Initialize(); err != nil {
		if ue, ok := flv.RefusedCodec(err); ok {
			sess.End(admit.ReasonBadCodec, ue.Error())
			return c.reject(admit.AsRejection(sess.Err()))
		}
		return c.ioEnd("track discovery failed", err)
	}
	// A codec with no media form ends here; the pipeline checks the rest.
	tracks, err := flv.Tracks(rd.Tracks())
	if err != nil {
		sess.End(admit.ReasonBadCodec, err.Error())
		return c.reject(admit.AsRejection(sess.Err()))
	}
	pipe, err := ingest.Start(c.ctx, sess, c.s.deps.Segmenter, tracks)
	if err != nil {
		return c.reject(admit.AsRejection(err))
	}
	// publish closes the pipeline; this is for a panic on the way (Close is
	// idempotent).
	defer func() { _ = pipe.CloseWithin(context.WithoutCancel(c.ctx), c.s.cfg.CloseTimeout) }()
	return c.publish(rd, pipe, tracks)
}

// publish reads access units into pipe until the publisher or the session
// ends, then flushes.
func (c *conn) publish(rd *gortmplib.Reader, pipe *ingest.Pipeline, tracks []media.Track) closeReason {
	c.s.metrics.publishers.WithLabelValues(c.protocol).Inc()
	defer c.s.metrics.publishers.WithLabelValues(c.protocol).Dec()
	stop := make(chan struct{})
	go func() {
		select {
		case <-pipe.Done(): // lease lost, bitrate, GOP: stop reading now
			c.interrupt()
		case <-stop:
		}
	}()
	var werr error
	write := func(au media.AccessUnit) {
		if werr == nil {
			werr = pipe.Write(c.ctx, au)
		}
	}
	flv.OnData(rd, tracks, write)
	c.log.Info("publishing", "tracks", trackNames(tracks))

	var r closeReason
	for {
		c.deadlines(c.s.cfg.ReadTimeout)
		err := rd.Read()
		if werr != nil {
			r = closeReason{msg: "session ended", rej: admit.AsRejection(werr), level: slog.LevelWarn}
			break
		}
		if err != nil {
			r = c.ioEnd("publisher disconnected", err)
			if perr := pipe.Err(); perr != nil {
				if rej := admit.AsRejection(perr); !errors.Is(perr, admit.ErrClosed) {
					r = closeReason{msg: "session ended", rej: rej, level: slog.LevelWarn}
				}
			}
			break
		}
	}
	close(stop)
	switch {
	case r.rej != nil:
		c.sendStatus(StatusCode(r.rej.Reason), describe(r.rej))
	case c.g.violation() != nil: // a limit: the guard's text is ours
		c.sendStatus(codeFailed, strings.TrimPrefix(safeErr(c.g.violation()), "rtmp: "))
	case c.closing():
		c.sendStatus(codeClosed, "edge shutting down; reconnect")
	}
	// Flush the segment in flight before the lease is released (R-OPS-3).
	if err := pipe.CloseWithin(c.ctx, c.s.cfg.CloseTimeout); err != nil {
		// The pipeline's own error (segments, store): no client text.
		r.cause = strings.TrimPrefix(r.cause+"; "+err.Error(), "; ")
		r.level = slog.LevelWarn
	}
	st := pipe.Stats()
	c.log.Debug("publish stats", "segments", st.Segments, "bytes", st.Bytes, "avg_bitrate", st.AverageBitrate)
	return r
}

func (c *conn) closing() bool { return c.s.conns.Closing() }

// ioEnd classifies a read or handshake error. A refusal by the guard is
// reported as the guard's error whatever gortmplib made of it; any other
// library error is logged in its safe form only.
func (c *conn) ioEnd(step string, err error) closeReason {
	if v := c.g.violation(); v != nil && !c.closing() {
		return closeReason{msg: step + ": refused", cause: safeErr(v), level: slog.LevelWarn}
	}
	switch {
	case c.closing():
		return closeReason{msg: "server shutting down", level: slog.LevelInfo}
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		return closeReason{msg: step, level: slog.LevelInfo}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return closeReason{msg: step + ": read timeout", cause: safeErr(err), level: slog.LevelWarn}
	}
	return closeReason{msg: step, cause: safeErr(err), level: slog.LevelWarn}
}

// reject sends rej to the publisher and lets it read it before the close.
func (c *conn) reject(rej *admit.Rejection) closeReason {
	c.sendStatus(StatusCode(rej.Reason), describe(rej))
	c.linger()
	return closeReason{msg: "publish rejected", rej: rej, level: slog.LevelInfo}
}

// describe is the status description: the reason word, then the message
// (which for rate-limited says when to retry). Never the stream key.
func describe(rej *admit.Rejection) string {
	return string(rej.Reason) + ": " + rej.Message
}

// sendStatus writes an onStatus error (best effort: the publisher may be
// gone already).
func (c *conn) sendStatus(code, desc string) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	err := c.sc.Write(&message.CommandAMF0{
		ChunkStreamID:   5,
		MessageStreamID: 0x1000000,
		Name:            "onStatus",
		Arguments: []any{nil, amf0.Object{
			{Key: "level", Value: "error"},
			{Key: "code", Value: code},
			{Key: "description", Value: desc},
		}},
	})
	if err != nil {
		c.log.Debug("status not delivered", "code", code, "err", safeErr(err))
	}
}

// linger drains the connection until the publisher closes it or
// lingerTimeout passes (skipped while the server closes).
func (c *conn) linger() {
	if c.closing() {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, c.nc)
}

// splitPath splits an RTMP URL path into the application and the stream
// key: "/live/<key>" whether the key came as the publish name or as part of
// the application (the URL's query is already gone).
func splitPath(p string) (app, key string) {
	p = strings.Trim(p, "/")
	app, key, _ = strings.Cut(p, "/")
	return app, strings.Trim(key, "/")
}

// trackNames is the log's form of a publish's tracks: "h264+aac".
func trackNames(ts []media.Track) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name()
	}
	return strings.Join(names, "+")
}
