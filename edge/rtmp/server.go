// Package rtmp is the RTMP and RTMPS ingest (SPEC R-RTMP-1) on gortmplib.
//
// URL forms (the stream key may arrive as the publish stream name or as the
// last element of the application; a query string is ignored):
//
//	rtmp://host/live/<stream_key>     publish as the server's Config.Role (primary by default)
//	rtmp://host/backup/<stream_key>   publish as the backup role (R-EDGE-1: one publisher per key and role)
//	rtmps://host/live/<stream_key>    the same over TLS
//
// Each connection runs: handshake (under deadlines) → the publish command →
// admission (edge/admit) → track discovery → the ingest pipeline
// (edge/ingest) → access units until the publisher leaves, the session ends
// (lease lost, bitrate, GOP) or the server closes. Every refusal and every
// reasoned end is sent to the publisher as an RTMP onStatus error whose
// description carries the reason (R-EDGE-4); ffmpeg prints it as
// "Server error: <description>". The onStatus code per reason:
//
//	unauthorized, forbidden, forbidden-ip         NetStream.Publish.BadName
//	busy, rate-limited, storage-unavailable,
//	storage-slow                                  NetStream.Publish.BadConnection
//	bad-codec, bitrate-exceeded, gop-too-long,
//	internal                                      NetStream.Publish.Failed
//	server shutting down                          NetConnection.Connect.Closed
//
// # Hardening
//
// An edge faces the internet, and gortmplib trusts its input: it formats a
// bad connect command with %+v (an AMF object nested 600,000 levels deep
// overflowed the stack, a fatal error no recover catches), allocates a
// chunk's body as soon as its header announces it (SetChunkSize 10 MiB and
// one 29-byte header made it hold 10 MiB until the read deadline), and its
// error text carries the tcUrl and stream name. So every byte from the
// client first passes a guard (guard.go) that parses the stream exactly as
// gortmplib does and cuts it before the byte that breaks a limit, and
// gortmplib never sees that byte:
//
//   - before admission (handshake, connect, publish, until Admit succeeds):
//     the messages in progress may together announce at most
//     Config.PreAdmitBudget bytes (256 KiB), and at most the handshake (3073
//     bytes) plus PreAdmitBudget bytes may be read in all; the guard reads
//     no further than gortmplib asks;
//   - after admission: one message at most Config.MaxMessageSize (8 MiB,
//     below gortmplib's 10 MiB), and those in progress together at most
//     twice that;
//   - always: an AMF command or data message (types 20, 18, 17, 15) at most
//     Config.MaxAMFMessageSize (64 KiB), its objects and arrays nested at
//     most Config.MaxAMFDepth (32) deep, checked by an iterative walker
//     before the message's last byte reaches gortmplib; chunk sizes of 128
//     to 10 MiB; RTMPE (C0 version 6) is refused, since its RC4 stream
//     cannot be checked: encrypt with RTMPS.
//
// Each connection's goroutine (and the accept loop) recovers a panic: it is
// logged once with its stack, the connection is closed, the server goes on.
// No client string is logged or sent back raw: library errors are logged
// as their leading fixed text only (safeErr), never the formatted command,
// tcUrl or stream name; where a key helps an operator, its fingerprint
// (key_fp, secret.Fingerprint) is logged instead.
package rtmp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/ingest"
	"github.com/liveingest/liveingest/origin/keys"
)

// Config configures a Server.
type Config struct {
	// Addr is the RTMP listen address, e.g. ":1935"; "" disables plain RTMP.
	// Default: "" (off).
	Addr string

	// TLSAddr is the RTMPS listen address, e.g. ":1936"; "" disables RTMPS.
	// Default: "" (off).
	TLSAddr string

	// TLSConfig serves RTMPS; required when TLSAddr is set. Default: nil.
	TLSConfig *tls.Config

	// ReadTimeout bounds the handshake, the publish command and every read
	// of media afterwards: a publisher silent for longer is dropped.
	// Default: 10s.
	ReadTimeout time.Duration

	// WriteTimeout bounds every write to the publisher (handshake replies,
	// acknowledgements, status messages). Default: 10s.
	WriteTimeout time.Duration

	// Role is the role a publish to the "live" application takes: a backup
	// PoP's edge runs with keys.Backup. A publish to the "backup"
	// application always takes the backup role. Default: keys.Primary.
	Role keys.Role

	// CloseTimeout bounds flushing one connection's last segment when it
	// ends on its own (the server's Close uses its ctx instead).
	// Default: 30s.
	CloseTimeout time.Duration

	// PreAdmitBudget bounds what a connection may make the server hold
	// before it is admitted: the lengths announced by its messages in
	// progress, summed over its chunk streams (gortmplib allocates a chunk
	// as soon as its header is read). The bytes read before admission are
	// bounded too, by the handshake (3073 bytes) plus PreAdmitBudget;
	// encoders send about 2 KB. At least 4096. Default: 256 KiB.
	PreAdmitBudget int

	// MaxMessageSize bounds the length one message may announce (a video
	// frame); the messages in progress may announce twice that together.
	// At most 10 MiB (gortmplib's own limit). Default: 8 MiB.
	MaxMessageSize int

	// MaxAMFMessageSize bounds an AMF command or data message (types 20,
	// 18, 17, 15: connect, publish, onMetaData), at all times. At least
	// 1024, at most MaxMessageSize. Default: 64 KiB.
	MaxAMFMessageSize int

	// MaxAMFDepth bounds how deep objects and arrays may nest in an AMF
	// message (a connect object is 1, its fourCcList 2). 1 to 1000.
	// Default: 32.
	MaxAMFDepth int
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Role == "" {
		c.Role = keys.Primary
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 30 * time.Second
	}
	if c.PreAdmitBudget == 0 {
		c.PreAdmitBudget = 256 << 10
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 8 << 20
	}
	if c.MaxAMFMessageSize == 0 {
		c.MaxAMFMessageSize = 64 << 10
	}
	if c.MaxAMFDepth == 0 {
		c.MaxAMFDepth = 32
	}
	return c
}

// Validate checks c after defaults; the error names the field.
func (c Config) Validate() error {
	switch {
	case c.Addr == "" && c.TLSAddr == "":
		return errors.New("rtmp: Config.Addr or Config.TLSAddr is required")
	case c.TLSAddr != "" && c.TLSConfig == nil:
		return errors.New("rtmp: Config.TLSConfig is required with Config.TLSAddr")
	case c.ReadTimeout <= 0:
		return fmt.Errorf("rtmp: Config.ReadTimeout %v must be positive", c.ReadTimeout)
	case c.WriteTimeout <= 0:
		return fmt.Errorf("rtmp: Config.WriteTimeout %v must be positive", c.WriteTimeout)
	case c.CloseTimeout <= 0:
		return fmt.Errorf("rtmp: Config.CloseTimeout %v must be positive", c.CloseTimeout)
	case c.PreAdmitBudget < 4096:
		return fmt.Errorf("rtmp: Config.PreAdmitBudget %d must be at least 4096", c.PreAdmitBudget)
	case c.MaxMessageSize <= 0 || c.MaxMessageSize > gortmplibMax:
		return fmt.Errorf("rtmp: Config.MaxMessageSize %d must be in 1..%d (gortmplib's limit)", c.MaxMessageSize, gortmplibMax)
	case c.MaxAMFMessageSize < 1024 || c.MaxAMFMessageSize > c.MaxMessageSize:
		return fmt.Errorf("rtmp: Config.MaxAMFMessageSize %d must be in 1024..Config.MaxMessageSize (%d)", c.MaxAMFMessageSize, c.MaxMessageSize)
	case c.MaxAMFDepth < 1 || c.MaxAMFDepth > 1000:
		return fmt.Errorf("rtmp: Config.MaxAMFDepth %d must be in 1..1000", c.MaxAMFDepth)
	}
	if _, err := keys.ParseRole(string(c.Role)); err != nil {
		return fmt.Errorf("rtmp: Config.Role: %w", err)
	}
	return nil
}

// Deps are what a Server talks to.
type Deps struct {
	// Admitter decides who may publish (*admit.Admission). Required.
	Admitter admit.Admitter
	// Segmenter writes the admitted sessions' segments. Required.
	Segmenter ingest.Segmenter
	// Logger gets one line per connection end (never a stream key). The
	// server adds the protocol to every line as "proto" (rtmp or rtmps), so
	// the caller does not. Default: slog.Default().
	Logger *slog.Logger
	// Metrics registers liveingest_rtmp_connections_total and
	// liveingest_rtmp_publishers. Default: nil (none).
	Metrics prometheus.Registerer
}

// Server accepts RTMP and RTMPS publishers. Start binds; Close ends it.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	metrics *metrics

	conns *ingest.Conns[*conn, *conn] // and the accept loops

	mu      sync.Mutex
	lns     []net.Listener
	started bool

	// wrapConn, when set (by this package's tests, before Start), wraps
	// every accepted connection before anything reads it: tests measure
	// how the server reads its sockets through it.
	wrapConn func(net.Conn) net.Conn
}

// New returns a Server, or an error naming the bad field. It binds nothing.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Admitter == nil:
		return nil, errors.New("rtmp: Deps.Admitter is required")
	case deps.Segmenter == nil:
		return nil, errors.New("rtmp: Deps.Segmenter is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("rtmp: Deps.Metrics: %w", err)
	}
	return &Server{
		cfg: cfg, deps: deps, metrics: m,
		log:   deps.Logger, // each line says proto: rtmp or rtmps
		conns: ingest.NewConns[*conn, *conn](),
	}, nil
}

// Start binds the configured addresses and starts accepting, so that the
// caller learns a bind error at once. It may be called once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.conns.Closing() {
		return errors.New("rtmp: Start called twice or after Close")
	}
	s.started = true
	var lns []*listener
	if s.cfg.Addr != "" {
		ln, err := net.Listen("tcp", s.cfg.Addr)
		if err != nil {
			return fmt.Errorf("rtmp: listen %s: %w", s.cfg.Addr, err)
		}
		lns = append(lns, &listener{s: s, ln: ln, protocol: admit.ProtocolRTMP})
	}
	if s.cfg.TLSAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.TLSAddr)
		if err != nil {
			for _, l := range lns {
				_ = l.ln.Close()
			}
			return fmt.Errorf("rtmp: listen %s: %w", s.cfg.TLSAddr, err)
		}
		lns = append(lns, &listener{s: s, ln: tls.NewListener(ln, s.cfg.TLSConfig), protocol: admit.ProtocolRTMPS})
	}
	for _, l := range lns {
		// Close waits for s.mu before it closes s.lns, so a listener
		// added here is closed by it even if the loop does not start.
		s.lns = append(s.lns, l.ln)
		if s.conns.Go(l.run) {
			s.log.Info("listening", "proto", l.protocol, "addr", l.ln.Addr().String())
		}
	}
	return nil
}

// Addr is the bound RTMP address (nil before Start or when off).
func (s *Server) Addr() net.Addr { return s.addr(admit.ProtocolRTMP) }

// TLSAddr is the bound RTMPS address (nil before Start or when off).
func (s *Server) TLSAddr() net.Addr { return s.addr(admit.ProtocolRTMPS) }

func (s *Server) addr(protocol string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := 0
	if protocol == admit.ProtocolRTMPS && s.cfg.Addr != "" {
		i = 1
	}
	if (protocol == admit.ProtocolRTMP && s.cfg.Addr == "") || (protocol == admit.ProtocolRTMPS && s.cfg.TLSAddr == "") || i >= len(s.lns) {
		return nil
	}
	return s.lns[i].Addr()
}

// Close stops accepting, ends every live connection gracefully — each
// flushes its last segment and manifests and releases its lease, bounded by
// ctx — and waits for all goroutines. It returns ctx's error if they did not
// finish in time. Idempotent.
func (s *Server) Close(ctx context.Context) error {
	err := s.conns.Close(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, ln := range s.lns {
			_ = ln.Close()
		}
	})
	if err != nil {
		return fmt.Errorf("rtmp: close: %w", err)
	}
	return nil
}

type metrics struct {
	conns      *prometheus.CounterVec
	publishers *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveingest_rtmp_connections_total",
			Help: "RTMP/RTMPS connections accepted, by protocol (rejections are counted by admission).",
		}, []string{"protocol"}),
		publishers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "liveingest_rtmp_publishers",
			Help: "RTMP/RTMPS publishers currently writing segments, by protocol.",
		}, []string{"protocol"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.conns, m.publishers} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
