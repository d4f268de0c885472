package admit

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Reason says why a publish was refused or a session ended. Each protocol
// maps it to its own explicit rejection (R-EDGE-4): an RTMP status, an SRT
// REJX_* code (SRTCode), an HTTP status (HTTPStatus). The string value is the
// metrics label and the word operators see in logs and the live status.
type Reason string

// The reasons.
const (
	// ReasonUnauthorized: the stream key is unknown (or rotated away), or
	// the protocol's second credential (Request.Verify) is wrong.
	ReasonUnauthorized Reason = "unauthorized"
	// ReasonNotFound: admission by slot id (Request.SlotID) named no slot.
	ReasonNotFound Reason = "not-found"
	// ReasonForbiddenIP: the publisher's address is not in publish_ip_allow.
	ReasonForbiddenIP Reason = "forbidden-ip"
	// ReasonForbidden: the slot does not take this kind of ingest (a
	// live-push or pull slot asked over a stream protocol).
	ReasonForbidden Reason = "forbidden"
	// ReasonRateLimited: too many attempts for the key, or too many failed
	// ones from the address; Rejection.RetryAfter says when to come back.
	ReasonRateLimited Reason = "rate-limited"
	// ReasonBusy: another publisher holds the slot for the role (any
	// protocol, any edge); Rejection.HeldBy and HeldSince name it. Also the
	// end of a session whose lease was taken over.
	ReasonBusy Reason = "busy"
	// ReasonBadCodec: a track's codec is not supported (set by the protocol).
	ReasonBadCodec Reason = "bad-codec"
	// ReasonBitrateExceeded: the measured bitrate stayed above the slot's
	// limit × tolerance for a whole window.
	ReasonBitrateExceeded Reason = "bitrate-exceeded"
	// ReasonGOPTooLong: the keyframe interval exceeded the maximum (set by
	// the protocol or segmenter).
	ReasonGOPTooLong Reason = "gop-too-long"
	// ReasonStorageUnavailable: coordination or the slot store could not be
	// reached. Retriable: the client should try again shortly.
	ReasonStorageUnavailable Reason = "storage-unavailable"
	// ReasonStorageSlow: the segment store did not keep up with the stream:
	// the session's upload queue stayed full for longer than the segmenter
	// waits (set by the ingest pipeline). Retriable.
	ReasonStorageSlow Reason = "storage-slow"
	// ReasonInternal: a bug or a malformed request from the protocol package.
	ReasonInternal Reason = "internal"
)

// Reasons lists every reason in a stable order (docs, metrics, tests).
var Reasons = []Reason{
	ReasonUnauthorized, ReasonNotFound, ReasonForbiddenIP, ReasonForbidden, ReasonRateLimited, ReasonBusy,
	ReasonBadCodec, ReasonBitrateExceeded, ReasonGOPTooLong, ReasonStorageUnavailable, ReasonStorageSlow,
	ReasonInternal,
}

// HTTPStatus is the status WHIP and WebDAV answer with for r:
//
//	unauthorized          401 Unauthorized
//	not-found             404 Not Found
//	forbidden-ip          403 Forbidden
//	forbidden             403 Forbidden
//	rate-limited          429 Too Many Requests (send Retry-After)
//	busy                  409 Conflict
//	bad-codec             415 Unsupported Media Type
//	bitrate-exceeded      422 Unprocessable Content
//	gop-too-long          422 Unprocessable Content
//	storage-unavailable   503 Service Unavailable (send Retry-After)
//	storage-slow          503 Service Unavailable (send Retry-After)
//	internal (or unknown) 500 Internal Server Error
func (r Reason) HTTPStatus() int {
	switch r {
	case ReasonUnauthorized:
		return http.StatusUnauthorized
	case ReasonNotFound:
		return http.StatusNotFound
	case ReasonForbiddenIP, ReasonForbidden:
		return http.StatusForbidden
	case ReasonRateLimited:
		return http.StatusTooManyRequests
	case ReasonBusy:
		return http.StatusConflict
	case ReasonBadCodec:
		return http.StatusUnsupportedMediaType
	case ReasonBitrateExceeded, ReasonGOPTooLong:
		return http.StatusUnprocessableEntity
	case ReasonStorageUnavailable, ReasonStorageSlow:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// SRT rejection codes (SRT access control, "REJX_*": 1000 + the HTTP status
// of the same meaning). Written out so that admit does not depend on an SRT
// library; edge/srt passes them to gosrt's Reject.
const (
	SRTBadRequest   = 1400 // REJX_BAD_REQUEST
	SRTUnauthorized = 1401 // REJX_UNAUTHORIZED
	SRTForbidden    = 1403 // REJX_FORBIDDEN
	SRTNotFound     = 1404 // REJX_NOTFOUND
	SRTConflict     = 1409 // REJX_CONFLICT
	SRTNotSupMedia  = 1415 // REJX_NOTSUP_MEDIA
	SRTTooMany      = 1429 // 1000 + 429; no named constant in libsrt, SPEC §3 R-EDGE-4
	SRTInternal     = 1500 // REJX_ISE
	SRTDown         = 1503 // REJX_DOWN
)

// SRTCode is the SRT reject reason for r:
//
//	unauthorized          1401 REJX_UNAUTHORIZED
//	not-found             1404 REJX_NOTFOUND
//	forbidden-ip          1403 REJX_FORBIDDEN
//	forbidden             1403 REJX_FORBIDDEN
//	rate-limited          1429 (1000 + HTTP 429)
//	busy                  1409 REJX_CONFLICT
//	bad-codec             1415 REJX_NOTSUP_MEDIA
//	bitrate-exceeded      1400 REJX_BAD_REQUEST
//	gop-too-long          1400 REJX_BAD_REQUEST
//	storage-unavailable   1503 REJX_DOWN
//	storage-slow          1503 REJX_DOWN
//	internal (or unknown) 1500 REJX_ISE
//
// SRT can only send a code during the handshake; reasons that end a running
// session (bitrate, GOP) are mapped for completeness and for logs.
func (r Reason) SRTCode() int {
	switch r {
	case ReasonUnauthorized:
		return SRTUnauthorized
	case ReasonNotFound:
		return SRTNotFound
	case ReasonForbiddenIP, ReasonForbidden:
		return SRTForbidden
	case ReasonRateLimited:
		return SRTTooMany
	case ReasonBusy:
		return SRTConflict
	case ReasonBadCodec:
		return SRTNotSupMedia
	case ReasonBitrateExceeded, ReasonGOPTooLong:
		return SRTBadRequest
	case ReasonStorageUnavailable, ReasonStorageSlow:
		return SRTDown
	}
	return SRTInternal
}

// Retriable reports whether the same request may succeed later without the
// publisher changing anything (the protocol may say "retry" to the client).
func (r Reason) Retriable() bool {
	return r == ReasonRateLimited || r == ReasonStorageUnavailable || r == ReasonStorageSlow || r == ReasonBusy
}

// Rejection is the error of a refused Admit and of a session ended with a
// reason (Session.Err). Message is safe to send to the client: it never holds
// the stream key or an internal error text.
type Rejection struct {
	Reason  Reason
	Message string

	// RetryAfter is when the client may try again: set for rate-limited,
	// and as a hint for storage-unavailable. Zero otherwise.
	RetryAfter time.Duration

	// HeldBy and HeldSince name the publisher in the way (busy): its
	// protocol and when its grant began. HeldEdge is the edge it is on.
	HeldBy    string
	HeldEdge  string
	HeldSince time.Time

	// Slot is the slot id once the key was resolved; "" before.
	Slot string

	// Err is the cause (a *coord.HeldError, coord.ErrUnavailable, …); it may
	// carry internal detail and is for logs, not for clients.
	Err error
}

// Error is for logs: the reason, the client message and the cause.
func (r *Rejection) Error() string {
	s := "admit: " + string(r.Reason) + ": " + r.Message
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (r *Rejection) Unwrap() error { return r.Err }

// AsRejection returns err's *Rejection, or a ReasonInternal one wrapping err
// when it holds none (so a protocol always has a reason to send).
func AsRejection(err error) *Rejection {
	var rej *Rejection
	if errors.As(err, &rej) {
		return rej
	}
	return &Rejection{Reason: ReasonInternal, Message: "internal error", Err: err}
}

// ReasonOf returns the reason of err, or "" when err is nil.
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	return AsRejection(err).Reason
}

func rejectf(reason Reason, cause error, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Message: fmt.Sprintf(format, args...), Err: cause}
}
