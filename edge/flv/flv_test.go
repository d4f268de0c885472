package flv

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	gcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/liveingest/liveingest/edge/media"
)

// Parameter sets of a real encoder (1920x1080 baseline H.264, Main HEVC),
// as gortmplib's own tests use them: its Writer parses them.
var (
	h264SPS = []byte{0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04,
		0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20}
	h264PPS = []byte{0x68, 0xce, 0x3c, 0x80}
	h265VPS = []byte{0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0xb0, 0x00, 0x00, 0x03,
		0x00, 0x00, 0x03, 0x00, 0x7b, 0x18, 0xb0, 0x24}
	h265SPS = []byte{0x42, 0x01, 0x01, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0xb0, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
		0x00, 0x7b, 0xa0, 0x07, 0x82, 0x00, 0x88, 0x7d, 0xb6, 0x71, 0x8b, 0x92, 0x44, 0x80, 0x53, 0x88,
		0x88, 0x92, 0xcf, 0x24, 0xa6, 0x92, 0x72, 0xc9, 0x12, 0x49, 0x22, 0xdc, 0x91, 0xaa, 0x48, 0xfc,
		0xa2, 0x23, 0xff, 0x00, 0x01, 0x00, 0x01, 0x6a, 0x02, 0x02, 0x02, 0x01}
	h265PPS = []byte{0x44, 0x01, 0xc0, 0x25, 0x2f, 0x05, 0x32, 0x40}
	aacCfg  = &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2}
)

// TestTracks: every codec gortmplib discovers maps to its media form or to
// an error that names it, for the publisher's rejection.
func TestTracks(t *testing.T) {
	for _, c := range []struct {
		name    string
		in      []gcodecs.Codec
		want    []codecs.Codec
		wantErr string // the codec named in the *UnsupportedError
	}{
		{name: "h264+aac", in: []gcodecs.Codec{&gcodecs.H264{SPS: h264SPS, PPS: h264PPS}, &gcodecs.MPEG4Audio{Config: aacCfg}},
			want: []codecs.Codec{&codecs.H264{SPS: h264SPS, PPS: h264PPS}, &codecs.MPEG4Audio{Config: *aacCfg}}},
		{name: "h265+opus", in: []gcodecs.Codec{&gcodecs.H265{VPS: h265VPS, SPS: h265SPS, PPS: h265PPS}, &gcodecs.Opus{IDHeader: &opus.IDHeader{ChannelCount: 1}}},
			want: []codecs.Codec{&codecs.H265{VPS: h265VPS, SPS: h265SPS, PPS: h265PPS}, &codecs.Opus{ChannelCount: 1}}},
		{name: "opus without ID header is stereo", in: []gcodecs.Codec{&gcodecs.Opus{}},
			want: []codecs.Codec{&codecs.Opus{ChannelCount: 2}}},
		// The parameter sets are edge/ingest's to check: mapped as they came.
		{name: "h264 without parameter sets", in: []gcodecs.Codec{&gcodecs.H264{}},
			want: []codecs.Codec{&codecs.H264{}}},
		{name: "aac without config", in: []gcodecs.Codec{&gcodecs.H264{SPS: h264SPS, PPS: h264PPS}, &gcodecs.MPEG4Audio{}},
			wantErr: "AAC without an AudioSpecificConfig"},
		{name: "mp3", in: []gcodecs.Codec{&gcodecs.H264{SPS: h264SPS, PPS: h264PPS}, &gcodecs.MPEG1Audio{}}, wantErr: "MPEG-1/2 audio (MP3)"},
		{name: "av1", in: []gcodecs.Codec{&gcodecs.AV1{}}, wantErr: "AV1"},
		{name: "vp9", in: []gcodecs.Codec{&gcodecs.VP9{}}, wantErr: "VP9"},
		{name: "ac3", in: []gcodecs.Codec{&gcodecs.AC3{}}, wantErr: "AC-3"},
		{name: "flac", in: []gcodecs.Codec{&gcodecs.FLAC{}}, wantErr: "FLAC"},
		{name: "g711", in: []gcodecs.Codec{&gcodecs.G711{}}, wantErr: "G.711"},
		{name: "lpcm", in: []gcodecs.Codec{&gcodecs.LPCM{}}, wantErr: "LPCM"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var in []*gortmplib.Track
			for _, g := range c.in {
				in = append(in, &gortmplib.Track{Codec: g})
			}
			got, err := Tracks(in)
			if c.wantErr != "" {
				var ue *UnsupportedError
				if !errors.As(err, &ue) || ue.Codec != c.wantErr || !errors.Is(err, ErrUnsupportedCodec) {
					t.Fatalf("err = %v, want an *UnsupportedError naming %q", err, c.wantErr)
				}
				if !strings.HasSuffix(err.Error(), "; send H.264 or H.265 video and AAC or Opus audio") {
					t.Errorf("message %q does not say what to send", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []media.Track
			for i, w := range c.want {
				want = append(want, media.Track{ID: i + 1, Codec: w})
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Tracks = %+v, want %+v", got, want)
			}
		})
	}
}

// TestRefusedCodec: gortmplib's own refusals, produced by its message
// reader from the bytes a publisher sends, are recognized and named; any
// other error is not. A gortmplib upgrade that rewords them fails here.
func TestRefusedCodec(t *testing.T) {
	ex := func(fourcc string) []byte { // enhanced RTMP: IsExHeader, keyframe, SequenceStart, FourCC
		return append([]byte{0x80 | 1<<4 | 0}, fourcc...)
	}
	for _, c := range []struct {
		name string
		typ  uint8 // RTMP message type: 8 audio, 9 video
		body []byte
		want string // "" means not a codec refusal
	}{
		{"mpeg-4 part 2", 9, []byte{1<<4 | 9, 0, 0, 0, 0}, "MPEG-4 Part 2 video"},
		{"sorenson", 9, []byte{1<<4 | 2, 0, 0, 0, 0}, "Sorenson H.263"},
		{"unknown video id", 9, []byte{1<<4 | 13, 0, 0, 0, 0}, "FLV video codec 13"},
		{"speex", 8, []byte{11 << 4, 0}, "Speex"},
		{"unknown audio id", 8, []byte{13 << 4, 0}, "FLV audio codec 13"},
		{"vp8 fourcc", 9, ex("vp08"), `enhanced-RTMP codec "vp08"`},
		{"unprintable fourcc", 9, ex("\x00\x01\x02\x03"), "enhanced-RTMP codec 66051"},
		{"not a codec", 9, []byte{1<<4 | 7}, ""}, // H.264, body too short
	} {
		t.Run(c.name, func(t *testing.T) {
			err := readMessage(t, &rawmessage.Message{ChunkStreamID: 6, Type: c.typ, MessageStreamID: 1, Body: c.body})
			if err == nil {
				t.Fatal("gortmplib took the message")
			}
			ue, ok := RefusedCodec(err)
			switch {
			case c.want == "" && ok:
				t.Errorf("RefusedCodec(%q) = %q, want not a codec refusal", err, ue.Codec)
			case c.want != "" && (!ok || ue.Codec != c.want):
				t.Errorf("RefusedCodec(%q) = %v, %v; want %q", err, ue, ok, c.want)
			}
		})
	}
	if _, ok := RefusedCodec(io.EOF); ok {
		t.Error("io.EOF taken for a codec refusal")
	}
	if _, ok := RefusedCodec(nil); ok {
		t.Error("nil taken for a codec refusal")
	}
}

// readMessage puts raw on the wire as chunks and reads it back with
// gortmplib's message reader, returning its error.
func readMessage(t *testing.T, raw *rawmessage.Message) error {
	t.Helper()
	var buf bytes.Buffer
	if err := rawmessage.NewWriter(&buf, bytecounter.NewWriter(&buf), false).Write(raw); err != nil {
		t.Fatal(err)
	}
	_, err := message.NewReader(&buf, bytecounter.NewReader(&buf), nil).Read()
	return err
}

// TestOnData: what gortmplib's Writer sends (as a publisher's encoder or a
// pulled server would), read by its Reader through Tracks and OnData,
// arrives as access units: track ids, timestamps, keyframes; a video unit
// without a picture and an empty audio frame are skipped.
func TestOnData(t *testing.T) {
	idr := []byte{0x65, 0x88, 0x84, 0x00}
	slice := []byte{0x41, 0x9a, 0x02}
	hevcIDR := []byte{0x26, 0x01, 0xaf, 0x08} // IDR_W_RADL
	hevcTrail := []byte{0x02, 0x01, 0xd0, 0x08}
	ms := time.Millisecond
	// gortmplib's Reader discovers tracks over 2 s of media; a unit at
	// that time ends discovery, as the rest of a real stream would.
	discovery := 2100 * ms

	t.Run("h264+aac", func(t *testing.T) {
		vt := &gortmplib.Track{Codec: &gcodecs.H264{SPS: h264SPS, PPS: h264PPS}}
		at := &gortmplib.Track{Codec: &gcodecs.MPEG4Audio{Config: aacCfg}}
		got := roundTrip(t, []*gortmplib.Track{vt, at}, func(w *gortmplib.Writer) error {
			return errors.Join(
				w.WriteH264(vt, 80*ms, 0, [][]byte{h264SPS, h264PPS, idr}),
				w.WriteMPEG4Audio(at, 0, []byte{1, 2, 3}),
				w.WriteH264(vt, 40*ms, 40*ms, [][]byte{h264SPS, h264PPS}), // parameter sets only: no picture
				w.WriteMPEG4Audio(at, 21*ms, nil),
				w.WriteH264(vt, 120*ms, 80*ms, [][]byte{slice}),
				w.WriteH264(vt, discovery, discovery, [][]byte{h264SPS, h264PPS}), // ends discovery; no picture
			)
		})
		want := []media.AccessUnit{
			{Track: 1, PTS: 80 * ms, DTS: 0, Key: true, Data: [][]byte{h264SPS, h264PPS, idr}},
			{Track: 2, PTS: 0, DTS: 0, Key: true, Data: [][]byte{{1, 2, 3}}},
			{Track: 1, PTS: 120 * ms, DTS: 80 * ms, Key: false, Data: [][]byte{slice}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("access units:\n got %+v\nwant %+v", got, want)
		}
	})
	t.Run("h265+opus", func(t *testing.T) {
		vt := &gortmplib.Track{Codec: &gcodecs.H265{VPS: h265VPS, SPS: h265SPS, PPS: h265PPS}}
		at := &gortmplib.Track{Codec: &gcodecs.Opus{IDHeader: &opus.IDHeader{Version: 1, ChannelCount: 2, PreSkip: 312}}}
		got := roundTrip(t, []*gortmplib.Track{vt, at}, func(w *gortmplib.Writer) error {
			return errors.Join(
				w.WriteH265(vt, 0, 0, [][]byte{h265VPS, h265SPS, h265PPS, hevcIDR}),
				w.WriteOpus(at, 0, []byte{0xfc, 1}),
				w.WriteH265(vt, 40*ms, 40*ms, [][]byte{hevcTrail}),
				w.WriteOpus(at, 20*ms, []byte{0xfc, 2}),
				w.WriteH265(vt, discovery, discovery, [][]byte{h265VPS, h265SPS, h265PPS}), // ends discovery; no picture
			)
		})
		want := []media.AccessUnit{
			{Track: 1, Key: true, Data: [][]byte{h265VPS, h265SPS, h265PPS, hevcIDR}},
			{Track: 2, Key: true, Data: [][]byte{{0xfc, 1}}},
			{Track: 1, PTS: 40 * ms, DTS: 40 * ms, Key: false, Data: [][]byte{hevcTrail}},
			{Track: 2, PTS: 20 * ms, DTS: 20 * ms, Key: true, Data: [][]byte{{0xfc, 2}}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("access units:\n got %+v\nwant %+v", got, want)
		}
	})
}

// roundTrip writes tracks and the media write sends with gortmplib's
// Writer, reads them back with its Reader, and returns what OnData
// delivered.
func roundTrip(t *testing.T, tracks []*gortmplib.Track, send func(*gortmplib.Writer) error) []media.AccessUnit {
	t.Helper()
	c := &queueConn{}
	w := &gortmplib.Writer{Conn: c, Tracks: tracks}
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	if err := send(w); err != nil {
		t.Fatal(err)
	}
	rd := &gortmplib.Reader{Conn: c}
	if err := rd.Initialize(); err != nil {
		t.Fatal(err)
	}
	mt, err := Tracks(rd.Tracks())
	if err != nil {
		t.Fatal(err)
	}
	var got []media.AccessUnit
	OnData(rd, mt, func(au media.AccessUnit) { got = append(got, au) })
	for {
		if err := rd.Read(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			return got
		}
	}
}

// queueConn is a gortmplib.Conn in memory: what is written is read back in
// order, then io.EOF.
type queueConn struct{ msgs []message.Message }

func (c *queueConn) BytesReceived() uint64 { return 0 }
func (c *queueConn) BytesSent() uint64     { return 0 }
func (c *queueConn) Write(m message.Message) error {
	c.msgs = append(c.msgs, m)
	return nil
}
func (c *queueConn) Read() (message.Message, error) {
	if len(c.msgs) == 0 {
		return nil, io.EOF
	}
	m := c.msgs[0]
	c.msgs = c.msgs[1:]
	return m, nil
}
