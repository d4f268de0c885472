package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// tinySpec is a clip small enough to encode in well under a second.
var tinySpec = SampleSpec{Size: "160x96", FPS: 10, VideoKbps: 200, GOP: time.Second, Length: 3 * time.Second}

func tinySample(t *testing.T) (string, *Sample) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make deps installs it)")
	}
	path, err := EnsureSample(t.Context(), t.TempDir(), tinySpec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSample(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, s
}

func TestParseFLVFromFFmpeg(t *testing.T) {
	_, s := tinySample(t)
	if s.Width != 160 || s.Height != 96 {
		t.Errorf("size %dx%d, want 160x96", s.Width, s.Height)
	}
	if s.Loop != 3*time.Second || s.Keyframes != 3 {
		t.Errorf("loop %v with %d keyframes, want 3s with 3", s.Loop, s.Keyframes)
	}
	if len(s.SPS) == 0 || len(s.PPS) == 0 || s.AudioConfig == nil {
		t.Fatal("codec configuration missing")
	}
	if f := s.Frames[0]; !f.Video || !f.Key || f.DTS != 0 {
		t.Errorf("first frame %+v, want the keyframe at 0", f)
	}
	var video, audio int
	last := map[bool]time.Duration{true: -1, false: -1}
	for _, f := range s.Frames {
		if !f.Video {
			if f.DTS != 0 {
				t.Errorf("audio starts at %v, want 0 (no gap at the loop seam)", f.DTS)
			}
			break
		}
	}
	for _, f := range s.Frames {
		if f.DTS >= s.Loop {
			t.Fatalf("frame at %v past the loop end %v", f.DTS, s.Loop)
		}
		if f.DTS < last[f.Video] {
			t.Fatalf("DTS goes backwards at %v (video %v)", f.DTS, f.Video)
		}
		last[f.Video] = f.DTS
		if f.Video {
			video++
		} else {
			audio++
		}
		if len(f.Payload) == 0 {
			t.Fatal("empty payload")
		}
	}
	if video != 30 || audio < 100 {
		t.Errorf("%d video and %d audio frames, want 30 and about 140", video, audio)
	}
	if s.Kbps() <= 0 {
		t.Error("no bitrate")
	}
}

func TestEnsureSampleCaches(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make deps installs it)")
	}
	dir := t.TempDir()
	a, err := EnsureSample(t.Context(), dir, tinySpec)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(a)
	b, err := EnsureSample(t.Context(), dir, tinySpec)
	if err != nil || a != b {
		t.Fatalf("second call: %q, %v; want %q", b, err, a)
	}
	if fi2, _ := os.Stat(b); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Error("the cached clip was encoded again")
	}
}

// flvFile builds an FLV from tags (type, timestamp ms, body).
type flvTag struct {
	typ  byte
	ms   uint32
	body []byte
}

func flvFile(tags ...flvTag) []byte {
	var b bytes.Buffer
	b.Write([]byte{'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0})
	for _, t := range tags {
		n := len(t.body)
		b.Write([]byte{t.typ, byte(n >> 16), byte(n >> 8), byte(n), byte(t.ms >> 16), byte(t.ms >> 8), byte(t.ms), byte(t.ms >> 24), 0, 0, 0})
		b.Write(t.body)
		binary.Write(&b, binary.BigEndian, uint32(n+11))
	}
	return b.Bytes()
}

func TestParseFLVRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"not flv", []byte("RIFF0000WAVEfmt "), "not an FLV"},
		{"truncated tag", flvFile(flvTag{typ: 9, body: []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65}})[:20], "truncated"},
		{"hevc", flvFile(flvTag{typ: 9, body: []byte{0x1c, 1, 0, 0, 0}}), "only legacy-FLV H.264"},
		{"mp3", flvFile(flvTag{typ: 8, body: []byte{0x2f, 0}}), "only AAC"},
		{"unknown tag", flvFile(flvTag{typ: 7, body: []byte{0}}), "unknown tag type"},
		{"no config", flvFile(), "want one H.264 and one AAC"},
		{"two-byte lengths", flvFile(flvTag{typ: 9, body: []byte{0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e, 0xfd, 0xe1, 0}}), "NALU length size 2"},
		{"flag disagrees with IDR", flvFile(flvTag{typ: 9, body: []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x41}}), "disagrees"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseFLV(c.in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestSampleSpecValidate(t *testing.T) {
	good := SampleSpec{Size: "1280x720", FPS: 25, VideoKbps: 2500, GOP: 2 * time.Second, Length: 20 * time.Second}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		mod  func(*SampleSpec)
		flag string
	}{
		{"size", func(s *SampleSpec) { s.Size = "720p" }, "--size"},
		{"odd size", func(s *SampleSpec) { s.Size = "641x360" }, "--size"},
		{"fps", func(s *SampleSpec) { s.FPS = 0 }, "--fps"},
		{"gop not whole frames", func(s *SampleSpec) { s.FPS = 30; s.GOP = 1010 * time.Millisecond }, "--gop"},
		{"length not whole gops", func(s *SampleSpec) { s.Length = 21 * time.Second }, "--sample-length"},
		{"bitrate", func(s *SampleSpec) { s.VideoKbps = 1 }, "--video-kbps"},
	} {
		s := good
		c.mod(&s)
		if err := s.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.flag) {
			t.Errorf("%s: err %v, want one naming %s", c.name, err, c.flag)
		}
	}
}

// TestSampleWithoutBFrames: --no-bframes (for MediaMTX v1.15.3) is a
// different clip from the default one, and ffmpeg's FLV of it, whose
// video starts 21 ms in, still loads with its first keyframe at 0.
func TestSampleWithoutBFrames(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make deps installs it)")
	}
	spec := tinySpec
	spec.NoBFrames = true
	if a, b := strings.Join(spec.ffmpegArgs("x"), " "), strings.Join(tinySpec.ffmpegArgs("x"), " "); !strings.Contains(a, "-bf 0") || strings.Contains(b, "-bf") {
		t.Fatalf("ffmpeg arguments:\n%s\n%s", a, b)
	}
	dir := t.TempDir()
	path, err := EnsureSample(t.Context(), dir, spec)
	if err != nil {
		t.Fatal(err)
	}
	if def, _ := EnsureSample(t.Context(), dir, tinySpec); def == path {
		t.Error("the clip without B-frames is cached under the default clip's name")
	}
	s, err := LoadSample(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Frames) == 0 || s.Frames[0].DTS != 0 || s.Loop != 3*time.Second || s.Keyframes != 3 {
		t.Errorf("first frame at %v, loop %v, %d keyframes", s.Frames[0].DTS, s.Loop, s.Keyframes)
	}
	for _, f := range s.Frames {
		if f.DTS < 0 {
			t.Fatalf("a frame at %v", f.DTS)
		}
	}
}
