// Package admit is the single admission path of every protocol (RTMP,
// RTMPS, SRT, WHIP, Live Push, PULL): SPEC §3 R-EDGE-ADMIT.
//
// Admit runs, in this order, cheapest and least revealing first:
//
//  1. the per-address failed-authentication limit (a blocked address learns
//     nothing, not even whether a key is valid, and costs no store read);
//  2. the slot, by stream key (unknown → unauthorized) or by slot id
//     (Request.SlotID; unknown → not-found), one failed attempt counted for
//     the address either way;
//  3. the slot's type (stream protocols publish only to transmux/transcode
//     slots, Live Push only to live-push slots, PULL only to pull slots);
//  4. the publish IP allow-list (R-SLOT-6), then the protocol's second
//     credential if it has one (Request.Verify: the SRT passphrase, the Live
//     Push password);
//  5. the per-key connection rate limit (R-EDGE-3), keyed by slot and role so
//     that no secret ever becomes a Redis key;
//  6. the slot's lease for the role (R-EDGE-1/2: one publisher per key and
//     role, one protocol at a time, also across edges sharing coordination).
//
// It returns a Session that keeps the lease and the live-session registry
// entry up to date until the protocol closes it, and ends itself — with a
// Reason — when another publisher took the lease or the publisher breaks an
// input rule. A Session outlives a coordination outage: it publishes on,
// fenced by the store, and re-establishes its lease and registry entry when
// coordination answers again (see Session). Every refusal is a *Rejection
// whose Reason each protocol maps to its own explicit rejection (R-EDGE-4);
// it is logged and counted exactly once.
//
// Check runs steps 1–4 alone, for protocols whose publish spans many
// requests (Live Push authenticates each one against the session it
// belongs to) and for requests that read without publishing.
package admit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/slots"
)

// The protocols that admit. They are the "protocol" metrics label and the
// Owner.Protocol a busy rejection names.
const (
	ProtocolRTMP  = "rtmp"
	ProtocolRTMPS = "rtmps"
	ProtocolSRT   = "srt"
	ProtocolWHIP  = "whip"
	ProtocolPush  = "push" // Live Push (HTTPS PUT/WebDAV of pre-chunked HLS/DASH)
	ProtocolPull  = "pull"
)

func knownProtocol(p string) bool {
	switch p {
	case ProtocolRTMP, ProtocolRTMPS, ProtocolSRT, ProtocolWHIP, ProtocolPush, ProtocolPull:
		return true
	}
	return false
}

// Request is one publish attempt as the protocol saw it.
type Request struct {
	// Protocol is one of the Protocol constants.
	Protocol string
	// StreamKey is the key the client presented; it is never logged, never
	// put in an error, and never used as a coordination key. Unused (and
	// must be empty) when SlotID is set.
	StreamKey secret.String
	// SlotID, when set, names the slot instead of a stream key: admission
	// by slot id, for clients that name the slot and prove who they are
	// otherwise (Live Push: the URL names the slot, Verify checks the Basic
	// Auth password against the slot's credentials) and for publishers the
	// edge starts itself for a known slot (PULL, internal jobs).
	//
	// The id is no secret, so a request by id of any protocol but PULL must
	// carry Verify (else ReasonInternal: a caller bug, never an open door).
	// An unknown id is ReasonNotFound and counts against the address's
	// failed-authentication budget like an unknown key (guessing ids is
	// probing); every other step is the same as by key.
	SlotID keys.SlotID
	// Role is primary or backup, decided by the protocol from the URL or key
	// form the client used.
	Role keys.Role
	// Remote is the publisher's address (for PULL: the source's, which the
	// address checks skip since the edge itself is the client).
	Remote netip.AddrPort
	// Verify, if set, checks a credential the protocol carries beside the
	// stream key or slot id (SRT: the slot's passphrase; WHIP: that the
	// key's slot is the URL's; Live Push: the Basic Auth password). It runs
	// once the slot is known and the address is allowed, before the rate
	// limit and the lease, so a wrong secret costs neither. An error fails
	// authentication like an unknown key — ReasonUnauthorized with the
	// error's text as the message (which must not contain a secret), counted
	// against the address's failed-authentication budget, which every
	// protocol shares. It may be called concurrently for different
	// requests. nil: no second credential.
	Verify func(*slots.Slot) error
}

// Admitter is the only dependency a protocol server has on admission.
type Admitter interface {
	// Admit decides whether r may publish and, if so, returns its live
	// Session, which the caller must Close. Errors are *Rejection. Admit is
	// safe for concurrent use and returns within about the coordination
	// service's operation timeout when that service is down
	// (ReasonStorageUnavailable, R-COORD-4). ctx bounds the whole call.
	Admit(ctx context.Context, r Request) (*Session, error)
}

var _ Admitter = (*Admission)(nil)

// SlotSource resolves a stream key or a slot id; *slots.Repo implements it
// (with a short cache).
type SlotSource interface {
	// ByStreamKey returns the slot whose current key is key, or an error
	// wrapping slots.ErrNotFound. Other errors mean the store was not
	// reachable.
	ByStreamKey(ctx context.Context, key string) (*slots.Slot, error)
	// Lookup returns the slot with id, or an error wrapping
	// slots.ErrNotFound; other errors mean the store was not reachable.
	Lookup(ctx context.Context, id keys.SlotID) (*slots.Slot, error)
}

// Config configures an Admission.
type Config struct {
	// EdgeID names this edge in leases and the live registry, so an operator
	// (and a busy rejection) can tell where a publisher is. Required.
	EdgeID string

	// LeaseTTL is how long a slot lease lives without renewal; the session
	// renews it every LeaseTTL/3 (every min(LeaseTTL/3, 1s) while renewals
	// fail), and a crashed edge frees the slot within LeaseTTL. A session
	// whose lease lapses while coordination is unreachable does not end
	// (see Session). Default: 10s.
	LeaseTTL time.Duration

	// HeartbeatTTL is how long a registry entry lives without a heartbeat;
	// the session heartbeats every HeartbeatTTL/3. Default: 15s.
	HeartbeatTTL time.Duration

	// KeyRate is the per stream key (slot and role) connection rate limit
	// (R-EDGE-3). The caller builds Deps.KeyLimiter with it.
	// Default: coord.IngestRate (burst 3, then one per 10s).
	KeyRate coord.Rate

	// AuthFailRate limits failed authentications per source address (an
	// IPv4 address or an IPv6 /64). The caller builds Deps.AuthLimiter with
	// it. Default: burst 10, then one per 6s.
	AuthFailRate coord.Rate

	// BitrateTolerance is how far above the slot's ingest_bitrate_kbps the
	// bitrate averaged over BitrateWindow may go before the session ends
	// (R-EDGE-5). Must be at least 1. Default: 1.2.
	BitrateTolerance float64

	// BitrateWindow is the sliding window the bitrate is averaged over; a
	// keyframe burst shorter than it does not end a session. At least 10ms.
	// Default: 10s.
	BitrateWindow time.Duration
}

// DefaultAuthFailRate is the default Config.AuthFailRate.
var DefaultAuthFailRate = coord.Rate{Burst: 10, Interval: 6 * time.Second}

// WithDefaults returns c with every zero field set to its default, so the
// caller can build the limiters with the rates Admission will assume.
func (c Config) WithDefaults() Config {
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if c.HeartbeatTTL == 0 {
		c.HeartbeatTTL = 15 * time.Second
	}
	if c.KeyRate == (coord.Rate{}) {
		c.KeyRate = coord.IngestRate
	}
	if c.AuthFailRate == (coord.Rate{}) {
		c.AuthFailRate = DefaultAuthFailRate
	}
	if c.BitrateTolerance == 0 {
		c.BitrateTolerance = 1.2
	}
	if c.BitrateWindow == 0 {
		c.BitrateWindow = 10 * time.Second
	}
	return c
}

// Validate checks c after defaults; the error names the field.
func (c Config) Validate() error {
	switch {
	case c.EdgeID == "":
		return errors.New("admit: Config.EdgeID is required")
	case c.LeaseTTL <= 0:
		return fmt.Errorf("admit: Config.LeaseTTL %v must be positive", c.LeaseTTL)
	case c.HeartbeatTTL <= 0:
		return fmt.Errorf("admit: Config.HeartbeatTTL %v must be positive", c.HeartbeatTTL)
	case c.KeyRate.Burst < 1 || c.KeyRate.Interval <= 0:
		return fmt.Errorf("admit: Config.KeyRate %+v needs a burst ≥ 1 and a positive interval", c.KeyRate)
	case c.AuthFailRate.Burst < 1 || c.AuthFailRate.Interval <= 0:
		return fmt.Errorf("admit: Config.AuthFailRate %+v needs a burst ≥ 1 and a positive interval", c.AuthFailRate)
	case !(c.BitrateTolerance >= 1):
		return fmt.Errorf("admit: Config.BitrateTolerance %v must be at least 1", c.BitrateTolerance)
	case c.BitrateWindow < 10*time.Millisecond:
		return fmt.Errorf("admit: Config.BitrateWindow %v must be at least 10ms", c.BitrateWindow)
	}
	return nil
}

// Deps are what an Admission talks to.
type Deps struct {
	// Slots resolves stream keys. Required.
	Slots SlotSource
	// Locker grants slot leases. Required.
	Locker coord.Locker
	// KeyLimiter limits attempts per slot and role (built with
	// Config.KeyRate); AuthLimiter limits failed authentications per address
	// (built with Config.AuthFailRate). On redis they may share a Coord: the
	// keys carry distinct prefixes. Required.
	KeyLimiter, AuthLimiter coord.Limiter
	// Registry lists live sessions. Required.
	Registry coord.Registry
	// Logger gets one line per rejection and per session end; never a
	// stream key. Default: slog.Default().
	Logger *slog.Logger
	// Metrics registers liveingest_ingest_rejections_total. Default: nil (none).
	Metrics prometheus.Registerer
	// Clock drives renewals, heartbeats, the bitrate meter and address
	// blocks. Default: coord.SystemClock{}.
	Clock coord.Clock
}

// Admission is the Admitter of one edge. It is safe for concurrent use and
// holds no goroutine of its own: each Session owns its timers.
type Admission struct {
	cfg     Config
	deps    Deps
	clock   coord.Clock
	log     *slog.Logger
	metrics *metrics
	blocks  addrBlocks
}

// New returns an Admission, or an error naming the bad field.
func New(cfg Config, deps Deps) (*Admission, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Slots == nil:
		return nil, errors.New("admit: Deps.Slots is required")
	case deps.Locker == nil:
		return nil, errors.New("admit: Deps.Locker is required")
	case deps.KeyLimiter == nil:
		return nil, errors.New("admit: Deps.KeyLimiter is required")
	case deps.AuthLimiter == nil:
		return nil, errors.New("admit: Deps.AuthLimiter is required")
	case deps.Registry == nil:
		return nil, errors.New("admit: Deps.Registry is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Clock == nil {
		deps.Clock = coord.SystemClock{}
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("admit: Deps.Metrics: %w", err)
	}
	return &Admission{
		cfg: cfg, deps: deps, clock: deps.Clock, metrics: m,
		log:    deps.Logger.With("component", "admit", "edge", cfg.EdgeID),
		blocks: addrBlocks{until: map[netip.Prefix]time.Time{}, sweepAt: 1024},
	}, nil
}

// Config returns the configuration in effect (defaults applied).
func (a *Admission) Config() Config { return a.cfg }

// unavailableRetry is the Retry-After hint for a retriable store or
// coordination failure: long enough not to hammer a recovering Redis, short
// enough that an encoder's own reconnect loop gets in soon.
const unavailableRetry = 2 * time.Second

// Admit implements Admitter.
func (a *Admission) Admit(ctx context.Context, r Request) (*Session, error) {
	s, rej := a.admit(ctx, r)
	if rej != nil {
		a.report(r.Protocol, r.Role, r.Remote, "", "publish rejected", rej)
		return nil, rej
	}
	return s, nil
}

// Check decides whether r may publish as far as who is asking goes — steps
// 1–4 of Admit: the failed-authentication block, the slot (by key or id),
// its type and backup ingest, the publish allow-list and Verify — and
// returns the slot. It takes no rate-limit unit, no lease and starts no
// session: it answers "may this client publish to this slot", not "may it
// start now".
//
// It is for protocols whose publish spans many requests (Live Push admits
// with the first request and checks each later one with Check, so that
// every request is authenticated under the rules and the failed-auth budget
// of an admission) and for requests that read without publishing (a WebDAV
// listing never displaces or blocks the publisher).
//
// Errors are *Rejection, logged and counted like Admit's; a failed
// authentication spends the address's budget, shared with every protocol.
// Check talks to coordination only to count a failed authentication. It is
// safe for concurrent use; ctx bounds the call.
func (a *Admission) Check(ctx context.Context, r Request) (*slots.Slot, error) {
	slot, rej := a.authorize(ctx, r)
	if rej != nil {
		a.report(r.Protocol, r.Role, r.Remote, "", "request rejected", rej)
		return nil, rej
	}
	return slot, nil
}

func (a *Admission) admit(ctx context.Context, r Request) (*Session, *Rejection) {
	slot, rej := a.authorize(ctx, r)
	if rej != nil {
		return nil, rej
	}
	id := string(slot.ID)
	withSlot := func(rej *Rejection) *Rejection { rej.Slot = id; return rej }

	// 5. Per-key connection rate (R-EDGE-3), keyed by slot and role.
	wait, err := a.deps.KeyLimiter.Allow(ctx, keys.IngestKeyLimit(slot.ID, r.Role))
	if err != nil {
		return nil, withSlot(coordFailure(err, "rate limiter"))
	}
	if wait > 0 {
		rej := rejectf(ReasonRateLimited, nil, "too many publish attempts for slot %s; retry in %s", id, ceilSeconds(wait))
		rej.RetryAfter = wait
		return nil, withSlot(rej)
	}

	// 6. The lease: one publisher per slot and role, on every edge.
	sid := newSessionID(r.Protocol)
	owner := coord.Owner{ID: sid, Edge: a.cfg.EdgeID, Protocol: r.Protocol, Remote: r.Remote.String()}
	lease, err := a.deps.Locker.Acquire(ctx, keys.SlotLease(slot.ID, r.Role), a.cfg.LeaseTTL, owner)
	var held *coord.HeldError
	switch {
	case errors.As(err, &held):
		rej := rejectf(ReasonBusy, err, "slot %s (%s) is already being published over %s since %s",
			id, r.Role, orDash(held.Holder.Protocol), held.Since.UTC().Format(time.RFC3339))
		rej.HeldBy, rej.HeldEdge, rej.HeldSince = held.Holder.Protocol, held.Holder.Edge, held.Since
		return nil, withSlot(rej)
	case err != nil:
		return nil, withSlot(coordFailure(err, "slot lease"))
	}
	return a.start(ctx, r, slot, sid, owner, lease), nil
}

// authorize runs steps 1–4 of Admit and returns the slot.
func (a *Admission) authorize(ctx context.Context, r Request) (*slots.Slot, *Rejection) {
	if !knownProtocol(r.Protocol) {
		return nil, rejectf(ReasonInternal, nil, "unknown protocol %q", r.Protocol)
	}
	if _, err := keys.ParseRole(string(r.Role)); err != nil {
		return nil, rejectf(ReasonInternal, err, "bad role")
	}
	pull := r.Protocol == ProtocolPull
	byID := r.SlotID != ""
	if byID {
		switch {
		case r.StreamKey != "":
			return nil, rejectf(ReasonInternal, nil, "both a stream key and a slot id")
		case r.Verify == nil && !pull:
			return nil, rejectf(ReasonInternal, nil, "admission by slot id over %s needs Verify", r.Protocol)
		}
		if _, err := keys.ParseSlotID(string(r.SlotID)); err != nil {
			return nil, rejectf(ReasonInternal, err, "bad slot id")
		}
	}
	var src netip.Prefix
	if !pull {
		if !r.Remote.Addr().IsValid() {
			return nil, rejectf(ReasonInternal, nil, "no remote address")
		}
		src = keys.AuthSource(r.Remote.Addr())
		// 1. A blocked address is refused before the key is even looked at.
		if wait := a.blocks.blocked(src, a.clock.Now()); wait > 0 {
			rej := rejectf(ReasonRateLimited, nil, "too many failed attempts from this address; retry in %s", ceilSeconds(wait))
			rej.RetryAfter = wait
			return nil, rej
		}
	}

	// 2. Resolve the slot. The key leaves secret.String only here.
	var slot *slots.Slot
	var err error
	if byID {
		slot, err = a.deps.Slots.Lookup(ctx, r.SlotID)
	} else {
		slot, err = a.deps.Slots.ByStreamKey(ctx, r.StreamKey.Reveal())
	}
	switch {
	case errors.Is(err, slots.ErrNotFound) && byID:
		return nil, a.authFailed(ctx, src, pull, ReasonNotFound, fmt.Sprintf("no slot %s", r.SlotID))
	case errors.Is(err, slots.ErrNotFound):
		return nil, a.authFailed(ctx, src, pull, ReasonUnauthorized, "unknown stream key")
	case err != nil:
		rej := rejectf(ReasonStorageUnavailable, err, "slot store unavailable; retry")
		rej.RetryAfter = unavailableRetry
		return nil, rej
	}
	id := string(slot.ID)
	withSlot := func(rej *Rejection) *Rejection { rej.Slot = id; return rej }

	// 3. The slot must take this kind of ingest.
	switch {
	case pull && slot.Type != slots.TypePull:
		return nil, withSlot(rejectf(ReasonForbidden, nil, "slot %s is a %s slot, not a pull slot", id, slot.Type))
	case r.Protocol == ProtocolPush && slot.Type != slots.TypeLivePush:
		return nil, withSlot(rejectf(ReasonForbidden, nil, "slot %s is a %s slot, not a %s slot", id, slot.Type, slots.TypeLivePush))
	case !pull && r.Protocol != ProtocolPush && !slot.Type.Pushed():
		return nil, withSlot(rejectf(ReasonForbidden, nil, "slot %s is a %s slot and takes no %s publish", id, slot.Type, r.Protocol))
	}
	if r.Role == keys.Backup && !slot.Backup {
		return nil, withSlot(rejectf(ReasonForbidden, nil, "slot %s has no backup ingest", id))
	}

	// 4. Publish allow-list (R-SLOT-6).
	if !pull && !slot.PublisherAllowed(r.Remote.Addr()) {
		return nil, withSlot(rejectf(ReasonForbiddenIP, nil, "address %s may not publish to slot %s", r.Remote.Addr().Unmap(), id))
	}

	// 4b. The protocol's second credential, if any.
	if r.Verify != nil {
		if err := r.Verify(slot); err != nil {
			return nil, withSlot(a.authFailed(ctx, src, pull, ReasonUnauthorized, err.Error()))
		}
	}
	return slot, nil
}

// authFailed counts a failed authentication for src and answers reason
// (unauthorized, or not-found for an unknown slot id), or rate-limited once
// src has used up its budget (and blocks it locally for the retry-after, so
// its next attempts cost nothing).
func (a *Admission) authFailed(ctx context.Context, src netip.Prefix, pull bool, reason Reason, why string) *Rejection {
	unauth := rejectf(reason, nil, "%s", why)
	if pull {
		return unauth
	}
	wait, err := a.deps.AuthLimiter.Allow(ctx, keys.IngestAuthFailLimit(src))
	if err != nil {
		// The key is unknown whatever coordination says: answer that rather
		// than a retriable error that would invite the client to retry.
		a.log.Warn("failed-auth limiter unavailable", "source", src.String(), "err", err)
		return unauth
	}
	if wait > 0 {
		now := a.clock.Now()
		a.blocks.block(src, now, now.Add(wait))
		rej := rejectf(ReasonRateLimited, nil, "too many failed attempts from this address; retry in %s", ceilSeconds(wait))
		rej.RetryAfter = wait
		return rej
	}
	return unauth
}

// coordFailure turns a coordination error into a rejection: unavailable is
// retriable (R-COORD-4), anything else is a bug.
func coordFailure(err error, what string) *Rejection {
	if coord.IsRetriable(err) {
		rej := rejectf(ReasonStorageUnavailable, err, "coordination unavailable; retry")
		rej.RetryAfter = unavailableRetry
		return rej
	}
	return rejectf(ReasonInternal, err, "internal error (%s)", what)
}

// report logs rej once and counts it once. Callers guarantee once: Admit
// reports its own rejections, Session.finish its end.
func (a *Admission) report(protocol string, role keys.Role, remote netip.AddrPort, session, msg string, rej *Rejection) {
	label := protocol
	if !knownProtocol(label) {
		label = "unknown"
	}
	a.metrics.rejected(label, rej.Reason)
	level := slog.LevelWarn
	if rej.Reason == ReasonInternal {
		level = slog.LevelError
	}
	attrs := make([]slog.Attr, 0, 10)
	if rej.Slot != "" { // unknown before the key resolved
		attrs = append(attrs, slog.String("slot", rej.Slot))
	}
	attrs = append(attrs, slog.String("proto", label), slog.String("role", string(role)),
		slog.String("remote", remote.String()), slog.String("reason", string(rej.Reason)),
		slog.String("message", rej.Message))
	if session != "" {
		attrs = append(attrs, slog.String("session", session))
	}
	if rej.RetryAfter > 0 {
		attrs = append(attrs, slog.Duration("retry_after", rej.RetryAfter))
	}
	if rej.Err != nil {
		attrs = append(attrs, slog.String("err", rej.Err.Error()))
	}
	a.log.LogAttrs(context.Background(), level, msg, attrs...)
	// A refusal because coordination is unreachable is not recorded: the
	// registry lives there too, and trying would only delay the answer.
	if rej.Slot != "" && !coord.IsRetriable(rej.Err) {
		a.recordEnd(label, role, remote, rej)
	}
}

// endRecordTTL is how long the live status shows a refusal or a reasoned
// end (R-EDGE-5: the operator sees why in the slot's live status).
const endRecordTTL = 10 * time.Minute

// recordEnd keeps a registry record of rej for the slot's live status: one
// per reason and role, the newest replacing the older, so that a client
// retrying in a loop cannot grow the list. Best effort: the rejection was
// already logged and counted.
func (a *Admission) recordEnd(protocol string, role keys.Role, remote netip.AddrPort, rej *Rejection) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	now := a.clock.Now()
	rec := coord.Session{
		ID: "last-" + string(rej.Reason) + "-" + string(role), Slot: rej.Slot, Role: string(role),
		Protocol: protocol, Edge: a.cfg.EdgeID, Remote: remote.String(),
		Started: now, Ended: now, EndReason: string(rej.Reason) + ": " + rej.Message,
	}
	if err := a.deps.Registry.Heartbeat(ctx, rec, endRecordTTL); err != nil {
		a.log.Warn("could not record the end in the live status", "slot", rej.Slot, "reason", string(rej.Reason), "err", err)
	}
}

// addrBlocks remembers, on this edge, which sources exhausted their
// failed-auth budget and until when. The decision is the shared limiter's;
// this only spares a blocked source a store read and a Redis round trip per
// attempt (Limiter has no "peek").
type addrBlocks struct {
	mu      sync.Mutex
	until   map[netip.Prefix]time.Time
	sweepAt int // size at which expired entries are dropped, so the map stays bounded by live blocks
}

func (b *addrBlocks) blocked(src netip.Prefix, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.until[src]
	if !ok {
		return 0
	}
	if !now.Before(until) {
		delete(b.until, src)
		return 0
	}
	return until.Sub(now)
}

func (b *addrBlocks) block(src netip.Prefix, now, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.until) >= b.sweepAt {
		for k, u := range b.until {
			if !now.Before(u) {
				delete(b.until, k)
			}
		}
		b.sweepAt = max(1024, 2*len(b.until))
	}
	b.until[src] = until
}

// newSessionID is unique per admission: the protocol (for operators) and 64
// random bits. It is a valid coordination name.
func newSessionID(protocol string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return protocol + "-" + hex.EncodeToString(b[:])
}

// ceilSeconds renders a wait for a human, rounded up to whole seconds so
// that "retry in 0s" never happens.
func ceilSeconds(d time.Duration) time.Duration {
	return ((d + time.Second - 1) / time.Second) * time.Second
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
