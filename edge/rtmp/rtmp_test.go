package rtmp

import (
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

// publishSeconds keeps the suite fast; the lead's end-to-end run uses 30 s.
const publishSeconds = 12

// TestPublishFFmpeg: ffmpeg publishes H.264 + AAC over RTMP (MinIO store)
// and RTMPS (disk store); while live the registry lists the session with
// its protocol and a bitrate; afterwards ffprobe decodes the HLS and DASH
// outputs and the playlists pass the validator-style checks.
func TestPublishFFmpeg(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	for _, tc := range []struct {
		name  string
		st    func(*testing.T) store.Store
		rtmps bool
	}{
		{"rtmp-minio", teststores.MinIO, false},
		{"rtmps-disk", teststores.Disk, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, tc.st(t))
			e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t))
			id, key := w.Slot(t, "cam-"+tc.name)
			url, proto := e.url(key), "rtmp"
			if tc.rtmps {
				url, proto = e.tlsURL(key), "rtmps"
			}
			f := publish(t, url, publishSeconds)

			// Live status (R-EDGE-5 visibility): protocol and a measured bitrate.
			ingesttest.WaitFor(t, "a live session with a bitrate", 20*time.Second, func() bool {
				for _, s := range ingesttest.Live(t, e.co.Registry, id) {
					if s.Protocol == proto && s.Edge == "edge-a" && s.BitrateKbps > 0 {
						return true
					}
				}
				return false
			})
			if stderr, err := f.Wait(t); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, stderr)
			}
			ingesttest.WaitFor(t, "the session to leave the registry", 10*time.Second, func() bool { return len(ingesttest.Live(t, e.co.Registry, id)) == 0 })

			n := w.CheckPlaylist(t, id, "video.m3u8", 2*time.Second, 0.1, true)
			if n < publishSeconds/2-1 {
				t.Errorf("video.m3u8 lists %d segments for %d s", n, publishSeconds)
			}
			w.CheckPlaylist(t, id, "audio.m3u8", 2*time.Second, 0.1, true)
			base := w.PlaybackURL(t, id)
			for _, m := range []string{"index.m3u8", "manifest.mpd"} {
				fr := testenv.Probe(t, base+m)
				if fr["h264"] < (publishSeconds-1)*25 || fr["aac"] == 0 {
					t.Errorf("%s decodes to %v, want ≥ %d h264 frames and some aac", m, fr, (publishSeconds-1)*25)
				}
			}
			if strings.Contains(e.logs.String(), key) {
				t.Error("the stream key appears in the logs")
			}
		})
	}
}

// TestRejections: every refusal reaches ffmpeg as a status with the reason.
func TestRejections(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	w := newWorld(t, teststores.Disk(t))
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t))

	t.Run("unknown-key", func(t *testing.T) {
		t.Parallel()
		stderr, err := publish(t, e.url("no-such-key"), 3).Wait(t)
		if err == nil {
			t.Fatal("ffmpeg succeeded with an unknown key")
		}
		ingesttest.MustContain(t, "ffmpeg stderr", stderr, "Server error: unauthorized: unknown stream key")
	})
	t.Run("mpeg4-part2", func(t *testing.T) {
		t.Parallel()
		_, key := w.Slot(t, "mpeg4")
		stderr, err := publish(t, e.url(key), 8, "-c:v", "mpeg4", "-strict", "-1", "-c:a", "aac").Wait(t)
		if err == nil {
			t.Fatal("ffmpeg succeeded with MPEG-4 Part 2")
		}
		ingesttest.MustContain(t, "ffmpeg stderr", stderr, "Server error: bad-codec: unsupported codec MPEG-4 Part 2 video")
	})
	t.Run("mp3", func(t *testing.T) {
		t.Parallel()
		_, key := w.Slot(t, "mp3")
		stderr, err := publish(t, e.url(key), 8, "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "libmp3lame", "-ar", "44100").Wait(t)
		if err == nil {
			t.Fatal("ffmpeg succeeded with MP3")
		}
		ingesttest.MustContain(t, "ffmpeg stderr", stderr, "Server error: bad-codec: unsupported codec MPEG-1/2 audio (MP3)")
	})
	t.Run("rate-limited", func(t *testing.T) {
		t.Parallel()
		_, key := w.Slot(t, "rapid")
		// Three attempts use the burst (accepted, or busy while an earlier
		// one still holds the lease); the fourth is over the limit.
		for i := range 3 {
			stderr, _ := publish(t, e.url(key), 1).Wait(t)
			if strings.Contains(stderr, "rate-limited") {
				t.Fatalf("attempt %d already rate-limited:\n%s", i+1, stderr)
			}
		}
		stderr, err := publish(t, e.url(key), 1).Wait(t)
		if err == nil {
			t.Fatal("the fourth rapid publish was accepted")
		}
		ingesttest.MustContain(t, "ffmpeg stderr", stderr, "Server error: rate-limited: too many publish attempts", "retry in")
	})
	t.Run("backup-app", func(t *testing.T) {
		t.Parallel()
		id, key := w.Slot(t, "nobackup")
		// rtmp://host/backup/<key> publishes as the backup role, which
		// this slot does not have.
		stderr, err := publish(t, "rtmp://"+e.srv.Addr().String()+"/backup/"+key, 3).Wait(t)
		if err == nil {
			t.Fatal("a backup publish to a slot without backup was accepted")
		}
		ingesttest.MustContain(t, "ffmpeg stderr", stderr, "Server error: forbidden: slot "+string(id)+" has no backup ingest")
	})
	t.Run("unknown-app", func(t *testing.T) {
		t.Parallel()
		stderr, err := publish(t, "rtmp://"+e.srv.Addr().String()+"/other/key", 3).Wait(t)
		if err == nil {
			t.Fatal("ffmpeg succeeded on an unknown application")
		}
		ingesttest.MustContain(t, "ffmpeg stderr", stderr, "Server error: unauthorized: unknown application; publish to")
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(l, "Server error:") && strings.Contains(l, "other") {
				t.Errorf("the rejection echoes the application: %s", l)
			}
		}
	})
}

// TestSecondPublisher: while a publisher is live, a second one with the
// same key is refused busy — on the same edge (memory coordination) and on
// a second edge sharing Redis and the store; once the first leaves, the
// next is accepted.
func TestSecondPublisher(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	for _, cross := range []bool{false, true} {
		name := "same-edge"
		if cross {
			name = "cross-edge-redis"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, teststores.Disk(t))
			var a, b *edge
			if cross {
				peer := ingesttest.RedisCoords(t)
				a, b = w.edge(t, "edge-a", peer()), w.edge(t, "edge-b", peer())
			} else {
				a = w.edge(t, "edge-a", ingesttest.MemoryCoord(t))
				b = a
			}
			id, key := w.Slot(t, "dup-"+name)
			first := publish(t, a.url(key), 7)
			ingesttest.WaitFor(t, "the first publisher to be live", 15*time.Second, func() bool { return len(ingesttest.Live(t, b.co.Registry, id)) == 1 })

			stderr, err := publish(t, b.url(key), 3).Wait(t)
			if err == nil {
				t.Fatal("a second publisher was accepted while the first is live")
			}
			ingesttest.MustContain(t, "second ffmpeg stderr", stderr, "Server error: busy: slot "+string(id)+" (primary) is already being published over rtmp since")

			if stderr, err := first.Wait(t); err != nil {
				t.Fatalf("first ffmpeg: %v\n%s", err, stderr)
			}
			ingesttest.WaitFor(t, "the lease to be released", 10*time.Second, func() bool { return len(ingesttest.Live(t, b.co.Registry, id)) == 0 })
			if stderr, err := publish(t, b.url(key), 3).Wait(t); err != nil {
				t.Fatalf("publisher after the first left: %v\n%s", err, stderr)
			}
		})
	}
}

// TestCloseFlushes: closing the server while a publisher is live stores the
// final segment and manifests (EXT-X-ENDLIST) and releases the lease.
func TestCloseFlushes(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	w := newWorld(t, teststores.Disk(t))
	co := ingesttest.MemoryCoord(t)
	e := w.edge(t, "edge-a", co)
	id, key := w.Slot(t, "shutdown")
	f := publish(t, e.url(key), 60)
	w.CheckCloseFlushes(t, co, id, e.srv.Close)
	stderr, _ := f.Wait(t)
	t.Logf("ffmpeg after Close: %s", stderr)
}

func TestSplitPath(t *testing.T) {
	for _, tc := range []struct{ path, app, key string }{
		{"/live/abc", "live", "abc"},  // app=live, stream=abc
		{"/live/abc/", "live", "abc"}, // app=live/abc, empty stream name
		{"/backup/abc", "backup", "abc"},
		{"/live", "live", ""},
		{"", "", ""},
	} {
		if app, key := splitPath(tc.path); app != tc.app || key != tc.key {
			t.Errorf("splitPath(%q) = %q, %q; want %q, %q", tc.path, app, key, tc.app, tc.key)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Config.Addr or Config.TLSAddr"},
		{Config{TLSAddr: ":1936"}, "Config.TLSConfig"},
		{Config{Addr: ":1935", ReadTimeout: -1}, "Config.ReadTimeout"},
		{Config{Addr: ":1935", Role: "tertiary"}, "Config.Role"},
	} {
		err := tc.cfg.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{Addr: ":1935"}).WithDefaults().Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}
