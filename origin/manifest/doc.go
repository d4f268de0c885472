// Package manifest is the model and the writers of a live stream's public
// manifests — HLS media and multivariant playlists (RFC 8216) and the DASH
// MPD (ISO/IEC 23009-1) over one set of CMAF files — and of the stream
// state they are rendered from, with its conditional load and commit
// against origin/store.
//
// The package knows nothing of how media is cut or muxed: a writer
// (edge/segment today; pull, failover and transcode later) stores
// segments, describes them as Segments of Tracks in its own words, and
// commits a new State through a Stream.
//
// # Objects
//
// Under keys.RolePrefix(slot, role):
//
//	index.m3u8              HLS multivariant playlist (the slot's HLS playback URL)
//	video.m3u8, audio.m3u8  HLS media playlists, one per track kind
//	manifest.mpd            DASH MPD (the slot's DASH playback URL)
//	_state.json             the State (keys.StreamState; class state): internal, never served
//	state.m3u8              the legacy state name, a tombstone (Migration below): internal
//
// # The state
//
// Everything a writer needs to continue a slot/role's stream — the media
// and discontinuity sequence numbers, the segments of the DVR window with
// their exact per-track times, the DASH periods, the program-date-time of
// each segment, and the fencing token of the writer that owns it — is one
// object. It is the single point of linearisation for fencing: every
// change to the public manifests is first committed to it with a
// conditional Put (IfMatch on the ETag this writer last wrote or read), so
// two writers can never both commit a change on top of the same version.
//
// Why not parse the public playlists back: HLS EXTINF values are rounded
// and carry no per-track DASH timeline, and there are four public
// manifests, none of which alone is a consistent record.
//
// # Fencing (R-COORD-1)
//
// Open claims the state with the writer's lease token by a conditional
// Put; from then on every state commit and every manifest write is
// conditional on the ETag this writer last wrote or read. When a condition
// fails the writer re-reads the state: a larger token means a newer writer
// took over, and the Stream returns ErrFenced from then on and writes
// nothing more; a smaller (or equal) one means an older writer raced it,
// and the write is retried on the current version. So once a newer
// writer's Open returned, an older writer can neither commit to the stream
// nor overwrite a manifest the newer writer has written; the public
// playlists only ever move forward.
//
// # Visibility (R-STORE-2)
//
// The state is committed before any public manifest rendered from it is
// written, and media playlists before the multivariant playlist. The
// caller stores the segments a State names before it commits it.
//
// # Migration from state.m3u8
//
// Earlier releases kept the state in state.m3u8, framed as a playlist so
// that expiry would keep it, and playback served it to anyone. This
// release keeps it in _state.json (class state) and reads the old name
// only when the new one is missing, once per stream in practice:
//
//   - A stream written by an earlier release (state.m3u8, no _state.json)
//     continues: Open takes its sequence numbers, window and periods, and
//     checks its token like any state's, so a reconnect after the upgrade
//     neither fences itself nor restarts the sequence.
//   - Whenever Open creates _state.json it first writes a tombstone to
//     state.m3u8 (conditionally on the version it read, or create-only):
//     the same state, framed as before, under the token math.MaxUint64,
//     with moved_to and moved_by fields that earlier releases ignore. A
//     writer of an earlier release still running on that stream is fenced
//     at its next commit, and one that starts later is refused at its
//     start, both with its own ErrFenced — so during a rolling upgrade two
//     releases can never both write one stream's manifests. Fresh streams
//     get a tombstone too, so that an earlier release cannot start one a
//     newer release began.
//   - Open reads a tombstone as the state of the writer named in moved_by,
//     so a crash between the tombstone and _state.json loses nothing.
//
// The tombstone is a manifest by its name, so expiry keeps it while the
// stream has segments and removes it with the last files; keys.Internal
// keeps playback from serving it. A release that no longer supports
// upgrades from state.m3u8 drops both the read and the tombstone.
package manifest
