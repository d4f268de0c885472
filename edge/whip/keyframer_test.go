package whip

import (
	"testing"
	"time"
)

// publisher simulates an encoder at 30 fps that answers a keyframe request
// after delay and otherwise never sends one; it returns the lengths of the
// segments the segmenter would cut (first keyframe at least target after
// the segment's start).
func simulate(t *testing.T, target, delay time.Duration, secs int) []time.Duration {
	t.Helper()
	k := keyframer{target: target}
	start := time.Unix(1000, 0)
	frame := time.Second / 30
	var answerAt time.Duration = -1
	var cuts []time.Duration
	segStart := time.Duration(-1)
	requests := 0
	for pts := time.Duration(0); pts < time.Duration(secs)*time.Second; pts += frame {
		key := pts == 0 || (answerAt >= 0 && pts >= answerAt)
		if key {
			answerAt = -1
			switch {
			case segStart < 0:
				segStart = pts
			case pts-segStart >= target:
				cuts = append(cuts, pts-segStart)
				segStart = pts
			}
		}
		if k.frame(start.Add(pts), pts, key) {
			k.sent(start.Add(pts))
			requests++
			if answerAt < 0 {
				answerAt = pts + delay
			}
		}
	}
	if requests > 2*secs {
		t.Errorf("%d keyframe requests in %d s", requests, secs)
	}
	return cuts
}

func TestKeyframerCutsNearTarget(t *testing.T) {
	for _, c := range []struct {
		target, delay time.Duration
	}{
		{2 * time.Second, 40 * time.Millisecond},
		{2 * time.Second, 300 * time.Millisecond},
		{4 * time.Second, 150 * time.Millisecond},
		{1 * time.Second, 100 * time.Millisecond},
	} {
		cuts := simulate(t, c.target, c.delay, 60)
		if len(cuts) < int(60*time.Second/(c.target+c.target/10))-3 {
			t.Errorf("target %v delay %v: only %d segments: %v", c.target, c.delay, len(cuts), cuts)
		}
		// After the first segments (the delay is being learnt) each
		// segment is within 10 % of the target.
		for i, d := range cuts[2:] {
			if d < c.target || d > c.target+c.target/10 {
				t.Errorf("target %v delay %v: segment %d lasts %v", c.target, c.delay, i+2, d)
			}
		}
	}
}

func TestKeyframerRepeatsUntilFirstKeyframe(t *testing.T) {
	k := keyframer{target: 2 * time.Second}
	now := time.Unix(1000, 0)
	if !k.frame(now, 0, false) {
		t.Fatal("no request before the first keyframe")
	}
	k.sent(now)
	if k.frame(now.Add(100*time.Millisecond), 100*time.Millisecond, false) {
		t.Error("a second request before the retry interval")
	}
	if !k.frame(now.Add(keyframeRetry), keyframeRetry, false) {
		t.Error("no repeat after the retry interval")
	}
}
