// Package secret holds values that must never reach a log, an error message or
// an API response by accident: admin tokens, passwords, stream keys.
//
// A String prints as "[redacted]" through fmt, slog and encoding/json; the
// value is read only through Reveal, which makes every use greppable.
package secret

import (
	"crypto/subtle"
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
