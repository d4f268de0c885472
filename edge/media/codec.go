package media

import (
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// What liveingest ingests is decided here, once: every protocol's
// refusal of a codec, whatever its wire format calls the codec, ends with
// Advice, and the segmenting pipeline (edge/ingest.Start) takes exactly
// the tracks Supported accepts.

// Advice is what a refusal of a codec tells the publisher to send.
const Advice = "send H.264 or H.265 video and AAC or Opus audio"

// Refusal is the message that refuses the codec named name (CodecName,
// or a wire format's own name for a codec that has no mp4 form here).
func Refusal(name string) string { return "unsupported codec " + name + "; " + Advice }

// Supported reports whether the segmenting pipeline takes c: H.264 with
// its SPS and PPS, H.265 with its VPS, SPS and PPS, AAC, Opus.
func Supported(c codecs.Codec) bool {
	switch c := c.(type) {
	case *codecs.H264:
		return len(c.SPS) > 0 && len(c.PPS) > 0
	case *codecs.H265:
		return len(c.VPS) > 0 && len(c.SPS) > 0 && len(c.PPS) > 0
	case *codecs.MPEG4Audio, *codecs.Opus:
		return true
	}
	return false
}

// CodecName names c for a refusal, including codecs the pipeline refuses
// (so that the publisher learns what it sent).
func CodecName(c codecs.Codec) string {
	switch c := c.(type) {
	case *codecs.H264:
		if len(c.SPS) == 0 || len(c.PPS) == 0 {
			return "H.264 without SPS/PPS"
		}
		return "H.264"
	case *codecs.H265:
		if len(c.VPS) == 0 || len(c.SPS) == 0 || len(c.PPS) == 0 {
			return "H.265 without VPS/SPS/PPS"
		}
		return "H.265"
	case *codecs.MPEG4Audio:
		return "AAC"
	case *codecs.Opus:
		return "Opus"
	case *codecs.MPEG4Video:
		return "MPEG-4 Part 2 video"
	case *codecs.MPEG1Video:
		return "MPEG-1/2 video"
	case *codecs.MPEG1Audio:
		return "MPEG-1/2 audio (MP2/MP3)"
	case *codecs.AV1:
		return "AV1"
	case *codecs.VP9:
		return "VP9"
	case *codecs.AC3:
		return "AC-3"
	case *codecs.LPCM:
		return "LPCM"
	case nil:
		return "none"
	}
	return fmt.Sprintf("%T", c)
}
