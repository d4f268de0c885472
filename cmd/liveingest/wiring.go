package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/push"
	"github.com/liveingest/liveingest/edge/rtmp"
	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/edge/srt"
	"github.com/liveingest/liveingest/edge/whip"
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
// deployed roles (one tier each), so that both run the same wiring.

// newRepo opens the slot repository on st.
func newRepo(st store.Store, d slots.Deployment, logger *slog.Logger) (*slots.Repo, error) {
	repo, err := slots.New(st, slots.Options{Deployment: d, Logger: logger.With("component", "slots")})
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
		Slots: repo, Registry: reg, AuthLimiter: authFails, Logger: logger.With("component", "api"), Metrics: metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	p, err := playback.New(playback.Config{}, playback.Deps{Slots: repo, Store: st, Logger: logger.With("component", "playback")})
	if err != nil {
		return nil, fmt.Errorf("playback: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(api.Prefix+"/", a.Handler())
	mux.Handle(playback.PathPrefix, p.Handler())
	return mux, nil
}

// newPush is the edge's Live Push ingest. authFails is the per-IP limiter of
// failed logins, built by the caller on its coordination backend with
// push.DefaultAuthFailRate.
func newPush(repo *slots.Repo, st store.Store, locker coord.Locker, authFails coord.Limiter, node string, role keys.Role, logger *slog.Logger, metrics prometheus.Registerer) (*push.Server, error) {
	s, err := push.New(push.Config{EdgeID: node, Role: role}, push.Deps{
		Slots: repo, Store: st, Locker: locker, AuthLimiter: authFails, Logger: logger.With("proto", "push"), Metrics: metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	return s, nil
}

// newSweeper is the expiry function (R-FN-2) run on an interval.
func newSweeper(repo *slots.Repo, st store.Store, interval time.Duration, reg prometheus.Registerer, logger *slog.Logger) (*expire.Sweeper, error) {
	s, err := expire.New(expire.Config{Interval: interval}, expire.Deps{
		Slots: repo, Store: st, Logger: logger.With("function", "expire"), Registerer: reg,
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

// ingestAddrs are the stream-key listeners of an edge; "" turns one off.
type ingestAddrs struct {
	rtmp, rtmps string      // TCP
	tls         *tls.Config // serves RTMPS; required with rtmps
	srt         string      // UDP
	webrtc      string      // UDP: ICE of every WHIP session (WHIP's HTTP side is on the role's mux)
	publicIPs   []string    // the addresses WHIP answers advertise instead of the local ones
	iceServers  []string    // STUN/TURN URLs offered to WHIP publishers
}

// ingestServers are an edge's stream-key protocol servers. They share one
// admission (R-EDGE-ADMIT: one lease, rate limit and live registry per slot
// whatever the protocol) and one segmenter (R-SEG-1).
type ingestServers struct {
	rtmp *rtmp.Server
	srt  *srt.Server
	whip *whip.Server
}

// startIngest builds the admission and the segmenter and starts the
// configured protocol servers.
func startIngest(d edgeDeps, a ingestAddrs) (*ingestServers, error) {
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
		Logger: d.logger.With("component", "admit"), Metrics: d.metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("admit: %w", err)
	}
	seg, err := segment.New(segment.Config{}, segment.Deps{Store: d.store, Logger: d.logger, Metrics: d.metrics})
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	s := &ingestServers{}
	if a.rtmp != "" || a.rtmps != "" {
		rs, err := rtmp.New(rtmp.Config{Addr: a.rtmp, TLSAddr: a.rtmps, TLSConfig: a.tls, Role: d.role},
			rtmp.Deps{Admitter: adm, Segmenter: seg, Logger: d.logger.With("proto", "rtmp"), Metrics: d.metrics})
		if err != nil {
			return nil, fmt.Errorf("rtmp: %w", err)
		}
		if err := rs.Start(); err != nil {
			return nil, fmt.Errorf("--rtmp/--rtmps: %w", err)
		}
		s.rtmp = rs
	}
	if a.srt != "" {
		ss, err := srt.New(srt.Config{Addr: a.srt, Role: d.role},
			srt.Deps{Admitter: adm, Segmenter: seg, Logger: d.logger.With("proto", "srt"), Metrics: d.metrics})
		if err == nil {
			err = ss.Start()
		}
		if err != nil {
			_ = s.close(context.Background())
			return nil, fmt.Errorf("--srt: %w", err)
		}
		s.srt = ss
	}
	if a.webrtc != "" {
		var servers []whip.ICEServer
		for _, u := range a.iceServers {
			servers = append(servers, whip.ICEServer{URL: u})
		}
		ws, err := whip.New(whip.Config{UDPAddr: a.webrtc, PublicIPs: a.publicIPs, ICEServers: servers, Role: d.role},
			whip.Deps{Admitter: adm, Segmenter: seg, Logger: d.logger.With("proto", "whip"), Metrics: d.metrics})
		if err == nil {
			err = ws.Start()
		}
		if err != nil {
			_ = s.close(context.Background())
			return nil, fmt.Errorf("--webrtc-udp: %w", err)
		}
		s.whip = ws
	}
	return s, nil
}

// mount adds the HTTP side of the ingest protocols (WHIP) to mux.
func (s *ingestServers) mount(mux *http.ServeMux) {
	if s.whip != nil {
		mux.Handle(whip.PathPrefix, s.whip.Handler())
	}
}

// close ends every server gracefully (each flushes its sessions' last
// segments), all at once so that one slow flush does not eat the others'
// shutdown time.
func (s *ingestServers) close(ctx context.Context) error {
	var wg sync.WaitGroup
	var rerr, serr, werr error
	if s.rtmp != nil {
		wg.Go(func() { rerr = s.rtmp.Close(ctx) })
	}
	if s.srt != nil {
		wg.Go(func() { serr = s.srt.Close(ctx) })
	}
	if s.whip != nil {
		wg.Go(func() { werr = s.whip.Close(ctx) })
	}
	wg.Wait()
	return errors.Join(rerr, serr, werr)
}

// bound lists the addresses really bound, for the start-up log line.
func (s *ingestServers) bound() []any {
	var out []any
	if s.rtmp != nil {
		if a := s.rtmp.Addr(); a != nil {
			out = append(out, "rtmp", a.String())
		}
		if a := s.rtmp.TLSAddr(); a != nil {
			out = append(out, "rtmps", a.String())
		}
	}
	if s.srt != nil {
		out = append(out, "srt", s.srt.Addr().String())
	}
	if s.whip != nil {
		out = append(out, "webrtc_udp", s.whip.UDPAddr().String())
	}
	return out
}
