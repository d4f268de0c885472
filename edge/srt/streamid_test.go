package srt

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/liveingest/liveingest/origin/keys"
)

const testKey = "Kx3_vQ-9aZ0bC1dE2fG3hI4jK5lM6nO7pQ8rS9tU0vW"

// streamIDCases feed both TestParseStreamID and FuzzParseStreamID's seeds.
var streamIDCases = []struct {
	name    string
	in      string
	key     string
	role    keys.Role
	user    string
	wantErr error
}{
	{name: "access control", in: "#!::r=" + testKey + ",m=publish", key: testKey},
	{name: "access control keys reversed", in: "#!::m=publish,r=" + testKey, key: testKey},
	{name: "access control user and session tolerated", in: "#!::u=studio1,r=" + testKey + ",s=abc,m=publish", key: testKey, user: "studio1"},
	{name: "access control host and type tolerated", in: "#!::h=edge.example.com,r=" + testKey + ",t=stream,m=publish", key: testKey},
	{name: "access control without mode publishes", in: "#!::r=" + testKey, key: testKey},
	{name: "access control backup application", in: "#!::r=backup/" + testKey + ",m=publish", key: testKey, role: keys.Backup},
	{name: "access control live application", in: "#!::r=live/" + testKey + ",m=publish", key: testKey},
	{name: "plain key", in: testKey, key: testKey},
	{name: "plain live path", in: "live/" + testKey, key: testKey},
	{name: "plain backup path", in: "backup/" + testKey, key: testKey, role: keys.Backup},
	{name: "access control url-escaped", in: "%23%21%3A%3Ar%3D" + testKey + "%2Cm%3Dpublish", key: testKey},
	{name: "plus is a space once decoded", in: "%23%21%3A%3Ar%3Dab+c", wantErr: ErrBadStreamID},
	{name: "bad escape", in: "%zz" + testKey, wantErr: ErrBadStreamID},
	{name: "publish prefix", in: "publish:" + testKey, key: testKey},
	{name: "publish prefix backup", in: "publish:backup/" + testKey, key: testKey, role: keys.Backup},

	{name: "request mode refused", in: "#!::r=" + testKey + ",m=request", wantErr: ErrPlayMode},
	{name: "bidirectional refused", in: "#!::r=" + testKey + ",m=bidirectional", wantErr: ErrPlayMode},
	{name: "read prefix refused", in: "read:" + testKey, wantErr: ErrPlayMode},
	{name: "play prefix refused", in: "play:live/" + testKey, wantErr: ErrPlayMode},
	{name: "unknown mode", in: "#!::r=" + testKey + ",m=push", wantErr: ErrBadStreamID},
	{name: "file type", in: "#!::r=" + testKey + ",t=file,m=publish", wantErr: ErrBadStreamID},
	{name: "empty", in: "", wantErr: ErrBadStreamID},
	{name: "no resource", in: "#!::m=publish", wantErr: ErrBadStreamID},
	{name: "empty resource", in: "#!::r=,m=publish", wantErr: ErrBadStreamID},
	{name: "item without value", in: "#!::r=" + testKey + ",publish", wantErr: ErrBadStreamID},
	{name: "duplicate key", in: "#!::r=a,r=b,m=publish", wantErr: ErrBadStreamID},
	{name: "unknown syntax", in: "#!:r=" + testKey, wantErr: ErrBadStreamID},
	{name: "unknown application", in: "app/" + testKey, wantErr: ErrBadStreamID},
	{name: "nested path", in: "live/a/" + testKey, wantErr: ErrBadStreamID},
	{name: "only application", in: "live/", wantErr: ErrBadStreamID},
	{name: "space in key", in: "bad key", wantErr: ErrBadStreamID},
	{name: "control byte in key", in: "bad\x00key", wantErr: ErrBadStreamID},
	{name: "non ascii key", in: "kéy", wantErr: ErrBadStreamID},
	{name: "too long", in: strings.Repeat("k", maxStreamIDLen+1), wantErr: ErrBadStreamID},

	// Issue 13: refusals of ids that carry the key in the wrong place.
	{name: "resource given twice", in: "#!::r=" + testKey + ",r=" + testKey, wantErr: ErrBadStreamID},
	{name: "resource given twice escaped", in: "%23%21%3A%3Ar%3D" + testKey + "%2Cr%3D" + testKey, wantErr: ErrBadStreamID},
	{name: "unknown key given twice", in: "#!::" + testKey + "=1,r=x," + testKey + "=2", wantErr: ErrBadStreamID},
	{name: "key as an item", in: "#!::r=x," + testKey, wantErr: ErrBadStreamID},
	{name: "key as the first item", in: "#!::" + testKey, wantErr: ErrBadStreamID},
	{name: "unknown resource", in: "unknown/" + testKey, wantErr: ErrBadStreamID},
	{name: "key as the application", in: testKey + "/x", wantErr: ErrBadStreamID},
	{name: "mode run into the key", in: "#!::r=" + testKey + ",m=publish" + testKey, wantErr: ErrBadStreamID},
	{name: "key as the mode", in: "#!::m=" + testKey + ",r=x", wantErr: ErrBadStreamID},
	{name: "key as the type", in: "#!::r=" + testKey + ",t=" + testKey, wantErr: ErrBadStreamID},
	{name: "key in a nested path", in: "live/" + testKey + "/x", wantErr: ErrBadStreamID},
	{name: "key with a space", in: "#!::r=" + testKey + " x", wantErr: ErrBadStreamID},
	{name: "longest accepted", in: strings.Repeat("k", maxStreamIDLen), key: strings.Repeat("k", maxStreamIDLen)},
}

func TestParseStreamID(t *testing.T) {
	for _, c := range streamIDCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseStreamID(c.in)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("ParseStreamID(%q) error = %v, want %v", c.in, err, c.wantErr)
				}
				// No part of the key: the error may be logged, and the
				// input may carry the key anywhere.
				if piece, ok := sharesPiece(err.Error(), testKey, 6); ok {
					t.Fatalf("error %q contains %q of the stream key", err, piece)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStreamID(%q): %v", c.in, err)
			}
			if got.Key.Reveal() != c.key || got.Role != c.role || got.User != c.user {
				t.Fatalf("ParseStreamID(%q) = key %q role %q user %q, want %q %q %q",
					c.in, got.Key.Reveal(), got.Role, got.User, c.key, c.role, c.user)
			}
		})
	}
}

func FuzzParseStreamID(f *testing.F) {
	// The refusals' own texts: all a refusal may hold (they quote nothing
	// of the input but the syntax's words).
	var vocabulary strings.Builder
	for _, c := range streamIDCases {
		f.Add(c.in)
		if _, err := ParseStreamID(c.in); err != nil {
			vocabulary.WriteString(err.Error() + "\n")
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseStreamID(in)
		if err != nil {
			if !errors.Is(err, ErrBadStreamID) && !errors.Is(err, ErrPlayMode) {
				t.Fatalf("error %v wraps neither ErrBadStreamID nor ErrPlayMode", err)
			}
			// A refusal echoes nothing of the input (which may carry a key
			// in the wrong place) but the syntax's own words.
			for _, r := range err.Error() {
				if (r < ' ' || r == 0x7f) && r != '\n' {
					t.Fatalf("error %q carries a control character", err)
				}
			}
			dec := in
			if d, derr := url.QueryUnescape(in); derr == nil {
				dec = d
			}
			for _, s := range []string{in, dec} {
				for i := 0; i+12 <= len(s); i++ {
					if w := s[i : i+12]; strings.Contains(err.Error(), w) && !strings.Contains(vocabulary.String(), w) {
						t.Fatalf("error %q quotes %q of the input", err, w)
					}
				}
			}
			return
		}
		key := got.Key.Reveal()
		if strings.Contains(in, "%") {
			in, _ = url.QueryUnescape(in)
		}
		switch {
		case key == "":
			t.Fatalf("accepted %q with an empty key", in)
		case strings.ContainsAny(key, "/,= \x00"):
			t.Fatalf("accepted %q with key %q", in, key)
		case !strings.Contains(in, key):
			t.Fatalf("key %q is not part of the stream id %q", key, in)
		case got.Role != "" && got.Role != keys.Backup:
			t.Fatalf("role %q", got.Role)
		case len(in) > maxStreamIDLen:
			t.Fatalf("accepted %d bytes", len(in))
		case strings.Contains(key, "%"):
			t.Fatalf("key %q still escaped", key)
		}
	})
}
