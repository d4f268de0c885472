package slots

import "errors"

var (
	// ErrNotFound is returned when no slot has the requested id or stream
	// key (including a stream key that was rotated away). The API maps it to
	// 404; an edge rejects the publish.
	ErrNotFound = errors.New("slot not found")

	// ErrNameTaken is returned by Create, Clone and a renaming Update when
	// another slot already holds the name (compared case-insensitively). The
	// API maps it to 409.
	ErrNameTaken = errors.New("slot name is taken")

	// ErrVersionMismatch is returned by Update and Delete when the caller's
	// version is not the stored one, or when another writer changed the slot
	// between read and write. The API maps it to 412.
	ErrVersionMismatch = errors.New("slot version mismatch")

	// ErrBadCredentials is returned by CheckPassword when the username is
	// unknown or the password is wrong; the two are deliberately not told
	// apart. The edge answers 401.
	ErrBadCredentials = errors.New("bad credentials")

	// ErrMediaCleanup is wrapped by Delete's error when the slot itself is
	// deleted but some of its media objects could not be removed (they then
	// expire by the lifecycle rules). The delete the caller asked for
	// happened.
	ErrMediaCleanup = errors.New("slot deleted; media cleanup incomplete")
)

// FieldError is returned when an input field breaks a rule; Field is the JSON
// name of the field (with an index for list elements, e.g. "credentials[1].username").
// The API answers {"error": Message, "field": Field} with 422 (400 for
// undecodable JSON).
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, msg string) *FieldError { return &FieldError{Field: field, Message: msg} }
