package segment_test

import (
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/internal/testenv"
)

// input is a demuxed test stream.
type input struct {
	tracks      []media.Track
	aus         []media.AccessUnit
	videoFrames int
}

func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (apt-get install ffmpeg)", bin)
		}
	}
}

// genInput has ffmpeg encode seconds of testsrc2 + sine as H.264 (with
// B-frames, so PTS ≠ DTS) and AAC in MPEG-TS, keyframes every gop frames
// at 25 fps, and demuxes it with mediacommon into access units in stream
// order, as a protocol package would hand them over.
func genInput(t *testing.T, seconds, gop int) input {
	t.Helper()
	needFFmpeg(t)
	g := strconv.Itoa(gop)
	r := testenv.EncodeTS(t, seconds, "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", g, "-keyint_min", g, "-sc_threshold", "0")
	var in input
	var h264c *codecs.H264
	var aacTrack *media.Track
	ts := func(v int64) time.Duration { return time.Duration(v) * time.Second / 90000 }
	for _, tr := range r.Tracks() {
		switch c := tr.Codec.(type) {
		case *tscodecs.H264:
			h264c = &codecs.H264{}
			in.tracks = append(in.tracks, media.Track{ID: 1, Codec: h264c})
			r.OnDataH264(tr, func(pts, dts int64, au [][]byte) error {
				for _, nalu := range au {
					switch h264.NALUType(nalu[0] & 0x1f) {
					case h264.NALUTypeSPS:
						if h264c.SPS == nil {
							h264c.SPS = nalu
						}
					case h264.NALUTypePPS:
						if h264c.PPS == nil {
							h264c.PPS = nalu
						}
					}
				}
				in.videoFrames++
				in.aus = append(in.aus, media.AccessUnit{Track: 1, DTS: ts(dts), PTS: ts(pts), Key: h264.IsRandomAccess(au), Data: au})
				return nil
			})
		case *tscodecs.MPEG4Audio:
			cfg := c.Config
			in.tracks = append(in.tracks, media.Track{ID: 2, Codec: &codecs.MPEG4Audio{Config: cfg}})
			aacTrack = &in.tracks[len(in.tracks)-1]
			r.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				for i, au := range aus {
					d := ts(pts) + time.Duration(i)*1024*time.Second/time.Duration(cfg.SampleRate)
					in.aus = append(in.aus, media.AccessUnit{Track: 2, DTS: d, PTS: d, Key: true, Data: [][]byte{au}})
				}
				return nil
			})
		}
	}
	for {
		if err := r.Read(); err != nil {
			break
		}
	}
	if h264c == nil || h264c.SPS == nil || aacTrack == nil {
		t.Fatalf("demux found no H.264 with SPS or no AAC: %+v", in.tracks)
	}
	return in
}
