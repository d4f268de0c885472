package whip

import "time"

// keyframer decides when to ask the publisher for a keyframe so that the
// segmenter can cut at the slot's segment duration. Browsers send a
// keyframe only at the start and when asked, while the segmenter cuts at
// the first keyframe at least one segment duration after the segment's
// start (edge/segment): a keyframe that comes a little early is wasted and
// the segment runs to the next one.
//
// So the request goes out "lead" before the segment is due, lead being how
// long this publisher has been taking to answer (smoothed), and aims a
// little after the due time. A keyframe that still comes early only costs
// another request. Until the first keyframe, requests repeat every
// keyframeRetry.
//
// Times: pts is the frame's session time, now the wall clock; both run at
// the same rate for a live publisher. Not safe for concurrent use (one
// video reader).
type keyframer struct {
	target time.Duration // the slot's segment duration

	started  bool
	segStart time.Duration // pts of the keyframe that opened the segment
	lead     time.Duration // smoothed request → keyframe delay
	pending  bool          // a request is unanswered
	sentAt   time.Time
}

// keyframeAim is how far after the due time the keyframe should land:
// enough to absorb jitter in the publisher's answer, small next to any
// segment duration.
const keyframeAim = 60 * time.Millisecond

// frame registers a frame and reports whether to request a keyframe now.
func (k *keyframer) frame(now time.Time, pts time.Duration, key bool) bool {
	if key {
		if k.pending {
			k.pending = false
			d := now.Sub(k.sentAt)
			if k.lead == 0 {
				k.lead = d
			} else {
				k.lead = (3*k.lead + d) / 4
			}
			k.lead = min(k.lead, k.target/2)
		}
		switch {
		case !k.started:
			k.started, k.segStart = true, pts
		case pts-k.segStart >= k.target:
			k.segStart = pts // the segmenter cuts here
		}
		return false
	}
	if !k.started {
		return !k.pending || now.Sub(k.sentAt) >= keyframeRetry
	}
	due := pts-k.segStart+k.lead >= k.target+keyframeAim
	if !due {
		return false
	}
	// One outstanding request at a time, repeated if unanswered for long.
	return !k.pending || now.Sub(k.sentAt) >= max(2*k.lead, keyframeRetry)
}

// sent records a request made at now (by frame's decision or otherwise).
func (k *keyframer) sent(now time.Time) {
	k.pending, k.sentAt = true, now
}
