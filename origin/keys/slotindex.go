package keys

import (
	"fmt"
	"strings"
)

// Slot index objects. The slot configuration itself lives at SlotConfig; these
// small objects let the slot repository enforce name uniqueness with a
// create-only write and let an edge find a slot by its stream key without
// listing every slot:
//
//	config/slot-names/<lower-case name>.json   which slot holds a name
//	config/slot-keys/<sha256 hex>.json         which slot a stream key hash belongs to
//
// Neither prefix is a prefix of SlotConfigPrefix ("config/slots/"), so listing
// slots never sees an index object.

// MaxSlotNameLen is the longest slot name (R-SLOT-1).
const MaxSlotNameLen = 63

// SlotNameIndexPrefix is the prefix of every slot name index object.
func SlotNameIndexPrefix() string { return configPrefix + "slot-names/" }

// SlotNameIndex is the key of the index object for a slot name. The name is
// lower-cased here, so "Cam-1" and "cam-1" share one index object and cannot
// both be taken. It must be 1–63 ASCII letters, digits and hyphens.
func SlotNameIndex(name string) (string, error) {
	if name == "" || len(name) > MaxSlotNameLen {
		return "", fmt.Errorf("%w: slot name must be 1-%d characters", ErrInvalid, MaxSlotNameLen)
	}
	lower := strings.ToLower(name)
	for i := 0; i < len(lower); i++ {
		c := lower[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "", fmt.Errorf("%w: slot name may hold only letters, digits and '-'", ErrInvalid)
		}
	}
	return SlotNameIndexPrefix() + lower + ".json", nil
}

// SlotKeyIndexPrefix is the prefix of every stream key index object.
func SlotKeyIndexPrefix() string { return configPrefix + "slot-keys/" }

// SlotKeyIndex is the key of the index object for a stream key, given the
// lower-case hex SHA-256 of the key (64 characters). The key itself never
// appears in an object key.
func SlotKeyIndex(hashHex string) (string, error) {
	if len(hashHex) != 64 {
		return "", fmt.Errorf("%w: stream key hash must be 64 hex characters", ErrInvalid)
	}
	for i := 0; i < len(hashHex); i++ {
		c := hashHex[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("%w: stream key hash must be lower-case hex", ErrInvalid)
		}
	}
	return SlotKeyIndexPrefix() + hashHex + ".json", nil
}
