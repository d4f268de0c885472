// Package lifecycle decides what happens to stored media over time
// (R-EXPIRE-1): which class an object has, and which objects are due for
// deletion.
package lifecycle

import (
	"path"
	"strings"

	"github.com/liveingest/liveingest/origin/store"
)

// ClassOf is the class of a media object by its name, as the Live Push guide
// defines the exempt patterns: "*.m3u8" and "*.mpd" are manifests, "*.init"
// and "init*" are initialisation segments; everything else is a segment that
// expires file_expiry seconds after it was written. Names are compared
// case-insensitively (encoders differ).
func ClassOf(key string) store.Class {
	name := strings.ToLower(path.Base(key))
	switch {
	case strings.HasSuffix(name, ".m3u8"), strings.HasSuffix(name, ".mpd"):
		return store.ClassManifest
	case strings.HasSuffix(name, ".init"), strings.HasPrefix(name, "init"):
		return store.ClassInit
	}
	return store.ClassSegment
}
