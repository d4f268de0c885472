package testenv

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
)

// EncodeTS has ffmpeg encode seconds of a 320x240 25 fps test picture and a
// 440 Hz tone (AAC) into MPEG-TS, with video as the encoder arguments say
// (e.g. "-c:v", "libx264", "-g", "50"), and returns an initialised reader
// over it for tests to demux into access units.
func EncodeTS(t testing.TB, seconds int, video ...string) *mpegts.Reader {
	t.Helper()
	raw := EncodeTSBytes(t, seconds, slices.Concat(video, []string{"-c:a", "aac", "-b:a", "64k"})...)
	r := &mpegts.Reader{R: bytes.NewReader(raw)}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	return r
}

// EncodeTSBytes has ffmpeg encode seconds of a 320x240 25 fps test picture
// and a 48 kHz 440 Hz tone into MPEG-TS and returns the stream's bytes. args
// are ffmpeg output options and choose everything else: the codecs (e.g.
// "-c:v", "libx265", "-c:a", "libopus"), dropping a stream ("-vn", "-an"),
// timestamps ("-output_ts_offset", "95440"). Without a codec option ffmpeg
// picks its MPEG-TS defaults (MPEG-2 video, MP2 audio). An encoder failure
// fails t.
func EncodeTSBytes(t testing.TB, seconds int, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg not found: run `make deps`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "in.ts")
	cmd := []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(seconds)}
	cmd = append(append(cmd, args...), "-f", "mpegts", out)
	if b, err := exec.CommandContext(ctx, "ffmpeg", cmd...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
