package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/push"
	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/functions/expire"
	"github.com/liveingest/liveingest/origin/api"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/playback"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
)

// The builders below are shared by dev (all tiers in one process) and the
// deployed roles (one tier each), so that both run the same wiring. Each
// package names itself in its log lines ("component", or "proto" for a
// protocol), so the logger passed here is the role's, with nothing added:
// one key per fact, and no key twice on a line.

// newRepo opens the slot repository on st.
func newRepo(st store.Store, d slots.Deployment, logger *slog.Logger) (*slots.Repo, error) {
	repo, err := slots.New(st, slots.Options{Deployment: d, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("slots: %w", err)
	}
	return repo, nil
}

// originMux is the origin's service: the slots API under /api/v1/ and
// playback under /live/. authFails is the per-source limiter of wrong admin
// tokens, built by the caller on its coordination backend (Redis in the
// deployed roles, so every origin shares the budget) with
// api.DefaultAuthFailRate.
func originMux(repo *slots.Repo, st store.Store, reg coord.Registry, authFails coord.Limiter, token secret.String, logger *slog.Logger, metrics prometheus.Registerer) (*http.ServeMux, error) {
	a, err := api.New(api.Config{AdminToken: token}, api.Deps{
		Slots: repo, Registry: reg, AuthLimiter: authFails, Logger: logger, Metrics: metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	p, err := playback.New(playback.Config{}, playback.Deps{Slots: repo, Store: st, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("playback: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(api.Prefix+"/", a.Handler())
	mux.Handle(playback.PathPrefix, p.Handler())
	return mux, nil
}

// newPush is the edge's Live Push ingest. It admits through adm, the
// edge's one admission (ingestServers.admission), so that a Live Push
// publisher shares the lease, limits and live status of every protocol.
func newPush(adm push.Admitter, st store.Store, node string, role keys.Role, logger *slog.Logger, metrics prometheus.Registerer) (*push.Server, error) {
	s, err := push.New(push.Config{EdgeID: node, Role: role}, push.Deps{
		Admitter: adm, Store: st, Logger: logger, Metrics: metrics, // push.New adds proto=push
	})
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	return s, nil
}

// newSweeper is the expiry function (R-FN-2) run on an interval; rescan
// is how often it lists every slot's media to find what its index was not
// told of (expire.Config.Rescan).
func newSweeper(repo *slots.Repo, st store.Store, interval, rescan time.Duration, reg prometheus.Registerer, logger *slog.Logger) (*expire.Sweeper, error) {
	s, err := expire.New(expire.Config{Interval: interval, Rescan: rescan}, expire.Deps{
		Slots: repo, Store: st, Logger: logger, Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("expire: %w", err)
	}
	return s, nil
}

// edgeDeps are what the stream-key protocols of an edge are built from.
type edgeDeps struct {
	repo       *slots.Repo
	store      store.Store
	locker     coord.Locker
	registry   coord.Registry
	newLimiter func(coord.Rate) (coord.Limiter, error)
	node       string
	role       keys.Role
	logger     *slog.Logger
	metrics    prometheus.Registerer
}

// startIngest builds the admission and the segmenter every protocol
// shares and starts the protocols c configures (protocols.go).
func startIngest(d edgeDeps, c ingestConfig) (*ingestServers, error) {
	cfg := admit.Config{EdgeID: d.node}.WithDefaults()
	keyLim, err := d.newLimiter(cfg.KeyRate)
	if err != nil {
		return nil, err
	}
	authLim, err := d.newLimiter(cfg.AuthFailRate)
	if err != nil {
		return nil, err
	}
	adm, err := admit.New(cfg, admit.Deps{
		Slots: d.repo, Locker: d.locker, KeyLimiter: keyLim, AuthLimiter: authLim, Registry: d.registry,
		Logger: d.logger, Metrics: d.metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("admit: %w", err)
	}
	seg, err := segment.New(segment.Config{}, segment.Deps{Store: d.store, Logger: d.logger, Metrics: d.metrics})
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	s, err := startProtocols(protocolDeps{
		admitter: adm, segmenter: seg, role: d.role, logger: d.logger, metrics: d.metrics,
	}, c)
	if err != nil {
		return nil, err
	}
	s.admission = adm
	return s, nil
}
