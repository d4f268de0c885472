// Package push is the Live Push ingest (R-PUSH-1): encoders upload finished
// HLS/DASH segments and manifests to https://<host>/push/<slot id>/… with
// HTTP/1.1 PUT and a small WebDAV class 1 subset (RFC 4918: OPTIONS, MKCOL,
// PROPFIND, DELETE), authenticated with Basic Auth (RFC 7617) against the
// slot's credentials.
//
// Admission follows R-EDGE-ADMIT in this order, each step with an explicit
// rejection (R-EDGE-4, text/plain body, one log line):
//
//	plain HTTP                       403 (before the Authorization header is looked at)
//	bad path / slot id               400
//	no credentials                   401 + WWW-Authenticate
//	IP over its failed-login budget  429 + Retry-After (before bcrypt)
//	wrong credentials                401 (counted per source IP, R-EDGE-3)
//	unknown slot                     404
//	not a live-push slot             403
//	IP outside publish_ip_allow      403 (R-SLOT-6)
//	another publisher holds the lease 409 naming the holder (R-EDGE-1/2)
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

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
)

// PathPrefix is where the handler is mounted: /push/<slot id>/<rel path>.
const PathPrefix = "/push/"

// DefaultAuthFailRate is the default per-source-IP budget of failed logins:
// a burst of 10, then one per 6 s, so the 11th failure within a minute is
// refused with 429 (R-EDGE-3).
var DefaultAuthFailRate = coord.Rate{Burst: 10, Interval: 6 * time.Second}

// Config configures a Server. The zero value of every field but EdgeID
// takes its default (see WithDefaults).
type Config struct {
	// MaxObjectBytes caps the body of one PUT; a larger body is refused with
	// 413 and nothing is stored. Default: 64 MiB.
	MaxObjectBytes int64
	// LeaseTTL is how long a push session lives after its last request: the
	// slot lease of the publisher is renewed by every request and lapses
	// this long after the last one, letting another publisher in. Default: 15s.
	LeaseTTL time.Duration
	// AuthFailRate is the per-source-IP budget of failed logins; the caller
	// builds Deps.AuthLimiter with it. Default: burst 10, then one per 6 s.
	AuthFailRate coord.Rate
	// Role is the ingest role this edge writes as (R-SLOT-3). Default: primary.
	Role keys.Role
	// EdgeID names this node in leases and rejection messages. Default: none (required).
	EdgeID string
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxObjectBytes == 0 {
		c.MaxObjectBytes = 64 << 20
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 15 * time.Second
	}
	if c.AuthFailRate == (coord.Rate{}) {
		c.AuthFailRate = DefaultAuthFailRate
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
	case c.LeaseTTL < 100*time.Millisecond:
		return fmt.Errorf("push: Config.LeaseTTL: must be at least 100ms, not %v", c.LeaseTTL)
	case c.AuthFailRate.Burst < 1 || c.AuthFailRate.Interval <= 0:
		return fmt.Errorf("push: Config.AuthFailRate: burst must be >= 1 and interval positive, not %+v", c.AuthFailRate)
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

// Slots is what the push server needs of the slot repository (*slots.Repo).
type Slots interface {
	// Lookup returns the slot (possibly from a short cache) or an error
	// wrapping slots.ErrNotFound.
	Lookup(ctx context.Context, id keys.SlotID) (*slots.Slot, error)
	// CheckPassword verifies Basic Auth credentials: slots.ErrBadCredentials
	// for an unknown user or a wrong password, slots.ErrNotFound for an
	// unknown slot. It costs a bcrypt comparison (~50 ms).
	CheckPassword(ctx context.Context, id keys.SlotID, user, password string) (*slots.Slot, error)
}

// Deps are the collaborators of a Server.
type Deps struct {
	Slots  Slots       // required
	Store  store.Store // required
	Locker coord.Locker
	// AuthLimiter counts failed logins per source IP; build it with
	// Config.AuthFailRate. Required.
	AuthLimiter coord.Limiter
	// Logger gets one line per rejection and per session start/end; never a
	// password or an Authorization header. Default: slog.Default().
	Logger *slog.Logger
	// Metrics registers liveingest_push_rejections_total{reason} and
	// liveingest_push_objects_total{class}. Default: nil, no metrics.
	Metrics prometheus.Registerer
}

// Server is the Live Push ingest. It is safe for concurrent use.
type Server struct {
	cfg   Config
	slots Slots
	st    store.Store
	lock  coord.Locker
	lim   coord.Limiter
	log   *slog.Logger
	m     *metrics

	auth     *authCache
	blocked  *blockList
	sessions *sessions
	dirs     *collections

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
	case deps.Slots == nil:
		return nil, errors.New("push: Deps.Slots: required")
	case deps.Store == nil:
		return nil, errors.New("push: Deps.Store: required")
	case deps.Locker == nil:
		return nil, errors.New("push: Deps.Locker: required")
	case deps.AuthLimiter == nil:
		return nil, errors.New("push: Deps.AuthLimiter: required")
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
		cfg: cfg, slots: deps.Slots, st: deps.Store, lock: deps.Locker, lim: deps.AuthLimiter,
		log: log, m: m,
		auth:    newAuthCache(authCacheTTL, time.Now),
		blocked: newBlockList(time.Now),
		dirs:    newCollections(),
		closed:  make(chan struct{}),
	}
	s.sessions = newSessions(deps.Locker, cfg.LeaseTTL, log)
	return s, nil
}

// Handler serves PathPrefix. Mount it on both the HTTP and the HTTPS mux:
// on plain HTTP it answers 403 so that an encoder configured with http://
// learns why, instead of getting a 404 (R-PUSH-1).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Close releases every held lease (so the next publisher is admitted at once
// rather than after LeaseTTL) and makes later requests fail with 503. It is
// idempotent.
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
