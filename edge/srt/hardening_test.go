package srt

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/edge/segment"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

// TestConclusionStrayBytePanic (issue 13): one unauthenticated 65-byte
// datagram — a conclusion handshake with one stray byte after its CIF —
// panicked gosrt's handshake parser on the accept loop's goroutine and
// killed the process. Now the server counts it, logs it once, and goes on
// serving a real publisher; a flood of them is neither fatal nor a line per
// datagram in the log.
func TestConclusionStrayBytePanic(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	if !gosrtParsePanics(t, crasherDatagram()) {
		t.Fatal("the datagram no longer panics gosrt's parser: not the regression input any more")
	}
	w := newWorld(t, teststores.Disk(t))
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t), Config{})
	p := newProber(t, e.srv.Addr())

	p.send(t, crasherDatagram())
	// One accept loop takes handshakes in order: the induction's answer
	// comes after the crasher was handled.
	if _, err := p.induce(20 * time.Second); err != nil {
		t.Fatalf("after the crasher: %v", err)
	}
	if v, _ := e.metric(t, "liveingest_srt_handshake_panics_total", nil); v != 1 {
		t.Fatalf("liveingest_srt_handshake_panics_total = %v, want 1", v)
	}
	ingesttest.MustContain(t, "log", e.logs.String(), "panicked on a handshake packet", "index out of range",
		"gosrt/packet.(*CIFHandshake).Unmarshal")

	id, key := w.Slot(t, "after-crash")
	if stderr, err := publish(t, e.url(acID(key)), 6).Wait(t); err != nil {
		t.Fatalf("ffmpeg after the crasher: %v\n%s", err, stderr)
	}
	ingesttest.WaitFor(t, "the final playlist", 30*time.Second, func() bool {
		return w.Exists(t, id, "video.m3u8") && strings.Contains(w.Get(t, id, "video.m3u8"), "#EXT-X-ENDLIST")
	})
	if n := w.CheckPlaylist(t, id, "video.m3u8", 2*time.Second, 0.1, true); n < 2 {
		t.Fatalf("%d segments stored after the crasher", n)
	}
	ingesttest.WaitFor(t, "the publish's close line", 30*time.Second, func() bool {
		return strings.Contains(e.logs.String(), "srt connection closed")
	})

	// A flood: batches smaller than gosrt's handshake backlog (128), each
	// followed by an induction, so that none is dropped before the parser.
	const batches, batch = 6, 50
	before := strings.Count(e.logs.String(), "\n")
	for range batches {
		for range batch {
			p.send(t, crasherDatagram())
		}
		if _, err := p.induce(20 * time.Second); err != nil {
			t.Fatalf("during the flood: %v", err)
		}
	}
	if v, _ := e.metric(t, "liveingest_srt_handshake_panics_total", nil); v != 1+batches*batch {
		t.Errorf("liveingest_srt_handshake_panics_total = %v, want %d", v, 1+batches*batch)
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "panicked on a handshake packet"); n != 1 {
		t.Errorf("%d panic lines for %d crashers within a minute, want 1", n, 1+batches*batch)
	}
	if grew := strings.Count(logs, "\n") - before; grew > 5 {
		t.Errorf("the flood of %d datagrams added %d log lines", batches*batch, grew)
	}
}

// TestHandshakeByHand: the hand-built handshakes FuzzHandshake starts from
// are what libsrt sends: the induction is answered, and the conclusion
// (with the cookie) gets through gosrt's checks to the stream id and
// admission, which refuse the unknown key (REJX_UNAUTHORIZED, 1401 + 1000
// on the wire). And the second gosrt panic FuzzHandshake found is survived.
func TestHandshakeByHand(t *testing.T) {
	w := newWorld(t, teststores.Disk(t))
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t), Config{})
	p := newProber(t, e.srv.Addr())
	if got := p.conclude(t, conclusionDatagram(0x11223344, "#!::r=no-such-key,m=publish"), 0x11223344); got != 2401 {
		t.Fatalf("conclusion answered with handshake type %d, want 2401 (REJX_UNAUTHORIZED)", got)
	}
	if got := p.conclude(t, conclusionDatagram(0x11223345, "#!::r=a,r=b"), 0x11223345); got != 2400 {
		t.Fatalf("conclusion answered with handshake type %d, want 2400 (REJX_BAD_REQUEST)", got)
	}

	// FuzzHandshake's second find: a conclusion with a 48-byte MTU and no
	// HSREQ extension is rejected (REJ_ROGUE, 1004) for the MTU, then gosrt
	// marshals the packet it already sent and panics (nil payload).
	small := handshake{version: 5, hsType: hsConclusion, socketID: 0x11223346, mtu: 48}.datagram(nil)
	if got := p.conclude(t, small, 0x11223346); got != 1004 {
		t.Fatalf("small-MTU conclusion answered with handshake type %d, want 1004 (REJ_ROGUE)", got)
	}
	if _, err := p.induce(20 * time.Second); err != nil {
		t.Fatalf("after the small-MTU conclusion: %v", err)
	}
	if v, _ := e.metric(t, "liveingest_srt_handshake_panics_total", nil); v != 1 {
		t.Fatalf("liveingest_srt_handshake_panics_total = %v, want 1", v)
	}
	ingesttest.MustContain(t, "log", e.logs.String(), "gosrt/packet.(*pkt).MarshalCIF")
}

// TestNoKeyInLogs: publishes that fail every way a key can travel — in a
// malformed stream id, as a wrong key, with a wrong passphrase — and one
// that succeeds with the key also in the user name, with the server logging
// at debug level: no log line carries a key, a passphrase or a piece of
// either; lines name the key by its fingerprint.
func TestNoKeyInLogs(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	w := newWorld(t, teststores.Disk(t))
	co := ingesttest.MemoryCoord(t)
	p := w.Edge(t, "edge-a", co)
	debug := slog.New(slog.NewTextHandler(p.Logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("edge", "edge-a")
	srv, err := New(Config{Addr: "127.0.0.1:0"}, Deps{Admitter: p.Admission, Segmenter: p.Segmenter, Logger: debug, Metrics: p.Metrics})
	if err != nil {
		t.Fatal(err)
	}
	ingesttest.Serve(t, srv)
	e := &edge{srv: srv, co: co, logs: p.Logs, reg: p.Metrics}

	const pass, wrongPass = "Tg4-hU8w-Qz1r-Yx5k", "Wq9-zz81-Pq7x-Lm2v"
	ps := secret.String(pass)
	id, key := w.Slot(t, "secret", slots.Input{SRTPassphrase: &ps})
	wrongKey := "Zq" + key[2:] + "Zq"

	for _, c := range []struct {
		streamID string
		args     []string
		want     int
	}{
		{"#!::r=" + key + ",r=" + key, nil, 1400},
		{"unknown/" + key, nil, 1400},
		{"#!::r=" + key + ",m=publish" + key, nil, 1400},
		{"#!::r=" + key + ",t=" + key, nil, 1400},
		{"#!::r=" + key + "," + key, nil, 1400},
		{"#!::" + key + "=1,r=x," + key + "=2", nil, 1400},
		{"#!::r=live/" + key + "/x", nil, 1400},
		{acID(wrongKey), []string{pass}, 1401},
		{acID(key), []string{wrongPass}, 10},
	} {
		if got := e.rejectCode(t, c.streamID, c.args...); got != c.want {
			t.Errorf("stream id %d bytes: reject reason %d, want %d", len(c.streamID), got, c.want)
		}
	}
	f := publish(t, e.url("#!::u="+key+",r="+key+",m=publish", "passphrase="+pass), 6)
	if stderr, err := f.Wait(t); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, stderr)
	}
	ingesttest.WaitFor(t, "the final playlist", 30*time.Second, func() bool {
		return w.Exists(t, id, "video.m3u8") && strings.Contains(w.Get(t, id, "video.m3u8"), "#EXT-X-ENDLIST")
	})
	ingesttest.WaitFor(t, "the publish's debug line", 30*time.Second, func() bool {
		return strings.Contains(e.logs.String(), "publish stats")
	})

	logs := e.logs.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) < 10 {
		t.Fatalf("only %d log lines", len(lines))
	}
	for i, line := range lines {
		for name, s := range map[string]string{"key": key, "wrong key": wrongKey, "passphrase": pass, "wrong passphrase": wrongPass} {
			if piece, ok := sharesPiece(line, s, 10); ok {
				t.Errorf("log line %d carries the %s (%q): %s", i+1, name, piece, line)
			}
		}
	}
	ingesttest.MustContain(t, "log", logs, "key_fp="+secret.Fingerprint(key), "streamid_fp=", "reason=\"stream id refused\"")
}

// sharesPiece reports whether text contains n consecutive bytes of s.
func sharesPiece(text, s string, n int) (string, bool) {
	for i := 0; i+n <= len(s); i++ {
		if strings.Contains(text, s[i:i+n]) {
			return s[i : i+n], true
		}
	}
	return "", false
}

// panickyAdmitter panics for one stream key, else admits.
type panickyAdmitter struct {
	admit.Admitter
	key string
}

func (a panickyAdmitter) Admit(ctx context.Context, r admit.Request) (*admit.Session, error) {
	if r.StreamKey.Reveal() == a.key {
		panic("test: admission panicked")
	}
	return a.Admitter.Admit(ctx, r)
}

// panickySegmenter panics in Start while on is set.
type panickySegmenter struct {
	*segment.Segmenter
	on *atomic.Bool
}

func (s panickySegmenter) Start(ctx context.Context, st segment.Stream, tracks []media.Track) (*segment.Writer, error) {
	if s.on.Load() {
		panic("test: segmenter panicked")
	}
	return s.Segmenter.Start(ctx, st, tracks)
}

// TestConnectionPanic: a panic on a connection's goroutine ends that
// connection only. Before the handshake is answered the caller is rejected
// with REJX_ISE; after the accept the connection closes and its session
// (the lease) is released, so the publisher can come back at once; the
// server goes on, and the log has one panic line, not one per panic.
func TestConnectionPanic(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	w := newWorld(t, teststores.Disk(t))
	co := ingesttest.MemoryCoord(t)
	p := w.Edge(t, "edge-a", co)
	var segPanics atomic.Bool
	srv, err := New(Config{Addr: "127.0.0.1:0"}, Deps{
		Admitter:  panickyAdmitter{p.Admission, "panic-in-admission"},
		Segmenter: panickySegmenter{p.Segmenter, &segPanics},
		Logger:    p.Logger, Metrics: p.Metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	ingesttest.Serve(t, srv)
	e := &edge{srv: srv, co: co, logs: p.Logs, reg: p.Metrics}

	if got := e.rejectCode(t, acID("panic-in-admission")); got != 1500 {
		t.Fatalf("reject reason %d after a panic in admission, want 1500 REJX_ISE", got)
	}

	id, key := w.Slot(t, "fragile")
	segPanics.Store(true)
	f := publish(t, e.url(acID(key)), 20)
	ingesttest.WaitFor(t, "the second recovered panic", 30*time.Second, func() bool {
		v, _ := e.metric(t, "liveingest_srt_connection_panics_total", nil)
		return v == 2
	})
	ingesttest.WaitFor(t, "the slot to be free", 15*time.Second, func() bool { return len(ingesttest.Live(t, co.Registry, id)) == 0 })
	ended := ingesttest.Ended(t, co.Registry, id)
	if len(ended) != 1 || ended[0].EndReason != "internal: internal error" {
		t.Errorf("live status records %+v, want the internal end", ended)
	}
	select {
	case <-f.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("ffmpeg still connected after its connection panicked")
	}
	_, _ = f.Wait(t)

	segPanics.Store(false)
	if stderr, err := publish(t, e.url(acID(key)), 6).Wait(t); err != nil {
		t.Fatalf("ffmpeg after the panics: %v\n%s", err, stderr)
	}
	ingesttest.WaitFor(t, "the final playlist", 30*time.Second, func() bool {
		return w.Exists(t, id, "video.m3u8") && strings.Contains(w.Get(t, id, "video.m3u8"), "#EXT-X-ENDLIST")
	})
	logs := e.logs.String()
	if n := strings.Count(logs, "SRT connection panicked"); n != 1 {
		t.Errorf("%d panic lines for 2 panics within a minute, want 1", n)
	}
	if n := strings.Count(logs, `reason="internal error"`); n != 2 {
		t.Errorf("%d connections closed for an internal error, want 2", n)
	}
	ingesttest.MustContain(t, "log", logs, "test: admission panicked", "reject_code=1500")
}
