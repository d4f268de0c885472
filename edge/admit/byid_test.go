package admit

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
)

// Admission by slot id (Request.SlotID) and Check, on memory and on a real
// redis-server (both run from TestAdmission's table).

// pushReq is a Live Push request by slot id whose Verify checks the
// fixture's live-push credentials ("enc") with pass, counting its calls.
func pushReq(id keys.SlotID, pass string, remote netip.AddrPort, calls *atomic.Int32) Request {
	return Request{Protocol: ProtocolPush, SlotID: id, Role: keys.Primary, Remote: remote,
		Verify: func(sl *slots.Slot) error {
			if calls != nil {
				calls.Add(1)
			}
			if sl.CheckPassword("enc", pass) != nil {
				return errors.New("wrong user name or password")
			}
			return nil
		}}
}

// stepBy lets d pass in steps short enough for a live session's renewals
// and heartbeats to keep up on the manual clock.
func (f *fixture) stepBy(d time.Duration) {
	step := f.adm.Config().LeaseTTL / 4
	for done := time.Duration(0); done < d; done += step {
		f.env.step(min(step, d-done))
	}
}

func (f *fixture) list(slot keys.SlotID) []coord.Session {
	f.t.Helper()
	l, err := f.env.peer(f.t).registry.List(f.ctx, string(slot))
	if err != nil {
		f.t.Fatal(err)
	}
	var live []coord.Session
	for _, s := range l {
		if s.Ended.IsZero() {
			live = append(live, s)
		}
	}
	return live
}

// testBySlotID: a Live Push publisher admitted by slot id holds the lease,
// is listed with protocol push, and its bytes make the listed bitrate.
func testBySlotID(t *testing.T, f *fixture) {
	id := f.livePush.Slot.ID
	s := f.mustAdmit(f.adm, pushReq(id, "password1", localhost, nil))
	if s.Protocol() != ProtocolPush || s.Slot().ID != id || s.Token() == 0 || f.granted.count() != 1 {
		t.Fatalf("session: protocol %s slot %s token %d, %d grants", s.Protocol(), s.Slot().ID, s.Token(), f.granted.count())
	}
	if l := f.list(id); len(l) != 1 || l[0].Protocol != "push" || l[0].ID != s.ID() || l[0].Remote != localhost.String() {
		t.Fatalf("registry right after Admit = %+v", l)
	}
	hb := f.adm.Config().HeartbeatTTL / 3
	deadline := time.Now().Add(10 * time.Second)
	for {
		// 800 kbps of segment bodies for a heartbeat period and a bit.
		step := (hb + hb/4) / 40
		for range 40 {
			s.ObserveBytes(int(800_000 / 8 * step / time.Second))
			f.env.step(step)
		}
		if l := f.list(id); len(l) == 1 && l[0].BitrateKbps > 0 {
			if l[0].BitrateKbps > 1000 {
				t.Fatalf("registry bitrate %d kbps, want about 800", l[0].BitrateKbps)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry never showed a bitrate: %+v", f.list(id))
		}
	}
	f.close(s)
	if l := f.list(id); len(l) != 0 {
		t.Fatalf("registry after Close = %+v", l)
	}
}

// testBySlotIDUnknown: guessing slot ids is probing: each unknown id is
// not-found and spends the address's failed-auth budget; once it is spent
// even the right credentials are refused without being checked.
func testBySlotIDUnknown(t *testing.T, f *fixture) {
	var calls atomic.Int32
	for i := range DefaultAuthFailRate.Burst {
		rej := f.mustReject(f.adm, pushReq(keys.SlotID(fmt.Sprintf("no-such-slot-%d", i)), "password1", localhost, &calls), ReasonNotFound)
		if i == 0 && (rej.Slot != "" || !strings.Contains(rej.Message, "no slot no-such-slot-0")) {
			t.Fatalf("rejection = %+v", rej)
		}
	}
	f.mustReject(f.adm, pushReq("no-such-slot-x", "password1", localhost, &calls), ReasonRateLimited)
	f.mustReject(f.adm, pushReq(f.livePush.Slot.ID, "password1", localhost, &calls), ReasonRateLimited)
	if n := calls.Load(); n != 0 {
		t.Fatalf("Verify called %d times", n)
	}
	if got := f.rejections("push", ReasonNotFound); got != float64(DefaultAuthFailRate.Burst) {
		t.Fatalf("not-found counted %v times", got)
	}
	// Another address is not affected.
	f.close(f.mustAdmit(f.adm, pushReq(f.livePush.Slot.ID, "password1", otherHost, &calls)))
}

// testBySlotIDRequest: the request rules of admission by id.
func testBySlotIDRequest(t *testing.T, f *fixture) {
	both := pushReq(f.livePush.Slot.ID, "password1", localhost, nil)
	both.StreamKey = f.livePush.StreamKey
	f.mustReject(f.adm, both, ReasonInternal)
	// The id is no secret: a client-facing protocol must verify something.
	noVerify := pushReq(f.livePush.Slot.ID, "password1", localhost, nil)
	noVerify.Verify = nil
	f.mustReject(f.adm, noVerify, ReasonInternal)
	f.mustReject(f.adm, pushReq("../config", "password1", localhost, nil), ReasonInternal)
	if n := f.granted.count(); n != 0 {
		t.Fatalf("%d leases granted to malformed requests", n)
	}
	// Live Push publishes only to live-push slots.
	rej := f.mustReject(f.adm, pushReq(f.transmux.Slot.ID, "password1", localhost, nil), ReasonForbidden)
	if !strings.Contains(rej.Message, "not a live-push slot") {
		t.Fatalf("Message = %q", rej.Message)
	}
	// By id the wrong password is unauthorized, with Verify's text.
	rej = f.mustReject(f.adm, pushReq(f.livePush.Slot.ID, "wrong", localhost, nil), ReasonUnauthorized)
	if rej.Message != "wrong user name or password" || rej.Slot != string(f.livePush.Slot.ID) {
		t.Fatalf("rejection = %+v", rej)
	}
}

// testPullBySlotID: the edge's own publishers (PULL) admit a known slot by
// id without a credential; the slot must be a pull slot.
func testPullBySlotID(t *testing.T, f *fixture) {
	c, err := f.repo.Create(f.ctx, slots.Input{Name: ptr("relay"), Type: ptr(slots.TypePull), PullURLs: ptr([]string{"rtmp://source.example/live/x"})})
	if err != nil {
		t.Fatal(err)
	}
	r := Request{Protocol: ProtocolPull, SlotID: c.Slot.ID, Role: keys.Primary}
	s := f.mustAdmit(f.adm, r)
	if s.Protocol() != ProtocolPull || s.Token() == 0 {
		t.Fatalf("session protocol %s token %d", s.Protocol(), s.Token())
	}
	f.close(s)
	r.SlotID = f.transmux.Slot.ID
	f.mustReject(f.adm, r, ReasonForbidden)
}

// testFailedAuthShared: wrong stream keys over RTMP and SRT and wrong Live
// Push passwords spend one budget per source (an IPv6 /64 here, each
// attempt from another address in it).
func testFailedAuthShared(t *testing.T, f *fixture) {
	from := func(i int) netip.AddrPort {
		return netip.MustParseAddrPort(fmt.Sprintf("[2001:db8:1:2::%x]:%d", i+1, 40000+i))
	}
	for i := range DefaultAuthFailRate.Burst {
		if i%2 == 0 {
			f.mustReject(f.adm, req(unknownKey, from(i)), ReasonUnauthorized)
		} else {
			f.mustReject(f.adm, pushReq(f.livePush.Slot.ID, "wrong", from(i), nil), ReasonUnauthorized)
		}
	}
	srt := req(unknownKey, from(99))
	srt.Protocol = ProtocolSRT
	f.mustReject(f.adm, srt, ReasonRateLimited)
	f.mustReject(f.adm, pushReq(f.livePush.Slot.ID, "password1", from(100), nil), ReasonRateLimited)
	if _, err := f.adm.Check(f.ctx, pushReq(f.livePush.Slot.ID, "password1", from(101), nil)); ReasonOf(err) != ReasonRateLimited {
		t.Fatalf("Check from the blocked /64 = %v", err)
	}
	// The next /64 has its own budget.
	next := netip.MustParseAddrPort("[2001:db8:1:3::1]:40000")
	f.close(f.mustAdmit(f.adm, pushReq(f.livePush.Slot.ID, "password1", next, nil)))
}

// testBusyAcrossProtocols: an RTMP session and a Live Push session on one
// slot (retyped between transmux and live-push while published) refuse
// each other busy, with the same message but for the holder's protocol.
func testBusyAcrossProtocols(t *testing.T, f *fixture) {
	c, err := f.repo.Create(f.ctx, slots.Input{Name: ptr("both"), Type: ptr(slots.TypeTransmux),
		Credentials: &[]slots.CredentialIn{{Username: "enc", Password: "password1"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := c.Slot.ID
	retype := func(typ slots.Type) {
		t.Helper()
		if _, err := f.repo.Update(f.ctx, id, 0, slots.Input{Type: ptr(typ)}); err != nil {
			t.Fatalf("retype to %s: %v", typ, err)
		}
	}
	wantBusy := func(rej *Rejection, holder string) {
		t.Helper()
		want := fmt.Sprintf("slot %s (primary) is already being published over %s since %s", id, holder, rej.HeldSince.UTC().Format(time.RFC3339))
		if rej.Message != want || rej.HeldBy != holder || rej.HeldSince.IsZero() {
			t.Fatalf("busy rejection %+v, want message %q", rej, want)
		}
	}

	rtmp := f.mustAdmit(f.adm, req(c.StreamKey, localhost))
	retype(slots.TypeLivePush)
	wantBusy(f.mustReject(f.adm, pushReq(id, "password1", otherHost, nil), ReasonBusy), "rtmp")
	f.close(rtmp)

	push := f.mustAdmit(f.adm, pushReq(id, "password1", otherHost, nil))
	retype(slots.TypeTransmux)
	f.stepBy(f.adm.Config().KeyRate.Interval) // the slot's attempt budget (burst 3) is shared too
	wantBusy(f.mustReject(f.adm, req(c.StreamKey, localhost), ReasonBusy), "push")
	if got := f.rejections("rtmp", ReasonBusy) + f.rejections("push", ReasonBusy); got != 2 {
		t.Fatalf("busy counted %v times", got)
	}
	if !notDone(push) {
		t.Fatalf("the push session ended: %v", push.Err())
	}
	f.close(push)
}

// testCheck: Check authenticates without a rate-limit unit, a lease or a
// registry entry, also while a session holds the slot; a wrong credential
// counts as a failed authentication.
func testCheck(t *testing.T, f *fixture) {
	id := f.livePush.Slot.ID
	for range 5 { // more than the per-key burst: Check takes none of it
		sl, err := f.adm.Check(f.ctx, pushReq(id, "password1", localhost, nil))
		if err != nil || sl.ID != id {
			t.Fatalf("Check = %v, %v", sl, err)
		}
	}
	if n := f.granted.count(); n != 0 || len(f.list(id)) != 0 {
		t.Fatalf("Check granted %d leases, registry %+v", n, f.list(id))
	}
	if _, err := f.adm.Check(f.ctx, pushReq(id, "wrong", localhost, nil)); ReasonOf(err) != ReasonUnauthorized {
		t.Fatalf("Check with a wrong password = %v", err)
	}
	if got := f.rejections("push", ReasonUnauthorized); got != 1 {
		t.Fatalf("unauthorized counted %v times", got)
	}
	s := f.mustAdmit(f.adm, pushReq(id, "password1", localhost, nil))
	if _, err := f.adm.Check(f.ctx, pushReq(id, "password1", localhost, nil)); err != nil {
		t.Fatalf("Check during the session = %v", err)
	}
	if _, err := f.adm.Check(f.ctx, pushReq(f.transmux.Slot.ID, "password1", localhost, nil)); ReasonOf(err) != ReasonForbidden {
		t.Fatalf("Check on a transmux slot = %v", err)
	}
	f.close(s)
}

// testCheckBlocked: a source that spent its budget through Check is then
// refused before Verify runs (the check a Live Push edge makes before
// bcrypt).
func testCheckBlocked(t *testing.T, f *fixture) {
	var calls atomic.Int32
	r := pushReq(f.livePush.Slot.ID, "wrong", localhost, &calls)
	for range DefaultAuthFailRate.Burst {
		if _, err := f.adm.Check(f.ctx, r); ReasonOf(err) != ReasonUnauthorized {
			t.Fatalf("Check = %v", err)
		}
	}
	if _, err := f.adm.Check(f.ctx, r); ReasonOf(err) != ReasonRateLimited {
		t.Fatalf("11th failure = %v", err)
	}
	right := pushReq(f.livePush.Slot.ID, "password1", localhost, &calls)
	rej := AsRejection(func() error { _, err := f.adm.Check(f.ctx, right); return err }())
	if rej.Reason != ReasonRateLimited || rej.RetryAfter <= 0 {
		t.Fatalf("blocked source, right password = %+v", rej)
	}
	if n := calls.Load(); n != int32(DefaultAuthFailRate.Burst)+1 {
		t.Fatalf("Verify called %d times, want %d", n, DefaultAuthFailRate.Burst+1)
	}
}
