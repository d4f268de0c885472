package rtmp

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	gcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

// tsAU is one demuxed access unit in stream order.
type tsAU struct {
	video    bool
	pts, dts time.Duration
	data     [][]byte
}

// hevcInput has ffmpeg encode secs of HEVC (libx265, 2 s GOP) + AAC into
// MPEG-TS and demuxes it. B-frames are off: x265's first GOP has a larger
// decode delay than the next ones, so the 2 s keyframe's DTS is 1.96 s
// after the first one and the segmenter (which cuts on DTS) would make a
// 4 s first segment.
func hevcInput(t *testing.T, secs string) (vps, sps, pps []byte, aac *mpeg4audio.AudioSpecificConfig, aus []tsAU) {
	t.Helper()
	n, _ := strconv.Atoi(secs)
	r := testenv.EncodeTS(t, n, "-c:v", "libx265", "-preset", "ultrafast",
		"-x265-params", "keyint=50:min-keyint=50:scenecut=0:log-level=error")
	ts := func(v int64) time.Duration { return time.Duration(v) * time.Second / 90000 }
	for _, tr := range r.Tracks() {
		switch c := tr.Codec.(type) {
		case *tscodecs.H265:
			r.OnDataH265(tr, func(pts, dts int64, au [][]byte) error {
				for _, n := range au {
					switch h265.NALUType((n[0] >> 1) & 0x3f) {
					case h265.NALUType_VPS_NUT:
						vps = n
					case h265.NALUType_SPS_NUT:
						sps = n
					case h265.NALUType_PPS_NUT:
						pps = n
					}
				}
				aus = append(aus, tsAU{video: true, pts: ts(pts), dts: ts(dts), data: au})
				return nil
			})
		case *tscodecs.MPEG4Audio:
			cfg := c.Config
			aac = &cfg
			r.OnDataMPEG4Audio(tr, func(pts int64, frames [][]byte) error {
				for i, f := range frames {
					d := ts(pts) + time.Duration(i)*1024*time.Second/time.Duration(cfg.SampleRate)
					aus = append(aus, tsAU{pts: d, dts: d, data: [][]byte{f}})
				}
				return nil
			})
		}
	}
	for r.Read() == nil {
	}
	if vps == nil || sps == nil || pps == nil || aac == nil {
		t.Fatal("demux found no HEVC parameter sets or no AAC")
	}
	return vps, sps, pps, aac, aus
}

// TestHEVCEnhancedRTMP: the gortmplib client publishes HEVC (enhanced
// RTMP) + AAC; ffprobe decodes the HLS output.
func TestHEVCEnhancedRTMP(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	vps, sps, pps, aac, aus := hevcInput(t, "8")
	w := newWorld(t, teststores.Disk(t))
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t))
	id, key := w.Slot(t, "hevc")

	u, err := url.Parse(e.url(key))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := &gortmplib.Client{URL: u, Publish: true}
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	vt := &gortmplib.Track{Codec: &gcodecs.H265{VPS: vps, SPS: sps, PPS: pps}}
	at := &gortmplib.Track{Codec: &gcodecs.MPEG4Audio{Config: aac}}
	wr := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{vt, at}}
	if err := wr.Initialize(); err != nil {
		t.Fatal(err)
	}
	// Paced at four times real time: quick, yet a realistic interleaving.
	start := time.Now()
	base := aus[0].dts
	for _, au := range aus {
		if d := (au.dts-base)/4 - time.Since(start); d > 0 {
			time.Sleep(d)
		}
		if au.video {
			err = wr.WriteH265(vt, au.pts, au.dts, au.data)
		} else {
			err = wr.WriteMPEG4Audio(at, au.pts, au.data[0])
		}
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	c.Close()
	ingesttest.WaitFor(t, "the session to end", 15*time.Second, func() bool {
		return len(ingesttest.Live(t, e.co.Registry, id)) == 0 && strings.Contains(w.Get(t, id, "video.m3u8"), "#EXT-X-ENDLIST")
	})
	w.CheckPlaylist(t, id, "video.m3u8", 2*time.Second, 0.1, true)
	fr := testenv.Probe(t, w.PlaybackURL(t, id)+"index.m3u8")
	if fr["hevc"] < 150 || fr["aac"] == 0 {
		t.Errorf("HLS decodes to %v, want ≥ 150 hevc frames and some aac", fr)
	}
}
