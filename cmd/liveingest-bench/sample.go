package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// SampleSpec describes the pre-encoded clip every publisher replays.
type SampleSpec struct {
	// Size is the video frame size. Default: 1280x720.
	Size string
	// FPS is the video frame rate. Default: 25.
	FPS int
	// VideoKbps is the H.264 target bitrate. Default: 2500.
	VideoKbps int
	// GOP is the keyframe interval; it must be a whole number of frames. Default: 2s.
	GOP time.Duration
	// Length is the clip's length; a multiple of GOP so that looping keeps
	// the keyframe cadence. Default: 20s.
	Length time.Duration
	// NoBFrames encodes without B-frames (x264 -bf 0) instead of the
	// preset's 3: MediaMTX v1.15.3 cannot record B-frames from RTMP
	// (docs/performance.md). Default: false.
	NoBFrames bool
}

// Validate names the first bad field.
func (s SampleSpec) Validate() error {
	switch {
	case !validSize(s.Size):
		return fmt.Errorf("--size: want WxH, got %q", s.Size)
	case s.FPS < 1 || s.FPS > 120:
		return fmt.Errorf("--fps: want 1-120, got %d", s.FPS)
	case s.VideoKbps < 100 || s.VideoKbps > 50000:
		return fmt.Errorf("--video-kbps: want 100-50000, got %d", s.VideoKbps)
	case s.GOP < 500*time.Millisecond || s.GOP%time.Millisecond != 0:
		return fmt.Errorf("--gop: want at least 500ms in whole milliseconds, got %v", s.GOP)
	case s.gopFrames()*int(time.Second)/s.FPS != int(s.GOP):
		return fmt.Errorf("--gop: %v is not a whole number of frames at %d fps", s.GOP, s.FPS)
	case s.Length < s.GOP || s.Length%s.GOP != 0 || s.Length > 10*time.Minute:
		return fmt.Errorf("--sample-length: want a multiple of --gop (%v) up to 10m, got %v", s.GOP, s.Length)
	}
	return nil
}

func (s SampleSpec) gopFrames() int { return int(s.GOP) * s.FPS / int(time.Second) }

func validSize(s string) bool {
	w, h, ok := strings.Cut(s, "x")
	a, e1 := strconv.Atoi(w)
	b, e2 := strconv.Atoi(h)
	return ok && e1 == nil && e2 == nil && a >= 16 && b >= 16 && a <= 7680 && b <= 4320 && a%2 == 0 && b%2 == 0
}

// ffmpegArgs encodes testsrc2 + a sine as H.264 (fixed GOP, no scene-cut
// keyframes, so segment cuts are predictable) + AAC into FLV.
func (s SampleSpec) ffmpegArgs(out string) []string {
	secs := strconv.FormatFloat(s.Length.Seconds(), 'f', -1, 64)
	g := strconv.Itoa(s.gopFrames())
	kb := strconv.Itoa(s.VideoKbps)
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=%d", s.Size, s.FPS),
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", secs, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
		"-b:v", kb + "k", "-maxrate", kb + "k", "-bufsize", strconv.Itoa(2*s.VideoKbps) + "k",
		"-g", g, "-keyint_min", g, "-sc_threshold", "0"}
	if s.NoBFrames {
		// Only when asked: the default arguments, and so the cached
		// clip's name, stay what they were.
		args = append(args, "-bf", "0")
	}
	return append(args, "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-f", "flv", out)
}

// EnsureSample returns the path of the clip for spec in cacheDir, encoding it
// with ffmpeg once: encoding 720p costs seconds of CPU that must not overlap
// a measurement, so it is cached by the hash of the ffmpeg arguments.
func EnsureSample(ctx context.Context, cacheDir string, spec SampleSpec) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(strings.Join(spec.ffmpegArgs(""), "\x00")))
	name := filepath.Join(cacheDir, "sample-"+hex.EncodeToString(sum[:6])+".flv")
	if fi, err := os.Stat(name); err == nil && fi.Size() > 0 {
		return name, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("--cache-dir: %w", err)
	}
	tmp := name + ".tmp" + strconv.Itoa(os.Getpid())
	cmd := exec.CommandContext(ctx, "ffmpeg", spec.ffmpegArgs(tmp)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("encode sample with ffmpeg: %w: %s", err, bytes.TrimSpace(out))
	}
	// Rename: a concurrent or interrupted run never sees a half-written clip.
	if err := os.Rename(tmp, name); err != nil {
		return "", err
	}
	return name, nil
}

// Frame is one media message of the clip, ready to send as it is.
type Frame struct {
	Video bool
	Key   bool          // video: an IDR access unit
	DTS   time.Duration // from the clip's start (first frame at 0)
	CTS   time.Duration // video: PTS − DTS
	// Payload is the FLV tag's media body: AVCC NALUs with 4-byte lengths
	// (video) or one raw AAC frame (audio). Publishers send it without
	// re-encoding, so the generator costs little CPU per frame.
	Payload []byte
}

// Sample is a parsed clip: codec configuration and frames in send order.
type Sample struct {
	SPS, PPS    []byte
	AudioConfig *mpeg4audio.AudioSpecificConfig
	Frames      []Frame
	// Loop is the clip's period: frame timestamps of loop k are shifted by
	// k × Loop. Frames at or after Loop were dropped (AAC runs a little past
	// the video) so that timestamps never go backwards across a loop.
	Loop      time.Duration
	Keyframes int
	Bytes     int64 // payload bytes of one loop
	Width     int
	Height    int
}

// Kbps is the clip's payload bitrate.
func (s *Sample) Kbps() float64 { return float64(s.Bytes*8) / s.Loop.Seconds() / 1000 }

// FLV tag types and codec ids (Adobe FLV spec v10.1, E.4).
const (
	flvTagAudio  = 8
	flvTagVideo  = 9
	flvTagScript = 18
	flvCodecAVC  = 7
	flvSoundAAC  = 10
)

// ParseFLV parses an FLV file holding one H.264 and one AAC track.
func ParseFLV(b []byte) (*Sample, error) {
	if len(b) < 13 || string(b[:3]) != "FLV" {
		return nil, errors.New("flv: not an FLV file")
	}
	off := int(binary.BigEndian.Uint32(b[5:9])) + 4 // header, then PreviousTagSize0
	if off < 13 || off > len(b) {
		return nil, errors.New("flv: bad header size")
	}
	s := &Sample{}
	var raw []Frame
	for off < len(b) {
		if len(b)-off < 11 {
			return nil, fmt.Errorf("flv: truncated tag header at %d", off)
		}
		typ := b[off] & 0x1f
		if b[off]&0x20 != 0 {
			return nil, fmt.Errorf("flv: encrypted tag at %d", off)
		}
		size := int(b[off+1])<<16 | int(b[off+2])<<8 | int(b[off+3])
		ts := int64(b[off+7])<<24 | int64(b[off+4])<<16 | int64(b[off+5])<<8 | int64(b[off+6])
		body := off + 11
		if len(b)-body < size+4 {
			return nil, fmt.Errorf("flv: truncated tag at %d", off)
		}
		data := b[body : body+size]
		off = body + size + 4 // skip PreviousTagSize
		dts := time.Duration(ts) * time.Millisecond
		switch typ {
		case flvTagVideo:
			f, err := s.parseVideo(data, dts)
			if err != nil {
				return nil, fmt.Errorf("flv: video tag at %v: %w", dts, err)
			}
			if f != nil {
				raw = append(raw, *f)
			}
		case flvTagAudio:
			f, err := s.parseAudio(data, dts)
			if err != nil {
				return nil, fmt.Errorf("flv: audio tag at %v: %w", dts, err)
			}
			if f != nil {
				raw = append(raw, *f)
			}
		case flvTagScript:
		default:
			return nil, fmt.Errorf("flv: unknown tag type %d", typ)
		}
	}
	return s.finish(raw)
}

func (s *Sample) parseVideo(d []byte, dts time.Duration) (*Frame, error) {
	if len(d) < 5 {
		return nil, errors.New("short tag")
	}
	if d[0]&0x80 != 0 || d[0]&0x0f != flvCodecAVC {
		return nil, fmt.Errorf("codec id %d: only legacy-FLV H.264 is supported", d[0]&0x0f)
	}
	cts := int32(uint32(d[2])<<16|uint32(d[3])<<8|uint32(d[4])) << 8 >> 8 // SI24
	switch d[1] {
	case 0: // AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1)
		return nil, s.parseAVCConfig(d[5:])
	case 1:
		payload := d[5:]
		var au h264.AVCC
		if err := au.Unmarshal(payload); err != nil {
			return nil, fmt.Errorf("AVCC access unit: %w", err)
		}
		key := d[0]>>4 == 1
		if key != h264.IsRandomAccess(au) {
			return nil, errors.New("FLV keyframe flag disagrees with the IDR NAL units")
		}
		return &Frame{Video: true, Key: key, DTS: dts, CTS: time.Duration(cts) * time.Millisecond, Payload: payload}, nil
	default: // end of sequence
		return nil, nil
	}
}

func (s *Sample) parseAVCConfig(c []byte) error {
	if len(c) < 7 || c[0] != 1 {
		return errors.New("bad AVC configuration record")
	}
	if c[4]&3 != 3 {
		// RTMP receivers (gortmplib included) read 4-byte NALU lengths.
		return fmt.Errorf("NALU length size %d: want 4", c[4]&3+1)
	}
	p := 5
	read := func() ([]byte, error) {
		if len(c) < p+2 {
			return nil, errors.New("truncated AVC configuration record")
		}
		n := int(binary.BigEndian.Uint16(c[p:]))
		p += 2
		if len(c) < p+n || n == 0 {
			return nil, errors.New("truncated AVC configuration record")
		}
		p += n
		return c[p-n : p], nil
	}
	nsps := int(c[p] & 0x1f)
	p++
	for i := range nsps {
		b, err := read()
		if err != nil {
			return err
		}
		if i == 0 {
			s.SPS = bytes.Clone(b)
		}
	}
	if len(c) <= p {
		return errors.New("truncated AVC configuration record")
	}
	npps := int(c[p])
	p++
	for i := range npps {
		b, err := read()
		if err != nil {
			return err
		}
		if i == 0 {
			s.PPS = bytes.Clone(b)
		}
	}
	if s.SPS == nil || s.PPS == nil {
		return errors.New("AVC configuration record without SPS or PPS")
	}
	var sps h264.SPS
	if err := sps.Unmarshal(s.SPS); err != nil {
		return fmt.Errorf("SPS: %w", err)
	}
	s.Width, s.Height = sps.Width(), sps.Height()
	return nil
}

func (s *Sample) parseAudio(d []byte, dts time.Duration) (*Frame, error) {
	if len(d) < 2 {
		return nil, errors.New("short tag")
	}
	if d[0]>>4 != flvSoundAAC {
		return nil, fmt.Errorf("sound format %d: only AAC is supported", d[0]>>4)
	}
	if d[1] == 0 {
		var c mpeg4audio.AudioSpecificConfig
		if err := c.Unmarshal(d[2:]); err != nil {
			return nil, fmt.Errorf("AudioSpecificConfig: %w", err)
		}
		s.AudioConfig = &c
		return nil, nil
	}
	if len(d) == 2 {
		return nil, nil
	}
	return &Frame{DTS: dts, Payload: d[2:]}, nil
}

// finish checks the clip and fixes its loop period: a whole number of GOPs
// ending where the last GOP would start again.
func (s *Sample) finish(raw []Frame) (*Sample, error) {
	if s.SPS == nil || s.AudioConfig == nil {
		return nil, errors.New("flv: want one H.264 and one AAC track with their configuration")
	}
	var keys []time.Duration
	var last time.Duration
	for _, f := range raw {
		if f.Video && f.Key {
			keys = append(keys, f.DTS)
		}
		if f.Video {
			last = f.DTS
		}
	}
	if len(keys) >= 2 && keys[0] > 0 && keys[0] < keys[1]-keys[0] {
		// Without B-frames ffmpeg's FLV muxer starts the video where the
		// primed AAC would have started (21 ms in): start the clip at its
		// first keyframe, dropping the audio before it.
		off := keys[0]
		kept := raw[:0]
		for _, f := range raw {
			if f.DTS >= off {
				f.DTS -= off
				kept = append(kept, f)
			}
		}
		raw = kept
		for i := range keys {
			keys[i] -= off
		}
		last -= off
	}
	if len(keys) < 2 || keys[0] != 0 {
		return nil, errors.New("flv: want at least two keyframes, the first at 0")
	}
	gop := keys[1] - keys[0]
	for i := 1; i < len(keys); i++ {
		if keys[i]-keys[i-1] != gop {
			return nil, fmt.Errorf("flv: keyframe interval changes at %v (%v, then %v): encode with a fixed GOP", keys[i], gop, keys[i]-keys[i-1])
		}
	}
	// The loop ends where the keyframe after the last GOP would be.
	s.Loop = keys[len(keys)-1] + gop
	if last >= s.Loop {
		return nil, fmt.Errorf("flv: video runs past the loop end %v", s.Loop)
	}
	// ffmpeg starts AAC a few tens of ms after the video (encoder
	// priming). Looped as is, every loop seam would leave that gap in the
	// audio, and the segmenter waits for audio to reach a cut before it
	// commits a segment: every tenth segment would look slower for a reason
	// of the clip, not the server. Starting audio at 0 closes the seam.
	var a0 time.Duration = -1
	for _, f := range raw {
		if !f.Video {
			a0 = f.DTS
			break
		}
	}
	if a0 > 0 && a0 < gop {
		for i := range raw {
			if !raw[i].Video {
				raw[i].DTS -= a0
			}
		}
		// Keep the send order by timestamp, video first at equal ones.
		slices.SortStableFunc(raw, func(a, b Frame) int { return cmp.Compare(a.DTS, b.DTS) })
	}
	for _, f := range raw {
		if f.DTS >= s.Loop {
			continue
		}
		s.Frames = append(s.Frames, f)
		s.Bytes += int64(len(f.Payload))
		if f.Video && f.Key {
			s.Keyframes++
		}
	}
	return s, nil
}

// LoadSample reads and parses a clip file once; every publisher shares the
// result read-only.
func LoadSample(path string) (*Sample, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseFLV(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
