// Package keys is the only place that builds object-store keys and Redis keys.
//
// Every name that reaches a store or Redis passes through a parser here first:
// ParseSlotID for slot ids and ParseRelPath for paths that come from clients
// (WebDAV uploads, playback URLs). The builders take the parsed types, so a key
// can only be built from values that were validated, and a key can never point
// outside the prefix it was built for.
package keys

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every parse error of this package: returned when an
// id, path or key breaks the rules below. Callers map it to 400/403.
var ErrInvalid = errors.New("invalid key")

// Limits on client-supplied paths. They bound the work a request can cause and
// keep keys well inside S3's 1024-byte limit once a prefix is added.
const (
	MaxPathLen     = 900
	MaxSegmentLen  = 255
	MaxPathDepth   = 16
	MaxSlotIDLen   = 64
	maxCoordKeyLen = 256

	// A whole object key is a fixed prefix (at most "live/<id>/<role>/",
	// three segments) plus a RelPath, so it may be that much deeper and
	// longer than a RelPath; S3 caps keys at 1024 bytes.
	maxPrefixDepth = 3
	maxKeyLen      = 1024
)

// SlotID is a validated slot id: 1–64 characters of a-z, 0-9 and hyphen.
type SlotID string

// ParseSlotID validates s as a slot id.
func ParseSlotID(s string) (SlotID, error) {
	if s == "" || len(s) > MaxSlotIDLen {
		return "", fmt.Errorf("%w: slot id must be 1-%d characters", ErrInvalid, MaxSlotIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "", fmt.Errorf("%w: slot id may hold only a-z, 0-9 and '-'", ErrInvalid)
		}
	}
	return SlotID(s), nil
}

// Role is the ingest role a publisher writes as.
type Role string

// The two ingest roles of a slot (R-SLOT-3).
const (
	Primary Role = "primary"
	Backup  Role = "backup"
)

// ParseRole validates s as a role.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case Primary, Backup:
		return Role(s), nil
	}
	return "", fmt.Errorf("%w: role must be %q or %q", ErrInvalid, Primary, Backup)
}

// RelPath is a validated relative path: segments separated by '/', none empty,
// none "." or "..", none starting with '.', each made of letters, digits and
// "-_.~+=,@". It is already in canonical form (path.Clean leaves it unchanged).
type RelPath string

// ParseRelPath validates p, a relative path that a client supplied and that
// net/http or the caller has already percent-decoded once.
//
// It rejects anything that could climb out of the prefix it is joined to or
// that a second decoding could turn into such a thing: "..", absolute paths,
// backslashes, NUL and control characters, and any '%' (so "%2e%2e", "%2f" and
// "%5c" left over from double encoding are refused rather than trusted).
func ParseRelPath(p string) (RelPath, error) {
	if err := checkPath(p, MaxPathLen, MaxPathDepth); err != nil {
		return "", err
	}
	return RelPath(p), nil
}

// checkPath applies the RelPath rules with the given length and depth caps.
func checkPath(p string, maxLen, maxDepth int) error {
	if p == "" {
		return fmt.Errorf("%w: empty path", ErrInvalid)
	}
	if len(p) > maxLen {
		return fmt.Errorf("%w: path longer than %d bytes", ErrInvalid, maxLen)
	}
	if p[0] == '/' {
		return fmt.Errorf("%w: absolute path", ErrInvalid)
	}
	depth := 0
	for seg := range strings.SplitSeq(p, "/") {
		depth++
		if depth > maxDepth {
			return fmt.Errorf("%w: path deeper than %d segments", ErrInvalid, maxDepth)
		}
		if err := checkSegment(seg); err != nil {
			return err
		}
	}
	return nil
}

func checkSegment(seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("%w: empty path segment", ErrInvalid)
	case seg == "." || seg == "..":
		return fmt.Errorf("%w: %q segment", ErrInvalid, seg)
	case seg[0] == '.':
		// Leading dots are reserved: stores keep their temporary files there,
		// and hidden names are never media.
		return fmt.Errorf("%w: segment starts with '.'", ErrInvalid)
	case len(seg) > MaxSegmentLen:
		return fmt.Errorf("%w: segment longer than %d bytes", ErrInvalid, MaxSegmentLen)
	}
	for i := 0; i < len(seg); i++ {
		if !pathByte(seg[i]) {
			return fmt.Errorf("%w: character %q not allowed in a path", ErrInvalid, seg[i])
		}
	}
	return nil
}

func pathByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-_.~+=,@", c) >= 0
}

// ValidateObjectKey checks a whole store key by the RelPath rules, with room
// for the prefix the builders add to a RelPath. Store backends call it on
// every key they are given, so that even a key built wrongly elsewhere
// cannot leave the store's root.
func ValidateObjectKey(key string) error {
	return checkPath(key, maxKeyLen, MaxPathDepth+maxPrefixDepth)
}

// ValidatePrefix checks a listing prefix: "" (everything) or a key, optionally
// with a trailing '/', or a partial last segment ("live/cam/seg" lists
// "live/cam/seg1.m4s").
func ValidatePrefix(prefix string) error {
	p := strings.TrimSuffix(prefix, "/")
	if p == "" {
		if prefix == "/" {
			return fmt.Errorf("%w: prefix %q", ErrInvalid, prefix)
		}
		return nil
	}
	return ValidateObjectKey(p)
}
