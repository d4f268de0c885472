package media

import (
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

func TestTrack(t *testing.T) {
	for _, c := range []struct {
		codec codecs.Codec
		video bool
		name  string
	}{
		{&codecs.H264{}, true, "h264"},
		{&codecs.H265{}, true, "h265"},
		{&codecs.MPEG4Audio{}, false, "aac"},
		{&codecs.Opus{ChannelCount: 2}, false, "opus"},
		{&codecs.MPEG1Audio{}, false, "unsupported"},
	} {
		tr := Track{ID: 1, Codec: c.codec}
		if tr.IsVideo() != c.video || tr.Name() != c.name {
			t.Errorf("%T: video=%v name=%q", c.codec, tr.IsVideo(), tr.Name())
		}
	}
	if n := (AccessUnit{Data: [][]byte{make([]byte, 3), make([]byte, 4)}}).Size(); n != 7 {
		t.Errorf("Size = %d", n)
	}
}

// TestCodecPolicy: what the pipeline takes, and the one refusal text.
func TestCodecPolicy(t *testing.T) {
	for _, tc := range []struct {
		c    codecs.Codec
		ok   bool
		name string
	}{
		{&codecs.H264{SPS: []byte{1}, PPS: []byte{1}}, true, "H.264"},
		{&codecs.H264{}, false, "H.264 without SPS/PPS"},
		{&codecs.H265{VPS: []byte{1}, SPS: []byte{1}, PPS: []byte{1}}, true, "H.265"},
		{&codecs.MPEG4Audio{}, true, "AAC"},
		{&codecs.Opus{}, true, "Opus"},
		{&codecs.MPEG1Audio{}, false, "MPEG-1/2 audio (MP2/MP3)"},
		{&codecs.AV1{}, false, "AV1"},
	} {
		if Supported(tc.c) != tc.ok || CodecName(tc.c) != tc.name {
			t.Errorf("%T: Supported %v, CodecName %q; want %v, %q", tc.c, Supported(tc.c), CodecName(tc.c), tc.ok, tc.name)
		}
	}
	if got := Refusal("AV1"); got != "unsupported codec AV1; send H.264 or H.265 video and AAC or Opus audio" {
		t.Errorf("Refusal = %q", got)
	}
}
