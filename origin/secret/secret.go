// Package secret holds values that must never reach a log, an error message or
// an API response by accident: admin tokens, passwords, stream keys.
//
// A String prints as "[redacted]" through fmt, slog and encoding/json; the
// value is read only through Reveal, which makes every use greppable.
package secret

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
)

const redacted = "[redacted]"

// String is a secret string.
type String string

// Reveal returns the secret value.
func (s String) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s String) IsZero() bool { return s == "" }

// Equal compares the secret with a candidate in constant time (for the
// candidate's length), so response times do not leak how much of it matched.
func (s String) Equal(candidate string) bool {
	return subtle.ConstantTimeCompare([]byte(s), []byte(candidate)) == 1
}

// String implements fmt.Stringer with a redaction.
func (s String) String() string { return redacted }

// GoString implements fmt.GoStringer, so %#v redacts too.
func (s String) GoString() string { return redacted }

// Format makes every fmt verb redact, including %s, %q and %x.
func (s String) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (s String) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON redacts; a secret is never echoed in JSON by accident.
func (s String) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText redacts, for encoders that use encoding.TextMarshaler.
func (s String) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalText accepts the secret from configuration and flags.
func (s *String) UnmarshalText(b []byte) error {
	*s = String(b)
	return nil
}

// Fingerprint is a short, stable stand-in for a value that may hold a
// secret (a stream key, or a client string that may carry one: an RTMP
// tcUrl, an SRT stream id, a push path), for the log: the same value always
// gives the same fingerprint, so an operator can match lines, but the value
// cannot be read back from it. It is the first 8 bytes of a SHA-256 over a
// domain-separated input, in hex ("k:" + 16 hex digits); it is deliberately
// not the stream-key index hash (keys.SlotKeyIndex), so a log line never
// names an index object. The empty string gives "".
func Fingerprint(v string) string {
	if v == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("liveingest/log-fingerprint\x00" + v))
	return "k:" + hex.EncodeToString(sum[:8])
}

// Fingerprint of the secret (see the package function).
func (s String) Fingerprint() string { return Fingerprint(string(s)) }
