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
