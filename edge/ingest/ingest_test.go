package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/coord/memory"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type fixture struct {
	st   store.Store
	co   *memory.Coord
	adm  *admit.Admission
	seg  *segment.Segmenter
	id   keys.SlotID
	key  string
	role keys.Role
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOn(t, teststores.Disk(t), segment.QueueConfig{})
}

// newFixtureOn is newFixture on st, with q as the segmenter's upload queue.
func newFixtureOn(t *testing.T, st store.Store, q segment.QueueConfig) *fixture {
	t.Helper()
	repo, err := slots.New(st, slots.Options{BcryptCost: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	name, typ := "cam", slots.TypeTransmux
	c, err := repo.Create(t.Context(), slots.Input{Name: &name, Type: &typ})
	if err != nil {
		t.Fatal(err)
	}
	co := memory.New(nil)
	cfg := admit.Config{EdgeID: "edge-test"}.WithDefaults()
	kl, _ := co.NewLimiter(cfg.KeyRate)
	al, _ := co.NewLimiter(cfg.AuthFailRate)
	adm, err := admit.New(cfg, admit.Deps{Slots: repo, Locker: co, Registry: co, KeyLimiter: kl, AuthLimiter: al,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	seg, err := segment.New(segment.Config{SegmentDuration: time.Second, DVRWindow: 30 * time.Second, Queue: q}, segment.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, co: co, adm: adm, seg: seg, id: c.Slot.ID, key: c.StreamKey.Reveal(), role: keys.Primary}
}

func (f *fixture) admit(t *testing.T) *admit.Session {
	t.Helper()
	s, err := f.adm.Admit(t.Context(), admit.Request{Protocol: admit.ProtocolRTMP, StreamKey: secret.String(f.key),
		Role: f.role, Remote: netip.MustParseAddrPort("192.0.2.1:5000")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func (f *fixture) leaseFree(t *testing.T) bool {
	l, err := f.co.Acquire(t.Context(), keys.SlotLease(f.id, f.role), time.Second, coord.Owner{ID: "probe", Edge: "t", Protocol: "rtmp"})
	if err != nil {
		return false
	}
	_ = l.Release(t.Context())
	return true
}

var aacTrack = media.Track{ID: 1, Codec: &codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{
	Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2}}}

// aacFrame is frame i of a synthetic AAC stream (the segmenter does not
// decode audio, so any bytes do).
func aacFrame(i int) media.AccessUnit {
	d := time.Duration(i) * 1024 * time.Second / 48000
	return media.AccessUnit{Track: 1, DTS: d, PTS: d, Key: true, Data: [][]byte{[]byte(fmt.Sprintf("frame-%06d", i))}}
}

func TestPublishAndClose(t *testing.T) {
	f := newFixture(t)
	sess := f.admit(t)
	p, err := Start(t.Context(), sess, f.seg, []media.Track{aacTrack})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 47 * 3 { // ~3 s
		if err := p.Write(t.Context(), aacFrame(i)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if ls, _ := f.co.List(t.Context(), string(f.id)); len(ls) != 1 {
		t.Fatalf("registry lists %d sessions while live", len(ls))
	}
	if f.leaseFree(t) {
		t.Fatal("lease free while publishing")
	}
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	rc, _, err := f.st.Get(t.Context(), keys.Media(f.id, f.role, "audio.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	b := new(strings.Builder)
	_, _ = fmt.Fprint(b, readAll(t, rc))
	if !strings.Contains(b.String(), "#EXT-X-ENDLIST") {
		t.Errorf("final playlist lacks EXT-X-ENDLIST:\n%s", b)
	}
	if !f.leaseFree(t) {
		t.Error("lease still held after Close")
	}
	if ls, _ := f.co.List(t.Context(), string(f.id)); len(ls) != 0 {
		t.Errorf("registry still lists %d sessions", len(ls))
	}
	if !errors.Is(sess.Err(), admit.ErrClosed) {
		t.Errorf("session Err = %v, want ErrClosed", sess.Err())
	}
	if err := p.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestUnsupportedCodec(t *testing.T) {
	f := newFixture(t)
	sess := f.admit(t)
	_, err := Start(t.Context(), sess, f.seg, []media.Track{{ID: 1, Codec: &codecs.MPEG1Audio{SampleRate: 44100, ChannelCount: 2}}})
	rej := admit.AsRejection(err)
	if rej.Reason != admit.ReasonBadCodec || !strings.Contains(rej.Message, "MPEG-1/2 audio (MP2/MP3)") {
		t.Fatalf("Start = %v, want bad-codec naming MP3", err)
	}
	if admit.ReasonOf(sess.Err()) != admit.ReasonBadCodec {
		t.Errorf("session Err = %v, want bad-codec", sess.Err())
	}
	select {
	case <-sess.Done():
	default:
		t.Error("session not ended")
	}
}

func TestBadInputEndsOnce(t *testing.T) {
	f := newFixture(t)
	sess := f.admit(t)
	p, err := Start(t.Context(), sess, f.seg, []media.Track{aacTrack})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(t.Context())
	if err := p.Write(t.Context(), aacFrame(10)); err != nil {
		t.Fatal(err)
	}
	err = p.Write(t.Context(), aacFrame(5)) // DTS backwards
	if rej := admit.AsRejection(err); rej.Reason != admit.ReasonBadCodec || !strings.Contains(rej.Message, "DTS went backwards") {
		t.Fatalf("Write = %v, want bad-codec about DTS", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("pipeline not done")
	}
	if admit.ReasonOf(p.Write(t.Context(), aacFrame(20))) != admit.ReasonBadCodec {
		t.Error("a Write after the end does not return the end's rejection")
	}
}

// TestReasonOf is the segmenter error → reason table.
func TestReasonOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want admit.Reason
		msg  string
	}{
		{fmt.Errorf("%w: no keyframe for 5s (maximum 4s)", segment.ErrGOPTooLong), admit.ReasonGOPTooLong, "keyframe interval too long: no keyframe for 5s"},
		{fmt.Errorf("%w: state carries token 9 ≥ 3", segment.ErrFenced), admit.ReasonBusy, "taken over by a newer publisher"},
		{fmt.Errorf("%w: a second video track (h265)", segment.ErrUnsupportedCodec), admit.ReasonBadCodec, "a second video track"},
		{fmt.Errorf("%w: empty access unit on track 1", segment.ErrBadInput), admit.ReasonBadCodec, "invalid media: bad input: empty access unit"},
		{fmt.Errorf("segment: put v/1/3.m4s: %w", store.ErrUnavailable), admit.ReasonStorageUnavailable, "storage unavailable"},
		{fmt.Errorf("%w: 8 segments (1000 bytes) still waiting for the store after 4s", segment.ErrStorageSlow), admit.ReasonStorageSlow, "segment storage too slow for the stream; retry"},
		{errors.New("boom"), admit.ReasonInternal, "internal error"},
	} {
		r, msg := reasonOf(tc.err)
		if r != tc.want || !strings.Contains(msg, tc.msg) {
			t.Errorf("reasonOf(%v) = %s %q, want %s containing %q", tc.err, r, msg, tc.want, tc.msg)
		}
	}
}

func readAll(t *testing.T, rc interface {
	Read([]byte) (int, error)
	Close() error
}) string {
	t.Helper()
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}
