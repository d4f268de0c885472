package rtmp

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bluenviron/gortmplib"
	gcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/liveingest/liveingest/edge/ingest"
	"github.com/liveingest/liveingest/edge/media"
)

// mediaTracks translates the discovered RTMP tracks into media tracks (IDs
// 1…n in gortmplib's order: video first). A codec that the segmenting
// pipeline does not take is an error naming it; the caller ends the session
// with bad-codec.
func mediaTracks(in []*gortmplib.Track) ([]media.Track, error) {
	out := make([]media.Track, 0, len(in))
	for i, t := range in {
		var c codecs.Codec
		switch g := t.Codec.(type) {
		case *gcodecs.H264:
			c = &codecs.H264{SPS: g.SPS, PPS: g.PPS}
		case *gcodecs.H265:
			c = &codecs.H265{VPS: g.VPS, SPS: g.SPS, PPS: g.PPS}
		case *gcodecs.MPEG4Audio:
			if g.Config == nil {
				return nil, errors.New("AAC without an AudioSpecificConfig")
			}
			c = &codecs.MPEG4Audio{Config: *g.Config}
		case *gcodecs.Opus:
			ch := 2
			if g.IDHeader != nil {
				ch = int(g.IDHeader.ChannelCount)
			}
			c = &codecs.Opus{ChannelCount: ch}
		default:
			return nil, fmt.Errorf("unsupported codec %s; send H.264 or H.265 video and AAC or Opus audio", rtmpCodecName(t.Codec))
		}
		if !ingest.Supported(c) {
			return nil, fmt.Errorf("unsupported codec %s; send H.264 or H.265 video and AAC or Opus audio", ingest.CodecName(c))
		}
		out = append(out, media.Track{ID: i + 1, Codec: c})
	}
	return out, nil
}

func rtmpCodecName(c gcodecs.Codec) string {
	switch c.(type) {
	case *gcodecs.MPEG1Audio:
		return "MPEG-1/2 audio (MP3)"
	case *gcodecs.AV1:
		return "AV1"
	case *gcodecs.VP9:
		return "VP9"
	case *gcodecs.AC3:
		return "AC-3"
	case *gcodecs.FLAC:
		return "FLAC"
	case *gcodecs.G711:
		return "G.711"
	case *gcodecs.LPCM:
		return "LPCM"
	}
	return fmt.Sprintf("%T", c)
}

// FLV codec ids gortmplib's message layer refuses (Adobe FLV spec E.4.2/3;
// 9 is what ffmpeg's FLV muxer writes for MPEG-4 Part 2).
var (
	flvVideo = map[int]string{1: "JPEG video", 2: "Sorenson H.263", 3: "Screen video", 4: "On2 VP6",
		5: "On2 VP6 with alpha", 6: "Screen video v2", 8: "RealVideo H.263", 9: "MPEG-4 Part 2 video"}
	flvAudio = map[int]string{0: "PCM (platform endian)", 1: "ADPCM", 4: "Nellymoser 16 kHz", 5: "Nellymoser 8 kHz",
		6: "Nellymoser", 11: "Speex", 14: "MP3 8 kHz", 15: "device-specific audio"}
)

// unsupportedCodec recognizes gortmplib's refusal of a legacy FLV codec id
// or an enhanced-RTMP FourCC during track discovery, and names the codec.
// gortmplib reports these only as error text, so this is where that text is
// parsed, once.
func unsupportedCodec(err error) (string, bool) {
	s := err.Error()
	for _, k := range []struct {
		prefix string
		names  map[int]string
		kind   string
	}{{"unsupported video codec: ", flvVideo, "video"}, {"unsupported audio codec: ", flvAudio, "audio"}} {
		if i := strings.Index(s, k.prefix); i >= 0 {
			var id int
			if _, err := fmt.Sscanf(s[i+len(k.prefix):], "%d", &id); err == nil {
				if n, ok := k.names[id]; ok {
					return n, true
				}
				return fmt.Sprintf("FLV %s codec %d", k.kind, id), true
			}
		}
	}
	if i := strings.Index(s, "unsupported fourCC: "); i >= 0 {
		return "enhanced-RTMP codec " + strings.TrimSpace(s[i+len("unsupported fourCC: "):]), true
	}
	return "", false
}

// onData routes every track's data to write as access units: video AUs
// without a picture (a sequence header repeated as data) are skipped, since
// the parameter sets are in the track; empty units are skipped.
func onData(rd *gortmplib.Reader, tracks []media.Track, write func(media.AccessUnit)) {
	for i, t := range rd.Tracks() {
		id := tracks[i].ID
		switch t.Codec.(type) {
		case *gcodecs.H264:
			rd.OnDataH264(t, func(pts, dts time.Duration, au [][]byte) {
				if hasVCL(au, h264VCL) {
					write(media.AccessUnit{Track: id, PTS: pts, DTS: dts, Key: h264.IsRandomAccess(au), Data: au})
				}
			})
		case *gcodecs.H265:
			rd.OnDataH265(t, func(pts, dts time.Duration, au [][]byte) {
				if hasVCL(au, h265VCL) {
					write(media.AccessUnit{Track: id, PTS: pts, DTS: dts, Key: h265.IsRandomAccess(au), Data: au})
				}
			})
		case *gcodecs.MPEG4Audio:
			rd.OnDataMPEG4Audio(t, func(pts time.Duration, au []byte) {
				if len(au) > 0 {
					write(media.AccessUnit{Track: id, PTS: pts, DTS: pts, Key: true, Data: [][]byte{au}})
				}
			})
		case *gcodecs.Opus:
			rd.OnDataOpus(t, func(pts time.Duration, pkt []byte) {
				if len(pkt) > 0 {
					write(media.AccessUnit{Track: id, PTS: pts, DTS: pts, Key: true, Data: [][]byte{pkt}})
				}
			})
		}
	}
}

func h264VCL(n []byte) bool { t := h264.NALUType(n[0] & 0x1f); return t >= 1 && t <= 5 }
func h265VCL(n []byte) bool { return (n[0]>>1)&0x3f < 32 }

func hasVCL(au [][]byte, vcl func([]byte) bool) bool {
	for _, n := range au {
		if len(n) > 0 && vcl(n) {
			return true
		}
	}
	return false
}

func trackNames(ts []media.Track) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name()
	}
	return strings.Join(names, "+")
}
