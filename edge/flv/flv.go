// Package flv maps RTMP's media — FLV audio and video tags, legacy and
// enhanced RTMP, as gortmplib reads them — to edge/media tracks and access
// units.
//
// It is the one mapping for every RTMP peer: edge/rtmp's publishers today,
// and an RTMP source that edge/pull plays. Both read through a
// gortmplib.Reader, whose Conn is a *gortmplib.ServerConn on the server side
// and a *gortmplib.Client on the client side, so the same three calls serve
// both: RefusedCodec on the Reader's Initialize error, Tracks on its tracks,
// OnData before its Read loop. Protocol packages never import each other;
// this package is what they share instead.
//
// It decides nothing about the session: which codecs the segmenting
// pipeline takes is edge/ingest's check. Here a codec that edge/media has
// no form for is refused by name, so that the publisher learns what it sent.
package flv

import (
	"fmt"
	"time"

	"github.com/bluenviron/gortmplib"
	gcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/liveingest/liveingest/edge/media"
)

// Tracks translates the tracks a gortmplib.Reader discovered into media
// tracks, IDs 1…n in the Reader's order (video first). A codec that
// edge/media has no form for (MP3, AV1, VP9, AC-3, FLAC, G.711, LPCM), and
// AAC without its AudioSpecificConfig, is an *UnsupportedError naming it.
func Tracks(in []*gortmplib.Track) ([]media.Track, error) {
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
				return nil, &UnsupportedError{Codec: "AAC without an AudioSpecificConfig"}
			}
			c = &codecs.MPEG4Audio{Config: *g.Config}
		case *gcodecs.Opus:
			// Without an ID header (RFC 7845 §5.1) gortmplib knows no
			// channel count; stereo is what RTMP encoders send.
			ch := 2
			if g.IDHeader != nil {
				ch = int(g.IDHeader.ChannelCount)
			}
			c = &codecs.Opus{ChannelCount: ch}
		default:
			return nil, &UnsupportedError{Codec: codecName(t.Codec)}
		}
		out = append(out, media.Track{ID: i + 1, Codec: c})
	}
	return out, nil
}

// OnData routes the data of every track of rd to write as access units,
// on the goroutine that calls rd.Read. tracks must be Tracks(rd.Tracks()).
// Video access units without a picture (a sequence header repeated as
// data) are skipped, since the parameter sets are in the track; empty audio
// frames are skipped too. Timestamps are gortmplib's: the peer's clock in
// milliseconds, composition time applied.
func OnData(rd *gortmplib.Reader, tracks []media.Track, write func(media.AccessUnit)) {
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

// h264VCL: coded slices, NAL unit types 1–5 (ITU-T H.264 Table 7-1).
func h264VCL(n []byte) bool { t := h264.NALUType(n[0] & 0x1f); return t >= 1 && t <= 5 }

// h265VCL: NAL unit types below 32 (ITU-T H.265 Table 7-1).
func h265VCL(n []byte) bool { return (n[0]>>1)&0x3f < 32 }

func hasVCL(au [][]byte, vcl func([]byte) bool) bool {
	for _, n := range au {
		if len(n) > 0 && vcl(n) {
			return true
		}
	}
	return false
}

// codecName names a gortmplib codec that edge/media has no form for.
func codecName(c gcodecs.Codec) string {
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
