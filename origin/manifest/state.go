package manifest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/liveingest/liveingest/origin/store"
)

// maxStateBytes bounds what a state read takes into memory. A window of a
// few hundred segments is tens of KiB; this is far beyond any real one.
const maxStateBytes = 64 << 20

// stateContentType is the stored content type of the state object.
const stateContentType = "application/json"

// Marshal encodes s as the state object's bytes: indented JSON, so that an
// operator can read it, ending in a newline.
func Marshal(s *State) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("manifest: encode state: %w", err)
	}
	return append(b, '\n'), nil
}

// Unmarshal decodes a state object's bytes. It fails with ErrCorruptState
// for bytes that are no state or a State.Format other than StateFormat.
func Unmarshal(b []byte) (*State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptState, err)
	}
	if s.Format != StateFormat {
		return nil, fmt.Errorf("%w: format %d is not %d", ErrCorruptState, s.Format, StateFormat)
	}
	return &s, nil
}

// readObject reads a whole (small) object; a missing one is (nil, "", nil).
func readObject(ctx context.Context, st store.Store, key string) ([]byte, string, error) {
	rc, info, err := st.Get(ctx, key)
	if errors.Is(err, store.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("manifest: read state: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxStateBytes))
	if err != nil {
		return nil, "", fmt.Errorf("manifest: read state: %w", err)
	}
	return b, info.ETag, nil
}

// Load reads the state object at key (keys.StreamState) with its ETag; a
// missing object is (nil, "", nil). It neither migrates nor reads the
// legacy name: that is Open's business.
func Load(ctx context.Context, st store.Store, key string) (*State, string, error) {
	b, etag, err := readObject(ctx, st, key)
	if err != nil || b == nil {
		return nil, "", err
	}
	s, err := Unmarshal(b)
	if err != nil {
		return nil, "", err
	}
	return s, etag, nil
}
