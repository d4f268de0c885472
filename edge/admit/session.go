package admit

import (
	"context"
	"errors"
	"fmt"
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
// Err says why — when another publisher holds the slot's lease
// (ReasonBusy "slot lease taken over", naming the holder), when the bitrate
// stays over the limit for a window (ReasonBitrateExceeded), when the
// protocol calls End (bad codec, GOP too long, a fenced or failing segment
// writer), or on Close. Once Done is closed the lease is no longer renewed:
// the protocol must stop writing and Close promptly (its last writes are
// still fenced by Token).
//
// # Coordination outages
//
// A session survives an outage of the coordination service (Redis down,
// failing over, restarted without its data) however long it lasts:
//
//   - While renewals cannot reach coordination the session keeps publishing
//     and retries every min(LeaseTTL/3, 1s). If the outage outlasts the
//     lease's TTL the grant lapses (coord.Lease.Lost closes) and the session
//     runs without a lease (metric liveingest_ingest_sessions_without_lease);
//     it still does not end.
//   - When coordination answers again, the session renews its grant if
//     coordination still has it, and otherwise (it lapsed, or coordination
//     lost its data) acquires the same lease name again as the same owner.
//     The registry entry is written again at once. If another publisher
//     holds the lease by then (coord.HeldError), the session ends
//     ReasonBusy "slot lease taken over", naming the holder.
//   - One warning is logged when a session's outage starts and one line when
//     its lease is re-established, not one per retry.
//
// Publishing on without a valid lease cannot make two writers of one
// stream, because exclusion on the stream's objects never rested on the
// lease: the segment writer commits the stream's state object conditionally
// on the ETag it last saw and carries the fencing token it started with
// (Token). A re-established lease restores admission exclusion only (new
// publishes are refused busy again); Token stays the token the writer
// started with, not the new grant's. If a competitor was granted the lease
// while this session ran without one, that grant's token is larger than
// Token (coord.Locker), the competitor's writer commits the state with it,
// and this session's next state commit fails its condition, finds the
// larger token and stops (segment.ErrFenced): the pipeline ends the session
// with the fenced reason (busy), and no playlist ever lists anything more of
// it (a segment it stored just before lies under its own token's directory,
// unreferenced). If the competitor still holds the lease when coordination
// answers, the re-acquire attempt ends the session busy as well, whichever
// comes first. Once a newer token is in the state, no older writer's commit
// is accepted again.
//
// What an outage costs: new publishes are refused with the retriable
// ReasonStorageUnavailable while it lasts (the per-key limiter and the lease
// cannot be consulted); the limiter state, the registry's records of recent
// refusals and ends, and the live entries themselves are lost if
// coordination comes back empty — a live session reappears in the live
// status when its lease is re-established (or at its next heartbeat).
//
// All methods are safe for concurrent use.
type Session struct {
	a         *Admission
	slot      *slots.Slot
	role      keys.Role
	id        string
	protocol  string
	remote    netip.AddrPort
	leaseName string
	owner     coord.Owner
	token     uint64 // the token of the grant the session was admitted with
	started   time.Time
	meter     meter

	done  chan struct{}
	ended atomic.Bool // Done is closed; read on the ObserveAU path instead of a select
	link  atomic.Pointer[func() coord.LinkStats]

	mu          sync.Mutex
	err         error
	lease       coord.Lease // the current grant: replaced when re-acquired
	stopped     bool        // no more ticks may start (set with Done)
	renewStop   func() bool // pending renewal timer
	beatStop    func() bool // pending heartbeat timer
	outageSince time.Time   // when coordination stopped answering; zero while it answers
	unleased    bool        // the grant lapsed or is gone and none replaced it yet (counted in the gauge)
	ticks       sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// start builds the session for a granted lease, registers it and starts its
// renewal and heartbeat timers.
func (a *Admission) start(ctx context.Context, r Request, slot *slots.Slot, sid string, owner coord.Owner, lease coord.Lease) *Session {
	now := a.clock.Now()
	s := &Session{
		a: a, slot: slot, role: r.Role, id: sid, protocol: r.Protocol, remote: r.Remote,
		leaseName: keys.SlotLease(slot.ID, r.Role), owner: owner, token: lease.Token(),
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
	_ = s.heartbeat(ctx)

	s.mu.Lock()
	s.renewStop = a.clock.AfterFunc(a.cfg.LeaseTTL/3, s.renewTick)
	s.beatStop = a.clock.AfterFunc(a.cfg.HeartbeatTTL/3, s.beatTick)
	s.mu.Unlock()

	a.log.Info("ingest session started", "slot", string(slot.ID), "proto", r.Protocol, "role", string(r.Role),
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

// Token is the fencing token of the grant the session was admitted with:
// every write made for this session (manifests above all) carries it, so
// that a session that lost its lease cannot overwrite a newer one's
// (R-COORD-1). It never changes, also when the session re-establishes its
// lease after a coordination outage (see the Session doc).
func (s *Session) Token() uint64 { return s.token }

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
func (s *Session) ObserveAU(au media.AccessUnit, _ media.Track) { s.observe(au.Size()) }

// ObserveBytes feeds n bytes of media to the bitrate meter, for a protocol
// that sees bytes rather than access units (Live Push: the bodies of
// segment and init uploads, as they arrive). Same cost and rules as
// ObserveAU; safe to call from several requests at once.
func (s *Session) ObserveBytes(n int) { s.observe(n) }

func (s *Session) observe(n int) {
	if s.ended.Load() {
		return
	}
	if bps, over := s.meter.add(n); over {
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
	s.setUnleasedLocked(false)
	s.mu.Unlock()

	var rej *Rejection
	if errors.As(err, &rej) {
		s.a.report(s.protocol, s.role, s.remote, s.id, "ingest session ended", rej)
	}
	return true
}

// Close ends the session (if it has not ended), waits for its timers,
// releases the lease (the grant it holds now, which may be a re-acquired
// one) and removes the registry entry. It is idempotent: later calls return
// the first call's result. ctx bounds the release and removal; if they fail
// the lease lapses within LeaseTTL and the entry within HeartbeatTTL.
func (s *Session) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.finish(ErrClosed)
		s.ticks.Wait()
		s.mu.Lock()
		lease := s.lease
		s.mu.Unlock()
		var errs []error
		if err := lease.Release(ctx); err != nil {
			errs = append(errs, fmt.Errorf("admit: release lease: %w", err))
		}
		if err := s.a.deps.Registry.Remove(ctx, string(s.slot.ID), s.id); err != nil {
			errs = append(errs, fmt.Errorf("admit: remove from registry: %w", err))
		}
		s.closeErr = errors.Join(errs...)
		attrs := []any{"slot", string(s.slot.ID), "proto", s.protocol, "role", string(s.role),
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

// maxOutageRetry bounds the renewal interval while the lease is not kept
// (coordination unreachable, or the grant gone and not yet re-acquired), so
// that a session re-establishes its lease within about a second of
// coordination's return whatever the LeaseTTL.
const maxOutageRetry = time.Second

// renewTick keeps the lease and schedules the next renewal: LeaseTTL/3
// while renewals succeed, min(LeaseTTL/3, 1s) while they do not. The work
// runs in the timer's callback, so a test's ManualClock.Advance returns only
// once the renewal it triggered is done; a tick schedules the next only when
// it is done, so renewals never overlap.
func (s *Session) renewTick() {
	if !s.enter() {
		return
	}
	defer s.ticks.Done()
	every := s.a.cfg.LeaseTTL / 3
	ctx, cancel := context.WithTimeout(context.Background(), every)
	retry := s.keepLease(ctx)
	cancel()
	if retry {
		every = min(every, maxOutageRetry)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.renewStop = s.a.clock.AfterFunc(every, s.renewTick)
	}
}

// keepLease renews the current grant or, when coordination says it is gone
// (it lapsed on this clock, coordination lost its data, or another grant
// replaced it), acquires the lease name again as the same owner. It ends
// the session only when another publisher holds the lease. It reports
// whether the lease still has to be re-established, so the next attempt
// comes soon.
func (s *Session) keepLease(ctx context.Context) (retry bool) {
	s.mu.Lock()
	lease := s.lease
	s.mu.Unlock()
	err := lease.Renew(ctx)
	switch {
	case err == nil:
		s.reestablished(ctx, lease, "renewed")
		return false
	case !errors.Is(err, coord.ErrLeaseLost):
		// Coordination did not answer: the grant is good until its
		// deadline (coord.Lease), and after it the session publishes on,
		// fenced by the store (see the Session doc).
		s.coordDown(err, "lease renewal")
		if isClosed(lease.Lost()) {
			s.markUnleased()
		}
		return true
	}

	s.markUnleased()
	fresh, err := s.a.deps.Locker.Acquire(ctx, s.leaseName, s.a.cfg.LeaseTTL, s.owner)
	var held *coord.HeldError
	switch {
	case err == nil:
		s.mu.Lock()
		stopped := s.stopped
		if !stopped {
			s.lease = fresh
		}
		s.mu.Unlock()
		if stopped { // ended meanwhile: Close has released, or will release, the old grant only
			_ = fresh.Release(ctx)
			return false
		}
		s.reestablished(ctx, fresh, "re-acquired")
		return false
	case errors.As(err, &held) && held.Holder.ID == s.id:
		// This session's own grant, which lapsed on this clock before it
		// did in coordination: nobody else can take the name meanwhile, and
		// it expires there within LeaseTTL.
		s.coordDown(err, "lease re-acquire")
		return true
	case errors.As(err, &held):
		s.End(ReasonBusy, fmt.Sprintf("slot lease taken over: published over %s on edge %s since %s",
			orDash(held.Holder.Protocol), orDash(held.Holder.Edge), held.Since.UTC().Format(time.RFC3339)))
		return false
	default:
		s.coordDown(err, "lease re-acquire")
		return true
	}
}

// coordDown notes that coordination failed the session and logs it if that
// starts an outage; later failures of the same outage are not logged.
func (s *Session) coordDown(err error, during string) {
	s.mu.Lock()
	if s.stopped || !s.outageSince.IsZero() {
		s.mu.Unlock()
		return
	}
	s.outageSince = s.a.clock.Now()
	s.mu.Unlock()
	s.a.log.Warn("coordination unavailable; the session publishes on, fenced by the store, and retries",
		"slot", string(s.slot.ID), "session", s.id, "during", during, "err", err)
}

// reestablished notes that lease holds again (renewed, or re-acquired as
// the session's new grant): it ends an outage, logging how long it lasted,
// and heartbeats the registry at once so that the live status lists the
// session again.
func (s *Session) reestablished(ctx context.Context, lease coord.Lease, how string) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	since := s.outageSince
	s.outageSince = time.Time{}
	s.setUnleasedLocked(false)
	s.mu.Unlock()
	if since.IsZero() && how == "renewed" {
		return // the usual renewal
	}
	attrs := []any{"slot", string(s.slot.ID), "session", s.id, "how", how, "lease_token", lease.Token(), "writer_token", s.token}
	if since.IsZero() {
		s.a.log.Info("slot lease was gone from coordination; re-acquired", attrs...)
	} else {
		s.a.log.Info("coordination reachable again; slot lease re-established",
			append(attrs, "outage", s.a.clock.Now().Sub(since).Round(time.Millisecond))...)
	}
	if err := s.heartbeat(ctx); err != nil {
		s.beatFailed(err)
	}
}

// markUnleased counts the session as running without a lease (the gauge)
// until reestablished or the end.
func (s *Session) markUnleased() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.setUnleasedLocked(true)
	}
}

func (s *Session) setUnleasedLocked(v bool) {
	if s.unleased == v {
		return
	}
	s.unleased = v
	if v {
		s.a.metrics.withoutLease(1)
	} else {
		s.a.metrics.withoutLease(-1)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
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
	if err := s.heartbeat(ctx); err != nil {
		s.beatFailed(err)
	}
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.beatStop = s.a.clock.AfterFunc(every, s.beatTick)
	}
}

// beatFailed reports a failed heartbeat: an unreachable coordination as
// (the start of) an outage, logged once; anything else every time.
func (s *Session) beatFailed(err error) {
	if coord.IsRetriable(err) {
		s.coordDown(err, "registry heartbeat")
		return
	}
	s.a.log.Warn("registry heartbeat failed", "slot", string(s.slot.ID), "session", s.id, "err", err)
}

func (s *Session) heartbeat(ctx context.Context) error {
	now := s.a.clock.Now()
	return s.a.deps.Registry.Heartbeat(ctx, coord.Session{
		ID: s.id, Slot: string(s.slot.ID), Role: string(s.role), Protocol: s.protocol,
		Edge: s.a.cfg.EdgeID, Remote: s.remote.String(), Started: s.started,
		BitrateKbps: s.meter.kbps(now), Link: s.linkStats(),
	}, s.a.cfg.HeartbeatTTL)
}

func (s *Session) linkStats() *coord.LinkStats {
	fn := s.link.Load()
	if fn == nil {
		return nil
	}
	st := (*fn)()
	return &st
}
