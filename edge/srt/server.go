// Package srt is the SRT ingest (SPEC R-SRT-1) on datarhei/gosrt: a UDP
// listener that takes MPEG-TS from SRT callers in live mode.
//
// Stream ids (see ParseStreamID): "#!::r=<stream_key>,m=publish" (SRT
// Access Control), "publish:<stream_key>" or a plain "<stream_key>"; the
// resource "backup/<stream_key>" publishes as the backup role, as does any
// publish to an edge configured with the backup role. Play requests
// (m=request) are refused.
//
// Each caller runs: handshake → stream id → admission (edge/admit; the
// slot's passphrase is checked inside it, before the lease) → accept →
// MPEG-TS discovery (edge/tsdemux) → the ingest pipeline (edge/ingest) →
// access units until the caller leaves, goes silent, or the session ends.
//
// SRT can refuse a caller only during the handshake, and does so with a
// reject reason the caller's library reports (srt_getrejectreason; ffmpeg
// and srt-live-transmit print its text):
//
//	unauthorized (unknown key)            1401 REJX_UNAUTHORIZED
//	forbidden-ip, forbidden               1403 REJX_FORBIDDEN
//	busy (the slot's role is published)   1409 (1000 + HTTP 409, SPEC R-EDGE-4)
//	rate-limited                          1429 (1000 + HTTP 429)
//	storage-unavailable                   1503 REJX_DOWN
//	internal                              1500 REJX_ISE
//	wrong passphrase                      SRT_REJ_BADSECRET (10)
//	passphrase missing, or unexpected     SRT_REJ_UNSECURE (11)
//	play request (m=request)              1405 REJX_BAD_MODE
//	malformed stream id                   1400 REJX_BAD_REQUEST
//
// (libsrt names 1407 REJX_CONFLICT; the product uses 1409 so that every
// protocol says "conflict" with the HTTP number, as the spec requires.)
// Reasons found after the handshake — no video in the first seconds, an
// unsupported codec, the bitrate or keyframe interval over the slot's
// limit, the lease lost, a segment store that does not keep up
// (storage-slow, REJX_DOWN in the log) — end the connection and are visible
// in the log, the metrics and the slot's live status.
//
// # Hostile datagrams
//
// gosrt owns the UDP socket and the goroutine that reads it, and it parses
// the handshake of a caller not connected yet inside Listener.Accept2, on
// the accept loop's goroutine. Its parser trusts lengths: gosrt v0.11.0's
// CIFHandshake.Unmarshal indexes past the end of a conclusion handshake
// whose extension area ends in 1–3 stray bytes (packet.go:605), and since it
// parses before it checks the SYN cookie, one spoofable datagram of 65 bytes
// killed the process (issue 13; TestConclusionStrayBytePanic).
//
// FuzzHandshake found a second one: a conclusion with a valid cookie and an
// MTU below 76 bytes is answered with a rejection without returning, and a
// later rejection marshals the packet already sent and returned to the pool
// (nil payload, packet.go:456). It needs the cookie, so its sender cannot be
// spoofed. (The same missing return lets an MTU below 44 bytes through with
// an underflowed payload size: accepting such a caller makes gosrt allocate
// a 4 GiB write buffer. Only an admitted caller gets that far, and
// ConnRequest does not show the MTU; it wants a fix in gosrt.)
//
// The choice was to validate handshakes before gosrt parses them, or to
// recover on the goroutine that calls into gosrt and keep accepting. This
// package recovers (Server.accept): validating first is impossible without
// owning the socket, which gosrt does not allow (Listen binds its own and
// reads it on its own goroutine), and a second parser written to predict the
// first one's bugs would only catch the bugs already known. The recovery is
// sound for what a panic there skips, read in gosrt's newConnRequest: the
// CIF is parsed, and every rejection sent, before anything is reserved; the
// listener lock it later takes without a defer covers only map updates and
// a random socket-id draw that do not depend on the packet; its sends hold
// their mutex with a deferred unlock. So nothing stays locked or
// half-updated: the packet is dropped (unanswered, or answered once by the
// rejection sent before the panic) and the next one is accepted. Each such
// panic is counted (liveingest_srt_handshake_panics_total); the first is
// logged with its stack, later ones at most once a minute with how many
// were not logged, so a flood does not become one log line per datagram.
// FuzzHandshake sends arbitrary datagrams to a running Server and checks
// that it still answers an induction after each.
//
// Every goroutine of a connection — the handshake answer and admission, the
// MPEG-TS reader, the watchdog's timers, the shutdown watcher, the
// statistics read by the heartbeat and the metrics — recovers a panic the
// same way (liveingest_srt_connection_panics_total, rate-limited log with
// the stack): the request is rejected with REJX_ISE (1500) if it was not
// answered yet, or the connection is closed, the session released, and the
// server goes on. gosrt's ConnRequest.Reject and Accept run there too and
// release the listener lock by defer; a panic inside them may leave the
// request's socket-id reservation in the listener's maps (a leak of one
// entry; a retry from the same caller socket id is ignored by gosrt).
//
// What cannot be recovered from here: a panic in gosrt's own goroutines —
// the socket reader (which only splits 16-byte headers, length-checked) and
// each established connection's packet handlers (keep-alive, ACK, NAK,
// ACKACK, shutdown, key material, data). gosrt hands those only datagrams
// addressed to an established connection's socket id (a random 32-bit value
// sent to that caller in the handshake) and coming from that connection's
// peer address, so only the admitted publisher itself, or someone on its
// path who can spoof its address, can reach them.
//
// Stream ids and keys never reach the log: ParseStreamID's errors quote
// nothing of the id but the syntax's own words, lines carry key_fp (the
// key's secret.Fingerprint) or, for an id that does not parse, streamid_fp;
// other text derived from what a client sent (errors, panic values, the
// SRT user name, track lists) is bounded.
package srt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	gosrt "github.com/datarhei/gosrt"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/ingest"
	"github.com/liveingest/liveingest/origin/keys"
)

// Config configures a Server.
type Config struct {
	// Addr is the UDP listen address, e.g. ":9000". Required.
	Addr string

	// Role is the role a publish takes unless its stream id names the
	// backup resource: a backup PoP's edge runs with keys.Backup.
	// Default: keys.Primary.
	Role keys.Role

	// Latency is the receiver's minimum TSBPD latency; a caller asking for
	// more gets more. Higher survives more loss on long paths. Default: 120ms.
	Latency time.Duration

	// AdmitTimeout bounds admission during the handshake. It must stay
	// below the callers' connect timeout (libsrt's default is 3 s), or they
	// give up before they hear the answer. Default: 2s.
	AdmitTimeout time.Duration

	// DiscoveryTimeout is how long after the accept the stream may take to
	// show an MPEG-TS program with video (H.264/H.265 parameter sets and a
	// keyframe); a stream without ends with reason bad-codec. Default: 5s.
	DiscoveryTimeout time.Duration

	// ReadTimeout ends a connection that delivers no data for this long
	// (an SRT peer that only sends keep-alives stays connected otherwise).
	// Default: 10s.
	ReadTimeout time.Duration

	// CloseTimeout bounds flushing one connection's last segment when it
	// ends on its own (the server's Close uses its ctx instead).
	// Default: 30s.
	CloseTimeout time.Duration

	// ReceiveBuffer is the kernel receive buffer asked for the UDP socket
	// all callers share. Without CAP_NET_ADMIN the kernel caps it at
	// net.core.rmem_max; the server logs a warning when it got less, since
	// an overflowing socket loses media under load. Default: 16 MiB.
	ReceiveBuffer int
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Role == "" {
		c.Role = keys.Primary
	}
	if c.Latency == 0 {
		c.Latency = 120 * time.Millisecond
	}
	if c.AdmitTimeout == 0 {
		c.AdmitTimeout = 2 * time.Second
	}
	if c.DiscoveryTimeout == 0 {
		c.DiscoveryTimeout = 5 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 30 * time.Second
	}
	if c.ReceiveBuffer == 0 {
		c.ReceiveBuffer = 16 << 20
	}
	return c
}

// Validate checks c after defaults; the error names the field.
func (c Config) Validate() error {
	switch {
	case c.Addr == "":
		return errors.New("srt: Config.Addr is required")
	case c.Latency < 20*time.Millisecond || c.Latency > 10*time.Second:
		return fmt.Errorf("srt: Config.Latency %v must be between 20ms and 10s", c.Latency)
	case c.AdmitTimeout <= 0:
		return fmt.Errorf("srt: Config.AdmitTimeout %v must be positive", c.AdmitTimeout)
	case c.DiscoveryTimeout <= 0:
		return fmt.Errorf("srt: Config.DiscoveryTimeout %v must be positive", c.DiscoveryTimeout)
	case c.ReadTimeout <= 0:
		return fmt.Errorf("srt: Config.ReadTimeout %v must be positive", c.ReadTimeout)
	case c.CloseTimeout <= 0:
		return fmt.Errorf("srt: Config.CloseTimeout %v must be positive", c.CloseTimeout)
	case c.ReceiveBuffer < 0:
		return fmt.Errorf("srt: Config.ReceiveBuffer %d must not be negative", c.ReceiveBuffer)
	}
	if _, err := keys.ParseRole(string(c.Role)); err != nil {
		return fmt.Errorf("srt: Config.Role: %w", err)
	}
	return nil
}

// Deps are what a Server talks to.
type Deps struct {
	// Admitter decides who may publish (*admit.Admission). Required.
	Admitter admit.Admitter
	// Segmenter writes the admitted sessions' segments. Required.
	Segmenter ingest.Segmenter
	// Logger gets one line per connection end (never a stream key, a
	// stream id or a passphrase: key_fp and streamid_fp, their
	// secret.Fingerprint, stand in for them). The server adds "proto" to
	// every line, so the caller does not. Default: slog.Default().
	Logger *slog.Logger
	// Metrics registers the liveingest_srt_* metrics. Default: nil (none).
	Metrics prometheus.Registerer
}

// Server accepts SRT publishers. Start binds; Close ends it.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	metrics *metrics

	conns *ingest.Conns[*conn, *conn] // and the accept loop

	// Which recovered panics are logged (see panicLog).
	handshakePanicLog, connPanicLog panicLog

	mu      sync.Mutex
	ln      gosrt.Listener
	started bool
}

// New returns a Server, or an error naming the bad field. It binds nothing.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Admitter == nil:
		return nil, errors.New("srt: Deps.Admitter is required")
	case deps.Segmenter == nil:
		return nil, errors.New("srt: Deps.Segmenter is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	s := &Server{
		cfg: cfg, deps: deps,
		log:               deps.Logger.With("proto", admit.ProtocolSRT),
		conns:             ingest.NewConns[*conn, *conn](),
		handshakePanicLog: panicLog{every: panicLogInterval},
		connPanicLog:      panicLog{every: panicLogInterval},
	}
	m, err := newMetrics(deps.Metrics, s)
	if err != nil {
		return nil, fmt.Errorf("srt: Deps.Metrics: %w", err)
	}
	s.metrics = m
	return s, nil
}

// Start binds the UDP address and starts accepting, so that the caller
// learns a bind error at once. It may be called once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.conns.Closing() {
		return errors.New("srt: Start called twice or after Close")
	}
	s.started = true
	ln, err := gosrt.Listen("srt", s.cfg.Addr, s.listenConfig())
	if err != nil {
		return fmt.Errorf("srt: listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	// The kernel books twice the size asked for; half of what it reports
	// is what was granted.
	if got, err := setReceiveBuffer(ln.Addr(), s.cfg.ReceiveBuffer); err != nil {
		s.log.Warn("could not set the SRT socket's receive buffer; callers may lose packets under load", "err", err)
	} else if got/2 < s.cfg.ReceiveBuffer {
		s.log.Warn("the SRT socket's receive buffer is smaller than configured; raise net.core.rmem_max (or run with CAP_NET_ADMIN) so callers do not lose packets under load",
			"configured", s.cfg.ReceiveBuffer, "granted", got/2)
	}
	// Close waits for s.mu before it closes s.ln, so the listener is
	// closed by it even if the loop does not start.
	if s.conns.Go(func() { s.acceptLoop(ln) }) {
		s.log.Info("listening", "addr", ln.Addr().String())
	}
	return nil
}

// listenConfig is the listener's SRT configuration: live mode, TSBPD with
// the configured latency (the larger of ours and the caller's wins), and
// quiet peers dropped by the library after the read timeout.
func (s *Server) listenConfig() gosrt.Config {
	c := gosrt.DefaultConfig()
	c.ReceiverLatency = s.cfg.Latency
	c.PeerLatency = s.cfg.Latency
	c.PeerIdleTimeout = s.cfg.ReadTimeout
	return c
}

// Addr is the bound UDP address (nil before Start).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops accepting, ends every live connection gracefully — each
// flushes its last segment and manifests and releases its lease, bounded by
// ctx — and waits for all goroutines. It returns ctx's error if they did not
// finish in time. Idempotent.
func (s *Server) Close(ctx context.Context) error {
	err := s.conns.Close(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.ln != nil {
			// Closes the socket and every established connection: their
			// reads end, their pipelines flush.
			s.ln.Close()
		}
	})
	if err != nil {
		return fmt.Errorf("srt: close: %w", err)
	}
	return nil
}

// publishing lists the connections that are writing segments now, for the
// per-connection metrics.
func (s *Server) publishing() []*conn {
	var out []*conn
	s.conns.Each(func(c *conn) {
		if c.live.Load() {
			out = append(out, c)
		}
	})
	return out
}
