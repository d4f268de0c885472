// Package lifecycle decides what happens to stored media over time
// (R-EXPIRE-1): which class an object has, and which objects are due for
// deletion.
package lifecycle

import (
	"path"
	"strings"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

// ClassOf is the class of a media object by its name, as the Live Push guide
// defines the exempt patterns: "*.m3u8" and "*.mpd" are manifests, "*.init"
// and "init*" are initialisation segments; the stream state
// (keys.StreamStateName) is state; everything else is a segment that
// expires file_expiry seconds after it was written. Names are compared
// case-insensitively (encoders differ).
//
// State is kept and removed like a manifest (Plan), but it is its own class
// because it is internal: playback serves segments, init files and
// manifests only. The legacy state name (keys.LegacyStreamStateName) ends in
// .m3u8 and stays a manifest here, which is the expiry it needs; playback
// refuses it by name (keys.Internal).
func ClassOf(key string) store.Class {
	name := strings.ToLower(path.Base(key))
	switch {
	case name == string(keys.StreamStateName):
		return store.ClassState
	case strings.HasSuffix(name, ".m3u8"), strings.HasSuffix(name, ".mpd"):
		return store.ClassManifest
	case strings.HasSuffix(name, ".init"), strings.HasPrefix(name, "init"):
		return store.ClassInit
	}
	return store.ClassSegment
}
