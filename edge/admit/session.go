package admit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
)

// ErrClosed is Session.Err after Close ended a session that had no reason to
// end (the publisher disconnected).
var ErrClosed = errors.New("admit: session closed")

// Session is one admitted publish: it holds the slot's lease for the role and
// the registry entry until Close.
//
// While live it renews the lease every LeaseTTL/3 and heartbeats the registry
// every HeartbeatTTL/3 with the measured bitrate. It ends — Done closes and
// Err says why — when the lease is lost (ReasonBusy "taken over", or
// ReasonStorageUnavailable when coordination was unreachable until the lease
// lapsed), when the bitrate stays over the limit for a window
// (ReasonBitrateExceeded), when the protocol calls End, or on Close. Once
// Done is closed the lease is no longer renewed: the protocol must stop
// writing and Close promptly (its last writes are still fenced by Token).
//
// All methods are safe for concurrent use.
type Session struct {
	a        *Admission
	slot     *slots.Slot
	role     keys.Role
	id       string
	protocol string
	remote   netip.AddrPort
	lease    coord.Lease
	started  time.Time
	meter    meter

	done  chan struct{}
	ended atomic.Bool // Done is closed; read on the ObserveAU path instead of a select
	link  atomic.Pointer[func() coord.LinkStats]

	mu           sync.Mutex
	err          error
	stopped      bool        // no more ticks may start (set with Done)
	renewStop    func() bool // pending renewal timer
	beatStop     func() bool // pending heartbeat timer
	renewFailing bool        // the last renewal could not reach coordination
	ticks        sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// start builds the session for a granted lease, registers it and starts its
// renewal and heartbeat timers and its lease watcher.
func (a *Admission) start(ctx context.Context, r Request, slot *slots.Slot, sid string, lease coord.Lease) *Session {
	now := a.clock.Now()
	s := &Session{
		a: a, slot: slot, role: r.Role, id: sid, protocol: r.Protocol, remote: r.Remote,
		lease: lease, started: now, done: make(chan struct{}),
	}
	var limit float64
	if slot.IngestBitrateKbps > 0 {
		limit = float64(slot.IngestBitrateKbps) * 1000 * a.cfg.BitrateTolerance
	}
	s.meter.init(a.clock, now, a.cfg.BitrateWindow, limit)

	// Listed at once, so GET /live shows the publisher from its first byte.
	// The registry is informational: a failed heartbeat is retried by the
	// next tick rather than refusing a publish that holds its lease.
	s.heartbeat(ctx)

	s.mu.Lock()
	s.renewStop = a.clock.AfterFunc(a.cfg.LeaseTTL/3, s.renewTick)
	s.beatStop = a.clock.AfterFunc(a.cfg.HeartbeatTTL/3, s.beatTick)
	s.ticks.Add(1)
	s.mu.Unlock()
	go s.watch()

	a.log.Info("ingest session started", "slot", string(slot.ID), "protocol", r.Protocol, "role", string(r.Role),
		"remote", r.Remote.String(), "session", sid, "token", lease.Token())
	return s
}

// Slot is the admitted slot (a copy; never changes during the session).
func (s *Session) Slot() *slots.Slot { return s.slot }

// Role is the role the session publishes as.
func (s *Session) Role() keys.Role { return s.role }

// ID is the session id, as listed in the registry and the lease owner.
func (s *Session) ID() string { return s.id }

// Protocol is the protocol the session was admitted for.
func (s *Session) Protocol() string { return s.protocol }

// Token is the lease's fencing token: every write made for this session
// (manifests above all) carries it, so that a session that lost its lease
// cannot overwrite a newer one's (R-COORD-1).
func (s *Session) Token() uint64 { return s.lease.Token() }

// Done is closed when the session must end.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is nil while the session is live; afterwards a *Rejection for an end
// with a reason, or ErrClosed.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// BitrateKbps is the bitrate measured over the last window (what the
// registry shows).
func (s *Session) BitrateKbps() int64 { return s.meter.kbps(s.a.clock.Now()) }

// ObserveAU feeds one access unit to the bitrate meter. It is meant for every
// access unit of every track: it takes no lock and allocates nothing unless
// it ends the session. track is accepted so per-track rules can be added
// without changing every protocol; the meter counts the whole publish.
func (s *Session) ObserveAU(au media.AccessUnit, _ media.Track) {
	if s.ended.Load() {
		return
	}
	if bps, over := s.meter.add(au.Size()); over {
		s.End(ReasonBitrateExceeded, fmt.Sprintf("bitrate %d kbps over the slot limit of %d kbps (+%.0f%%) for %s",
			int64(bps/1000), s.slot.IngestBitrateKbps, (s.a.cfg.BitrateTolerance-1)*100, s.a.cfg.BitrateWindow))
	}
}

// SetLinkStats makes every heartbeat carry the transport's measurements
// (coord.Session.Link) as fn reports them. fn is called from the heartbeat
// timer, concurrently with the protocol's own work, so it must be safe for
// that; it should be cheap. The protocol calls SetLinkStats once, before or
// while publishing.
func (s *Session) SetLinkStats(fn func() coord.LinkStats) { s.link.Store(&fn) }

// End ends the session with reason (the protocol calls it for a bad codec or
// a GOP too long); msg is sent to the client if the protocol can. Only the
// first end counts: later calls, and Close, change nothing. The end is logged
// and counted once. The caller still has to Close.
func (s *Session) End(reason Reason, msg string) {
	s.finish(&Rejection{Reason: reason, Message: msg, Slot: string(s.slot.ID)})
}

// finish closes Done with err unless the session already ended, stops the
// timers, and reports a reasoned end. It reports whether it ended it.
func (s *Session) finish(err error) bool {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return false
	}
	s.stopped = true
	s.err = err
	s.ended.Store(true)
	close(s.done)
	s.renewStop()
	s.beatStop()
	s.mu.Unlock()

	var rej *Rejection
	if errors.As(err, &rej) {
		s.a.report(s.protocol, s.role, s.remote, s.id, "ingest session ended", rej)
	}
	return true
}

// Close ends the session (if it has not ended), waits for its timers and
// watcher, releases the lease and removes the registry entry. It is
// idempotent: later calls return the first call's result. ctx bounds the
// release and removal; if they fail the lease lapses within LeaseTTL and the
// entry within HeartbeatTTL.
func (s *Session) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.finish(ErrClosed)
		s.ticks.Wait()
		var errs []error
		if err := s.lease.Release(ctx); err != nil {
			errs = append(errs, fmt.Errorf("admit: release lease: %w", err))
		}
		if err := s.a.deps.Registry.Remove(ctx, string(s.slot.ID), s.id); err != nil {
			errs = append(errs, fmt.Errorf("admit: remove from registry: %w", err))
		}
		s.closeErr = errors.Join(errs...)
		attrs := []any{"slot", string(s.slot.ID), "protocol", s.protocol, "role", string(s.role),
			"remote", s.remote.String(), "session", s.id,
			"duration", s.a.clock.Now().Sub(s.started).Round(time.Millisecond), "end", endWord(s.Err())}
		if s.closeErr != nil {
			s.a.log.Warn("ingest session closed; cleanup incomplete", append(attrs, "err", s.closeErr)...)
		} else {
			s.a.log.Info("ingest session closed", attrs...)
		}
	})
	return s.closeErr
}

func endWord(err error) string {
	if rej := (*Rejection)(nil); errors.As(err, &rej) {
		return string(rej.Reason)
	}
	return "closed"
}

// enter admits one tick unless the session stopped; the tick must call
// s.ticks.Done. Taking the WaitGroup under mu, only while not stopped, keeps
// every Add before Close's Wait.
func (s *Session) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.ticks.Add(1)
	return true
}

// watch ends the session when the lease is lost behind its back (lapsed or
// taken over). A Lost that follows Close's release finds the session ended.
func (s *Session) watch() {
	defer s.ticks.Done()
	select {
	case <-s.done:
	case <-s.lease.Lost():
		s.mu.Lock()
		failing := s.renewFailing
		s.mu.Unlock()
		if failing {
			s.End(ReasonStorageUnavailable, "slot lease expired: coordination unavailable")
			return
		}
		s.End(ReasonBusy, "slot lease taken over")
	}
}

// renewTick renews the lease and schedules the next renewal. The work runs in
// the timer's callback, so a test's ManualClock.Advance returns only once the
// renewal it triggered is done.
func (s *Session) renewTick() {
	if !s.enter() {
		return
	}
	defer s.ticks.Done()
	every := s.a.cfg.LeaseTTL / 3
	ctx, cancel := context.WithTimeout(context.Background(), every)
	err := s.lease.Renew(ctx)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, coord.ErrLeaseLost):
		s.End(ReasonBusy, "slot lease taken over")
		return
	default:
		// Unreachable coordination: the grant stays valid until its
		// deadline (coord.Lease), so keep publishing and keep trying;
		// the watcher ends the session if Lost fires first.
		s.a.log.Warn("lease renewal failed; retrying", "slot", string(s.slot.ID), "session", s.id, "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.renewFailing = err != nil
	if !s.stopped {
		s.renewStop = s.a.clock.AfterFunc(every, s.renewTick)
	}
}

// beatTick heartbeats the registry and schedules the next heartbeat.
func (s *Session) beatTick() {
	if !s.enter() {
		return
	}
	defer s.ticks.Done()
	every := s.a.cfg.HeartbeatTTL / 3
	ctx, cancel := context.WithTimeout(context.Background(), every)
	s.heartbeat(ctx)
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.beatStop = s.a.clock.AfterFunc(every, s.beatTick)
	}
}

func (s *Session) heartbeat(ctx context.Context) {
	now := s.a.clock.Now()
	err := s.a.deps.Registry.Heartbeat(ctx, coord.Session{
		ID: s.id, Slot: string(s.slot.ID), Role: string(s.role), Protocol: s.protocol,
		Edge: s.a.cfg.EdgeID, Remote: s.remote.String(), Started: s.started,
		BitrateKbps: s.meter.kbps(now), Link: s.linkStats(),
	}, s.a.cfg.HeartbeatTTL)
	if err != nil {
		s.a.log.LogAttrs(ctx, slog.LevelWarn, "registry heartbeat failed", slog.String("slot", string(s.slot.ID)),
			slog.String("session", s.id), slog.String("err", err.Error()))
	}
}

func (s *Session) linkStats() *coord.LinkStats {
	fn := s.link.Load()
	if fn == nil {
		return nil
	}
	st := (*fn)()
	return &st
}
