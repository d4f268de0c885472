// Package playback is the viewer side of the origin (R-PLAY-1, R-PLAY-2):
// GET and HEAD of /live/<slot id>/<path>, answered from the store with the
// headers a CDN and an HLS/DASH player need — content types by extension,
// CORS, single byte ranges, Cache-Control by object class, ETag and
// Last-Modified with conditional requests — after the slot's viewer IP
// lists allowed the client. Only media is served — segments, init files
// and manifests, by name and by stored class; the stream state and any
// other internal object answer 404 like a missing one (public.go).
//
// Every request costs one store request on the common paths (Get for a
// whole-object GET, Stat for HEAD and conditional hits) and two for a byte
// range (Stat to resolve the range, then GetRange), so the handler never
// buffers a body: it streams what the store returns.
package playback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
)

// PathPrefix is the URL path the handler serves (the slot's playback_urls).
const PathPrefix = "/live/"

// Config is the playback server's configuration.
type Config struct {
	// Role is whose objects are served (keys.Primary or keys.Backup).
	// Failover switching comes later with the failover function.
	// Default: keys.Primary.
	Role keys.Role

	// ManifestMaxAge is the max-age of manifests. Players re-read a live
	// manifest about once per segment, so a CDN must not keep it longer
	// than a fraction of a segment. Default: half the slot's segment
	// duration, computed per slot, at least 1 s.
	ManifestMaxAge time.Duration

	// SegmentMaxAge is the max-age of segments and init files, sent with
	// "immutable": a segment name is never reused with other bytes.
	// Default: 1 year.
	SegmentMaxAge time.Duration

	// AllowOrigin is the Access-Control-Allow-Origin value. Default: "*".
	AllowOrigin string
}

// DefaultSegmentMaxAge is SegmentMaxAge's default.
const DefaultSegmentMaxAge = 365 * 24 * time.Hour

// Validate checks the configuration, naming the field at fault.
func (c Config) Validate() error {
	if c.Role != "" {
		if _, err := keys.ParseRole(string(c.Role)); err != nil {
			return fmt.Errorf("playback: Role: %w", err)
		}
	}
	switch {
	case c.ManifestMaxAge < 0:
		return fmt.Errorf("playback: ManifestMaxAge must not be negative, got %v", c.ManifestMaxAge)
	case c.SegmentMaxAge < 0:
		return fmt.Errorf("playback: SegmentMaxAge must not be negative, got %v", c.SegmentMaxAge)
	}
	for i := 0; i < len(c.AllowOrigin); i++ {
		// A header value with CR, LF or other controls would split the
		// response (net/http refuses it at write time; fail at start).
		if b := c.AllowOrigin[i]; b < 0x20 || b == 0x7f {
			return fmt.Errorf("playback: AllowOrigin holds a control character")
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Role == "" {
		c.Role = keys.Primary
	}
	if c.SegmentMaxAge == 0 {
		c.SegmentMaxAge = DefaultSegmentMaxAge
	}
	if c.AllowOrigin == "" {
		c.AllowOrigin = "*"
	}
	return c
}

// SlotSource finds a slot by id; slots.Repo's cached Lookup is meant. A
// missing slot fails with an error wrapping slots.ErrNotFound.
type SlotSource interface {
	Lookup(ctx context.Context, id keys.SlotID) (*slots.Slot, error)
}

// Deps are the server's collaborators.
type Deps struct {
	Slots  SlotSource  // required
	Store  store.Store // required
	Logger *slog.Logger
}

// Server serves media to viewers. It is safe for concurrent use.
type Server struct {
	cfg   Config
	slots SlotSource
	store store.Store
	log   *slog.Logger
}

// New checks cfg and deps and returns a ready Server.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Slots == nil {
		return nil, errors.New("playback: Deps.Slots is required")
	}
	if deps.Store == nil {
		return nil, errors.New("playback: Deps.Store is required")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg:   cfg.withDefaults(),
		slots: deps.Slots,
		store: deps.Store,
		log:   log.With("component", "playback"),
	}, nil
}

// Handler returns the handler of PathPrefix. It reads r.URL.Path itself and
// rejects dot segments, so mount it where nothing rewrites the path
// first; http.ServeMux would answer a path with ".." by a redirect to the
// cleaned path (which may name another slot) before the handler sees it.
// Requests outside PathPrefix get 404.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }
