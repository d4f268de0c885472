package segment

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/origin/manifest"
)

// CMAF (ISO 23000-19) with one track per file: every rendition has its own
// init file and its own segments, so the same files serve an HLS media
// playlist each (RFC 8216 4.3.2.5 EXT-X-MAP) and a DASH AdaptationSet each
// (ISO 23009-1 5.3.9.4 SegmentTemplate). The track ID inside every file is 1.
const (
	fileTrackID    = 1
	videoTimeScale = 90000
)

// trackInfo is what the writer derives from a media.Track at Start.
type trackInfo struct {
	rec   manifest.Track // what the manifests say of it
	id    int            // media.Track.ID
	codec codecs.Codec
	video bool
	h265  bool
}

// describeTrack validates the codec and derives the codecs string, the
// timescale and, for video, the resolution from the SPS.
func describeTrack(t media.Track) (trackInfo, error) {
	ti := trackInfo{id: t.ID, codec: t.Codec}
	switch c := t.Codec.(type) {
	case *codecs.H264:
		var sps h264.SPS
		if len(c.SPS) < 4 || len(c.PPS) == 0 {
			return ti, fmt.Errorf("%w: h264 without SPS/PPS", ErrUnsupportedCodec)
		}
		if err := sps.Unmarshal(c.SPS); err != nil {
			return ti, fmt.Errorf("%w: h264 SPS: %v", ErrUnsupportedCodec, err)
		}
		ti.video = true
		// RFC 6381 3.3: avc1.PPCCLL from profile_idc, the constraint
		// flags byte and level_idc, which are SPS bytes 1..3.
		ti.rec = manifest.Track{Kind: manifest.Video, Codec: fmt.Sprintf("avc1.%02x%02x%02x", c.SPS[1], c.SPS[2], c.SPS[3]),
			TimeScale: videoTimeScale, Width: sps.Width(), Height: sps.Height()}
	case *codecs.H265:
		var sps h265.SPS
		if len(c.VPS) == 0 || len(c.SPS) == 0 || len(c.PPS) == 0 {
			return ti, fmt.Errorf("%w: h265 without VPS/SPS/PPS", ErrUnsupportedCodec)
		}
		if err := sps.Unmarshal(c.SPS); err != nil {
			return ti, fmt.Errorf("%w: h265 SPS: %v", ErrUnsupportedCodec, err)
		}
		ti.video, ti.h265 = true, true
		ti.rec = manifest.Track{Kind: manifest.Video, Codec: hevcCodecString(&sps.ProfileTierLevel),
			TimeScale: videoTimeScale, Width: sps.Width(), Height: sps.Height()}
	case *codecs.MPEG4Audio:
		cfg := c.Config
		if cfg.SampleRate <= 0 {
			return ti, fmt.Errorf("%w: aac with sample rate %d", ErrUnsupportedCodec, cfg.SampleRate)
		}
		ch := cfg.ChannelCount
		if ch == 0 {
			ch = int(cfg.ChannelConfig)
		}
		// RFC 6381 3.3 with the MP4 registration: mp4a.40.<audio object type>.
		ti.rec = manifest.Track{Kind: manifest.Audio, Codec: fmt.Sprintf("mp4a.40.%d", int(cfg.Type)),
			TimeScale: uint32(cfg.SampleRate), SampleRate: cfg.SampleRate, Channels: ch}
	case *codecs.Opus:
		// Opus in ISOBMFF always runs at 48 kHz.
		ti.rec = manifest.Track{Kind: manifest.Audio, Codec: "opus", TimeScale: 48000, SampleRate: 48000, Channels: c.ChannelCount}
	case nil:
		return ti, fmt.Errorf("%w: track %d has no codec", ErrUnsupportedCodec, t.ID)
	default:
		return ti, fmt.Errorf("%w: %T on track %d", ErrUnsupportedCodec, t.Codec, t.ID)
	}
	return ti, nil
}

// hevcCodecString follows ISO 14496-15 E.3: hvc1.[space]profile.compat.tier
// level.constraints, with the compatibility flags in reverse bit order and
// trailing zero constraint bytes left out.
func hevcCodecString(p *h265.SPS_ProfileTierLevel) string {
	var b strings.Builder
	b.WriteString("hvc1.")
	if p.GeneralProfileSpace > 0 {
		b.WriteByte('A' + p.GeneralProfileSpace - 1)
	}
	fmt.Fprintf(&b, "%d.", p.GeneralProfileIdc)
	var compat uint32
	for j := 0; j < 32; j++ {
		if p.GeneralProfileCompatibilityFlag[j] {
			compat |= 1 << j // flag j is bit 31-j in the stream; reversed here
		}
	}
	fmt.Fprintf(&b, "%X.", compat)
	if p.GeneralTierFlag != 0 {
		b.WriteByte('H')
	} else {
		b.WriteByte('L')
	}
	fmt.Fprintf(&b, "%d", p.GeneralLevelIdc)
	var c0 byte
	for i, f := range []bool{p.GeneralProgressiveSourceFlag, p.GeneralInterlacedSourceFlag,
		p.GeneralNonPackedConstraintFlag, p.GeneralFrameOnlyConstraintFlag} {
		if f {
			c0 |= 0x80 >> i
		}
	}
	if c0 != 0 {
		fmt.Fprintf(&b, ".%02X", c0)
	}
	return b.String()
}

// initFile is the CMAF header of one track.
func initFile(ti trackInfo) ([]byte, error) {
	in := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: fileTrackID, TimeScale: ti.rec.TimeScale, Codec: ti.codec}}}
	var buf seekablebuffer.Buffer
	if err := in.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("%w: init: %v", ErrUnsupportedCodec, err)
	}
	return buf.Bytes(), nil
}

// toScale converts d ≥ 0 to units of scale per second without overflow for
// any realistic session length.
func toScale(d time.Duration, scale uint32) uint64 {
	s := uint64(scale)
	return uint64(d/time.Second)*s + uint64(d%time.Second)*s/uint64(time.Second)
}

// The boxes of a CMAF media segment with one track (ISO 14496-12 8.8),
// byte for byte what mediacommon's fmp4.Part.Marshal writes for one
// track — written here by hand because that marshaller goes through
// reflection and copies every sample twice, which at a few hundred streams
// was a tenth of a core.
const (
	trunDataOffset = 0x000001
	trunDuration   = 0x000100
	trunSize       = 0x000200
	trunFlags      = 0x000400
	trunCTO        = 0x000800
	tfhdBaseIsMoof = 0x020000

	sampleNonSync = 1 << 16 // sample_is_non_sync_sample in sample_flags
)

// maxSegmentBytes keeps the mdat within a 32-bit box size (and the trun's
// data offset within int32): far above any segment a queue would take.
const maxSegmentBytes = 1<<31 - 1<<20

// moofHead builds the moof and the mdat box header of one track's segment:
// the mdat's payload is seg's bytes, which follow it unchanged. next is the
// decode time after the last sample (the next segment's first) when
// haveNext; without it the last sample repeats the previous one's
// duration. It returns the header and the segment's duration in timescale
// units.
func moofHead(ti trackInfo, seq uint64, seg *trackSeg, next uint64, haveNext bool) ([]byte, uint64, error) {
	ss := seg.samples
	if len(ss) == 0 {
		return nil, 0, fmt.Errorf("%w: a segment without samples", ErrBadInput)
	}
	if seg.size > maxSegmentBytes {
		return nil, 0, fmt.Errorf("%w: a segment of %d bytes", ErrBadInput, seg.size)
	}
	flags := uint32(trunDataOffset | trunDuration | trunSize)
	entry := 8
	for _, s := range ss {
		if !s.key && flags&trunFlags == 0 {
			flags |= trunFlags
			entry += 4
		}
		if s.ptsOff != 0 && flags&trunCTO == 0 {
			flags |= trunCTO
			entry += 4
		}
	}
	trunLen := 20 + entry*len(ss)
	trafLen := 8 + 16 + 20 + trunLen
	moofLen := 8 + 16 + trafLen
	b := make([]byte, 0, moofLen+8)
	box := func(size int, typ string) {
		b = binary.BigEndian.AppendUint32(b, uint32(size))
		b = append(b, typ...)
	}
	u32 := func(v uint32) { b = binary.BigEndian.AppendUint32(b, v) }

	box(moofLen, "moof")
	box(16, "mfhd")
	u32(0) // version 0, flags 0
	u32(uint32(seq))
	box(trafLen, "traf")
	box(16, "tfhd")
	u32(tfhdBaseIsMoof) // version 0
	u32(fileTrackID)
	box(20, "tfdt")
	u32(1 << 24) // version 1: a 64-bit base media decode time
	b = binary.BigEndian.AppendUint64(b, ss[0].dts)
	box(trunLen, "trun")
	u32(1<<24 | flags) // version 1: signed composition offsets
	u32(uint32(len(ss)))
	u32(uint32(moofLen + 8)) // data offset: from the moof's start to the mdat's payload
	var dur uint64
	for i, s := range ss {
		var d uint64
		switch {
		case i+1 < len(ss):
			d = ss[i+1].dts - s.dts
		case haveNext && next > s.dts:
			d = next - s.dts
		case i > 0:
			d = s.dts - ss[i-1].dts // repeat the previous sample's duration
		default:
			d = uint64(ti.rec.TimeScale) / 25
			if !ti.video {
				d = 1024 // one AAC frame; Opus frames are 960 at 48 kHz but close enough for a lone frame
			}
		}
		dur += d
		u32(uint32(d))
		u32(s.size)
		if flags&trunFlags != 0 {
			var f uint32
			if !s.key {
				f = sampleNonSync
			}
			u32(f)
		}
		if flags&trunCTO != 0 {
			u32(uint32(s.ptsOff))
		}
	}
	box(8+seg.size, "mdat")
	return b, dur, nil
}
