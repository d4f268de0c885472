package admit

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/coord"
	coordredis "github.com/liveingest/liveingest/origin/coord/redis"
)

// The log lines of a session's coordination outage (one each per outage).
const (
	outageStartMsg = "coordination unavailable; the session publishes on"
	outageEndMsg   = "coordination reachable again; slot lease re-established"
	leaseGoneMsg   = "slot lease was gone from coordination; re-acquired"
	withoutLease   = "liveingest_ingest_sessions_without_lease"
)

// stepUntil lets time pass in small steps until cond holds, and fails the
// test if it does not within 20 s of real time.
func (f *fixture) stepUntil(what string, cond func() bool) {
	f.t.Helper()
	small := 100 * time.Millisecond
	if f.env.manual == nil {
		small = 20 * time.Millisecond
	}
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within 20 s; log:\n%s", what, f.logs.String())
		}
		f.env.step(small)
	}
}

// gauge reads an unlabelled gauge of the fixture's registry.
func (f *fixture) gauge(name string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

// logLines counts the log lines with msg about session.
func (f *fixture) logLines(msg, session string) int {
	n := 0
	for line := range strings.SplitSeq(f.logs.String(), "\n") {
		if strings.Contains(line, `msg="`+msg) && strings.Contains(line, "session="+session) {
			n++
		}
	}
	return n
}

// listed reports whether the registry (read past the edge's outage switch)
// lists session id of the transmux slot as live.
func (f *fixture) listed(id string) bool {
	f.t.Helper()
	ss, err := f.env.peer(f.t).registry.List(f.ctx, string(f.transmux.Slot.ID))
	if err != nil {
		f.t.Fatal(err)
	}
	for _, s := range ss {
		if s.ID == id && s.Ended.IsZero() {
			return true
		}
	}
	return false
}

// testLeaseGoneReacquired: coordination forgets the grant while it answers
// (Redis restarted without its data between two renewals): the next renewal
// finds it gone and the session acquires the name again, keeping its token.
func testLeaseGoneReacquired(t *testing.T, f *fixture) {
	s := f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost))
	tok := s.Token()
	if err := f.granted.last(t).Release(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.stepUntil("lease re-acquired", func() bool { return f.granted.count() == 2 })
	if !notDone(s) {
		t.Fatalf("session ended: %v", s.Err())
	}
	if s.Token() != tok || f.granted.last(t).Token() <= tok {
		t.Fatalf("Token = %d (admitted with %d), new grant %d", s.Token(), tok, f.granted.last(t).Token())
	}
	rej := f.mustReject(f.adm, req(f.transmux.StreamKey, otherHost), ReasonBusy)
	if rej.HeldEdge != "edge-a" {
		t.Fatalf("busy rejection = %+v", rej)
	}
	if n := f.logLines(leaseGoneMsg, s.ID()); n != 1 {
		t.Fatalf("%q logged %d times:\n%s", leaseGoneMsg, n, f.logs.String())
	}
	f.close(s)
	// Close released the re-acquired grant: the slot is free.
	f.close(f.mustAdmit(f.adm, req(f.transmux.StreamKey, otherHost)))
}

// testShortOutageRenews: an outage shorter than the lease's TTL ends with a
// plain renewal; it is logged once when it starts and once when it ends.
func testShortOutageRenews(t *testing.T, f *fixture) {
	s := f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost))
	f.down.Store(true)
	f.stepUntil("outage noticed", func() bool { return f.logLines(outageStartMsg, s.ID()) == 1 })
	f.down.Store(false)
	f.stepUntil("outage over", func() bool { return f.logLines(outageEndMsg, s.ID()) == 1 })
	if !notDone(s) {
		t.Fatalf("session ended: %v", s.Err())
	}
	// On the manual clock the timing is exact: the grant never lapsed. Real
	// time on a loaded machine may let it lapse and be re-acquired instead.
	if f.env.manual != nil && (f.granted.count() != 1 || !strings.Contains(f.logs.String(), "how=renewed")) {
		t.Fatalf("%d grants, want the first renewed:\n%s", f.granted.count(), f.logs.String())
	}
	if n := f.logLines(outageStartMsg, s.ID()); n != 1 {
		t.Fatalf("outage start logged %d times", n)
	}
	f.close(s)
}

// testSurvivesOutage: renewals fail for longer than the lease's TTL. The
// session keeps publishing without a lease (counted in the gauge), new
// publishes are refused fast and retriable, and when coordination answers
// again the session re-acquires the lapsed lease, keeps its token, is
// listed again, and the slot is exclusive again.
func testSurvivesOutage(t *testing.T, f *fixture) {
	s := f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost))
	tok := s.Token()
	ttl := f.adm.Config().LeaseTTL
	f.down.Store(true)
	f.stepUntil("lease lapsed", func() bool { return f.gauge(withoutLease) == 1 })
	f.env.step(2 * ttl)
	if !notDone(s) {
		t.Fatalf("session ended during the outage: %v", s.Err())
	}
	if f.listed(s.ID()) {
		t.Fatal("the registry still lists the session after its heartbeat ttl without heartbeats")
	}
	begin := time.Now()
	rej := f.mustReject(f.adm, req(f.transmux.StreamKey, otherHost), ReasonStorageUnavailable)
	if el := time.Since(begin); el > 2*time.Second || rej.RetryAfter <= 0 || !errors.Is(rej, coord.ErrUnavailable) {
		t.Fatalf("refusal during the outage after %v: %+v", el, rej)
	}
	if n := f.logLines(outageStartMsg, s.ID()); n != 1 {
		t.Fatalf("outage start logged %d times, want once:\n%s", n, f.logs.String())
	}
	if strings.Contains(f.logs.String(), "registry heartbeat failed") || strings.Contains(f.logs.String(), "lease renewal failed") {
		t.Fatalf("per-attempt warnings during the outage:\n%s", f.logs.String())
	}

	f.down.Store(false)
	f.stepUntil("lease re-established", func() bool { return f.gauge(withoutLease) == 0 })
	if !notDone(s) {
		t.Fatalf("session ended on recovery: %v", s.Err())
	}
	if s.Token() != tok || f.granted.count() != 2 || f.granted.last(t).Token() <= tok {
		t.Fatalf("Token = %d (admitted with %d), %d grants, last %d", s.Token(), tok, f.granted.count(), f.granted.last(t).Token())
	}
	if n := f.logLines(outageEndMsg, s.ID()); n != 1 || !strings.Contains(f.logs.String(), "how=re-acquired") {
		t.Fatalf("outage end logged %d times:\n%s", n, f.logs.String())
	}
	if !f.listed(s.ID()) {
		t.Fatal("the registry does not list the session again once its lease is back")
	}
	rej = f.mustReject(f.adm, req(f.transmux.StreamKey, otherHost), ReasonBusy)
	if rej.HeldEdge != "edge-a" || rej.HeldBy != "rtmp" {
		t.Fatalf("busy rejection = %+v", rej)
	}
	f.close(s)
	if f.gauge(withoutLease) != 0 {
		t.Fatal("gauge not back to 0")
	}
}

// testTakenOverDuringOutage: while edge-a cannot reach coordination its
// lease lapses and a publisher on edge-b gets the slot; when edge-a is back
// its session finds the holder and ends busy, naming it.
func testTakenOverDuringOutage(t *testing.T, f *fixture) {
	s := f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost))
	f.down.Store(true)
	f.stepUntil("lease lapsed", func() bool { return f.gauge(withoutLease) == 1 })
	cfg := f.env.cfg
	cfg.EdgeID = "edge-b"
	edgeB := f.newAdmission(cfg)
	second := req(f.transmux.StreamKey, otherHost)
	second.Protocol = ProtocolSRT
	var b *Session
	f.stepUntil("edge-b admitted", func() bool {
		// On real Redis the lapsed grant expires there a moment after it
		// did on edge-a's clock.
		var rej *Rejection
		b, rej = f.admit(edgeB, second)
		if rej != nil && rej.Reason != ReasonBusy {
			t.Fatalf("edge-b: %v", rej)
		}
		return b != nil
	})
	if b.Token() <= s.Token() {
		t.Fatalf("competitor's token %d not above %d", b.Token(), s.Token())
	}
	f.down.Store(false)
	f.stepUntil("session ended", func() bool { return !notDone(s) })
	rej := AsRejection(s.Err())
	if rej.Reason != ReasonBusy || !strings.Contains(rej.Message, "slot lease taken over") ||
		!strings.Contains(rej.Message, "srt") || !strings.Contains(rej.Message, "edge-b") {
		t.Fatalf("Err = %v, want busy naming the srt publisher on edge-b", s.Err())
	}
	f.close(s)
	if !notDone(b) {
		t.Fatalf("the new holder's session ended: %v", b.Err())
	}
	if rej := f.mustReject(f.adm, req(f.transmux.StreamKey, localhost), ReasonBusy); rej.HeldEdge != "edge-b" {
		t.Fatalf("busy rejection = %+v", rej)
	}
	f.close(b)
}

// redisPeer is coordination on the redis-server at addr, in namespace ns.
func redisPeer(t *testing.T, addr, ns string) coordImpl {
	c, err := coordredis.New(coordredis.Config{Addr: addr, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return coordImpl{locker: c, registry: c, newLimiter: func(r coord.Rate) coord.Limiter {
		l, err := c.NewLimiter(r)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}}
}

func randomNamespace(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// TestRedisRestartEmpty: a real redis-server is killed under a live session
// and restarted empty on the same port after the lease's TTL. The session
// lives through it; a second publisher is refused storage-unavailable during
// the outage and busy once the session re-established its lease and its
// registry entry.
func TestRedisRestartEmpty(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedis(t)
	ns := randomNamespace("admit-restart-")
	cfg := Config{EdgeID: "edge-a", LeaseTTL: 1500 * time.Millisecond, HeartbeatTTL: 1500 * time.Millisecond,
		KeyRate: coord.Rate{Burst: 10, Interval: time.Second}}
	f := newFixture(t, &env{name: "redis-restart", cfg: cfg, peer: func(t *testing.T) coordImpl { return redisPeer(t, srv.Addr, ns) }})
	cfgB := cfg
	cfgB.EdgeID = "edge-b"
	edgeB := f.newAdmission(cfgB)

	s := f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost))
	tok := s.Token()
	if !f.listed(s.ID()) {
		t.Fatal("not listed after Admit")
	}
	srv.Kill()
	killed := time.Now()

	begin := time.Now()
	rej := f.mustReject(edgeB, req(f.transmux.StreamKey, otherHost), ReasonStorageUnavailable)
	if el := time.Since(begin); el > 2*time.Second || rej.RetryAfter <= 0 {
		t.Fatalf("refusal with Redis down after %v: %+v", el, rej)
	}
	f.stepUntil("lease lapsed", func() bool { return f.gauge(withoutLease) == 1 })
	time.Sleep(cfg.LeaseTTL) // well past the TTL: an outage of 10-60 s in production
	if !notDone(s) {
		t.Fatalf("session ended during the outage: %v", s.Err())
	}

	srv.Restart(t)
	restarted := time.Now()
	t.Logf("redis-server down for %v, restarted empty", restarted.Sub(killed).Round(time.Millisecond))
	// Either may come first: the renewal re-acquires the lease and
	// heartbeats at once, and the heartbeat timer also adds the entry again.
	f.stepUntil("lease and registry entry back", func() bool { return f.gauge(withoutLease) == 0 && f.listed(s.ID()) })
	t.Logf("lease and registry entry back %v after the restart", time.Since(restarted).Round(time.Millisecond))
	if f.gauge(withoutLease) != 0 || !notDone(s) || s.Token() != tok {
		t.Fatalf("after the restart: gauge %v, session err %v, token %d (admitted with %d)",
			f.gauge(withoutLease), s.Err(), s.Token(), tok)
	}
	rej = f.mustReject(edgeB, req(f.transmux.StreamKey, otherHost), ReasonBusy)
	if rej.HeldEdge != "edge-a" {
		t.Fatalf("busy rejection = %+v", rej)
	}
	if a, b := f.logLines(outageStartMsg, s.ID()), f.logLines(outageEndMsg, s.ID()); a != 1 || b != 1 {
		t.Fatalf("outage logged %d/%d times (start/end), want once each:\n%s", a, b, f.logs.String())
	}
	f.close(s)
	f.close(f.mustAdmit(edgeB, req(f.transmux.StreamKey, otherHost)))
}

// TestLeasePathUnavailable: the rate limiter answers but the lease cannot be
// reached: Admit still refuses within about the operation timeout with the
// retriable reason, and does not try to record it in the (unreachable)
// registry.
func TestLeasePathUnavailable(t *testing.T) {
	t.Parallel()
	dead := testenv.NewRedis(t)
	deadPeer := redisPeer(t, dead.Addr, "admit-dead")
	dead.Kill()
	ns := randomNamespace("admit-leasepath-")
	live := testenv.Redis(t).Addr
	f := newFixture(t, &env{name: "lease-down", cfg: Config{EdgeID: "edge-a"}, peer: func(t *testing.T) coordImpl {
		im := redisPeer(t, live, ns)
		im.locker = deadPeer.locker
		return im
	}})
	begin := time.Now()
	rej := f.mustReject(f.adm, req(f.transmux.StreamKey, localhost), ReasonStorageUnavailable)
	if el := time.Since(begin); el > 2*time.Second || rej.RetryAfter <= 0 || !errors.Is(rej, coord.ErrUnavailable) {
		t.Fatalf("refusal after %v: %+v", el, rej)
	}
	if !strings.Contains(rej.Message, "coordination unavailable") {
		t.Fatalf("message %q", rej.Message)
	}
}
