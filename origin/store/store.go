// Package store defines the object store every durable byte of liveingest goes
// through: segments, init files, manifests and slot configuration.
//
// Backends: s3 (any S3-compatible service) and disk (embedded, for dev). Both
// pass the one conformance suite in storetest.
package store

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Store is an object store with atomic visibility and conditional writes.
//
// Keys are relative slash-separated paths valid under keys.ValidateObjectKey;
// an invalid key fails with an error wrapping keys.ErrInvalid and touches
// nothing. All methods are safe for concurrent use and honour ctx
// cancellation; a cancelled Put leaves no visible object.
type Store interface {
	// Put stores the bytes of r under key. The object becomes visible to Get,
	// Stat and List only once Put returns nil, and then whole: a reader sees
	// the previous version or the new one, never a part. When Put returns an
	// error nothing new is visible.
	//
	// r is streamed: a backend never holds the whole body in memory (the s3
	// backend holds at most one multipart part). When m.Size > 0 it is the
	// exact body length; a body of another length fails the Put.
	//
	// With m.IfNoneMatch "*" the Put fails with ErrPrecondition if the key
	// exists; with m.IfMatch set it fails with ErrPrecondition unless the
	// current object's ETag equals it (and with ErrNotExist-wrapping
	// ErrPrecondition if there is none). Of concurrent conditional Puts on one
	// key at most one succeeds per version.
	Put(ctx context.Context, key string, r io.Reader, m Meta) (Info, error)

	// Get opens the object for reading. A missing key fails with an error
	// wrapping ErrNotExist. The caller must Close the reader. The reader also
	// implements io.Seeker when the backend can serve ranges cheaply; use
	// GetRange for byte ranges that work on every backend.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)

	// GetRange opens length bytes of the object starting at offset (length
	// < 0: to the end). offset >= size (so any offset on an empty object)
	// fails with ErrRange, as HTTP 416 does.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Info, error)

	// Stat returns the object's Info; a missing key wraps ErrNotExist.
	Stat(ctx context.Context, key string) (Info, error)

	// List calls fn for every visible object whose key starts with prefix,
	// in lexical key order, with Key, Size, ETag and Modified set (the Meta
	// fields are zero: Stat fetches them). A non-nil error from fn stops the
	// listing and is returned.
	List(ctx context.Context, prefix string, fn func(Info) error) error

	// Delete removes the objects; keys that do not exist are not an error.
	// Once Delete returns nil none of the keys is visible.
	Delete(ctx context.Context, keys ...string) error
}

// Class says how an object is treated by expiry and caching (R-EXPIRE-1).
type Class string

// The object classes. Segments expire by time; manifests, init files and
// stream state are kept as long as the stream has segments. Only segments,
// init files and manifests are ever served to viewers; state is internal
// (origin/manifest's record of a stream: sequence numbers, fencing token).
const (
	ClassSegment  Class = "segment"
	ClassManifest Class = "manifest"
	ClassInit     Class = "init"
	ClassConfig   Class = "config"
	ClassState    Class = "state"
)

// Valid reports whether c is one of the defined classes.
func (c Class) Valid() bool {
	switch c {
	case ClassSegment, ClassManifest, ClassInit, ClassConfig, ClassState:
		return true
	}
	return false
}

// Meta is what a writer says about an object.
type Meta struct {
	ContentType  string // served as Content-Type; "" means application/octet-stream
	CacheControl string // served as Cache-Control; may be ""
	Class        Class  // "" means ClassSegment
	Size         int64  // exact body length when known in advance, else 0

	IfNoneMatch string // "*": create only; any other value is rejected
	IfMatch     string // replace only the object with this ETag
}

// Validate rejects Meta values that no backend could honour. Put calls it;
// the errors wrap ErrInvalidMeta.
func (m Meta) Validate() error {
	switch {
	case m.IfNoneMatch != "" && m.IfNoneMatch != "*":
		return fmt.Errorf("%w: IfNoneMatch must be \"\" or \"*\", not %q", ErrInvalidMeta, m.IfNoneMatch)
	case m.IfNoneMatch != "" && m.IfMatch != "":
		return fmt.Errorf("%w: IfNoneMatch and IfMatch exclude each other", ErrInvalidMeta)
	case m.Class != "" && !m.Class.Valid():
		return fmt.Errorf("%w: Class %q is not a known class", ErrInvalidMeta, m.Class)
	case m.Size < 0:
		return fmt.Errorf("%w: Size %d is negative", ErrInvalidMeta, m.Size)
	}
	return nil
}

// Info describes a stored object.
type Info struct {
	Key      string
	Size     int64
	ETag     string    // opaque, quoted as in HTTP; changes when the content changes (S3 ETags are content hashes: identical bytes may keep it)
	Modified time.Time // when the visible version was written

	ContentType  string
	CacheControl string
	Class        Class
}
