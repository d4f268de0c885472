package store

import "errors"

var (
	// ErrNotExist is wrapped by errors of Get, GetRange and Stat when the key
	// has no visible object.
	ErrNotExist = errors.New("object does not exist")

	// ErrPrecondition is wrapped by errors of Put when its IfNoneMatch or
	// IfMatch condition does not hold; nothing was written.
	ErrPrecondition = errors.New("precondition failed")

	// ErrRange is wrapped by errors of GetRange when offset is past the end
	// of the object.
	ErrRange = errors.New("range not satisfiable")

	// ErrSize is wrapped by errors of Put when the body is longer or shorter
	// than Meta.Size; nothing was written.
	ErrSize = errors.New("body size does not match")

	// ErrInvalidMeta is wrapped by errors of Put when its Meta is
	// contradictory (see Meta.Validate); nothing was written.
	ErrInvalidMeta = errors.New("invalid object metadata")

	// ErrUnavailable is wrapped by errors that are worth retrying later: the
	// backend could not be reached or answered with a server error after the
	// backend's own retries.
	ErrUnavailable = errors.New("store unavailable")
)
