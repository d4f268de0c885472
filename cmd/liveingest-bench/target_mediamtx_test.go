package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseRecordedName(t *testing.T) {
	got, err := parseRecordedName("2026-12-04_21-25-51-861328")
	want := time.Date(2026, 12, 4, 21, 25, 51, 861328000, time.Local)
	if err != nil || !got.Equal(want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"2026-12-04_21-25-51", "x-123456", "2026-12-04_21-25-51-86132x"} {
		if _, err := parseRecordedName(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestMatchRecorded: files are matched to the cut model by start time;
// everything up to a stream's second file is not judged, a gap after it
// is missing.
func TestMatchRecorded(t *testing.T) {
	base := time.Unix(1000, 0)
	pub := PubResult{Keys: keysAt(base, 0, 2, 4, 6, 8, 10, 12), Stopped: base.Add(12200 * time.Millisecond)}
	at := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	// The recorder starts just after keyframe 2 s and cuts at 6 s (a
	// first segment of two GOPs), then at every keyframe; the server's
	// clock reads a few ms off ours; segment 4 (8-10 s) was not recorded.
	recs := []RecordedSegment{
		{Start: at(2.004), Done: at(6.001)},
		{Start: at(6.003), Done: at(8.002)},
		{Start: at(10.002), Done: at(12.003)},
		{Start: at(12.001), Done: at(12.3)},
	}
	apps, from := matchRecorded([]PubResult{pub}, [][]RecordedSegment{recs}, 2*time.Second)
	if from[0] != 3 {
		t.Errorf("first judged seq %d, want 3 (the second file's)", from[0])
	}
	if len(apps[0]) != 7 || !apps[0][1].Equal(at(6.001)) || !apps[0][3].Equal(at(8.002)) || !apps[0][4].IsZero() || !apps[0][5].Equal(at(12.003)) {
		t.Errorf("appearances %v", apps[0])
	}
	var res RunResult
	judgeSegments(&res, []PubResult{pub}, apps, 2*time.Second, from)
	// Cuts at 2..10 are judged (12 is within cutMargin of the end): seq
	// 0-2 not recorded, 3 on time (2 ms), 4 missing; cut 12 closes seq 5
	// but is not judged.
	if res.SegNotRecorded != 3 || res.SegExpected != 2 || res.SegFound != 1 || res.SegMissing != 1 || res.LatP50ms != 2 {
		t.Errorf("judged %+v", res)
	}
	// A stream that recorded one file or none judges nothing.
	_, from = matchRecorded([]PubResult{pub, pub}, [][]RecordedSegment{recs[:1]}, 2*time.Second)
	if from[0] != 7 || from[1] != 7 {
		t.Errorf("from %v, want every seq for both", from)
	}
}

// TestMediamtxConfig: RTMP on the given address, fMP4 recording of every
// path under rec, nothing else listening.
func TestMediamtxConfig(t *testing.T) {
	c := mediamtxConfig("127.0.0.1:1935", "/tmp/x/rec", 2)
	for _, want := range []string{"rtmpAddress: 127.0.0.1:1935\n", "  record: yes\n", "  recordFormat: fmp4\n", "  recordPartDuration: 1s\n",
		"  recordSegmentDuration: 2s\n", "  recordPath: /tmp/x/rec/%path/%Y-%m-%d_%H-%M-%S-%f\n", "rtsp: no\n", "hls: no\n", "webrtc: no\n", "srt: no\n", "api: no\n"} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
}

// TestMediamtxUnavailable: without a binary the target is skipped, not
// failed.
func TestMediamtxUnavailable(t *testing.T) {
	if _, err := exec.LookPath("mediamtx"); err == nil {
		t.Skip("mediamtx is in PATH")
	}
	_, err := (&Mediamtx{WorkDir: t.TempDir(), SegmentDuration: 2}).Start(t.Context(), 1)
	if err == nil || !strings.Contains(err.Error(), ErrUnavailable.Error()) {
		t.Errorf("err %v, want ErrUnavailable", err)
	}
	_, err = (&Mediamtx{Binary: filepath.Join(t.TempDir(), "none"), WorkDir: t.TempDir(), SegmentDuration: 2}).Start(t.Context(), 1)
	if err == nil || !strings.Contains(err.Error(), ErrUnavailable.Error()) {
		t.Errorf("a missing --mediamtx: err %v, want ErrUnavailable", err)
	}
}

func TestRecordedNote(t *testing.T) {
	rec := t.TempDir()
	for i, name := range []string{"live/bench-0/a.mp4", "live/bench-0/b.mp4", "live/bench-1/a.mp4", "live/bench-1/x.part"} {
		p := filepath.Join(rec, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, make([]byte, (i+1)<<19), 0o644)
	}
	if got, want := recordedNote(rec, 3), "recorded 3 fMP4 segment files, 3 MiB, for 2 of 3 streams"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
