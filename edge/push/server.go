// Package push is the Live Push ingest (R-PUSH-1): encoders upload finished
// HLS/DASH segments and manifests to https://<host>/push/<slot id>/… with
// HTTP/1.1 PUT and a small WebDAV class 1 subset (RFC 4918: OPTIONS, MKCOL,
// PROPFIND, DELETE), authenticated with Basic Auth (RFC 7617) against the
// slot's credentials.
//
// Admission is edge/admit's, the one every protocol takes (R-EDGE-ADMIT):
// by slot id (the URL names the slot), with the Basic Auth password as the
// protocol's credential (admit.Request.Verify), so a Live Push publisher
// has a lease with a fencing token, a live-status entry with protocol
// "push" and its bitrate, and shares the failed-auth budget and block rules
// of every protocol. Each step has an explicit rejection (R-EDGE-4,
// text/plain body "<reason>: <message>", as WHIP and RTMP send it):
//
//	plain HTTP                       403 (before the Authorization header is looked at)
//	bad path / slot id               400
//	no credentials                   401 + WWW-Authenticate (not counted: clients ask for the challenge)
//	address over its failed-auth budget 429 + Retry-After (before bcrypt)
//	unknown slot                     404 (counted as a failed authentication)
//	not a live-push slot             403
//	address outside publish_ip_allow 403 (R-SLOT-6)
//	wrong credentials                401 (counted per IPv4 address or IPv6 /64, R-EDGE-3)
//	too many publish attempts        429 + Retry-After (per slot and role)
//	another publisher holds the slot 409 "busy: slot … is already being published over <protocol> since …" (R-EDGE-1/2)
//	coordination unavailable         503 + Retry-After (R-COORD-4)
//
// Bodies stream into the Store; the 201/204 is sent only after Store.Put
// returned nil, so an acknowledged segment is durable and an interrupted one
// is never visible (R-STORE-2).
package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
)

// PathPrefix is where the handler is mounted: /push/<slot id>/<rel path>.
const PathPrefix = "/push/"

// Config configures a Server. The zero value of every field but EdgeID
// takes its default (see WithDefaults).
type Config struct {
	// MaxObjectBytes caps the body of one PUT; a larger body is refused with
	// 413 and nothing is stored. Default: 64 MiB.
	MaxObjectBytes int64
	// IdleTimeout is how long a push session lives after the last request
	// of its publisher finished: HTTP has no end of stream, so a publisher
	// that stopped uploading for this long has ended, its session is closed
	// and the slot is free for the next one at once. It must exceed the
	// slots' segment duration with room for a slow upload. Default: 15s.
	IdleTimeout time.Duration
	// AdmitTimeout bounds the admission of one request (slot lookup,
	// coordination). Default: 10s.
	AdmitTimeout time.Duration
	// Role is the ingest role this edge writes as (R-SLOT-3). Default: primary.
	Role keys.Role
	// EdgeID names this node in its log lines. Default: none (required).
	EdgeID string
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxObjectBytes == 0 {
		c.MaxObjectBytes = 64 << 20
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 15 * time.Second
	}
	if c.AdmitTimeout == 0 {
		c.AdmitTimeout = 10 * time.Second
	}
	if c.Role == "" {
		c.Role = keys.Primary
	}
	return c
}

// Validate checks c (after WithDefaults); the error names the field.
func (c Config) Validate() error {
	switch {
	case c.MaxObjectBytes <= 0:
		return fmt.Errorf("push: Config.MaxObjectBytes: must be positive, not %d", c.MaxObjectBytes)
	case c.IdleTimeout < 100*time.Millisecond:
		return fmt.Errorf("push: Config.IdleTimeout: must be at least 100ms, not %v", c.IdleTimeout)
	case c.AdmitTimeout <= 0:
		return fmt.Errorf("push: Config.AdmitTimeout: must be positive, not %v", c.AdmitTimeout)
	case c.EdgeID == "":
		return errors.New("push: Config.EdgeID: required")
	}
	if _, err := keys.ParseRole(string(c.Role)); err != nil {
		return fmt.Errorf("push: Config.Role: %w", err)
	}
	if err := keys.ValidateCoordName(c.EdgeID); err != nil {
		return fmt.Errorf("push: Config.EdgeID: %w", err)
	}
	return nil
}

// Admitter is what the push server needs of edge admission
// (*admit.Admission).
type Admitter interface {
	// Admit admits the first write of a publisher: a Session holding the
	// slot's lease for the role and its live-status entry, which the caller
	// must Close. Errors are *admit.Rejection, already logged and counted.
	Admit(ctx context.Context, r admit.Request) (*admit.Session, error)
	// Check authenticates a later request of an admitted publisher, or a
	// request that only reads, under the same rules and failed-auth budget
	// without touching the lease. Errors are *admit.Rejection, already
	// logged and counted.
	Check(ctx context.Context, r admit.Request) (*slots.Slot, error)
}

var _ Admitter = (*admit.Admission)(nil)

// Deps are the collaborators of a Server.
type Deps struct {
	// Admitter admits publishers; share the edge's one admission with the
	// other protocols, so that its block list and limits are one. Required.
	Admitter Admitter
	Store    store.Store // required
	// Logger gets one line per rejection push decides itself (admission
	// logs its own); never a password or an Authorization header.
	// Default: slog.Default().
	Logger *slog.Logger
	// Metrics registers liveingest_push_rejections_total{reason} and
	// liveingest_push_objects_total{class}. Default: nil, no metrics.
	Metrics prometheus.Registerer
}

// Server is the Live Push ingest. It is safe for concurrent use.
type Server struct {
	cfg Config
	adm Admitter
	st  store.Store
	log *slog.Logger
	m   *metrics

	auth          *authCache
	checkPassword func(sl *slots.Slot, user, pw string) error // bcrypt; a field so that tests can count the calls
	sessions      *sessions
	dirs          *collections

	closeOnce sync.Once
	closed    chan struct{}
}

// New returns a Server; cfg takes its defaults first.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Admitter == nil:
		return nil, errors.New("push: Deps.Admitter: required")
	case deps.Store == nil:
		return nil, errors.New("push: Deps.Store: required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	log := deps.Logger.With("proto", "push", "edge", cfg.EdgeID, "role", string(cfg.Role))
	s := &Server{
		cfg: cfg, adm: deps.Admitter, st: deps.Store, log: log, m: m,
		auth:          newAuthCache(authCacheTTL, time.Now),
		checkPassword: func(sl *slots.Slot, user, pw string) error { return sl.CheckPassword(user, pw) },
		dirs:          newCollections(),
		closed:        make(chan struct{}),
	}
	s.sessions = newSessions(deps.Admitter, cfg.IdleTimeout)
	return s, nil
}

// Handler serves PathPrefix. Mount it on both the HTTP and the HTTPS mux:
// on plain HTTP it answers 403 so that an encoder configured with http://
// learns why, instead of getting a 404 (R-PUSH-1).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Close ends every push session — each releases its lease and live-status
// entry, so the next publisher is admitted at once — and makes later
// requests fail with 503. It is idempotent; ctx bounds the wait.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.sessions.closeAll(ctx)
}

func (s *Server) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}
