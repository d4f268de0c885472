package tsdemux

import (
	"errors"
	"fmt"

	"github.com/liveingest/liveingest/edge/media"
)

var (
	// ErrNoProgram is returned by Open when the stream ended, failed (a read
	// deadline, a closed connection) or passed Options.MaxDiscovery bytes
	// before a program map table (PMT) arrived. The read error is wrapped
	// too.
	ErrNoProgram = errors.New("tsdemux: no MPEG-TS program")

	// ErrNoVideo is returned by Open when the program has no video track, or
	// when the stream ended, failed or passed Options.MaxDiscovery bytes after
	// the PMT but before the video parameter sets and a keyframe arrived.
	// That includes the first frame of each AAC, AC-3 and E-AC-3 track, which
	// mediacommon reads for the track's configuration: a stream that ends
	// before it, or whose first frame mediacommon cannot parse, fails with
	// ErrNoVideo too. The underlying error, if any, is wrapped too.
	ErrNoVideo = errors.New("tsdemux: no usable video")

	// ErrUnsupportedCodec is returned by Open (as an *UnsupportedError) when
	// the program's only video codec, or every one of its audio codecs, is
	// one the segmenter does not take.
	ErrUnsupportedCodec = errors.New("tsdemux: unsupported codec")

	// errDiscoveryLimit is the read error Open sees once it has read
	// Options.MaxDiscovery bytes; it is wrapped in ErrNoProgram or ErrNoVideo.
	errDiscoveryLimit = errors.New("Options.MaxDiscovery exceeded")
)

// UnsupportedError names the codec Open refused. errors.Is(err,
// ErrUnsupportedCodec) holds for it. Its message is meant for the
// publisher: it names what was sent and what to send instead.
type UnsupportedError struct {
	// Kind is "video" or "audio".
	Kind string
	// Codec is the codec's name, e.g. "MPEG-1/2 video" (the names
	// edge/media.CodecName uses, where both know the codec).
	Codec string
}

// Error implements error.
func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("unsupported %s codec %s; %s", e.Kind, e.Codec, media.Advice)
}

// Is reports whether target is ErrUnsupportedCodec.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupportedCodec }
