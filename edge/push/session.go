package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
)

// A push session is a coord lease on keys.SlotLease(slot, role): acquired
// by the first authenticated write of a publisher, renewed by each later
// one, lapsing LeaseTTL after the last (HTTP has no "end of stream"). The
// owner is "push:<user>@<ip>" without the port, because encoders open
// several connections (one per segment with http_persistent 0).
//
// The lease's fencing token (R-COORD-1) is not stored yet: when the
// segmenter lands, manifests written under a session will carry it so that a
// publisher that lost its lease cannot overwrite a newer one's manifest.

type sessions struct {
	lock coord.Locker
	ttl  time.Duration
	log  *slog.Logger

	mu     sync.Mutex
	byName map[string]*session
	closed bool           // set by closeAll: no new grants
	wg     sync.WaitGroup // watchers of Lost
}

// session is the lease this process holds on one name, if any. mu
// serialises acquire/renew on the name, so that an encoder's concurrent
// first requests do not race each other into a 409.
type session struct {
	mu      sync.Mutex
	lease   coord.Lease // nil: none held
	owner   coord.Owner
	started time.Time
}

func newSessions(l coord.Locker, ttl time.Duration, log *slog.Logger) *sessions {
	return &sessions{lock: l, ttl: ttl, log: log, byName: map[string]*session{}}
}

func (ss *sessions) get(name string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byName[name]
	if s == nil {
		s = &session{}
		ss.byName[name] = s
	}
	return s
}

// admit makes sure owner holds the lease on (id, role): renews it when this
// process already holds it for owner, acquires it otherwise.
func (ss *sessions) admit(ctx context.Context, id keys.SlotID, role keys.Role, owner coord.Owner) *rejection {
	name := keys.SlotLease(id, role)
	s := ss.get(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease != nil && s.owner.ID == owner.ID && !closed(s.lease.Lost()) {
		err := s.lease.Renew(ctx)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, coord.ErrUnavailable) && !closed(s.lease.Lost()):
			// The grant stays valid until its deadline (coord.Lease
			// contract); let the publisher go on meanwhile.
			ss.log.Warn("push lease renewal failed; lease still valid", "slot", string(id), "err", err)
			return nil
		}
		// Lost: fall through and try to get it again.
	}
	lease, err := ss.lock.Acquire(ctx, name, ss.ttl, owner)
	var held *coord.HeldError
	switch {
	case errors.As(err, &held):
		h := held.Holder
		return reject(http.StatusConflict, ErrSlotBusy,
			"slot %s (%s) is being published by %s over %s from %s via edge %s since %s",
			id, role, h.ID, orDash(h.Protocol), orDash(h.Remote), orDash(h.Edge), held.Since.UTC().Format(time.RFC3339))
	case err != nil:
		rej := reject(http.StatusServiceUnavailable, ErrUnavailable, "cannot take the slot lease now; retry")
		rej.retryAfter = time.Second
		if !errors.Is(err, coord.ErrUnavailable) {
			rej.retryAfter = 0
			rej.status = http.StatusInternalServerError
		}
		ss.log.Warn("push lease acquire failed", "slot", string(id), "err", err)
		return rej
	}
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		_ = lease.Release(context.WithoutCancel(ctx))
		rej := reject(http.StatusServiceUnavailable, ErrUnavailable, "edge shutting down; retry")
		rej.retryAfter = time.Second
		return rej
	}
	ss.wg.Add(1)
	ss.mu.Unlock()
	s.lease, s.owner, s.started = lease, owner, time.Now()
	ss.log.Info("push session started", "slot", string(id), "owner", owner.ID, "remote", owner.Remote, "token", lease.Token())
	go ss.watch(name, s, lease)
	return nil
}

// watch drops the session once its lease is lost (lapsed, taken over or
// released), so the next request acquires afresh.
func (ss *sessions) watch(name string, s *session, l coord.Lease) {
	defer ss.wg.Done()
	<-l.Lost()
	s.mu.Lock()
	if s.lease == l {
		ss.log.Info("push session ended", "lease", name, "owner", s.owner.ID, "duration", time.Since(s.started).Round(time.Millisecond))
		s.lease = nil
	}
	s.mu.Unlock()
}

// closeAll releases every held lease and waits for the watchers.
func (ss *sessions) closeAll(ctx context.Context) error {
	ss.mu.Lock()
	ss.closed = true
	all := make([]*session, 0, len(ss.byName))
	for _, s := range ss.byName {
		all = append(all, s)
	}
	ss.mu.Unlock()
	// Each admit registers its lease under s.mu after checking closed, so
	// every grant made before closed was set is seen here.
	var leases []coord.Lease
	for _, s := range all {
		s.mu.Lock()
		if s.lease != nil {
			leases = append(leases, s.lease)
		}
		s.mu.Unlock()
	}
	var errs []error
	for _, l := range leases {
		if err := l.Release(ctx); err != nil {
			errs = append(errs, fmt.Errorf("push: release lease: %w", err))
		}
	}
	done := make(chan struct{})
	go func() { ss.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
