package segment

import (
	"errors"

	"github.com/liveingest/liveingest/origin/manifest"
)

// Sentinel errors of the segmenter. Errors returned by Start, Write and Close
// wrap one of these (or a store error) with %w, so an edge maps them to an
// admission/session reason with errors.Is.
var (
	// ErrFenced is returned when a writer with a larger fencing token owns
	// the slot/role's manifests (R-COORD-1): by Start when the stored state
	// already carries a token ≥ the caller's, and by Write and Close once a
	// newer writer took over. A fenced Writer writes nothing more. It is
	// manifest.ErrFenced itself, so one errors.Is covers both packages.
	ErrFenced = manifest.ErrFenced

	// ErrBadInput is returned by Write for input that breaks the media
	// contract: an unknown track, DTS going backwards, PTS < DTS, an empty
	// access unit. The Writer stays usable; the access unit is dropped.
	ErrBadInput = errors.New("segment: bad input")

	// ErrGOPTooLong is returned by Write when no video keyframe arrived
	// within Config.MaxKeyframeInterval (R-EDGE-5, reason gop-too-long). It
	// is sticky: every later Write returns it; Close still flushes.
	ErrGOPTooLong = errors.New("segment: keyframe interval too long")

	// ErrUnsupportedCodec is returned by Start when a track's codec is not
	// H.264, H.265, AAC or Opus, or its parameters cannot be used (reason
	// bad-codec). The error text names the codec.
	ErrUnsupportedCodec = errors.New("segment: unsupported codec")

	// ErrStorageSlow is returned by Write when the upload queue stayed full
	// (Config.Queue) for Queue.Wait: the store does not keep up with the
	// stream (reason storage-slow). The segment that did not fit is not
	// stored (it was never listed); the error is sticky, and Close stores
	// and lists what the queue holds, then ends the stream.
	ErrStorageSlow = errors.New("segment: storage too slow")

	// ErrClosed is returned by Write and Close after Close.
	ErrClosed = errors.New("segment: writer closed")
)
