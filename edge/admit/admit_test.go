package admit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/coord/memory"
	coordredis "github.com/liveingest/liveingest/origin/coord/redis"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// coordImpl is one process's view of a coordination service: a second
// call of peer gives another process sharing the same state (another edge).
type coordImpl struct {
	locker     coord.Locker
	registry   coord.Registry
	newLimiter func(coord.Rate) coord.Limiter
}

// env is one coordination implementation with the knobs the shared tests
// need. Memory runs on a ManualClock with the default timings (exact
// retry-afters, no waiting); redis runs on the real clock with short
// timings.
type env struct {
	name   string
	manual *memory.ManualClock // nil: real time
	cfg    Config
	peer   func(t *testing.T) coordImpl
}

// step lets d pass: the manual clock is advanced (firing renewals and
// heartbeats before it returns); real time is waited out.
func (e *env) step(d time.Duration) {
	if e.manual != nil {
		e.manual.Advance(d)
		return
	}
	time.Sleep(d)
}

func (e *env) clock() coord.Clock {
	if e.manual != nil {
		return e.manual
	}
	return coord.SystemClock{}
}

func memoryEnv(t *testing.T) *env {
	clock := memory.NewManualClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	c := memory.New(clock)
	im := coordImpl{locker: c, registry: c, newLimiter: func(r coord.Rate) coord.Limiter {
		l, err := c.NewLimiter(r)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}}
	return &env{name: "memory", manual: clock, cfg: Config{EdgeID: "edge-a"}, peer: func(*testing.T) coordImpl { return im }}
}

func redisEnv(t *testing.T) *env {
	addr := testenv.Redis(t).Addr
	var b [6]byte
	_, _ = rand.Read(b[:])
	ns := "admit-" + hex.EncodeToString(b[:])
	return &env{
		name: "redis",
		cfg: Config{
			EdgeID: "edge-a", LeaseTTL: 900 * time.Millisecond, HeartbeatTTL: 600 * time.Millisecond,
			KeyRate: coord.Rate{Burst: 3, Interval: time.Second}, BitrateWindow: time.Second,
		},
		peer: func(t *testing.T) coordImpl {
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
		},
	}
}

// fixture is one test's world: slots, an admission on edge-a, captured logs
// and metrics.
type fixture struct {
	t       *testing.T
	env     *env
	ctx     context.Context
	repo    *slots.Repo
	logs    *testenv.Buffer
	reg     *prometheus.Registry
	adm     *Admission
	down    *atomicBool // cuts adm off from coordination (see newEdge)
	granted *grants

	transmux, livePush, allowList *slots.Created
}

func newFixture(t *testing.T, e *env) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	logs := &testenv.Buffer{}
	// The repo logs to the same buffer, so the stream key check covers it too.
	repo, err := slots.New(teststores.Disk(t), slots.Options{BcryptCost: 4, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, env: e, ctx: ctx, repo: repo, logs: logs, reg: prometheus.NewRegistry(), granted: &grants{}}
	mk := func(in slots.Input) *slots.Created {
		c, err := repo.Create(ctx, in)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		return c
	}
	f.transmux = mk(slots.Input{Name: ptr("cam"), Type: ptr(slots.TypeTransmux), IngestBitrateKbps: ptr(1000), Backup: ptr(true)})
	f.livePush = mk(slots.Input{Name: ptr("push"), Type: ptr(slots.TypeLivePush),
		Credentials: &[]slots.CredentialIn{{Username: "enc", Password: "password1"}}})
	f.allowList = mk(slots.Input{Name: ptr("studio"), Type: ptr(slots.TypeTranscode720), PublishIPAllow: ptr([]string{"10.0.0.0/8"})})
	f.adm, f.down = f.newEdge(e.cfg)
	t.Cleanup(f.checkLogs)
	return f
}

// newAdmission starts an "edge" on a coordination peer of its own (for
// redis: its own client on the shared server and namespace).
func (f *fixture) newAdmission(cfg Config) *Admission {
	a, _ := f.newEdge(cfg)
	return a
}

// newEdge is newAdmission that also returns the edge's outage switch: while
// it is on, every coordination call of this edge (lease, limiters,
// registry) fails as an unreachable Redis would, and the coordination
// service itself goes on (leases lapse there, other edges are served).
func (f *fixture) newEdge(cfg Config) (*Admission, *atomicBool) {
	f.t.Helper()
	im := f.env.peer(f.t)
	cfg = cfg.WithDefaults()
	down := &atomicBool{}
	a, err := New(cfg, Deps{
		Slots: f.repo, Locker: &recordingLocker{Locker: im.locker, g: f.granted, down: down},
		Registry:    flakyRegistry{Registry: im.registry, down: down},
		KeyLimiter:  flakyLimiter{Limiter: im.newLimiter(cfg.KeyRate), down: down},
		AuthLimiter: flakyLimiter{Limiter: im.newLimiter(cfg.AuthFailRate), down: down},
		Logger:      slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:     f.reg, Clock: f.env.clock(),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return a, down
}

// checkLogs fails the test if any stream key reached the log.
func (f *fixture) checkLogs() {
	out := f.logs.String()
	for _, c := range []*slots.Created{f.transmux, f.livePush, f.allowList} {
		if strings.Contains(out, c.StreamKey.Reveal()) {
			f.t.Errorf("a stream key appears in the log:\n%s", out)
		}
	}
	if strings.Contains(out, unknownKey) {
		f.t.Errorf("an unknown stream key appears in the log")
	}
}

const unknownKey = "sk_this-is-not-a-key-0123456789"

var (
	localhost = netip.MustParseAddrPort("127.0.0.1:50000")
	otherHost = netip.MustParseAddrPort("192.0.2.7:1935")
)

func req(key secret.String, remote netip.AddrPort) Request {
	return Request{Protocol: ProtocolRTMP, StreamKey: key, Role: keys.Primary, Remote: remote}
}

func (f *fixture) admit(a *Admission, r Request) (*Session, *Rejection) {
	f.t.Helper()
	s, err := a.Admit(f.ctx, r)
	if err != nil {
		var rej *Rejection
		if !errors.As(err, &rej) {
			f.t.Fatalf("Admit error %T %v is not a *Rejection", err, err)
		}
		if s != nil {
			f.t.Fatal("Admit returned a session and an error")
		}
		return nil, rej
	}
	f.t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, nil
}

func (f *fixture) mustAdmit(a *Admission, r Request) *Session {
	f.t.Helper()
	s, rej := f.admit(a, r)
	if rej != nil {
		f.t.Fatalf("Admit = %v, want a session", rej)
	}
	return s
}

func (f *fixture) mustReject(a *Admission, r Request, want Reason) *Rejection {
	f.t.Helper()
	s, rej := f.admit(a, r)
	if rej == nil {
		_ = s.Close(f.ctx)
		f.t.Fatalf("Admit accepted, want %s", want)
	}
	if rej.Reason != want {
		f.t.Fatalf("Admit = %v, want reason %s", rej, want)
	}
	return rej
}

func (f *fixture) close(s *Session) {
	f.t.Helper()
	if err := s.Close(f.ctx); err != nil {
		f.t.Fatalf("Close: %v", err)
	}
}

// rejections reads liveingest_ingest_rejections_total{protocol,reason}.
func (f *fixture) rejections(protocol string, r Reason) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "liveingest_ingest_rejections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["protocol"] == protocol && labels["reason"] == string(r) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// waitDone waits for the session to end, with a deadline.
func waitDone(t *testing.T, s *Session, within time.Duration) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(within):
		t.Fatalf("session did not end within %v", within)
	}
}

func notDone(s *Session) bool {
	select {
	case <-s.Done():
		return false
	default:
		return true
	}
}

// TestAdmission runs every admission test against both coordination
// implementations.
func TestAdmission(t *testing.T) {
	envs := map[string]func(*testing.T) *env{"memory": memoryEnv, "redis": redisEnv}
	tests := map[string]func(*testing.T, *fixture){
		"UnknownKeyAndFailedAuthBudget":   testUnknownKey,
		"ForbiddenIP":                     testForbiddenIP,
		"WrongSlotType":                   testWrongSlotType,
		"KeyRateLimit":                    testKeyRateLimit,
		"Busy":                            testBusy,
		"BusyAcrossEdges":                 testBusyAcrossEdges,
		"LeaseGoneReacquired":             testLeaseGoneReacquired,
		"ShortOutageRenews":               testShortOutageRenews,
		"SurvivesOutagePastTTL":           testSurvivesOutage,
		"TakenOverDuringOutage":           testTakenOverDuringOutage,
		"BitrateExceeded":                 testBitrateExceeded,
		"BitrateBelowLimit":               testBitrateBelow,
		"RegistryShowsSession":            testRegistry,
		"RegistryShowsLinkStats":          testLinkStats,
		"VerifySecondCredential":          testVerify,
		"EndWithReason":                   testEndWithReason,
		"BadRequest":                      testBadRequest,
		"BySlotID":                        testBySlotID,
		"BySlotIDUnknown":                 testBySlotIDUnknown,
		"BySlotIDRequest":                 testBySlotIDRequest,
		"PullBySlotID":                    testPullBySlotID,
		"FailedAuthSharedAcrossProtocols": testFailedAuthShared,
		"BusyAcrossProtocols":             testBusyAcrossProtocols,
		"CheckTakesNoLease":               testCheck,
		"CheckBlockedBeforeVerify":        testCheckBlocked,
	}
	for en, mk := range envs {
		t.Run(en, func(t *testing.T) {
			t.Parallel()
			for name, test := range tests {
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					test(t, newFixture(t, mk(t)))
				})
			}
		})
	}
}

func testUnknownKey(t *testing.T, f *fixture) {
	bad := req(unknownKey, localhost)
	for i := range 10 {
		rej := f.mustReject(f.adm, bad, ReasonUnauthorized)
		if i == 0 && (rej.Slot != "" || strings.Contains(rej.Error(), unknownKey)) {
			t.Fatalf("rejection leaks: %v", rej)
		}
	}
	// The 11th failure from the address is one too many.
	rej := f.mustReject(f.adm, bad, ReasonRateLimited)
	if rej.RetryAfter <= 0 || rej.RetryAfter > DefaultAuthFailRate.Interval {
		t.Fatalf("RetryAfter = %v, want (0, %v]", rej.RetryAfter, DefaultAuthFailRate.Interval)
	}
	if f.env.manual != nil && rej.RetryAfter != DefaultAuthFailRate.Interval {
		t.Fatalf("RetryAfter = %v, want exactly %v", rej.RetryAfter, DefaultAuthFailRate.Interval)
	}
	// Blocked: even the right key is refused, without a lookup.
	f.mustReject(f.adm, req(f.transmux.StreamKey, localhost), ReasonRateLimited)
	// Another address is not affected.
	f.mustReject(f.adm, req(unknownKey, otherHost), ReasonUnauthorized)
	if got := f.rejections("rtmp", ReasonUnauthorized); got != 11 {
		t.Fatalf("unauthorized counted %v times, want 11", got)
	}
	if got := f.rejections("rtmp", ReasonRateLimited); got != 2 {
		t.Fatalf("rate-limited counted %v times, want 2", got)
	}
	if f.env.manual != nil {
		f.env.step(DefaultAuthFailRate.Interval)
		f.close(f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost)))
	}
}

func testForbiddenIP(t *testing.T, f *fixture) {
	rej := f.mustReject(f.adm, req(f.allowList.StreamKey, localhost), ReasonForbiddenIP)
	if rej.Slot != string(f.allowList.Slot.ID) {
		t.Fatalf("Slot = %q", rej.Slot)
	}
	// An IPv4-mapped address from a dual-stack listener is matched as IPv4.
	f.close(f.mustAdmit(f.adm, req(f.allowList.StreamKey, netip.MustParseAddrPort("[::ffff:10.1.2.3]:4000"))))
	if got := f.rejections("rtmp", ReasonForbiddenIP); got != 1 {
		t.Fatalf("forbidden-ip counted %v times", got)
	}
}

func testWrongSlotType(t *testing.T, f *fixture) {
	rej := f.mustReject(f.adm, req(f.livePush.StreamKey, localhost), ReasonForbidden)
	if !strings.Contains(rej.Message, "live-push") {
		t.Fatalf("Message = %q, want the slot type named", rej.Message)
	}
	// A pull edge may not take a transmux slot either.
	r := req(f.transmux.StreamKey, localhost)
	r.Protocol = ProtocolPull
	f.mustReject(f.adm, r, ReasonForbidden)
	// The backup role needs a slot with backup ingest.
	r = req(f.allowList.StreamKey, netip.MustParseAddrPort("10.0.0.1:1"))
	r.Role = keys.Backup
	f.mustReject(f.adm, r, ReasonForbidden)
}

func testKeyRateLimit(t *testing.T, f *fixture) {
	r := req(f.transmux.StreamKey, localhost)
	for range 3 {
		f.close(f.mustAdmit(f.adm, r))
	}
	rej := f.mustReject(f.adm, r, ReasonRateLimited)
	iv := f.adm.Config().KeyRate.Interval
	if rej.RetryAfter <= 0 || rej.RetryAfter > iv {
		t.Fatalf("RetryAfter = %v, want (0, %v]", rej.RetryAfter, iv)
	}
	if f.env.manual != nil && rej.RetryAfter != 10*time.Second {
		t.Fatalf("RetryAfter = %v, want exactly 10s", rej.RetryAfter)
	}
	if rej.Slot != string(f.transmux.Slot.ID) {
		t.Fatalf("Slot = %q", rej.Slot)
	}
	// The backup role has its own budget.
	rb := r
	rb.Role = keys.Backup
	f.close(f.mustAdmit(f.adm, rb))
	// After the retry-after the key may publish again.
	f.env.step(rej.RetryAfter)
	f.close(f.mustAdmit(f.adm, r))
}

func testBusy(t *testing.T, f *fixture) {
	r := req(f.transmux.StreamKey, localhost)
	first := f.mustAdmit(f.adm, r)
	if first.Token() == 0 || first.Slot().ID != f.transmux.Slot.ID || first.Role() != keys.Primary {
		t.Fatalf("session = token %d slot %s role %s", first.Token(), first.Slot().ID, first.Role())
	}
	second := r
	second.Protocol, second.Remote = ProtocolSRT, otherHost
	rej := f.mustReject(f.adm, second, ReasonBusy)
	if rej.HeldBy != "rtmp" || rej.HeldEdge != "edge-a" || rej.HeldSince.IsZero() || !strings.Contains(rej.Message, "rtmp") {
		t.Fatalf("busy rejection = %+v", rej)
	}
	if !errors.Is(rej, coord.ErrHeld) {
		t.Fatalf("busy rejection does not unwrap to ErrHeld: %v", rej)
	}
	if got := f.rejections("srt", ReasonBusy); got != 1 {
		t.Fatalf("busy counted %v times", got)
	}
	f.wantEndRecord(f.transmux.Slot.ID, "busy: ", "srt")
	f.close(first)
	if !errors.Is(first.Err(), ErrClosed) || notDone(first) {
		t.Fatalf("after Close: Err = %v", first.Err())
	}
	if err := first.Close(f.ctx); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	third := f.mustAdmit(f.adm, second)
	if third.Token() <= first.Token() {
		t.Fatalf("token %d not above the previous grant's %d", third.Token(), first.Token())
	}
}

func testBusyAcrossEdges(t *testing.T, f *fixture) {
	cfg := f.env.cfg
	cfg.EdgeID = "edge-b"
	edgeB := f.newAdmission(cfg)
	r := req(f.transmux.StreamKey, localhost)
	first := f.mustAdmit(f.adm, r)
	rej := f.mustReject(edgeB, r, ReasonBusy)
	if rej.HeldEdge != "edge-a" || rej.HeldBy != "rtmp" {
		t.Fatalf("busy rejection = %+v", rej)
	}
	f.close(first)
	s := f.mustAdmit(edgeB, r)
	f.close(s)
}

// feed publishes kbps for d in steps of d/40: one access unit per step.
func feed(f *fixture, s *Session, kbps int, d time.Duration) {
	step := d / 40
	size := int(int64(kbps) * 1000 / 8 * int64(step) / int64(time.Second))
	au := media.AccessUnit{Track: 1, Key: true, Data: [][]byte{make([]byte, size)}}
	for range 40 {
		if !notDone(s) {
			return
		}
		s.ObserveAU(au, media.Track{ID: 1})
		f.env.step(step)
	}
}

func testBitrateExceeded(t *testing.T, f *fixture) {
	s := f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost))
	w := f.adm.Config().BitrateWindow
	feed(f, s, 2000, 2*w) // twice the 1000 kbps limit
	waitDone(t, s, 5*time.Second)
	rej := AsRejection(s.Err())
	if rej.Reason != ReasonBitrateExceeded || !strings.Contains(rej.Message, "1000 kbps") {
		t.Fatalf("Err = %v, want bitrate-exceeded", s.Err())
	}
	f.close(s)
	if got := f.rejections("rtmp", ReasonBitrateExceeded); got != 1 {
		t.Fatalf("bitrate-exceeded counted %v times", got)
	}
	if n := strings.Count(f.logs.String(), "reason=bitrate-exceeded"); n != 1 {
		t.Fatalf("bitrate-exceeded logged %d times:\n%s", n, f.logs.String())
	}
	f.wantEndRecord(f.transmux.Slot.ID, "bitrate-exceeded: ", "rtmp")
}

// wantEndRecord asserts that the registry keeps a record of an end with the
// reason prefix for the slot's live status (R-EDGE-5), and no more than one.
func (f *fixture) wantEndRecord(slot keys.SlotID, reasonPrefix, protocol string) {
	f.t.Helper()
	ss, err := f.adm.deps.Registry.List(f.ctx, string(slot))
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, s := range ss {
		if !s.Ended.IsZero() && strings.HasPrefix(s.EndReason, reasonPrefix) {
			n++
			if s.Protocol != protocol || s.Edge == "" {
				f.t.Errorf("end record %+v", s)
			}
		}
	}
	if n != 1 {
		f.t.Fatalf("%d end records with %q in %+v, want 1", n, reasonPrefix, ss)
	}
}

func testBitrateBelow(t *testing.T, f *fixture) {
	s := f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost))
	w := f.adm.Config().BitrateWindow
	feed(f, s, 1100, 2*w) // over the limit, under limit × 1.2
	if !notDone(s) {
		t.Fatalf("session ended: %v", s.Err())
	}
	if kbps := s.BitrateKbps(); kbps < 500 || kbps > 1200 {
		t.Fatalf("BitrateKbps = %d, want about 1100", kbps)
	}
	f.close(s)
}

func testRegistry(t *testing.T, f *fixture) {
	s := f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost))
	reg := f.env.peer(t).registry
	id := string(f.transmux.Slot.ID)
	list := func() []coord.Session {
		l, err := reg.List(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := list(); len(l) != 1 || l[0].ID != s.ID() {
		t.Fatalf("registry right after Admit = %+v", l)
	}
	// Publish for a heartbeat period and a bit: the next heartbeat carries
	// the measured bitrate.
	hb := f.adm.Config().HeartbeatTTL / 3
	var got coord.Session
	deadline := time.Now().Add(10 * time.Second)
	for {
		feed(f, s, 800, hb+hb/4)
		if l := list(); len(l) == 1 && l[0].BitrateKbps > 0 {
			got = l[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry never showed a bitrate: %+v", list())
		}
	}
	if got.Protocol != "rtmp" || got.Edge != "edge-a" || got.Remote != localhost.String() || got.Role != "primary" ||
		got.Started.IsZero() || got.BitrateKbps > 1000 {
		t.Fatalf("registry entry = %+v", got)
	}
	f.close(s)
	if l := list(); len(l) != 0 {
		t.Fatalf("registry after Close = %+v", l)
	}
}

func testLinkStats(t *testing.T, f *fixture) {
	s := f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost))
	want := coord.LinkStats{RTTMs: 12.5, ReceiveRateKbps: 2500, PacketsReceived: 1000, PacketsLost: 7, PacketsRetransmitted: 6, PacketsDropped: 1}
	s.SetLinkStats(func() coord.LinkStats { return want })
	reg := f.env.peer(t).registry
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.env.step(f.adm.Config().HeartbeatTTL/3 + time.Millisecond)
		l, err := reg.List(f.ctx, string(f.transmux.Slot.ID))
		if err != nil {
			t.Fatal(err)
		}
		if len(l) == 1 && l[0].Link != nil {
			if *l[0].Link != want {
				t.Fatalf("registry link = %+v, want %+v", *l[0].Link, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry never showed link stats: %+v", l)
		}
	}
	f.close(s)
}

// testVerify: a protocol's second credential (the SRT passphrase) is
// checked after the allow-list and before the rate limit and lease, and a
// wrong one counts as a failed authentication.
func testVerify(t *testing.T, f *fixture) {
	calls := 0
	wrong := req(f.transmux.StreamKey, localhost)
	wrong.Verify = func(sl *slots.Slot) error {
		calls++
		if sl.ID != f.transmux.Slot.ID {
			t.Errorf("Verify got slot %s", sl.ID)
		}
		return errors.New("wrong SRT passphrase")
	}
	for i := range 10 {
		rej := f.mustReject(f.adm, wrong, ReasonUnauthorized)
		if i == 0 && (rej.Message != "wrong SRT passphrase" || rej.Slot != string(f.transmux.Slot.ID)) {
			t.Fatalf("rejection = %+v", rej)
		}
	}
	// The 11th wrong credential spends the address's failed-authentication
	// budget; from then on the address is refused before the key is even
	// looked up (Verify is not called again).
	f.mustReject(f.adm, wrong, ReasonRateLimited)
	f.mustReject(f.adm, wrong, ReasonRateLimited)
	if calls != 11 {
		t.Fatalf("Verify called %d times, want 11", calls)
	}
	if n := f.granted.count(); n != 0 {
		t.Fatalf("%d leases granted to a wrong credential", n)
	}
	// Not allowed from this address: forbidden-ip before the credential.
	fromOutside := req(f.allowList.StreamKey, otherHost)
	fromOutside.Verify = func(*slots.Slot) error { t.Error("Verify called before the allow-list"); return nil }
	f.mustReject(f.adm, fromOutside, ReasonForbiddenIP)
	// From another address with the right credential: admitted.
	right := req(f.transmux.StreamKey, otherHost)
	right.Verify = func(*slots.Slot) error { return nil }
	f.close(f.mustAdmit(f.adm, right))
}

func testEndWithReason(t *testing.T, f *fixture) {
	s := f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost))
	s.End(ReasonBadCodec, "mpeg-4 part 2 video is not supported")
	s.End(ReasonGOPTooLong, "ignored: the session already ended")
	waitDone(t, s, time.Second)
	if ReasonOf(s.Err()) != ReasonBadCodec {
		t.Fatalf("Err = %v", s.Err())
	}
	f.close(s)
	if ReasonOf(s.Err()) != ReasonBadCodec {
		t.Fatalf("Close replaced the reason: %v", s.Err())
	}
	if f.rejections("rtmp", ReasonBadCodec) != 1 || f.rejections("rtmp", ReasonGOPTooLong) != 0 {
		t.Fatal("end not counted exactly once")
	}
	// The slot is free again at once.
	f.close(f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost)))
}

func testBadRequest(t *testing.T, f *fixture) {
	r := req(f.transmux.StreamKey, localhost)
	r.Protocol = "gopher"
	f.mustReject(f.adm, r, ReasonInternal)
	if f.rejections("unknown", ReasonInternal) != 1 {
		t.Fatal("unknown protocol not counted under protocol=unknown")
	}
	r = req(f.transmux.StreamKey, localhost)
	r.Role = "tertiary"
	f.mustReject(f.adm, r, ReasonInternal)
	f.mustReject(f.adm, req(f.transmux.StreamKey, netip.AddrPort{}), ReasonInternal)
}

// TestRedisDown: with Redis gone, a valid key fails fast with a retriable
// reason (R-COORD-4); an unknown key is still just unauthorized.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedis(t)
	c, err := coordredis.New(coordredis.Config{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	e := &env{name: "redis-down", cfg: Config{EdgeID: "edge-a"}, peer: func(t *testing.T) coordImpl {
		return coordImpl{locker: c, registry: c, newLimiter: func(r coord.Rate) coord.Limiter {
			l, err := c.NewLimiter(r)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}}
	}}
	f := newFixture(t, e)
	s := f.mustAdmit(f.adm, req(f.transmux.StreamKey, localhost))
	srv.Kill()
	start := time.Now()
	rej := f.mustReject(f.adm, req(f.transmux.StreamKey, otherHost), ReasonStorageUnavailable)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Admit took %v with Redis down", el)
	}
	if rej.RetryAfter <= 0 || !rej.Reason.Retriable() || !errors.Is(rej, coord.ErrUnavailable) {
		t.Fatalf("rejection = %+v", rej)
	}
	f.mustReject(f.adm, req(unknownKey, otherHost), ReasonUnauthorized)
	// Close cannot reach Redis: it says so, and still returns.
	closeCtx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	if err := s.Close(closeCtx); err == nil {
		t.Fatal("Close with Redis down reported success")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{EdgeID: "e"}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if ok.KeyRate != coord.IngestRate || ok.AuthFailRate != DefaultAuthFailRate || ok.LeaseTTL != 10*time.Second ||
		ok.HeartbeatTTL != 15*time.Second || ok.BitrateTolerance != 1.2 || ok.BitrateWindow != 10*time.Second {
		t.Fatalf("defaults = %+v", ok)
	}
	for field, mut := range map[string]func(*Config){
		"EdgeID":           func(c *Config) { c.EdgeID = "" },
		"LeaseTTL":         func(c *Config) { c.LeaseTTL = -1 },
		"HeartbeatTTL":     func(c *Config) { c.HeartbeatTTL = -1 },
		"KeyRate":          func(c *Config) { c.KeyRate.Burst = 0 },
		"AuthFailRate":     func(c *Config) { c.AuthFailRate.Interval = -1 },
		"BitrateTolerance": func(c *Config) { c.BitrateTolerance = 0.5 },
		"BitrateWindow":    func(c *Config) { c.BitrateWindow = time.Millisecond },
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "Config."+field) {
			t.Errorf("%s: Validate = %v", field, err)
		}
	}
	if _, err := New(ok, Deps{}); err == nil || !strings.Contains(err.Error(), "Deps.Slots") {
		t.Errorf("New without deps = %v", err)
	}
}

func TestReasonTables(t *testing.T) {
	want := map[Reason][2]int{
		ReasonUnauthorized: {401, 1401}, ReasonNotFound: {404, 1404}, ReasonForbiddenIP: {403, 1403}, ReasonForbidden: {403, 1403},
		ReasonRateLimited: {429, 1429}, ReasonBusy: {409, 1409}, ReasonBadCodec: {415, 1415},
		ReasonBitrateExceeded: {422, 1400}, ReasonGOPTooLong: {422, 1400},
		ReasonStorageUnavailable: {503, 1503}, ReasonStorageSlow: {503, 1503}, ReasonInternal: {500, 1500}, Reason("nonsense"): {500, 1500},
	}
	if len(Reasons) != len(want)-1 {
		t.Fatalf("Reasons has %d entries, table %d", len(Reasons), len(want)-1)
	}
	for r, w := range want {
		if r.HTTPStatus() != w[0] || r.SRTCode() != w[1] {
			t.Errorf("%s: HTTP %d SRT %d, want %v", r, r.HTTPStatus(), r.SRTCode(), w)
		}
	}
	if AsRejection(errors.New("x")).Reason != ReasonInternal || ReasonOf(nil) != "" {
		t.Error("AsRejection / ReasonOf of a plain error")
	}
}

// recordingLocker hands out the leases it grants to the test (to release
// them behind the session's back) and fails, with its leases, as an
// unreachable Redis would while down is on.
type recordingLocker struct {
	coord.Locker
	g    *grants
	down *atomicBool
}

type grants struct {
	mu     sync.Mutex
	leases []coord.Lease // as the coordination implementation granted them, unwrapped
}

func (g *grants) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.leases)
}

func (g *grants) last(t *testing.T) coord.Lease {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.leases) == 0 {
		t.Fatal("no lease granted")
	}
	return g.leases[len(g.leases)-1]
}

// errDown is what a coordination call returns while its edge is cut off.
var errDown = fmt.Errorf("test: %w: edge cut off", coord.ErrUnavailable)

func (l *recordingLocker) Acquire(ctx context.Context, name string, ttl time.Duration, o coord.Owner) (coord.Lease, error) {
	if l.down.Load() {
		return nil, errDown
	}
	lease, err := l.Locker.Acquire(ctx, name, ttl, o)
	if err != nil {
		return nil, err
	}
	l.g.mu.Lock()
	l.g.leases = append(l.g.leases, lease)
	l.g.mu.Unlock()
	return &flakyLease{Lease: lease, down: l.down}, nil
}

// flakyLease is a lease whose calls fail while its edge is cut off; its
// grant then lives on in the coordination service until its ttl passes, as
// in a Redis the edge cannot reach.
type flakyLease struct {
	coord.Lease
	down *atomicBool
}

func (l *flakyLease) Renew(ctx context.Context) error {
	if l.down.Load() {
		return errDown
	}
	return l.Lease.Renew(ctx)
}

func (l *flakyLease) Release(ctx context.Context) error {
	if l.down.Load() {
		return errDown
	}
	return l.Lease.Release(ctx)
}

type flakyLimiter struct {
	coord.Limiter
	down *atomicBool
}

func (l flakyLimiter) Allow(ctx context.Context, key string) (time.Duration, error) {
	if l.down.Load() {
		return 0, errDown
	}
	return l.Limiter.Allow(ctx, key)
}

type flakyRegistry struct {
	coord.Registry
	down *atomicBool
}

func (r flakyRegistry) Heartbeat(ctx context.Context, s coord.Session, ttl time.Duration) error {
	if r.down.Load() {
		return errDown
	}
	return r.Registry.Heartbeat(ctx, s, ttl)
}

func (r flakyRegistry) Remove(ctx context.Context, slot, id string) error {
	if r.down.Load() {
		return errDown
	}
	return r.Registry.Remove(ctx, slot, id)
}

func (r flakyRegistry) List(ctx context.Context, slot string) ([]coord.Session, error) {
	if r.down.Load() {
		return nil, errDown
	}
	return r.Registry.List(ctx, slot)
}

type atomicBool struct {
	mu sync.Mutex
	v  bool
}

func (b *atomicBool) Load() bool   { b.mu.Lock(); defer b.mu.Unlock(); return b.v }
func (b *atomicBool) Store(v bool) { b.mu.Lock(); defer b.mu.Unlock(); b.v = v }

func ptr[T any](v T) *T { return &v }
