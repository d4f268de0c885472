package coord

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrHeld is matched (errors.Is) by the *HeldError that Acquire returns
	// when another holder's lease is valid.
	ErrHeld = errors.New("lease held")

	// ErrLeaseLost is wrapped by Renew's error when the lease lapsed or was
	// granted to someone else.
	ErrLeaseLost = errors.New("lease lost")

	// ErrUnavailable is wrapped by every error that comes from not reaching
	// the coordination service (Redis down, timeouts). It is retriable: the
	// caller should fail the current attempt fast and let the client retry.
	ErrUnavailable = errors.New("coordination unavailable")
)

// HeldError is returned by Acquire when the name is held by someone else.
type HeldError struct {
	Name   string
	Holder Owner
	Since  time.Time // when the holder's grant began
}

func (e *HeldError) Error() string {
	h := e.Holder
	return fmt.Sprintf("lease %q held by %s (protocol %s, edge %s, from %s) since %s",
		e.Name, h.ID, orDash(h.Protocol), orDash(h.Edge), orDash(h.Remote), e.Since.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrHeld) true for a *HeldError.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// IsRetriable reports whether err is worth retrying later.
func IsRetriable(err error) bool { return errors.Is(err, ErrUnavailable) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
