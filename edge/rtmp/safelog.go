package rtmp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxErrText caps the fixed text logged for a library error.
const maxErrText = 80

// maxStack caps the stack logged with a recovered panic.
const maxStack = 8 << 10

// safeErr renders err for a log line without anything the client wrote.
// gortmplib's errors embed client text freely ("invalid connect command:
// %+v" prints the whole command, tcUrl and stream key included; url.Parse
// errors quote the URL), so:
//
//   - the guard's own errors (ErrLimit, ErrProtocol, ErrRTMPE: fixed words
//     and numbers) are logged as they are;
//   - network errors are logged as the net package wrote them (addresses
//     and an errno), timeouts and ends of stream as their fixed text, never
//     the text of what wraps them;
//   - a URL error (a malformed tcUrl or stream name) as a fixed text;
//   - anything else as its leading text up to the first ": " or quote,
//     printable characters only, at most maxErrText bytes.
func safeErr(err error) string {
	var (
		opErr  *net.OpError
		urlErr *url.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrLimit), errors.Is(err, ErrProtocol), errors.Is(err, ErrRTMPE):
		return guardText(err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return os.ErrDeadlineExceeded.Error()
	case errors.As(err, &opErr):
		return opErr.Error()
	case errors.Is(err, net.ErrClosed):
		return net.ErrClosed.Error()
	case errors.Is(err, io.ErrUnexpectedEOF):
		return io.ErrUnexpectedEOF.Error()
	case errors.Is(err, io.EOF):
		return io.EOF.Error()
	case errors.As(err, &urlErr):
		return "malformed tcUrl or stream name"
	}
	return leadingText(err.Error())
}

// guardText is the innermost of err's texts that is the guard's own (a
// library may have wrapped it with client text).
func guardText(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if errors.Is(e, ErrLimit) || errors.Is(e, ErrProtocol) || errors.Is(e, ErrRTMPE) {
			s := e.Error()
			if strings.HasPrefix(s, "rtmp: ") {
				return s
			}
			continue
		}
		break
	}
	return leadingText(err.Error())
}

// leadingText is s up to its first ": " or quote character, printable
// characters only, capped at maxErrText bytes.
func leadingText(s string) string {
	if i := strings.Index(s, ": "); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexAny(s, "\"'`{[&"); i >= 0 {
		s = s[:i]
	}
	if t := strings.TrimSpace(capText(s)); t != "" {
		return t
	}
	return "library error"
}

// capText is s with printable characters only, capped at maxErrText bytes.
func capText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len()+utf8.RuneLen(r) > maxErrText {
			break
		}
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// panicText renders a recovered panic value: a runtime error's fixed text,
// an error as safeErr does, anything else by its type only.
func panicText(p any) string {
	switch v := p.(type) {
	case runtime.Error: // fixed text, numbers and type names
		return capText(v.Error())
	case error:
		return safeErr(v)
	}
	return fmt.Sprintf("panic value of type %T", p)
}

// capStack caps a stack trace for the log.
func capStack(st []byte) string {
	if len(st) > maxStack {
		st = append(st[:maxStack:maxStack], "\n…(truncated)"...)
	}
	return string(st)
}
