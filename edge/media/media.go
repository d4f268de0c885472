// Package media is the codec-neutral vocabulary between protocol packages
// and the segmenter: what tracks a publish has, and its access units in
// presentation order per track.
//
// Codec parameters use mediacommon's mp4 codec types, the form the CMAF
// (fMP4) writer needs, so a protocol translates its own codec configuration
// once, at the start of a session.
package media

import (
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// Track is one elementary stream of a publish.
type Track struct {
	// ID is 1-based and stable for the session; AccessUnit.Track refers to it.
	ID int
	// Codec holds the codec and its parameters: codecs.H264 (SPS, PPS),
	// codecs.H265 (VPS, SPS, PPS), codecs.MPEG4Audio (AAC config) or
	// codecs.Opus (channel count).
	Codec codecs.Codec
}

// IsVideo reports whether the track carries video.
func (t Track) IsVideo() bool {
	switch t.Codec.(type) {
	case *codecs.H264, *codecs.H265:
		return true
	}
	return false
}

// Name is the codec's short name for logs, metrics and rejections.
func (t Track) Name() string {
	switch t.Codec.(type) {
	case *codecs.H264:
		return "h264"
	case *codecs.H265:
		return "h265"
	case *codecs.MPEG4Audio:
		return "aac"
	case *codecs.Opus:
		return "opus"
	}
	return "unsupported"
}

// AccessUnit is one video frame or one audio frame.
//
// Timestamps are durations on the publisher's clock: they may start at any
// value, but within a session they must not go backwards per track in
// decode order (DTS), and PTS ≥ DTS. A protocol package converts its clock
// (RTMP milliseconds, MPEG-TS 90 kHz, RTP) into this form.
type AccessUnit struct {
	Track int           // Track.ID
	DTS   time.Duration // decode time; equal to PTS for audio
	PTS   time.Duration // presentation time
	Key   bool          // a random access point (IDR/IRAP); always true for audio
	// Data is the access unit: for video its NAL units without start codes or
	// length prefixes; for audio one frame (raw AAC or Opus packet).
	Data [][]byte
}

// Size is the payload size in bytes, for bitrate measurement.
func (au AccessUnit) Size() int {
	n := 0
	for _, b := range au.Data {
		n += len(b)
	}
	return n
}
