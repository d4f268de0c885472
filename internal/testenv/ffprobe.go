package testenv

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Probe has ffprobe (the real client players are measured against) decode
// every frame of url, and returns the decoded frame count by codec name
// ("h264", "hevc", "aac", "opus"). A decode failure fails t.
func Probe(t testing.TB, url string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-count_frames",
		"-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0", url).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, out)
	}
	frames := map[string]int{}
	for line := range strings.SplitSeq(string(out), "\n") {
		codec, n, ok := strings.Cut(strings.TrimSpace(line), ",")
		if !ok {
			continue
		}
		v, _ := strconv.Atoi(n)
		frames[codec] = max(frames[codec], v)
	}
	return frames
}
