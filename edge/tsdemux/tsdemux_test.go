package tsdemux_test

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/edge/tsdemux"
	"github.com/liveingest/liveingest/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func needFFmpeg(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (apt-get install ffmpeg)", bin)
		}
	}
}

// Encoder arguments the tests share. Keyframes every gop frames exactly
// (no scene cuts), B-frames so PTS ≠ DTS.
const gop = 25

var (
	x264 = []string{"-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0"}
	x265 = []string{"-c:v", "libx265", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25",
		"-x265-params", "log-level=error:scenecut=0:bframes=2"}
	aac  = []string{"-c:a", "aac", "-b:a", "64k"}
	opus = []string{"-c:a", "libopus", "-b:a", "64k"}
)

func args(parts ...[]string) []string {
	var a []string
	for _, p := range parts {
		a = append(a, p...)
	}
	return a
}

// encoded caches ffmpeg output across tests: the same arguments give the
// same stream.
var encoded sync.Map // string → []byte

func encode(t testing.TB, seconds int, a ...string) []byte {
	t.Helper()
	needFFmpeg(t)
	key := fmt.Sprint(seconds, a)
	if b, ok := encoded.Load(key); ok {
		return b.([]byte)
	}
	b := testenv.EncodeTSBytes(t, seconds, a...)
	encoded.Store(key, b)
	return b
}

// probe has ffprobe count the frames of raw, by codec name.
func probe(t testing.TB, raw []byte) map[string]int {
	t.Helper()
	p := filepath.Join(t.TempDir(), "probe.ts")
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return testenv.Probe(t, p)
}

// result is a whole stream demuxed.
type result struct {
	d      *tsdemux.Demuxer
	aus    []media.AccessUnit
	frames map[int]int // access units per track ID
	keys   int         // video keyframes
	err    error       // what Next ended with
}

// demux runs Open and Next until Next fails, checking every unit against
// media.AccessUnit's contract as it comes.
func demux(t testing.TB, r io.Reader, o tsdemux.Options) (result, error) {
	t.Helper()
	d, err := tsdemux.Open(r, o)
	if err != nil {
		return result{}, err
	}
	res := result{d: d, frames: map[int]int{}}
	last := map[int]time.Duration{}
	for {
		au, err := d.Next()
		if err != nil {
			res.err = err
			return res, nil
		}
		if msg := checkAU(d.Tracks(), last, au); msg != "" {
			t.Fatalf("unit %d: %s", len(res.aus), msg)
		}
		res.aus = append(res.aus, au)
		res.frames[au.Track]++
		if au.Track == 1 && au.Key {
			res.keys++
		}
	}
}

// checkAU returns what is wrong with au, given the last DTS per track.
func checkAU(tracks []media.Track, last map[int]time.Duration, au media.AccessUnit) string {
	if au.Track < 1 || au.Track > len(tracks) {
		return fmt.Sprintf("unknown track %d", au.Track)
	}
	video := tracks[au.Track-1].IsVideo()
	prev, seen := last[au.Track]
	switch {
	case au.DTS < 0:
		return fmt.Sprintf("negative DTS %v", au.DTS)
	case au.PTS < au.DTS:
		return fmt.Sprintf("PTS %v before DTS %v", au.PTS, au.DTS)
	case seen && au.DTS < prev:
		return fmt.Sprintf("track %d DTS %v after %v", au.Track, au.DTS, prev)
	case len(au.Data) == 0 || au.Size() == 0:
		return "empty unit"
	case !video && (!au.Key || au.PTS != au.DTS || len(au.Data) != 1):
		return fmt.Sprintf("audio unit key=%v pts-dts=%v frames=%d", au.Key, au.PTS-au.DTS, len(au.Data))
	case video && !seen && !au.Key:
		return "first video unit is not a keyframe"
	}
	for _, nalu := range au.Data {
		if len(nalu) == 0 {
			return "empty NAL unit"
		}
		if video && isAUD(tracks[au.Track-1].Codec, nalu) {
			return "access unit delimiter left in"
		}
	}
	last[au.Track] = au.DTS
	return ""
}

func isAUD(c codecs.Codec, nalu []byte) bool {
	if _, ok := c.(*codecs.H265); ok {
		return h265.NALUType(nalu[0]>>1&0x3f) == h265.NALUType_AUD_NUT
	}
	return h264.NALUType(nalu[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter
}

func TestStreams(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		video   string // media.Track.Name of track 1
		audio   string // of track 2, "" for none
		ignored []string
		probeV  string // ffprobe's codec names
		probeA  string
	}{
		{name: "h264 aac", args: args(x264, aac), video: "h264", audio: "aac", probeV: "h264", probeA: "aac"},
		{name: "h265 aac", args: args(x265, aac), video: "h265", audio: "aac", probeV: "hevc", probeA: "aac"},
		{name: "h264 opus", args: args(x264, opus), video: "h264", audio: "opus", probeV: "h264", probeA: "opus"},
		{name: "h265 opus", args: args(x265, opus), video: "h265", audio: "opus", probeV: "hevc", probeA: "opus"},
		{name: "h264 only", args: args(x264, []string{"-an"}), video: "h264", probeV: "h264"},
		{name: "aac after an mp2 track", video: "h264", audio: "aac", probeV: "h264", probeA: "aac",
			args:    args([]string{"-map", "0:v", "-map", "1:a", "-map", "1:a"}, x264, []string{"-c:a:0", "mp2", "-c:a:1", "aac"}),
			ignored: []string{"MPEG-1/2 audio (MP2/MP3)"}},
		{name: "second video and ac3", video: "h264", audio: "aac", probeV: "h264", probeA: "aac",
			args: args([]string{"-map", "0:v", "-map", "0:v", "-map", "1:a", "-map", "1:a"}, x264,
				[]string{"-c:a:0", "aac", "-c:a:1", "ac3"}),
			ignored: []string{"H.264", "AC-3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const seconds = 4
			raw := encode(t, seconds, c.args...)
			res, err := demux(t, bytes.NewReader(raw), tsdemux.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.err != io.EOF {
				t.Fatalf("Next ended with %v, want io.EOF", res.err)
			}
			tracks := res.d.Tracks()
			var names []string
			for i, tr := range tracks {
				if tr.ID != i+1 {
					t.Errorf("track %d has ID %d", i, tr.ID)
				}
				if !media.Supported(tr.Codec) {
					t.Errorf("track %d: segmenter would refuse %s", tr.ID, media.CodecName(tr.Codec))
				}
				names = append(names, tr.Name())
			}
			want := []string{c.video}
			if c.audio != "" {
				want = append(want, c.audio)
			}
			if fmt.Sprint(names) != fmt.Sprint(want) {
				t.Fatalf("tracks %v, want %v", names, want)
			}
			if fmt.Sprint(res.d.Ignored()) != fmt.Sprint(c.ignored) {
				t.Errorf("Ignored() = %q, want %q", res.d.Ignored(), c.ignored)
			}
			checkParams(t, tracks[0].Codec)
			if a, ok := trackCodec[*codecs.MPEG4Audio](tracks); ok && (a.Config.SampleRate != 48000 || a.Config.ChannelCount != 1) {
				t.Errorf("AAC config %+v, want 48 kHz mono", a.Config)
			}
			if o, ok := trackCodec[*codecs.Opus](tracks); ok && o.ChannelCount != 1 {
				t.Errorf("Opus channels %d, want 1", o.ChannelCount)
			}

			frames := probe(t, raw)
			if res.frames[1] != frames[c.probeV] {
				t.Errorf("%d video units, ffprobe decodes %d frames", res.frames[1], frames[c.probeV])
			}
			if c.audio != "" && res.frames[2] != frames[c.probeA] {
				t.Errorf("%d audio units, ffprobe decodes %d frames", res.frames[2], frames[c.probeA])
			}
			if want := (res.frames[1] + gop - 1) / gop; res.keys != want {
				t.Errorf("%d keyframes in %d frames, want %d", res.keys, res.frames[1], want)
			}
			span := videoSpan(res.aus)
			if span < seconds*time.Second-200*time.Millisecond || span > seconds*time.Second {
				t.Errorf("video spans %v, want about %ds", span, seconds)
			}
			if c.audio != "" {
				checkAudioSteps(t, res.aus, tracks[1].Codec)
			}
			if s := res.d.Stats(); s != (tsdemux.Stats{}) {
				t.Errorf("Stats = %+v on a clean stream", s)
			}
		})
	}
}

func trackCodec[C codecs.Codec](tracks []media.Track) (C, bool) {
	for _, tr := range tracks {
		if c, ok := tr.Codec.(C); ok {
			return c, true
		}
	}
	var zero C
	return zero, false
}

// checkParams parses the video track's SPS: the 320x240 test picture.
func checkParams(t *testing.T, c codecs.Codec) {
	t.Helper()
	switch c := c.(type) {
	case *codecs.H264:
		var sps h264.SPS
		if err := sps.Unmarshal(c.SPS); err != nil || sps.Width() != 320 || sps.Height() != 240 {
			t.Errorf("H.264 SPS: %v, %dx%d", err, sps.Width(), sps.Height())
		}
	case *codecs.H265:
		var sps h265.SPS
		if err := sps.Unmarshal(c.SPS); err != nil || sps.Width() != 320 || sps.Height() != 240 {
			t.Errorf("H.265 SPS: %v, %dx%d", err, sps.Width(), sps.Height())
		}
	default:
		t.Errorf("video codec %T", c)
	}
}

// videoSpan is the PTS range of the video units plus one frame.
func videoSpan(aus []media.AccessUnit) time.Duration {
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for _, au := range aus {
		if au.Track == 1 {
			lo, hi = min(lo, au.PTS), max(hi, au.PTS)
		}
	}
	return hi - lo + 40*time.Millisecond
}

// checkAudioSteps checks consecutive audio units are one frame apart,
// give or take a 90 kHz tick of rounding.
func checkAudioSteps(t *testing.T, aus []media.AccessUnit, c codecs.Codec) {
	t.Helper()
	frame := 20 * time.Millisecond // libopus' default
	if a, ok := c.(*codecs.MPEG4Audio); ok {
		frame = 1024 * time.Second / time.Duration(a.Config.SampleRate)
	}
	var prev time.Duration = -1
	for _, au := range aus {
		if au.Track != 2 {
			continue
		}
		if prev >= 0 {
			if d := au.DTS - prev - frame; d < -20*time.Microsecond || d > 20*time.Microsecond {
				t.Fatalf("audio step %v, want %v", au.DTS-prev, frame)
			}
		}
		prev = au.DTS
	}
}

// TestMatchesReader compares the units with what mediacommon's plain
// Reader hands over, byte for byte, and proves the Data of units returned
// earlier survives later reads (the reader allocates each PES afresh).
func TestMatchesReader(t *testing.T) {
	raw := encode(t, 4, args(x264, aac)...)
	var want [3][]uint32 // CRC per unit, by track ID
	r := &mpegts.Reader{R: bytes.NewReader(raw)}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	for _, tr := range r.Tracks() {
		switch tr.Codec.(type) {
		case *tscodecs.H264:
			r.OnDataH264(tr, func(_, _ int64, au [][]byte) error {
				var kept [][]byte
				for _, n := range au {
					if h264.NALUType(n[0]&0x1f) != h264.NALUTypeAccessUnitDelimiter {
						kept = append(kept, n)
					}
				}
				want[1] = append(want[1], sum(kept))
				return nil
			})
		case *tscodecs.MPEG4Audio:
			r.OnDataMPEG4Audio(tr, func(_ int64, aus [][]byte) error {
				for _, f := range aus {
					want[2] = append(want[2], sum([][]byte{f}))
				}
				return nil
			})
		}
	}
	for r.Read() == nil {
	}
	res, err := demux(t, bytes.NewReader(raw), tsdemux.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got [3][]uint32
	for _, au := range res.aus {
		got[au.Track] = append(got[au.Track], sum(au.Data))
	}
	for id := 1; id <= 2; id++ {
		if fmt.Sprint(got[id]) != fmt.Sprint(want[id]) {
			t.Errorf("track %d: %d units differ from the reader's %d", id, len(got[id]), len(want[id]))
		}
	}
}

func sum(data [][]byte) uint32 {
	h := crc32.NewIEEE()
	for _, b := range data {
		h.Write(b)
		h.Write([]byte{0xff}) // separator: NAL boundaries count
	}
	return h.Sum32()
}

func TestOpenErrors(t *testing.T) {
	h264aac := func(t *testing.T) []byte { return encode(t, 4, args(x264, aac)...) }
	cases := []struct {
		name  string
		input func(t *testing.T) io.Reader
		opt   tsdemux.Options
		is    []error // errors.Is must hold for each
		msg   string  // the error message must contain it
	}{
		{name: "empty", input: func(*testing.T) io.Reader { return bytes.NewReader(nil) },
			is: []error{tsdemux.ErrNoProgram, io.EOF}},
		{name: "random bytes", input: func(*testing.T) io.Reader {
			b := make([]byte, 1<<18)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return bytes.NewReader(b)
		}, is: []error{tsdemux.ErrNoProgram}},
		{name: "random bytes past MaxDiscovery", input: func(*testing.T) io.Reader {
			return io.LimitReader(zeros{}, 1<<30)
		}, opt: tsdemux.Options{MaxDiscovery: 1 << 16}, is: []error{tsdemux.ErrNoProgram}, msg: "MaxDiscovery"},
		{name: "deadline before the PMT", input: func(t *testing.T) io.Reader {
			return &failAfter{r: bytes.NewReader(h264aac(t)), n: 100, err: os.ErrDeadlineExceeded}
		}, is: []error{tsdemux.ErrNoProgram, os.ErrDeadlineExceeded}},
		{name: "deadline after the PMT", input: func(t *testing.T) io.Reader {
			return &failAfter{r: bytes.NewReader(h264aac(t)), n: 188 * 3, err: os.ErrDeadlineExceeded}
		}, is: []error{tsdemux.ErrNoVideo, os.ErrDeadlineExceeded}},
		{name: "deadline waiting for the keyframe", input: func(t *testing.T) io.Reader {
			// Past the PMT and the first AAC frame, but no video comes.
			return &failAfter{r: bytes.NewReader(dropPID(h264aac(t), videoPID)), n: 188 * 40, err: os.ErrDeadlineExceeded}
		}, is: []error{tsdemux.ErrNoVideo, os.ErrDeadlineExceeded}, msg: "keyframe"},
		{name: "ends before the keyframe", input: func(t *testing.T) io.Reader {
			return bytes.NewReader(dropPID(h264aac(t), videoPID))
		}, is: []error{tsdemux.ErrNoVideo, io.EOF}},
		{name: "audio only", input: func(t *testing.T) io.Reader {
			return bytes.NewReader(encode(t, 2, args([]string{"-vn"}, aac)...))
		}, is: []error{tsdemux.ErrNoVideo}, msg: "no video track"},
		{name: "video PID silent", input: func(t *testing.T) io.Reader {
			return bytes.NewReader(dropPID(h264aac(t), videoPID))
		}, opt: tsdemux.Options{MaxDiscovery: 1 << 15}, is: []error{tsdemux.ErrNoVideo}, msg: "MaxDiscovery"},
		{name: "mpeg2 video", input: func(t *testing.T) io.Reader {
			return bytes.NewReader(encode(t, 2, args([]string{"-c:v", "mpeg2video"}, aac)...))
		}, is: []error{tsdemux.ErrUnsupportedCodec},
			msg: "unsupported video codec MPEG-1/2 video; send H.264 or H.265 video and AAC or Opus audio"},
		{name: "mp2 audio only", input: func(t *testing.T) io.Reader {
			return bytes.NewReader(encode(t, 2, args(x264, []string{"-c:a", "mp2"})...))
		}, is: []error{tsdemux.ErrUnsupportedCodec}, msg: "unsupported audio codec MPEG-1/2 audio (MP2/MP3)"},
		{name: "ac3 audio only", input: func(t *testing.T) io.Reader {
			return bytes.NewReader(encode(t, 2, args(x264, []string{"-c:a", "ac3"})...))
		}, is: []error{tsdemux.ErrUnsupportedCodec}, msg: "unsupported audio codec AC-3"},
		{name: "negative option", input: func(*testing.T) io.Reader { return bytes.NewReader(nil) },
			opt: tsdemux.Options{MaxGap: -1}, msg: "Options.MaxGap"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := tsdemux.Open(c.input(t), c.opt)
			if err == nil {
				t.Fatalf("Open succeeded with tracks %v", d.Tracks())
			}
			for _, target := range c.is {
				if !errors.Is(err, target) {
					t.Errorf("Open: %v; not %v", err, target)
				}
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("Open: %q does not say %q", err, c.msg)
			}
		})
	}
}

// TestUnsupportedErrorAs shows a caller can read the refused codec.
func TestUnsupportedErrorAs(t *testing.T) {
	_, err := tsdemux.Open(bytes.NewReader(encode(t, 2, args([]string{"-c:v", "mpeg2video"}, aac)...)), tsdemux.Options{})
	ue, ok := errors.AsType[*tsdemux.UnsupportedError](err)
	if !ok || ue.Kind != "video" || ue.Codec != "MPEG-1/2 video" {
		t.Fatalf("Open: %#v", err)
	}
}

// zeros reads endless zero bytes: no sync byte, no program.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// failAfter reads n bytes of r, then fails with err, as a connection whose
// read deadline passed.
type failAfter struct {
	r   io.Reader
	n   int
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	n, err := f.r.Read(p[:min(len(p), f.n)])
	f.n -= n
	return n, err
}

// ffmpeg's MPEG-TS muxer puts the first stream on PID 0x100, the next on
// 0x101.
const (
	videoPID = 0x100
	audioPID = 0x101
)

func pidOf(pkt []byte) int { return int(pkt[1]&0x1f)<<8 | int(pkt[2]) }

// dropPID returns raw without the packets of pid.
func dropPID(raw []byte, pid int) []byte {
	var out []byte
	for i := 0; i+188 <= len(raw); i += 188 {
		if pidOf(raw[i:]) != pid {
			out = append(out, raw[i:i+188]...)
		}
	}
	return out
}

// TestDeadlineInNext: a read error after Open comes out of Next, wrapped,
// after the units read before it, and sticks.
func TestDeadlineInNext(t *testing.T) {
	raw := encode(t, 4, args(x264, aac)...)
	res, err := demux(t, &failAfter{r: bytes.NewReader(raw), n: len(raw) / 2, err: os.ErrDeadlineExceeded}, tsdemux.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res.err, os.ErrDeadlineExceeded) || res.err == os.ErrDeadlineExceeded {
		t.Fatalf("Next ended with %v, want os.ErrDeadlineExceeded wrapped", res.err)
	}
	if res.frames[1] < 40 || res.frames[2] < 60 {
		t.Errorf("only %v units before the deadline", res.frames)
	}
	if _, err := res.d.Next(); err != res.err {
		t.Errorf("second Next: %v, want the same error", err)
	}
}

// TestStatsWhileReading: Stats may be read from another goroutine while
// Next runs (a metrics scrape), as the race detector checks.
func TestStatsWhileReading(t *testing.T) {
	raw := encode(t, 4, args(x264, aac)...)
	d, err := tsdemux.Open(bytes.NewReader(raw), tsdemux.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				_ = d.Stats()
				_ = d.Tracks()
			}
		}
	})
	for {
		if _, err := d.Next(); err != nil {
			break
		}
	}
	close(done)
	wg.Wait()
}

// TestSplice: a stream whose encoder restarts mid-connection (two
// independent encodes back to back: timestamps start over) has one
// discontinuity, not one per track, and loses nothing.
func TestSplice(t *testing.T) {
	a := encode(t, 4, args(x264, aac)...)
	b := encode(t, 3, args(x264, aac)...)
	fa, fb := probe(t, a), probe(t, b)
	for _, c := range []struct {
		name     string
		raw      []byte
		lostTail int // video frames of a the demuxer may lose
	}{
		// The multiplexer kept running (continuity counters go on) while
		// the encoder restarted: every frame comes through.
		{name: "muxer continues", raw: splice(a, b)},
		// Both restarted: go-astits discards the PES in progress on each
		// PID when its continuity counter jumps, which loses the first
		// stream's last video frame (audio PES packets have a length, so
		// they were complete already).
		{name: "muxer restarts", raw: append(bytes.Clone(a), b...), lostTail: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := demux(t, bytes.NewReader(c.raw), tsdemux.Options{})
			if err != nil {
				t.Fatal(err)
			}
			s := res.d.Stats()
			if s.Discontinuities != 1 || s.Dropped != 0 {
				t.Errorf("Stats = %+v, want 1 discontinuity, nothing dropped", s)
			}
			wantV := fa["h264"] + fb["h264"]
			if res.frames[1] > wantV || res.frames[1] < wantV-c.lostTail {
				t.Errorf("%d video units, want %d (at most %d lost)", res.frames[1], wantV, c.lostTail)
			}
			if want := fa["aac"] + fb["aac"]; res.frames[2] != want {
				t.Errorf("%d audio units, want %d", res.frames[2], want)
			}
			if span := videoSpan(res.aus); span < 6800*time.Millisecond || span > 7200*time.Millisecond {
				t.Errorf("video spans %v, want about 7s", span)
			}
		})
	}
}

// splice appends b to a as one multiplexer would have written both:
// b's continuity counters continue a's on every PID.
func splice(a, b []byte) []byte {
	next := map[int]byte{}
	for i := 0; i+188 <= len(a); i += 188 {
		if a[i+3]&0x10 != 0 {
			next[pidOf(a[i:])] = (a[i+3] + 1) & 0xf
		}
	}
	out := bytes.Clone(a)
	shift := map[int]byte{}
	for i := 0; i+188 <= len(b); i += 188 {
		p := bytes.Clone(b[i : i+188])
		pid := pidOf(p)
		if p[3]&0x10 != 0 {
			s, ok := shift[pid]
			if !ok {
				s = (next[pid] - p[3]&0xf) & 0xf
				shift[pid] = s
			}
			p[3] = p[3]&0xf0 | (p[3]+s)&0xf
		}
		out = append(out, p...)
	}
	return out
}

// TestWraparound: the 33-bit 90 kHz clock wraps (after about 26.5 h) in
// the middle of the stream: no discontinuity, timestamps go on.
func TestWraparound(t *testing.T) {
	// The stream starts 1.4 s after the offset (ffmpeg's muxing delay), so
	// it wraps ~0.3 s in.
	raw := encode(t, 4, args(x264, aac, []string{"-output_ts_offset", "95442"})...)
	if !wraps(t, raw) {
		t.Fatal("the test stream does not wrap")
	}
	res, err := demux(t, bytes.NewReader(raw), tsdemux.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.d.Stats(); s != (tsdemux.Stats{}) {
		t.Errorf("Stats = %+v, want none", s)
	}
	frames := probe(t, raw)
	if res.frames[1] != frames["h264"] || res.frames[2] != frames["aac"] {
		t.Errorf("units %v, ffprobe %v", res.frames, frames)
	}
	if span := videoSpan(res.aus); span < 3800*time.Millisecond || span > 4*time.Second {
		t.Errorf("video spans %v, want about 4s", span)
	}
}

// wraps reports whether a video PTS in raw is smaller than the first.
func wraps(t *testing.T, raw []byte) bool {
	t.Helper()
	r := &mpegts.Reader{R: bytes.NewReader(raw)}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	first, wrapped := int64(-1), false
	for _, tr := range r.Tracks() {
		if _, ok := tr.Codec.(*tscodecs.H264); ok {
			r.OnDataH264(tr, func(pts, _ int64, _ [][]byte) error {
				if first < 0 {
					first = pts
				}
				wrapped = wrapped || pts < first
				return nil
			})
		}
	}
	for r.Read() == nil {
	}
	return wrapped
}

// TestPacketLoss: packets lost in the middle show as decode errors; the
// demuxer goes on with the units after the loss.
func TestPacketLoss(t *testing.T) {
	raw := encode(t, 10, args(x264, aac)...)
	n := len(raw) / 188
	var lossy []byte
	for i := range n {
		if i > n/3 && i < 2*n/3 && i%37 == 0 {
			continue
		}
		lossy = append(lossy, raw[i*188:(i+1)*188]...)
	}
	var reported int
	res, err := demux(t, bytes.NewReader(lossy), tsdemux.Options{OnDecodeError: func(error) { reported++ }})
	if err != nil {
		t.Fatal(err)
	}
	if res.err != io.EOF {
		t.Fatalf("Next ended with %v", res.err)
	}
	s := res.d.Stats()
	if s.DecodeErrors == 0 || int64(reported) != s.DecodeErrors {
		t.Errorf("Stats = %+v, OnDecodeError called %d times", s, reported)
	}
	frames := probe(t, raw)
	if res.frames[1] >= frames["h264"] || res.frames[1] < frames["h264"]*2/3 {
		t.Errorf("%d of %d video units", res.frames[1], frames["h264"])
	}
	// The last third was not touched: its units all come.
	var lastV, lastA time.Duration
	for _, au := range res.aus {
		if au.Track == 1 {
			lastV = au.DTS
		} else {
			lastA = au.DTS
		}
	}
	if first := res.aus[0].DTS; lastV-first < 9*time.Second || lastA-first < 9*time.Second {
		t.Errorf("video ends at %v, audio at %v after the first unit: the tail is missing", lastV-first, lastA-first)
	}
}

// TestTimestampStart: the output starts near one second, with nothing
// negative, whatever the publisher's clock reads.
func TestTimestampStart(t *testing.T) {
	for _, offset := range []string{"0", "5000", "95443"} {
		t.Run(offset, func(t *testing.T) {
			raw := encode(t, 2, args(x264, aac, []string{"-output_ts_offset", offset})...)
			res, err := demux(t, bytes.NewReader(raw), tsdemux.Options{})
			if err != nil {
				t.Fatal(err)
			}
			lo := time.Duration(1 << 62)
			for _, au := range res.aus {
				lo = min(lo, au.DTS)
			}
			if lo < 900*time.Millisecond || lo > 1100*time.Millisecond {
				t.Errorf("first DTS %v, want about 1s", lo)
			}
		})
	}
}

// TestParamChange: a resolution change mid-stream is counted once, and the
// track keeps the first parameters.
func TestParamChange(t *testing.T) {
	a := encode(t, 2, args(x264, aac)...)
	b := encode(t, 2, args(x264, aac, []string{"-s", "160x120"})...)
	res, err := demux(t, bytes.NewReader(splice(a, b)), tsdemux.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := res.d.Stats()
	if s.ParamChanges != 1 {
		t.Errorf("Stats = %+v, want 1 parameter change", s)
	}
	checkParams(t, res.d.Tracks()[0].Codec)
}

// TestAudioBeforeKeyframe: audio that arrives before the first video
// keyframe is kept; video before it is dropped.
func TestAudioBeforeKeyframe(t *testing.T) {
	raw := encode(t, 4, args(x264, aac)...)
	// Drop the video packets of the first second: the stream now starts
	// mid-GOP (no keyframe until 1 s) with audio flowing.
	var cut []byte
	for i := 0; i+188 <= len(raw); i += 188 {
		if pidOf(raw[i:]) == videoPID && i < len(raw)/8 {
			continue
		}
		cut = append(cut, raw[i:i+188]...)
	}
	res, err := demux(t, bytes.NewReader(cut), tsdemux.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.aus[0].Track != 2 {
		t.Fatalf("first unit on track %d, want the buffered audio", res.aus[0].Track)
	}
	frames := probe(t, raw)
	if res.frames[2] != frames["aac"] {
		t.Errorf("%d audio units, want all %d", res.frames[2], frames["aac"])
	}
	if res.frames[1] > frames["h264"]-gop || res.frames[1]%gop != 0 {
		t.Errorf("%d video units: want whole GOPs after the cut", res.frames[1])
	}
}
