package flv

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/liveingest/liveingest/edge/media"
)

// ErrUnsupportedCodec is returned (as an *UnsupportedError) by Tracks, and
// recognized by RefusedCodec, for a codec that edge/media has no form for.
var ErrUnsupportedCodec = errors.New("flv: unsupported codec")

// UnsupportedError names the codec refused. errors.Is(err,
// ErrUnsupportedCodec) holds for it. Its message is meant for the
// publisher: it names what was sent and what to send instead.
type UnsupportedError struct {
	// Codec is the codec's name, e.g. "MPEG-4 Part 2 video".
	Codec string
}

// Error implements error.
func (e *UnsupportedError) Error() string {
	return media.Refusal(e.Codec)
}

// Is reports whether target is ErrUnsupportedCodec.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupportedCodec }

// FLV codec ids gortmplib's message layer refuses (Adobe FLV spec E.4.2/3;
// 9 is what ffmpeg's FLV muxer writes for MPEG-4 Part 2).
var (
	flvVideo = map[int]string{1: "JPEG video", 2: "Sorenson H.263", 3: "Screen video", 4: "On2 VP6",
		5: "On2 VP6 with alpha", 6: "Screen video v2", 8: "RealVideo H.263", 9: "MPEG-4 Part 2 video"}
	flvAudio = map[int]string{0: "PCM (platform endian)", 1: "ADPCM", 4: "Nellymoser 16 kHz", 5: "Nellymoser 8 kHz",
		6: "Nellymoser", 11: "Speex", 14: "MP3 8 kHz", 15: "device-specific audio"}
)

// RefusedCodec recognizes, in the error of gortmplib.Reader's Initialize,
// gortmplib's refusal of a legacy FLV codec id or an enhanced-RTMP FourCC,
// and returns an *UnsupportedError naming the codec. gortmplib reports
// these only as error text, so this is where that text is parsed, once.
func RefusedCodec(err error) (*UnsupportedError, bool) {
	if err == nil {
		return nil, false
	}
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
					return &UnsupportedError{Codec: n}, true
				}
				return &UnsupportedError{Codec: fmt.Sprintf("FLV %s codec %d", k.kind, id)}, true
			}
		}
	}
	if i := strings.Index(s, "unsupported fourCC: "); i >= 0 {
		return &UnsupportedError{Codec: "enhanced-RTMP codec " + fourCC(strings.TrimSpace(s[i+len("unsupported fourCC: "):]))}, true
	}
	return nil, false
}

// fourCC turns gortmplib's rendering of a FourCC, a decimal uint32, back
// into its four characters when they are printable ASCII ("vp08"), which is
// how the enhanced-RTMP specification names codecs; otherwise it is left
// as it came.
func fourCC(s string) string {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return s
	}
	b := []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return s
		}
	}
	return `"` + string(b) + `"`
}
