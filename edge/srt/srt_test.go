package srt

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

// publishSeconds keeps the suite fast.
const publishSeconds = 12

// minFrames is what a decode of secs seconds at 25 fps must at least show:
// SRT live mode may drop the tail when the caller closes (TLPKTDROP), so
// the check is a floor, not an exact count.
func minFrames(secs int) int { return (secs - 2) * 25 }

// TestPublishFFmpeg: ffmpeg publishes H.264 + AAC in MPEG-TS over SRT with
// the access-control stream id (MinIO and disk stores); while live the
// registry lists the session with its link statistics and the metrics carry
// them; afterwards ffprobe decodes the HLS and DASH outputs.
func TestPublishFFmpeg(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	for _, tc := range []struct {
		name         string
		st           func(*testing.T) store.Store
		codecArgs    []string
		video, audio string // ffprobe codec names
	}{
		{"minio", teststores.MinIO, nil, "h264", "aac"},
		{"disk", teststores.Disk, nil, "h264", "aac"},
		{"hevc-opus", teststores.Disk, []string{"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=50:min-keyint=50:scenecut=0:log-level=error",
			"-c:a", "libopus", "-b:a", "64k"}, "hevc", "opus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, tc.st(t))
			e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t), Config{})
			id, key := w.Slot(t, "cam-"+tc.name)
			f := publish(t, e.url(acID(key), "latency=200000"), publishSeconds, tc.codecArgs...)

			var got coord.Session
			ingesttest.WaitFor(t, "a live SRT session with link statistics", 20*time.Second, func() bool {
				for _, s := range ingesttest.Live(t, e.co.Registry, id) {
					if s.Protocol == "srt" && s.BitrateKbps > 0 && s.Link != nil && s.Link.PacketsReceived > 0 {
						got = s
						return true
					}
				}
				return false
			})
			if got.Link.ReceiveRateKbps <= 0 || got.Edge != "edge-a" || got.Role != "primary" {
				t.Errorf("live session = %+v, link %+v", got, *got.Link)
			}
			labels := map[string]string{"slot": string(id), "role": "primary"}
			if v, ok := e.metric(t, "liveingest_srt_packets_received_total", labels); !ok || v <= 0 {
				t.Errorf("liveingest_srt_packets_received_total{slot} = %v (present %v)", v, ok)
			}
			if _, ok := e.metric(t, "liveingest_srt_rtt_seconds", labels); !ok {
				t.Error("liveingest_srt_rtt_seconds{slot} missing while publishing")
			}
			if v, _ := e.metric(t, "liveingest_srt_publishers", nil); v != 1 {
				t.Errorf("liveingest_srt_publishers = %v", v)
			}

			if stderr, err := f.Wait(t); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, stderr)
			}
			ingesttest.WaitFor(t, "the session to leave the registry", 15*time.Second, func() bool {
				return len(ingesttest.Live(t, e.co.Registry, id)) == 0
			})
			if _, ok := e.metric(t, "liveingest_srt_packets_received_total", labels); ok {
				t.Error("per-connection metrics outlive the connection")
			}
			n := w.CheckPlaylist(t, id, "video.m3u8", 2*time.Second, 0.1, true)
			if n < publishSeconds/2-2 {
				t.Errorf("video.m3u8 lists %d segments for %d s", n, publishSeconds)
			}
			base := w.PlaybackURL(t, id)
			for _, m := range []string{"index.m3u8", "manifest.mpd"} {
				fr := testenv.Probe(t, base+m)
				if fr[tc.video] < minFrames(publishSeconds) || fr[tc.audio] == 0 {
					t.Errorf("%s decodes to %v, want ≥ %d %s frames and some %s", m, fr, minFrames(publishSeconds), tc.video, tc.audio)
				}
			}
			if strings.Contains(e.logs.String(), key) {
				t.Error("the stream key appears in the logs")
			}
		})
	}
}

// TestPublishSRTLiveTransmit: srt-live-transmit relays a live MPEG-TS from
// ffmpeg with the plain "live/<key>" stream id.
func TestPublishSRTLiveTransmit(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	if _, err := exec.LookPath("srt-live-transmit"); err != nil {
		t.Fatal("srt-live-transmit not installed: make deps (srt-tools)")
	}
	w := newWorld(t, teststores.Disk(t))
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t), Config{})
	id, key := w.Slot(t, "slt")
	const secs = 10
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	pipeline := "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=640x360:rate=25 " +
		"-f lavfi -i sine=frequency=440:sample_rate=48000 -t 10 -c:v libx264 -preset ultrafast -g 50 -keyint_min 50 " +
		"-c:a aac -f mpegts - | srt-live-transmit -a:no -q file://con '" + e.url("live/"+key) + "'"
	out, err := exec.CommandContext(ctx, "sh", "-c", pipeline).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg | srt-live-transmit: %v\n%s", err, out)
	}
	ingesttest.WaitFor(t, "the final playlist", 20*time.Second, func() bool {
		return w.Exists(t, id, "video.m3u8") && strings.Contains(w.Get(t, id, "video.m3u8"), "#EXT-X-ENDLIST")
	})
	w.CheckPlaylist(t, id, "video.m3u8", 2*time.Second, 0.1, true)
	base := w.PlaybackURL(t, id)
	for _, m := range []string{"index.m3u8", "manifest.mpd"} {
		fr := testenv.Probe(t, base+m)
		if fr["h264"] < minFrames(secs) || fr["aac"] == 0 {
			t.Errorf("%s decodes to %v, want ≥ %d h264 frames and some aac", m, fr, minFrames(secs))
		}
	}
}

// TestRejections: every refusal is an SRT reject reason the caller's
// library reports (libsrt's srt_getrejectreason).
func TestRejections(t *testing.T) {
	w := newWorld(t, teststores.Disk(t))
	co := ingesttest.MemoryCoord(t)
	e := w.edge(t, "edge-a", co, Config{})

	t.Run("unknown-key", func(t *testing.T) {
		if got := e.rejectCode(t, acID("no-such-key")); got != 1401 {
			t.Fatalf("reject reason %d, want 1401 REJX_UNAUTHORIZED", got)
		}
	})
	t.Run("ip-not-allowed", func(t *testing.T) {
		_, key := w.Slot(t, "studio", slots.Input{PublishIPAllow: &[]string{"10.0.0.0/8"}})
		if got := e.rejectCode(t, acID(key)); got != 1403 {
			t.Fatalf("reject reason %d, want 1403 REJX_FORBIDDEN", got)
		}
	})
	t.Run("busy", func(t *testing.T) {
		// Another protocol holds the slot's lease (the cmd test does it with
		// a real RTMP publisher).
		id, key := w.Slot(t, "held")
		l, err := co.Locker.Acquire(t.Context(), keys.SlotLease(id, keys.Primary), time.Minute, coord.Owner{ID: "rtmp-1", Edge: "edge-b", Protocol: "rtmp"})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release(context.Background())
		if got := e.rejectCode(t, acID(key)); got != 1409 {
			t.Fatalf("reject reason %d, want 1409", got)
		}
		recent := ingesttest.Ended(t, co.Registry, id)
		if len(recent) != 1 || !strings.HasPrefix(recent[0].EndReason, "busy: ") || recent[0].Protocol != "srt" {
			t.Fatalf("live status records %+v, want the busy refusal", recent)
		}
	})
	t.Run("play-mode", func(t *testing.T) {
		_, key := w.Slot(t, "viewer")
		if got := e.rejectCode(t, "#!::r="+key+",m=request"); got != 1405 {
			t.Fatalf("reject reason %d, want 1405 REJX_BAD_MODE", got)
		}
	})
	t.Run("bad-stream-id", func(t *testing.T) {
		if got := e.rejectCode(t, "#!::m=publish"); got != 1400 {
			t.Fatalf("reject reason %d, want 1400 REJX_BAD_REQUEST", got)
		}
	})
	t.Run("backup-without-backup", func(t *testing.T) {
		_, key := w.Slot(t, "single")
		if got := e.rejectCode(t, "#!::r=backup/"+key+",m=publish"); got != 1403 {
			t.Fatalf("reject reason %d, want 1403", got)
		}
	})
	t.Run("rate-limited", func(t *testing.T) {
		_, key := w.Slot(t, "rapid")
		// Three attempts use the burst (each connects and leaves at once,
		// or is refused busy while an earlier one still holds the lease);
		// the fourth is over the limit.
		for i := range 3 {
			if out, _ := e.call(t, nil, 0, acID(key)); strings.HasPrefix(out, "rejected 1429") {
				t.Fatalf("attempt %d already rate-limited: %s", i+1, out)
			}
		}
		if got := e.rejectCode(t, acID(key)); got != 1429 {
			t.Fatalf("reject reason %d, want 1429", got)
		}
	})
	if strings.Contains(e.logs.String(), "no-such-key") {
		t.Error("a stream key appears in the logs")
	}
}

// TestPassphrase: an encrypted slot takes the right passphrase at every AES
// key length and refuses a wrong (SRT_REJ_BADSECRET) or missing one
// (SRT_REJ_UNSECURE); a slot without a passphrase refuses an encrypted
// caller.
func TestPassphrase(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	w := newWorld(t, teststores.Disk(t))
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t), Config{})
	const pass = "correct-horse-battery"
	p := secret.String(pass)
	id, key := w.Slot(t, "secret", slots.Input{SRTPassphrase: &p})
	_, plainKey := w.Slot(t, "plain")

	if got := e.rejectCode(t, acID(key), "wrong-passphrase-x"); got != 10 {
		t.Fatalf("wrong passphrase: reject reason %d, want 10 SRT_REJ_BADSECRET", got)
	}
	if got := e.rejectCode(t, acID(key)); got != 11 {
		t.Fatalf("no passphrase: reject reason %d, want 11 SRT_REJ_UNSECURE", got)
	}
	if got := e.rejectCode(t, acID(plainKey), pass); got != 11 {
		t.Fatalf("passphrase for a plain slot: reject reason %d, want 11 SRT_REJ_UNSECURE", got)
	}
	// ffmpeg shows the reason libsrt reported.
	stderr, err := publish(t, e.url(acID(key), "passphrase=wrong-passphrase-x"), 2).Wait(t)
	if err == nil {
		t.Fatal("ffmpeg with a wrong passphrase succeeded")
	}
	ingesttest.MustContain(t, "ffmpeg stderr", stderr, "Incorrect passphrase")

	// AES-128 and AES-192 callers are accepted (the rate limit allows the
	// burst of three; the third attempt is the AES-256 publish below).
	for _, kl := range []string{"16", "24"} {
		if out, code := e.call(t, nil, 0, acID(key), pass, kl); code != 0 {
			t.Fatalf("pbkeylen %s: %s", kl, out)
		}
		ingesttest.WaitFor(t, "the lease to be free", 15*time.Second, func() bool { return len(ingesttest.Live(t, e.co.Registry, id)) == 0 })
	}
	// Wrong secrets count as failed authentications, not as publish
	// attempts: the key's rate limit still has room.
	f := publish(t, e.url(acID(key), "passphrase="+pass, "pbkeylen=32"), 6)
	if stderr, err := f.Wait(t); err != nil {
		t.Fatalf("ffmpeg with the passphrase (AES-256): %v\n%s", err, stderr)
	}
	ingesttest.WaitFor(t, "the final playlist", 20*time.Second, func() bool {
		return w.Exists(t, id, "video.m3u8") && strings.Contains(w.Get(t, id, "video.m3u8"), "#EXT-X-ENDLIST")
	})
	if strings.Contains(e.logs.String(), pass) {
		t.Error("the passphrase appears in the logs")
	}
}

// TestNoVideo: an audio-only stream, and bytes that are not MPEG-TS, end
// with reason bad-codec in the live status and free the slot.
func TestNoVideo(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	w := newWorld(t, teststores.Disk(t))
	co := ingesttest.MemoryCoord(t)
	e := w.edge(t, "edge-a", co, Config{DiscoveryTimeout: 2 * time.Second})

	t.Run("audio-only", func(t *testing.T) {
		id, key := w.Slot(t, "radio")
		f := publish(t, e.url(acID(key)), 6, "-vn", "-c:a", "aac")
		ingesttest.WaitFor(t, "the bad-codec end in the live status", 20*time.Second, func() bool {
			for _, s := range ingesttest.Ended(t, co.Registry, id) {
				if s.EndReason == "bad-codec: the MPEG-TS program has no usable video track; send H.264 or H.265 video" {
					return true
				}
			}
			return false
		})
		ingesttest.WaitFor(t, "the slot to be free", 10*time.Second, func() bool { return len(ingesttest.Live(t, co.Registry, id)) == 0 })
		_, _ = f.Wait(t)
	})
	t.Run("not-mpegts", func(t *testing.T) {
		id, key := w.Slot(t, "garbage")
		stop := e.feed(t, acID(key), func() []byte {
			b := make([]byte, 1316)
			_, _ = rand.Read(b)
			return b
		})
		defer stop()
		ingesttest.WaitFor(t, "the bad-codec end in the live status", 20*time.Second, func() bool {
			for _, s := range ingesttest.Ended(t, co.Registry, id) {
				if s.EndReason == "bad-codec: no MPEG-TS program (PAT/PMT) within 2s; send MPEG-TS" {
					return true
				}
			}
			return false
		})
		ingesttest.WaitFor(t, "the slot to be free", 10*time.Second, func() bool { return len(ingesttest.Live(t, co.Registry, id)) == 0 })
	})
}

// TestSilentCaller: a caller that stays connected but sends no data loses
// the slot after the read timeout.
func TestSilentCaller(t *testing.T) {
	w := newWorld(t, teststores.Disk(t))
	co := ingesttest.MemoryCoord(t)
	e := w.edge(t, "edge-a", co, Config{ReadTimeout: 1500 * time.Millisecond, DiscoveryTimeout: time.Minute})
	id, key := w.Slot(t, "quiet")
	stop := e.feed(t, acID(key), nil)
	defer stop()
	ingesttest.WaitFor(t, "the silent caller to be live", 10*time.Second, func() bool { return len(ingesttest.Live(t, co.Registry, id)) == 1 })
	start := time.Now()
	ingesttest.WaitFor(t, "the silent caller to lose the slot", 10*time.Second, func() bool { return len(ingesttest.Live(t, co.Registry, id)) == 0 })
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("slot freed %v after the caller went quiet", d)
	}
	ingesttest.MustContain(t, "log", e.logs.String(), "no data for 1.5s")
}

// TestDiscontinuity: two independently encoded streams back to back in one
// connection (the timestamps start over) are carried as one continuous
// stream.
func TestDiscontinuity(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	w := newWorld(t, teststores.Disk(t))
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t), Config{})
	id, key := w.Slot(t, "restart")
	codec := []string{"-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac"}
	ts := append(testenv.EncodeTSBytes(t, 6, codec...), testenv.EncodeTSBytes(t, 6, codec...)...)
	kbps := len(ts) * 8 / 12 / 1000 * 11 / 10 // the clips' own bitrate, and a little faster
	if out, code := e.call(t, ts, kbps, acID(key), "-send"); code != 0 {
		t.Fatalf("srtcaller: %s", out)
	}
	ingesttest.WaitFor(t, "the final playlist", 20*time.Second, func() bool {
		return w.Exists(t, id, "video.m3u8") && strings.Contains(w.Get(t, id, "video.m3u8"), "#EXT-X-ENDLIST")
	})
	w.CheckPlaylist(t, id, "video.m3u8", 2*time.Second, 0.1, true)
	fr := testenv.Probe(t, w.PlaybackURL(t, id)+"index.m3u8")
	if fr["h264"] < 11*25 {
		t.Errorf("decodes to %v, want ≥ %d h264 frames of the two 6 s streams", fr, 11*25)
	}
	ingesttest.MustContain(t, "log", e.logs.String(), "ts_discontinuities=1")
}

// TestBackupRole: the "backup/<key>" resource publishes the slot's backup.
func TestBackupRole(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	w := newWorld(t, teststores.Disk(t))
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t), Config{})
	backup := true
	id, key := w.Slot(t, "dual", slots.Input{Backup: &backup})
	f := publish(t, e.url("#!::r=backup/"+key+",m=publish"), 5)
	ingesttest.WaitFor(t, "a backup session", 15*time.Second, func() bool {
		l := ingesttest.Live(t, e.co.Registry, id)
		return len(l) == 1 && l[0].Role == "backup"
	})
	if stderr, err := f.Wait(t); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, stderr)
	}
	ingesttest.WaitFor(t, "backup segments", 15*time.Second, func() bool {
		_, err := w.Store.Stat(t.Context(), keys.Media(id, keys.Backup, "video.m3u8"))
		return err == nil
	})
	if w.Exists(t, id, "video.m3u8") {
		t.Error("a backup publish wrote the primary's playlist")
	}
}

// TestCloseFlushes: closing the server while a caller publishes stores the
// final segment and manifests and releases the lease.
func TestCloseFlushes(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	w := newWorld(t, teststores.Disk(t))
	co := ingesttest.MemoryCoord(t)
	e := w.edge(t, "edge-a", co, Config{})
	id, key := w.Slot(t, "shutdown")
	f := publish(t, e.url(acID(key)), 60)
	w.CheckCloseFlushes(t, co, id, e.srv.Close)
	stderr, _ := f.Wait(t)
	t.Logf("ffmpeg after Close: %s", stderr)
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Config.Addr"},
		{Config{Addr: ":0", Latency: time.Millisecond}, "Config.Latency"},
		{Config{Addr: ":0", AdmitTimeout: -1}, "Config.AdmitTimeout"},
		{Config{Addr: ":0", DiscoveryTimeout: -1}, "Config.DiscoveryTimeout"},
		{Config{Addr: ":0", ReadTimeout: -1}, "Config.ReadTimeout"},
		{Config{Addr: ":0", CloseTimeout: -1}, "Config.CloseTimeout"},
		{Config{Addr: ":0", Role: "tertiary"}, "Config.Role"},
		{Config{Addr: ":0"}, ""},
	} {
		err := c.cfg.WithDefaults().Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.cfg, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %s", c.cfg, err, c.want)
		}
	}
}

// feed connects srtcaller with -send and writes next() to it every 100 ms
// (nothing when next is nil) until stop, which closes its input and waits.
func (e *edge) feed(t *testing.T, streamID string, next func() []byte) (stop func()) {
	t.Helper()
	host, port := e.hostPort()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, ingesttest.SRTCaller(t), host, port, streamID, "-send")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if next != nil {
					if _, err := in.Write(next()); err != nil && !errors.Is(err, io.ErrClosedPipe) {
						return
					}
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
		_ = in.Close()
		_ = cmd.Wait()
		t.Logf("srtcaller: %s", out.String())
	}
}

// TestReceiveBuffer: the shared UDP socket gets the configured receive
// buffer (with CAP_NET_ADMIN past net.core.rmem_max; without it the server
// warns that it got less).
func TestReceiveBuffer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	const want = 4 << 20
	got, err := setReceiveBuffer(pc.LocalAddr(), want)
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && got/2 < want {
		t.Errorf("granted %d bytes as root, want %d", got/2, want)
	}
	if _, err := setReceiveBuffer(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, want); err == nil {
		t.Error("found a socket for an address nothing is bound to")
	}

	w := newWorld(t, teststores.Disk(t))
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t), Config{ReceiveBuffer: want})
	warned := strings.Contains(e.logs.String(), "receive buffer")
	if os.Geteuid() == 0 && warned {
		t.Errorf("warned as root:\n%s", e.logs.String())
	}
}
