package playback_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/playback"
	"github.com/liveingest/liveingest/origin/store"
)

// TestFFprobePlaysHLS has a real player stack (ffprobe's HLS demuxer and
// decoders) play a stream ffmpeg wrote, served from each backend.
func TestFFprobePlaysHLS(t *testing.T) {
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (apt-get install ffmpeg)", bin)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	gen := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine",
		"-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac",
		"-f", "hls", "-hls_time", "2", "-hls_list_size", "0", filepath.Join(dir, "index.m3u8"))
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}

	backends(t, func(t *testing.T, st store.Store) {
		for _, f := range files {
			rel, err := keys.ParseRelPath(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			fh, err := os.Open(filepath.Join(dir, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			_, err = st.Put(ctx, keys.Media("cam", keys.Primary, rel), fh,
				store.Meta{Class: lifecycle.ClassOf(f.Name()), ContentType: "application/octet-stream"})
			fh.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		ts := serve(t, st, playback.Config{}, fakeSlots{"cam": slot("cam")})
		probe := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-count_frames",
			"-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0",
			ts.URL+"/live/cam/index.m3u8")
		out, err := probe.CombinedOutput()
		if err != nil {
			t.Fatalf("ffprobe: %v\n%s", err, out)
		}
		frames := map[string]int{}
		// The HLS demuxer reports each stream under its program too, and
		// the sections are separated by blank lines.
		for line := range strings.SplitSeq(string(out), "\n") {
			codec, n, ok := strings.Cut(strings.TrimSpace(line), ",")
			if !ok {
				continue
			}
			v, _ := strconv.Atoi(n)
			frames[codec] = max(frames[codec], v)
		}
		// 6 s at 25 fps is 150 video frames; allow for the HLS demuxer
		// starting late or losing a partial segment.
		if frames["h264"] < 100 {
			t.Errorf("h264 frames = %d, want >= 100 (ffprobe: %s)", frames["h264"], out)
		}
		// AAC at 44.1 kHz: 1024 samples a frame, ~258 frames in 6 s.
		if frames["aac"] < 150 {
			t.Errorf("aac frames = %d, want >= 150 (ffprobe: %s)", frames["aac"], out)
		}
		t.Logf("ffprobe: %v", frames)
	})
}
