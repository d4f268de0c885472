package manifest

import "errors"

// Sentinel errors. Errors of Open and Commit wrap one of these or a store
// error with %w; test them with errors.Is.
var (
	// ErrFenced is returned when a writer with a larger fencing token owns
	// the stream (R-COORD-1): by Open when the stored state already carries
	// a token ≥ the caller's, and by Commit once a newer writer committed
	// its own state. A fenced Stream writes nothing more; every later Commit
	// returns ErrFenced at once.
	ErrFenced = errors.New("manifest: fenced by a newer writer")

	// ErrCorruptState is returned by Open, Commit and Unmarshal when the
	// stored state cannot be decoded, or carries a Format this release does
	// not know. Nothing is written over such a state: an operator decides.
	ErrCorruptState = errors.New("manifest: unreadable stream state")
)
