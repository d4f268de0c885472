package keys

import "strings"

// Object-store layout. Everything of a slot's media lives under MediaPrefix,
// everything of its configuration under ConfigPrefix, so that listing or
// deleting a slot is one prefix operation.
//
//	config/slots/<id>.json              the slot's durable configuration
//	live/<id>/<role>/<rel>              segments, init files and manifests
//	probe/<name>                        start-up probes of a store backend
const (
	configPrefix = "config/"
	mediaPrefix  = "live/"
	probePrefix  = "probe/"
)

// SlotConfigPrefix is the prefix under which every slot's configuration lies.
func SlotConfigPrefix() string { return configPrefix + "slots/" }

// SlotConfig is the key of a slot's configuration object.
func SlotConfig(id SlotID) string { return SlotConfigPrefix() + string(id) + ".json" }

// MediaPrefix is the prefix of all media objects of a slot, both roles.
func MediaPrefix(id SlotID) string { return mediaPrefix + string(id) + "/" }

// RolePrefix is the prefix of the media objects one role of a slot writes.
func RolePrefix(id SlotID, role Role) string { return MediaPrefix(id) + string(role) + "/" }

// Media is the key of one media object (segment, init file or manifest).
func Media(id SlotID, role Role, rel RelPath) string { return RolePrefix(id, role) + string(rel) }

// MediaSlot is the slot a media object key (Media, under MediaPrefix) belongs
// to; ok is false for any other key. Only the slot id is checked, not the
// role or the rest of the key.
func MediaSlot(key string) (id SlotID, ok bool) {
	rest, ok := strings.CutPrefix(key, mediaPrefix)
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	id, err := ParseSlotID(name)
	return id, err == nil
}

// Probe is the key a store backend writes to check itself at start-up. name
// must come from the backend (not from a client); it is validated anyway.
func Probe(name string) (string, error) {
	rel, err := ParseRelPath(name)
	if err != nil {
		return "", err
	}
	return probePrefix + string(rel), nil
}
