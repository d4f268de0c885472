package playback

import (
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/store"
)

// Only media is public. A role's prefix also holds objects of the system
// itself — the stream state with its fencing tokens and window
// (keys.StreamState), the tombstone at its legacy name — and a store may
// hold other objects there (a class written by some later component, or
// configuration put there by mistake). Playback serves segments, init
// files and manifests, and answers everything else with the same 404 as a
// missing object, so a viewer cannot tell an internal object from none.
//
// Two checks, because either alone has a gap: the name (keys.Internal and
// lifecycle.ClassOf) is decided before the store is asked, and the class
// stored with the object covers names that look like media.

// publicName reports whether rel may be served by its name.
func publicName(rel keys.RelPath) bool {
	return !keys.Internal(rel) && publicClass(lifecycle.ClassOf(string(rel)))
}

// publicClass reports whether an object of the stored class may be served.
// "" is how a store reports an object written without a class, which
// store.Meta defines as a segment.
func publicClass(c store.Class) bool {
	switch c {
	case store.ClassSegment, store.ClassInit, store.ClassManifest, "":
		return true
	}
	return false
}
