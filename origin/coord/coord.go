// Package coord holds the coordination contracts of liveingest: leases with
// fencing tokens, rate limiters and the registry of live sessions.
//
// Coordination state can be lost at any time (R-COORD): nothing durable lives
// here. Implementations: redis (shared by all edges) and memory (one process,
// for dev). Both pass the conformance suite in coordtest.
//
// # Outages: what is safe and what is lost
//
// Coordination decides who is admitted; it does not guard the data. Every
// writer of a stream carries the fencing token of the grant it started
// with, and the store accepts its state commits only conditionally (the
// segment writer's state object, written IfMatch on the ETag it last saw;
// a newer token found there stops the older writer). So when coordination
// is unreachable (Redis down, an ElastiCache failover of 10–60 s) or comes
// back without its data:
//
//   - Safe: a live publish goes on. A holder whose writes are fenced by the
//     store may publish past its lease's Lost and acquire the name again
//     when coordination answers (edge/admit.Session does); the new grant
//     only restores admission exclusion, and the writer keeps its original
//     token. A competitor granted the name in between has a larger token
//     (Locker, also across a data loss) and fences the older writer at its
//     next state commit: never two writers of one stream. Tokens keep
//     increasing after a data loss as long as Redis's clock moved on (see
//     the redis package).
//   - Refused: new publishes, with a retriable error (ErrUnavailable,
//     returned within about a second), since neither the rate limit nor the
//     lease can be checked. Protocols answer "retry" (RTMP status, SRT 1503,
//     HTTP 503 with Retry-After).
//   - Lost, when coordination comes back empty: the rate limiters' state
//     (every key starts with a full burst), the registry's records of recent
//     refusals and ends, and the live entries, which reappear when each
//     session re-establishes its lease or heartbeats again (within about a
//     second, respectively HeartbeatTTL/3).
package coord

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
)

// Locker grants leases on logical names (see keys.SlotLease).
type Locker interface {
	// Acquire grants the lease on name to owner for ttl, unless another
	// holder's lease on name is still valid: then it fails with a *HeldError
	// (errors.Is(err, ErrHeld)) that names the holder.
	//
	// Every grant on a name carries a Token larger than every token granted
	// on that name before, also across a restart of the coordination service
	// that lost its data (see the implementation's guarantee), so a writer
	// can fence its writes with it. Errors reaching the service wrap
	// ErrUnavailable and return within about a second.
	Acquire(ctx context.Context, name string, ttl time.Duration, owner Owner) (Lease, error)
}

// Lease is one grant of a name. Its methods are safe for concurrent use.
type Lease interface {
	// Token is the fencing token of this grant.
	Token() uint64

	// Renew extends the lease by its ttl from now. It fails with an error
	// wrapping ErrLeaseLost if the lease lapsed or was granted to another
	// holder; then Lost is closed. Errors reaching the service wrap
	// ErrUnavailable; the lease stays valid until its deadline.
	Renew(ctx context.Context) error

	// Release gives the lease up if it is still held by this grant; it is
	// idempotent. Lost is closed afterwards.
	Release(ctx context.Context) error

	// Lost is closed once this grant can no longer be relied on: the ttl
	// passed since the last successful Acquire or Renew (measured on the
	// holder's clock), a Renew found the lease gone or taken over, or it was
	// released. Once Lost is closed, Renew fails with ErrLeaseLost without
	// asking the service: a holder that wants the name back must Acquire it
	// again (and gets a new token). A holder that relies on the lease alone
	// for exclusion must stop writing when Lost is closed; one whose writes
	// are fenced by the store with Token may go on (see the package doc,
	// Outages).
	Lost() <-chan struct{}
}

// Owner says who holds a lease or runs a session: enough for an operator, and
// for a rejection message, to tell which publisher is in the way.
type Owner struct {
	ID       string `json:"id"`                 // unique per grant request, e.g. a session id
	Edge     string `json:"edge,omitempty"`     // edge node id
	Protocol string `json:"protocol,omitempty"` // rtmp, rtmps, srt, whip, push, pull
	Remote   string `json:"remote,omitempty"`   // publisher's address
}

// Limiter is a rate limiter by key: a burst, then one event per interval
// (GCRA). The rate is the implementation's configuration.
type Limiter interface {
	// Allow records one event for key and returns 0 if it is allowed, or how
	// long the caller should wait before the next attempt if it is not (the
	// rejected event is not counted). Errors reaching the service wrap
	// ErrUnavailable.
	Allow(ctx context.Context, key string) (retryAfter time.Duration, err error)
}

// Rate configures a Limiter: Burst events at once, then one per Interval.
type Rate struct {
	Burst    int
	Interval time.Duration
}

// Registry is the set of live ingest sessions, kept alive by heartbeats.
type Registry interface {
	// Heartbeat adds s, or refreshes it if a session with the same Slot and
	// ID is listed, and keeps it listed for ttl from now.
	Heartbeat(ctx context.Context, s Session, ttl time.Duration) error

	// Remove takes the session off the list at once (no error if absent).
	Remove(ctx context.Context, slot, id string) error

	// List returns the live sessions of slot (a slot id), oldest first. A
	// session whose last heartbeat is older than its ttl is not listed.
	List(ctx context.Context, slot string) ([]Session, error)
}

// Session is one publisher's ingest as the registry shows it (R-API-1 live
// status: who publishes, over which protocol, since when, at what bitrate).
type Session struct {
	ID          string    `json:"id"`
	Slot        string    `json:"slot"`
	Role        string    `json:"role"`
	Protocol    string    `json:"protocol"`
	Edge        string    `json:"edge"`
	Remote      string    `json:"remote"`
	Started     time.Time `json:"started"`
	BitrateKbps int64     `json:"bitrate_kbps"`
	Updated     time.Time `json:"updated"` // set by Heartbeat

	// Ended and EndReason mark a record of a session that ended, or a publish
	// that was refused, with a reason (R-EDGE-5). Such records are kept for a
	// while so that the live status can say why a slot is not live.
	Ended     time.Time `json:"ended,omitzero"`
	EndReason string    `json:"end_reason,omitempty"`

	// Link is the transport's own view of the connection, for protocols that
	// measure one (SRT); nil otherwise.
	Link *LinkStats `json:"link,omitempty"`
}

// LinkStats are a publisher's transport measurements as of the last
// heartbeat: how healthy the path from the encoder is (packet loss and
// retransmissions long before the picture suffers). Counters are totals
// since the session started.
type LinkStats struct {
	RTTMs                float64 `json:"rtt_ms"`                // smoothed round-trip time
	ReceiveRateKbps      int64   `json:"receive_rate_kbps"`     // current receive rate, retransmissions included
	PacketsReceived      uint64  `json:"packets_received"`      // data packets, retransmissions included
	PacketsLost          uint64  `json:"packets_lost"`          // detected missing at the receiver (then recovered or dropped)
	PacketsRetransmitted uint64  `json:"packets_retransmitted"` // retransmitted packets that arrived
	PacketsDropped       uint64  `json:"packets_dropped"`       // discarded by the receiver: arrived too late or twice
}

// IngestRate is the default limit on publish attempts per stream key
// (R-EDGE-3): a burst of 3, then one attempt per 10 s.
var IngestRate = Rate{Burst: 3, Interval: 10 * time.Second}

// ValidateKey checks the slot and id of a session before an implementation
// stores or looks it up.
func (s Session) ValidateKey() error {
	if err := keys.ValidateCoordName(s.Slot); err != nil {
		return fmt.Errorf("slot: %w", err)
	}
	if err := keys.ValidateCoordName(s.ID); err != nil {
		return fmt.Errorf("session id: %w", err)
	}
	return nil
}

// SortSessions orders sessions as Registry.List returns them: oldest first,
// ties by id.
func SortSessions(ss []Session) {
	slices.SortFunc(ss, func(a, b Session) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}
