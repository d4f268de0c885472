package srt

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
)

// maxStreamIDLen is SRT's limit for SRTO_STREAMID (512 bytes); a longer id
// cannot come from a conforming caller.
const maxStreamIDLen = 512

// StreamID is what a caller's SRT stream id asks for.
type StreamID struct {
	// Key is the stream key (never logged).
	Key secret.String
	// Role is keys.Backup when the resource names the backup application
	// ("backup/<key>"), otherwise "" (the edge's configured role).
	Role keys.Role
	// User and Session are the access-control "u" and "s" values, kept for
	// logs only: the stream key alone authenticates.
	User, Session string
}

// Errors of ParseStreamID.
var (
	// ErrPlayMode is returned when the stream id asks to play or for a
	// two-way session (m=request, m=bidirectional, "read:…"): this edge takes
	// publishers only.
	ErrPlayMode = errors.New("srt: this edge takes publishers only (m=publish); play the stream from its HLS or DASH URL")
	// ErrBadStreamID is returned for an empty, oversized or malformed stream
	// id; the wrapping error says what is wrong.
	ErrBadStreamID = errors.New("srt: bad stream id")
)

// ParseStreamID parses a caller's stream id (SPEC R-SRT-1). Accepted forms:
//
//	#!::r=<resource>,m=publish   SRT Access Control syntax: keys in any
//	                             order; u=, s=, h= and t=stream tolerated;
//	                             m may be left out (an ingest edge has
//	                             nothing else to offer)
//	publish:<resource>           the form MediaMTX users know
//	<resource>                   a plain stream id
//
// each also URL-escaped ("%23%21%3A%3Ar%3D…"), as srt:// URLs carry them.
// where <resource> is the stream key, "live/<key>" or "backup/<key>" (the
// backup role, as rtmp://host/backup/<key>). Stream keys never contain '/',
// ',' or '=' (they are URL-safe base64), so the forms are unambiguous.
//
// It is a pure function of its input; errors wrap ErrPlayMode or
// ErrBadStreamID and say what is wrong without quoting the input: a caller
// may put its key anywhere (a repeated r=, a misspelt application, a mode
// run into the key), and refusals are logged. They name only the syntax's
// own words (the keys r, m, u, s, h, t; the types stream, file, auth).
func ParseStreamID(s string) (StreamID, error) {
	if s == "" {
		return StreamID{}, fmt.Errorf("%w: empty; set streamid=#!::r=<stream_key>,m=publish", ErrBadStreamID)
	}
	if len(s) > maxStreamIDLen {
		return StreamID{}, fmt.Errorf("%w: longer than %d bytes", ErrBadStreamID, maxStreamIDLen)
	}
	if strings.Contains(s, "%") {
		// Callers differ on whether the streamid of an srt:// URL is
		// URL-decoded before it is sent (ffmpeg 5.1 sends it as written), and
		// the slot's ingest URL carries it query-escaped: decode it here.
		// Keys never contain '%', so a decoded id means the same.
		d, err := url.QueryUnescape(s)
		if err != nil {
			return StreamID{}, fmt.Errorf("%w: bad %%-escape", ErrBadStreamID)
		}
		s = d
	}
	var id StreamID
	var resource string
	switch {
	case strings.HasPrefix(s, "#!::"):
		var err error
		if resource, err = parseAccessControl(s[len("#!::"):], &id); err != nil {
			return StreamID{}, err
		}
	case strings.HasPrefix(s, "#!"):
		return StreamID{}, fmt.Errorf("%w: unknown access-control syntax (want #!::key=value,…)", ErrBadStreamID)
	case strings.HasPrefix(s, "publish:"):
		resource = s[len("publish:"):]
	case strings.HasPrefix(s, "read:"), strings.HasPrefix(s, "play:"), strings.HasPrefix(s, "request:"):
		return StreamID{}, ErrPlayMode
	default:
		resource = s
	}
	key, role, err := parseResource(resource)
	if err != nil {
		return StreamID{}, err
	}
	id.Key, id.Role = secret.String(key), role
	return id, nil
}

// Words of the SRT Access Control syntax that a refusal may name: they come
// from fixed sets, so naming them cannot echo a key a caller put in the
// wrong place. Anything else the caller wrote is described, never quoted.
var (
	knownACKeys  = map[string]bool{"r": true, "m": true, "u": true, "s": true, "h": true, "t": true}
	knownACTypes = map[string]bool{"stream": true, "file": true, "auth": true}
)

// parseAccessControl reads the comma-separated key=value list of the SRT
// Access Control syntax ("Stream ID" guidelines of the SRT documentation)
// into id and returns the resource. Its errors name an item by position
// and a key or value only when it is one of the syntax's own words.
func parseAccessControl(list string, id *StreamID) (string, error) {
	var resource, mode string
	seen := map[string]bool{}
	n := 0
	for item := range strings.SplitSeq(list, ",") {
		n++
		k, v, ok := strings.Cut(item, "=")
		if !ok || k == "" {
			return "", fmt.Errorf("%w: malformed key=value pair (item %d)", ErrBadStreamID, n)
		}
		if seen[k] {
			if knownACKeys[k] {
				return "", fmt.Errorf("%w: key %s= given twice", ErrBadStreamID, k)
			}
			return "", fmt.Errorf("%w: key given twice (item %d)", ErrBadStreamID, n)
		}
		seen[k] = true
		switch k {
		case "r":
			resource = v
		case "m":
			mode = v
		case "u":
			id.User = printable(v)
		case "s":
			id.Session = printable(v)
		case "t":
			switch {
			case v == "stream":
			case knownACTypes[v]:
				return "", fmt.Errorf("%w: type t=%s is not supported (only t=stream)", ErrBadStreamID, v)
			default:
				return "", fmt.Errorf("%w: unknown type in t= (only t=stream)", ErrBadStreamID)
			}
		default:
			// h= (host) and application keys are tolerated: callers copy
			// stream ids between servers.
		}
	}
	switch {
	case mode == "", mode == "publish":
	case mode == "request", mode == "bidirectional":
		return "", ErrPlayMode
	default:
		return "", fmt.Errorf("%w: unknown mode in m= (want m=publish)", ErrBadStreamID)
	}
	if !seen["r"] {
		return "", fmt.Errorf("%w: no resource; set #!::r=<stream_key>,m=publish", ErrBadStreamID)
	}
	return resource, nil
}

// parseResource splits "<key>", "live/<key>" or "backup/<key>".
func parseResource(res string) (key string, role keys.Role, err error) {
	app, rest, nested := strings.Cut(res, "/")
	if nested {
		switch app {
		case "live":
		case "backup":
			role = keys.Backup
		default:
			return "", "", fmt.Errorf("%w: unknown resource (the part before '/' is not live or backup); use <stream_key>, live/<stream_key> or backup/<stream_key>",
				ErrBadStreamID)
		}
		res = rest
	}
	switch {
	case res == "":
		return "", "", fmt.Errorf("%w: no stream key", ErrBadStreamID)
	case strings.ContainsAny(res, "/,=%"):
		return "", "", fmt.Errorf("%w: the stream key contains '/', ',', '=' or '%%'", ErrBadStreamID)
	}
	for i := 0; i < len(res); i++ {
		if c := res[i]; c <= ' ' || c >= 0x7f {
			return "", "", fmt.Errorf("%w: the stream key contains a space, control or non-ASCII byte", ErrBadStreamID)
		}
	}
	return res, role, nil
}

// printable makes a client-chosen value safe for a log line: bounded, with
// anything outside printable ASCII replaced.
func printable(s string) string {
	const maxLen = 64
	cut := len(s) > maxLen
	if cut {
		s = s[:maxLen]
	}
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r >= 0x7f {
			return '?'
		}
		return r
	}, s)
	if cut {
		s += "…"
	}
	return s
}

// capText bounds a text that may carry what a client sent (an error's,
// a panic's) to about n bytes for a log line, cut on a character boundary.
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
