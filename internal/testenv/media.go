package testenv

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg not found: run `make deps`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "in.ts")
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(seconds)}
	args = append(append(args, video...), "-c:a", "aac", "-b:a", "64k", "-f", "mpegts", out)
	if b, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	r := &mpegts.Reader{R: bytes.NewReader(raw)}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	return r
}
