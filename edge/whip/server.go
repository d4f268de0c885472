// Package whip is the WebRTC ingest (SPEC R-WHIP-1): the WebRTC-HTTP
// Ingestion Protocol, RFC 9725, on pion/webrtc.
//
// A publisher POSTs an SDP offer to /whip/<slot id> with its stream key as
// a bearer token; the answer comes back in a 201 with the session's
// Location and ETag. All sessions share one UDP port (ICE over a UDP mux),
// so one load-balancer rule forwards them; the addresses in the answer's
// candidates can be replaced by public ones (Config.PublicIPs).
//
//	POST    /whip/<slot>            offer → 201 answer (non-trickle: every candidate inline)
//	PATCH   /whip/<slot>/<session>  trickle-ice-sdpfrag with new candidates → 204;
//	                                an ICE restart is refused with 422 (start a new session)
//	DELETE  /whip/<slot>/<session>  ends the session at once → 200
//	OPTIONS any of them             CORS preflight for browser publishers → 204
//
// Every refusal is an HTTP status with a text/plain reason (R-EDGE-4):
//
//	401 missing or unknown stream key, or a key of another slot
//	403 plain HTTP from a non-loopback address; the address is not in the slot's publish allow-list
//	409 the slot's role is published (any protocol, any edge)
//	413 an SDP body over Config.MaxOfferBytes
//	415 a Content-Type other than application/sdp
//	422 no H.264 (packetization-mode 1) video in the offer
//	429 too many attempts (Retry-After)
//	503 coordination or storage unreachable, or the edge shutting down (Retry-After)
//
// Media: H.264 video and Opus audio only — VP8, VP9, AV1 and H.265 are left
// out of the answer. RTP is reordered and depacketised by pion's sample
// builder (NACKs and RTX repair losses first); access units are timed by
// their RTP timestamps from each track's first packet's arrival time.
// Browsers send a keyframe only when asked, so the session asks with RTCP
// PLI: until the first keyframe, after a loss, and a moment before each
// segment is due (how long a publisher takes to answer is measured), so
// segments are cut at the slot's segment duration.
//
// A session ends, and its lease is released after the last segment is
// stored, on DELETE, when ICE or DTLS fails or the publisher closes the
// connection, when no RTP arrives for Config.MediaTimeout, when no H.264
// keyframe arrives within Config.DiscoveryTimeout, or when admission ends
// it (lease lost, bitrate, keyframe interval).
package whip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/ingest"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
)

// PathPrefix is where Handler is mounted.
const PathPrefix = "/whip/"

// ICEServer is a STUN or TURN server offered to publishers in the 201's
// Link headers (RFC 9725 §4.6), for publishers behind restrictive NATs.
type ICEServer struct {
	// URL is a stun:, turn: or turns: URI.
	URL string
	// Username and Credential are the TURN long-term credentials, if any.
	Username   string
	Credential secret.String
}

// Config configures a Server.
type Config struct {
	// UDPAddr is the one UDP address of every session's ICE traffic, e.g.
	// ":8189". A specific IP restricts the candidates to it. Required.
	UDPAddr string

	// PublicIPs replace the host candidates' addresses in answers: the
	// addresses publishers reach the UDP port on behind a load balancer or
	// 1:1 NAT. Default: none (the local addresses).
	PublicIPs []string

	// ICEServers are advertised to publishers as Link headers.
	// Default: none.
	ICEServers []ICEServer

	// Role is the role every publish to this edge takes. Default: keys.Primary.
	Role keys.Role

	// AdmitTimeout bounds admission of a POST. Default: 5s.
	AdmitTimeout time.Duration

	// MediaTimeout ends a session that receives no RTP for this long
	// (counted from the answer until the first packet): a publisher that
	// vanished without a DELETE frees the slot after it. Default: 10s.
	MediaTimeout time.Duration

	// DiscoveryTimeout ends a session whose video has not shown an H.264
	// keyframe with SPS and PPS this long after the answer, despite the
	// keyframe requests. Default: 10s.
	DiscoveryTimeout time.Duration

	// CloseTimeout bounds flushing a session's last segment when it ends on
	// its own or by DELETE (Server.Close uses its ctx instead). Default: 30s.
	CloseTimeout time.Duration

	// MaxOfferBytes caps an SDP offer or trickle fragment; a larger body is
	// refused with 413. Default: 64 KiB.
	MaxOfferBytes int64
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Role == "" {
		c.Role = keys.Primary
	}
	if c.AdmitTimeout == 0 {
		c.AdmitTimeout = 5 * time.Second
	}
	if c.MediaTimeout == 0 {
		c.MediaTimeout = 10 * time.Second
	}
	if c.DiscoveryTimeout == 0 {
		c.DiscoveryTimeout = 10 * time.Second
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 30 * time.Second
	}
	if c.MaxOfferBytes == 0 {
		c.MaxOfferBytes = 64 << 10
	}
	return c
}

// Validate checks c after defaults; the error names the field.
func (c Config) Validate() error {
	switch {
	case c.UDPAddr == "":
		return errors.New("whip: Config.UDPAddr is required")
	case c.AdmitTimeout <= 0:
		return fmt.Errorf("whip: Config.AdmitTimeout %v must be positive", c.AdmitTimeout)
	case c.MediaTimeout < 500*time.Millisecond:
		return fmt.Errorf("whip: Config.MediaTimeout %v must be at least 500ms", c.MediaTimeout)
	case c.DiscoveryTimeout <= 0:
		return fmt.Errorf("whip: Config.DiscoveryTimeout %v must be positive", c.DiscoveryTimeout)
	case c.CloseTimeout <= 0:
		return fmt.Errorf("whip: Config.CloseTimeout %v must be positive", c.CloseTimeout)
	case c.MaxOfferBytes < 1024:
		return fmt.Errorf("whip: Config.MaxOfferBytes %d must be at least 1024", c.MaxOfferBytes)
	}
	if _, _, err := net.SplitHostPort(c.UDPAddr); err != nil {
		return fmt.Errorf("whip: Config.UDPAddr: %w", err)
	}
	for _, ip := range c.PublicIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("whip: Config.PublicIPs: %q is not an IP address", ip)
		}
	}
	for _, s := range c.ICEServers {
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "stun" && u.Scheme != "turn" && u.Scheme != "turns") {
			return fmt.Errorf("whip: Config.ICEServers: %q is not a stun:, turn: or turns: URI", s.URL)
		}
	}
	if _, err := keys.ParseRole(string(c.Role)); err != nil {
		return fmt.Errorf("whip: Config.Role: %w", err)
	}
	return nil
}

// Deps are what a Server talks to.
type Deps struct {
	// Admitter decides who may publish (*admit.Admission). Required.
	Admitter admit.Admitter
	// Segmenter writes the admitted sessions' segments. Required.
	Segmenter ingest.Segmenter
	// Logger gets one line per request refused and per session end (never
	// a stream key). The server adds "proto" to every line, so the caller
	// does not. Default: slog.Default().
	Logger *slog.Logger
	// Metrics registers the liveingest_whip_* metrics. Default: nil (none).
	Metrics prometheus.Registerer
}

// Server is the WHIP endpoint. Start binds the UDP port; Handler serves the
// HTTP side; Close ends every session.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	metrics *metrics

	api *webrtc.API
	udp net.PacketConn
	mux ice.UDPMux

	sessions *ingest.Conns[string, *session] // by session id

	mu        sync.Mutex
	started   bool
	closeOnce sync.Once // of the UDP port, once the sessions ended
}

// New returns a Server, or an error naming the bad field. It binds nothing.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Admitter == nil:
		return nil, errors.New("whip: Deps.Admitter is required")
	case deps.Segmenter == nil:
		return nil, errors.New("whip: Deps.Segmenter is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	s := &Server{
		cfg: cfg, deps: deps,
		log:      deps.Logger.With("proto", admit.ProtocolWHIP),
		sessions: ingest.NewConns[string, *session](),
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("whip: Deps.Metrics: %w", err)
	}
	s.metrics = m
	return s, nil
}

// Start binds the UDP port so that the caller learns a bind error at once.
// Handler refuses publishers (503) until Start succeeded. It may be called
// once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.sessions.Closing() {
		return errors.New("whip: Start called twice or after Close")
	}
	s.started = true
	udp, err := net.ListenPacket("udp", s.cfg.UDPAddr)
	if err != nil {
		return fmt.Errorf("whip: listen %s: %w", s.cfg.UDPAddr, err)
	}
	bound := udp.LocalAddr().(*net.UDPAddr).IP
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: udp, Logger: pionLogs{s.log}.NewLogger("udpmux")})
	api, err := newAPI(s.cfg, mux, bound, s.log)
	if err != nil {
		mux.Close()
		udp.Close()
		return err
	}
	s.udp, s.mux, s.api = udp, mux, api
	s.log.Info("listening", "udp", udp.LocalAddr().String())
	return nil
}

// UDPAddr is the bound ICE address (nil before Start).
func (s *Server) UDPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp == nil {
		return nil
	}
	return s.udp.LocalAddr()
}

// Close refuses new sessions, ends every live one gracefully — each
// flushes its last segment and manifests and releases its lease, bounded by
// ctx — then closes the UDP port. It returns ctx's error if the sessions did
// not finish in time (their flushes are then cut short). Idempotent.
func (s *Server) Close(ctx context.Context) error {
	// The sessions' teardown still talks over the UDP port (DTLS close):
	// it closes after them.
	err := s.sessions.Close(ctx, nil)
	s.closeOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.mux != nil {
			s.mux.Close()
			s.udp.Close()
		}
	})
	if err != nil {
		return fmt.Errorf("whip: close: %w", err)
	}
	return nil
}

// session finds a live session by id.
func (s *Server) session(id string) *session {
	ss, _ := s.sessions.Get(id)
	return ss
}

// ready reports whether new sessions may start, and the API to build them.
func (s *Server) ready() (*webrtc.API, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api, s.api != nil && !s.sessions.Closing()
}
