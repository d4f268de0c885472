package lifecycle

import (
	"time"

	"github.com/liveingest/liveingest/origin/store"
)

// Due reports whether an object written (last overwritten) at modified has
// reached its expiry at now. The boundary itself is due: an object with a
// file_expiry of 300 s is gone from the 300th second on, never visible
// longer than the slot promises.
func Due(modified time.Time, fileExpiry time.Duration, now time.Time) bool {
	return !now.Before(modified.Add(fileExpiry))
}

// Plan is the expiry policy of R-EXPIRE-1 applied to one slot's media
// listing (keys.MediaPrefix: both roles together). It returns the keys to
// delete now, in listing order:
//
//   - a segment (ClassOf the key) when now ≥ Modified + fileExpiry;
//   - a manifest, init file or stream state (the exempt patterns *.m3u8,
//     *.mpd, *.init, init*, and keys.StreamStateName) only when no segment
//     of the slot survives this plan and the file is itself due, measured
//     from its own Modified, i.e. its last overwrite.
//
// The exempt rule is decided per slot, not per role, because the Live Push
// guide speaks of "the only files left for a slot": while the backup still
// has segments, the primary's manifests stay too, so a failover back to the
// primary finds its init file. A live manifest is rewritten with every
// segment, so it only ages once its stream has stopped; the stream state is
// rewritten with every segment too, so it goes in the same pass as the
// manifests, and a stream that reconnects while any segment is left finds
// its sequence numbers.
//
// Plan is pure: no store access, no clock; fileExpiry <= 0 expires nothing
// (a slot without a valid expiry must not lose its media).
func Plan(objects []store.Info, fileExpiry time.Duration, now time.Time) (expire []string) {
	if fileExpiry <= 0 {
		return nil
	}
	segmentsLeft := false
	for _, o := range objects {
		if ClassOf(o.Key) != store.ClassSegment {
			continue
		}
		if Due(o.Modified, fileExpiry, now) {
			expire = append(expire, o.Key)
		} else {
			segmentsLeft = true
		}
	}
	if segmentsLeft {
		return expire
	}
	var exempt []string
	for _, o := range objects {
		if ClassOf(o.Key) != store.ClassSegment && Due(o.Modified, fileExpiry, now) {
			exempt = append(exempt, o.Key)
		}
	}
	if len(exempt) == 0 {
		return expire
	}
	// Keep listing order across both kinds, so batches delete in key order.
	order := make(map[string]bool, len(expire)+len(exempt))
	for _, k := range expire {
		order[k] = true
	}
	for _, k := range exempt {
		order[k] = true
	}
	out := make([]string, 0, len(order))
	for _, o := range objects {
		if order[o.Key] {
			out = append(out, o.Key)
			delete(order, o.Key) // a listing never repeats a key; be safe anyway
		}
	}
	return out
}
