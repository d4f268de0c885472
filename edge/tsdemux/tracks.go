package tsdemux

import (
	"bytes"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// codecName names an MPEG-TS codec for errors and Ignored, with the names
// edge/media.CodecName gives the same codec (tested), so a publisher reads
// the same words whichever protocol it used.
func codecName(c tscodecs.Codec) string {
	switch c.(type) {
	case *tscodecs.H264:
		return "H.264"
	case *tscodecs.H265:
		return "H.265"
	case *tscodecs.MPEG4Audio:
		return "AAC"
	case *tscodecs.Opus:
		return "Opus"
	case *tscodecs.MPEG4Video:
		return "MPEG-4 Part 2 video"
	case *tscodecs.MPEG1Video:
		return "MPEG-1/2 video"
	case *tscodecs.MPEG1Audio:
		return "MPEG-1/2 audio (MP2/MP3)"
	case *tscodecs.AC3:
		return "AC-3"
	case *tscodecs.EAC3:
		return "E-AC-3"
	case *tscodecs.MPEG4AudioLATM:
		return "AAC in LATM"
	case *tscodecs.KLV:
		return "KLV metadata"
	case *tscodecs.DVBSubtitle:
		return "DVB subtitles"
	}
	return "unknown stream type"
}

// isVideo reports whether c is a video codec mediacommon recognises.
// (Not c.IsVideo: mediacommon v2.9.5's MPEG1Audio claims to be video.)
func isVideo(c tscodecs.Codec) bool {
	switch c.(type) {
	case *tscodecs.H264, *tscodecs.H265, *tscodecs.MPEG4Video, *tscodecs.MPEG1Video:
		return true
	}
	return false
}

// isAudio reports whether c is an audio codec mediacommon recognises.
func isAudio(c tscodecs.Codec) bool {
	switch c.(type) {
	case *tscodecs.MPEG4Audio, *tscodecs.Opus, *tscodecs.MPEG1Audio, *tscodecs.AC3,
		*tscodecs.EAC3, *tscodecs.MPEG4AudioLATM:
		return true
	}
	return false
}

// selection is the program's tracks sorted into the ones the demuxer
// delivers and the ones it ignores.
type selection struct {
	video, audio *mpegts.Track
	ignored      []string
}

// selectTracks picks the first H.264/H.265 track and the first AAC/Opus
// track in PMT order and lists the rest as ignored. It fails with
// *UnsupportedError when the program has video but none the segmenter
// takes, or audio but none it takes, and with ErrNoVideo when it has no
// video at all.
func selectTracks(ts []*mpegts.Track) (selection, error) {
	var s selection
	var badVideo, badAudio string
	for _, t := range ts {
		switch t.Codec.(type) {
		case *tscodecs.H264, *tscodecs.H265:
			if s.video == nil {
				s.video = t
				continue
			}
		case *tscodecs.MPEG4Audio, *tscodecs.Opus:
			if s.audio == nil {
				s.audio = t
				continue
			}
		}
		name := codecName(t.Codec)
		switch {
		case isVideo(t.Codec) && badVideo == "":
			badVideo = name
		case isAudio(t.Codec) && badAudio == "":
			badAudio = name
		}
		s.ignored = append(s.ignored, name)
	}
	switch {
	case s.video == nil && badVideo != "":
		return s, &UnsupportedError{Kind: "video", Codec: badVideo}
	case s.video == nil:
		return s, fmt.Errorf("%w: the program has no video track", ErrNoVideo)
	case s.audio == nil && badAudio != "":
		return s, &UnsupportedError{Kind: "audio", Codec: badAudio}
	}
	return s, nil
}

// audioCodec converts the chosen audio track's codec to the form
// media.Track carries, and returns the duration of one AAC frame (zero for
// Opus, whose packets say their own duration).
func audioCodec(c tscodecs.Codec) (codecs.Codec, time.Duration) {
	switch c := c.(type) {
	case *tscodecs.MPEG4Audio:
		d := aacFallbackFrame
		if c.Config.SampleRate > 0 {
			d = aacFrameSamples * time.Second / time.Duration(c.Config.SampleRate)
		}
		return &codecs.MPEG4Audio{Config: c.Config}, d
	case *tscodecs.Opus:
		n := c.ChannelCount //nolint:staticcheck // the fallback when there is no descriptor
		if c.Desc != nil {
			n = c.Desc.ChannelCount()
		}
		if n <= 0 {
			n = 2 // an unmapped channel_config_code: stereo is what encoders send
		}
		return &codecs.Opus{ChannelCount: n}, 0
	}
	return nil, 0
}

const (
	// aacFrameSamples is the length of an AAC-LC (and HE-AAC core) frame
	// in samples: an ADTS frame holds one raw_data_block (ISO/IEC 14496-3
	// §1.A.3.2, one block per frame with number_of_raw_data_blocks = 0).
	aacFrameSamples = 1024
	// aacFallbackFrame is one AAC frame at 48 kHz, for a config without a
	// sample rate.
	aacFallbackFrame = aacFrameSamples * time.Second / 48000
	// videoFallbackFrame is the frame duration assumed for a video track
	// until two of its frames were seen (25 fps).
	videoFallbackFrame = 40 * time.Millisecond
)

// Parameter set slots in paramSets.
const (
	psVPS = iota
	psSPS
	psPPS
	psCount
)

// paramSets follows a video track's in-band parameter sets: during
// discovery the latest valid ones (they become the Track's codec), after it
// the ones last seen, to count changes.
type paramSets struct {
	h265 bool
	cur  [psCount][]byte // owned copies
}

// slot returns the paramSets slot of nalu, or -1 for other NAL units.
func (p *paramSets) slot(nalu []byte) int {
	if p.h265 {
		switch h265.NALUType(nalu[0] >> 1 & 0x3f) {
		case h265.NALUType_VPS_NUT:
			return psVPS
		case h265.NALUType_SPS_NUT:
			return psSPS
		case h265.NALUType_PPS_NUT:
			return psPPS
		}
		return -1
	}
	switch h264.NALUType(nalu[0] & 0x1f) {
	case h264.NALUTypeSPS:
		return psSPS
	case h264.NALUTypePPS:
		return psPPS
	}
	return -1
}

// validSPS reports whether sps parses, as the segmenter needs it to (it
// reads the resolution and the codec string from it).
func (p *paramSets) validSPS(sps []byte) bool {
	if p.h265 {
		var s h265.SPS
		return s.Unmarshal(sps) == nil
	}
	var s h264.SPS
	return len(sps) >= 4 && s.Unmarshal(sps) == nil
}

// observe takes the parameter sets in au. It returns whether any differs
// from the one held before (for the first of each kind too), and an error
// for an SPS that does not parse (which is not taken).
func (p *paramSets) observe(au [][]byte) (changed bool, err error) {
	for _, nalu := range au {
		i := p.slot(nalu)
		if i < 0 || bytes.Equal(p.cur[i], nalu) {
			continue
		}
		if i == psSPS && !p.validSPS(nalu) {
			err = fmt.Errorf("tsdemux: invalid in-band SPS (%d bytes)", len(nalu))
			continue
		}
		p.cur[i] = bytes.Clone(nalu)
		changed = true
	}
	return changed, err
}

// complete reports whether every parameter set the codec needs was seen.
func (p *paramSets) complete() bool {
	return (!p.h265 || p.cur[psVPS] != nil) && p.cur[psSPS] != nil && p.cur[psPPS] != nil
}

// codec returns the media codec for the parameter sets held.
func (p *paramSets) codec() codecs.Codec {
	if p.h265 {
		return &codecs.H265{VPS: p.cur[psVPS], SPS: p.cur[psSPS], PPS: p.cur[psPPS]}
	}
	return &codecs.H264{SPS: p.cur[psSPS], PPS: p.cur[psPPS]}
}

// isAUD reports whether nalu is an access unit delimiter.
func isAUD(nalu []byte, h265v bool) bool {
	if h265v {
		return h265.NALUType(nalu[0]>>1&0x3f) == h265.NALUType_AUD_NUT
	}
	return h264.NALUType(nalu[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter
}

// isKey reports whether au is a random access point.
func isKey(au [][]byte, h265v bool) bool {
	if h265v {
		return h265.IsRandomAccess(au)
	}
	return h264.IsRandomAccess(au)
}
