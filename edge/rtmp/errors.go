package rtmp

import (
	"errors"
	"fmt"
)

// Errors a connection's guard (guard.go) returns from Read, which
// gortmplib hands back up as the reason its handshake or read failed. Their
// text is fixed words and numbers only, never client bytes, so it may be
// logged as it is.
var (
	// ErrRTMPE is returned when the client opens with C0 version 6, the
	// encrypted RTMPE handshake: its RC4 stream cannot be checked before
	// gortmplib parses it, so it is refused (RTMPS is the encrypted form
	// this edge takes).
	ErrRTMPE = errors.New("rtmp: RTMPE is not supported; use RTMPS")

	// ErrLimit is wrapped when a client exceeds one of the Config limits
	// (PreAdmitBudget, MaxMessageSize, MaxAMFMessageSize, MaxAMFDepth) or
	// the bytes allowed before admission; the text names the Config field.
	ErrLimit = errors.New("rtmp: limit exceeded")

	// ErrProtocol is wrapped when the client's bytes are not an RTMP
	// stream that gortmplib would decode without error, or are one that
	// this edge refuses on purpose (a chunk size below 128, an AMF0 marker
	// gortmplib does not know); the text says which.
	ErrProtocol = errors.New("rtmp: protocol violation")
)

func limitErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrLimit}, args...)...)
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}
