package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/liveingest/liveingest/origin/keys"
)

// The legacy state object (keys.LegacyStreamStateName). Releases before
// the state had its own name and class framed the same JSON as an HLS
// document, "#EXTM3U", a comment, then one "#EXT-X-LIVEINGEST-STATE:" tag
// holding the JSON, so that expiry would keep it like a playlist. Open
// reads it when the new object is missing (a stream written by such a
// release) and leaves a tombstone in its place; see the package
// documentation for why and how that fences writers of that release.
const (
	legacyTag         = "#EXT-X-LIVEINGEST-STATE:"
	legacyContentType = "application/vnd.apple.mpegurl"
)

// legacyDoc is the legacy object's JSON: a State, and on a tombstone the
// two fields that releases before it ignore (encoding/json drops unknown
// fields), so they still decode a tombstone as a state, one whose Token
// is math.MaxUint64.
type legacyDoc struct {
	State
	MovedTo string `json:"moved_to,omitempty"` // keys.StreamStateName on a tombstone
	MovedBy uint64 `json:"moved_by,omitempty"` // the token of the writer that left it
}

// owner is the fencing token the legacy object stands for: the writer that
// left the tombstone, or the legacy writer itself.
func (d *legacyDoc) owner() uint64 {
	if d.MovedTo != "" {
		return d.MovedBy
	}
	return d.Token
}

// tombstone is the legacy object a writer with s.Token leaves: s itself
// (so that a crash before the new object is written loses nothing) under
// the largest token, which a release before this one takes as "fenced by
// a newer writer" both at start and on every commit.
func tombstone(s *State) *legacyDoc {
	d := &legacyDoc{State: *s, MovedTo: string(keys.StreamStateName), MovedBy: s.Token}
	d.Token = math.MaxUint64
	return d
}

func marshalLegacy(d *legacyDoc) ([]byte, error) {
	js, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("manifest: encode legacy state: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n")
	b.WriteString("# liveingest segmenter state: not a playlist for players.\n")
	b.WriteString(legacyTag)
	b.Write(js)
	b.WriteString("\n")
	return b.Bytes(), nil
}

// parseLegacy decodes the legacy object, failing with ErrCorruptState.
func parseLegacy(b []byte) (*legacyDoc, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), maxStateBytes)
	for sc.Scan() {
		js, ok := bytes.CutPrefix(sc.Bytes(), []byte(legacyTag))
		if !ok {
			continue
		}
		var d legacyDoc
		if err := json.Unmarshal(js, &d); err != nil {
			return nil, fmt.Errorf("%w: legacy state: %v", ErrCorruptState, err)
		}
		if d.Format != StateFormat {
			return nil, fmt.Errorf("%w: legacy state format %d is not %d", ErrCorruptState, d.Format, StateFormat)
		}
		return &d, nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: legacy state: %v", ErrCorruptState, err)
	}
	return nil, fmt.Errorf("%w: legacy state has no state tag", ErrCorruptState)
}
