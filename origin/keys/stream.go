package keys

import "strings"

// The stream state: origin/manifest's durable record of one role's stream
// (sequence numbers, the DVR window, DASH periods, the owning writer's
// fencing token). It lives beside the media it describes so that listing or
// deleting a slot's media covers it, but it is internal: no playlist names
// it and playback never serves it (Internal).
const (
	// StreamStateName is the state object's path under a role prefix. The
	// leading '_' puts it in the internal namespace (Internal), and ".json"
	// says what it is; it is no playlist.
	StreamStateName RelPath = "_state.json"

	// LegacyStreamStateName is the name the state had before it moved to
	// StreamStateName, when it was framed as a playlist so that expiry would
	// keep it like one. origin/manifest reads it once to continue a stream
	// written by an earlier release, and leaves a tombstone there that fences
	// writers of that release (see origin/manifest's package documentation).
	LegacyStreamStateName RelPath = "state.m3u8"
)

// StreamState is the key of one role's stream state object.
func StreamState(id SlotID, role Role) string { return Media(id, role, StreamStateName) }

// LegacyStreamState is the key the stream state had before StreamState.
func LegacyStreamState(id SlotID, role Role) string { return Media(id, role, LegacyStreamStateName) }

// Internal reports whether rel, a path under a role prefix, names an object
// of the system rather than media: any path whose first segment starts with
// '_' (the namespace reserved for internal objects, such as the stream
// state), and the legacy state name at the root. Playback answers 404 for
// these whatever the store holds.
func Internal(rel RelPath) bool {
	return strings.HasPrefix(string(rel), "_") || rel == LegacyStreamStateName
}
