package push

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/origin/keys"
)

// A Live Push publish has no connection to hang a session on: an encoder
// PUTs a segment and its playlists every segment duration over short HTTP
// requests, often one connection each. So the admitted session
// (admit.Session: the slot's lease with its fencing token, the live-status
// entry, the bitrate meter) lives across requests:
//
//   - the first write of a publisher is admitted (admit.Request by slot id,
//     the Basic Auth password checked by Verify);
//   - every later request of the same publisher — the same user name from
//     the same address — is checked (Admitter.Check: credentials, slot type,
//     allow-list, under the shared failed-auth budget) and keeps the session;
//   - a write by anybody else while the session lives goes to admission,
//     which refuses it busy with the message every protocol gets;
//   - the session ends IdleTimeout after its publisher's last request
//     finished (none in flight: a long upload keeps it), when admission
//     ends it (another publisher took the lease after a coordination outage,
//     the bitrate stayed over the limit), or when the server closes. Closing
//     releases the lease at once, so the slot is free for the next publisher.
//
// A session admission ended stays as a tombstone until the idle timeout, so
// that its publisher's next request learns why (once) instead of being
// admitted again without a word.

// sessions are the push sessions of one server, one per slot and role.
type sessions struct {
	adm  Admitter
	idle time.Duration

	mu     sync.Mutex
	bySlot map[string]*slotEntry // by keys.SlotLease(slot, role)
	closed bool                  // set by closeAll: no new sessions
	stop   chan struct{}         // closed by closeAll: every run ends its session
	wg     sync.WaitGroup        // the run goroutines
}

// slotEntry is one slot and role. mu serialises admission on it, so that an
// encoder's concurrent first requests do not race each other into busy.
type slotEntry struct {
	name string
	refs int // guarded by sessions.mu: requests in begin, plus one per publisher

	mu  sync.Mutex
	pub *publisher // guarded by mu; nil: none
}

// publisher is one admitted session and who it was admitted for. Its
// fields after sess are guarded by the entry's mu.
type publisher struct {
	sess *admit.Session
	user string
	ip   netip.Addr
	e    *slotEntry

	inflight int       // requests begun and not finished
	last     time.Time // when the last request finished (or the session began)
	closed   bool      // sess is closed: a tombstone until the idle timeout
}

func newSessions(adm Admitter, idle time.Duration) *sessions {
	return &sessions{adm: adm, idle: idle, bySlot: map[string]*slotEntry{}, stop: make(chan struct{})}
}

// errClosing is the answer to a write that arrives while the server closes.
var errClosing = errors.New("edge shutting down")

// begin returns the live session r (a write) belongs to, admitting it when
// the slot has none for this publisher. The caller must call finish with
// it. Errors are *admit.Rejection (logged and counted by admission) or
// errClosing.
func (ss *sessions) begin(ctx context.Context, r admit.Request, user string) (*publisher, error) {
	e := ss.ref(keys.SlotLease(r.SlotID, r.Role))
	defer ss.unref(e)
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.pub; p != nil {
		mine := p.user == user && p.ip == r.Remote.Addr()
		switch {
		case p.closed || isDone(p.sess.Done()):
			// Ended by admission (or closing): its publisher learns why
			// once; the next request is admitted afresh, once the ended
			// session gave its lease back.
			ss.closeLocked(p)
			e.pub = nil
			if rej := (*admit.Rejection)(nil); mine && errors.As(p.sess.Err(), &rej) {
				return nil, rej
			}
		case mine:
			if _, err := ss.adm.Check(ctx, r); err != nil {
				return nil, err
			}
			p.inflight++
			return p, nil
		}
		// Someone else: admission refuses it busy while p holds the lease.
	}
	sess, err := ss.adm.Admit(ctx, r)
	if err != nil {
		return nil, err
	}
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = sess.Close(closeCtx)
		cancel()
		return nil, errClosing
	}
	e.refs++ // the publisher's, dropped by run
	ss.wg.Add(1)
	ss.mu.Unlock()
	p := &publisher{sess: sess, user: user, ip: r.Remote.Addr(), e: e, inflight: 1, last: time.Now()}
	e.pub = p
	go ss.run(p)
	return p, nil
}

// finish ends one request of p: the idle timeout counts from the last one.
func (ss *sessions) finish(p *publisher) {
	p.e.mu.Lock()
	p.inflight--
	p.last = time.Now()
	p.e.mu.Unlock()
}

// run owns p's end: it closes the session when admission ended it, after
// the idle timeout, or when the server closes, and drops the tombstone.
func (ss *sessions) run(p *publisher) {
	defer ss.wg.Done()
	defer ss.unref(p.e)
	e := p.e
	t := time.NewTimer(ss.idle)
	defer t.Stop()
	done := p.sess.Done()
	for {
		select {
		case <-done:
			done = nil // closed at once; the tombstone waits for the timer
			e.mu.Lock()
			ss.closeLocked(p)
			e.mu.Unlock()
			continue
		case <-ss.stop:
		case <-t.C:
			e.mu.Lock()
			if p.inflight > 0 {
				t.Reset(ss.idle)
				e.mu.Unlock()
				continue
			}
			if rest := ss.idle - time.Since(p.last); rest > 0 && e.pub == p && !p.closed {
				t.Reset(rest)
				e.mu.Unlock()
				continue
			}
			e.mu.Unlock()
		}
		break
	}
	e.mu.Lock()
	ss.closeLocked(p)
	if e.pub == p {
		e.pub = nil
	}
	e.mu.Unlock()
}

// closeLocked closes p's session unless done: the lease is released and the
// live-status entry removed. It holds the entry's lock meanwhile, so that a
// request for the slot waits for the release instead of being refused busy
// by the session that is ending.
func (ss *sessions) closeLocked(p *publisher) {
	if p.closed {
		return
	}
	p.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A failed release is logged by admission; the lease lapses by itself.
	_ = p.sess.Close(ctx)
}

// ref returns the entry named name, counting the caller as its user.
func (ss *sessions) ref(name string) *slotEntry {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	e := ss.bySlot[name]
	if e == nil {
		e = &slotEntry{name: name}
		ss.bySlot[name] = e
	}
	e.refs++
	return e
}

// unref drops one user of e, and e itself once nobody uses it: entries are
// made before a request is authenticated, so they must not outlive it.
func (ss *sessions) unref(e *slotEntry) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(ss.bySlot, e.name)
	}
}

// closeAll ends every session and waits for them, within ctx.
func (ss *sessions) closeAll(ctx context.Context) error {
	ss.mu.Lock()
	if !ss.closed {
		ss.closed = true
		close(ss.stop)
	}
	ss.mu.Unlock()
	done := make(chan struct{})
	go func() { ss.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// admissionRejection maps a refusal of admission (or errClosing) to the
// HTTP answer: admit.Reason.HTTPStatus, the body "<reason>: <message>" as
// every protocol words it, Retry-After when the client may come back.
func admissionRejection(err error) *rejection {
	if errors.Is(err, errClosing) {
		rej := reject(http.StatusServiceUnavailable, ErrUnavailable, "edge shutting down; retry")
		rej.retryAfter = time.Second
		return rej
	}
	a := admit.AsRejection(err)
	rej := reject(a.Reason.HTTPStatus(), admissionReason(a.Reason), "%s", a.Message)
	rej.retryAfter = a.RetryAfter
	if rej.retryAfter == 0 && a.Reason == admit.ReasonStorageUnavailable {
		rej.retryAfter = time.Second
	}
	rej.logged = true
	return rej
}
