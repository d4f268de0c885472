package coordtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
)

// burst is the ingest default: three attempts at once, then one per interval.
const burst = 3

func allow(t *testing.T, lim coord.Limiter, key string) time.Duration {
	t.Helper()
	r, err := lim.Allow(testCtx(t), key)
	if err != nil {
		t.Fatalf("Allow(%q): %v", key, err)
	}
	if r < 0 {
		t.Fatalf("Allow(%q): negative retry-after %v", key, r)
	}
	return r
}

// expectRejected checks that the next event on key is rejected with a
// retry-after in (0, within], exactly want when the clock is exact.
func expectRejected(t *testing.T, im Impl, lim coord.Limiter, key string, within, want time.Duration) time.Duration {
	t.Helper()
	r := allow(t, lim, key)
	if r <= 0 || r > within {
		t.Fatalf("Allow(%q) = %v, want rejected with retry-after in (0, %v]", key, r, within)
	}
	if im.Exact && r != want {
		t.Fatalf("Allow(%q) = %v, want exactly %v", key, r, want)
	}
	return r
}

// expectAllowedAfter lets retry pass and checks that an event is allowed
// then (at once with an exact clock; with a real one, allowing for the
// gap between this process's timer and the implementation's clock).
func expectAllowedAfter(t *testing.T, im Impl, lim coord.Limiter, key string, retry time.Duration) {
	t.Helper()
	im.Advance(retry)
	if im.Exact {
		if r := allow(t, lim, key); r != 0 {
			t.Fatalf("Allow(%q) after waiting the retry-after: rejected for %v more", key, r)
		}
		return
	}
	waitFor(t, im, im.Interval/2, fmt.Sprintf("Allow(%q) after waiting the retry-after", key), func() bool {
		return allow(t, lim, key) == 0
	})
}

func testLimiterBurstThenInterval(t *testing.T, im Impl) {
	lim := im.NewLimiter(coord.Rate{Burst: burst, Interval: im.Interval})
	key := uniq("rate")
	for i := range burst {
		if r := allow(t, lim, key); r != 0 {
			t.Fatalf("event %d of the burst rejected (retry-after %v)", i+1, r)
		}
	}
	r := expectRejected(t, im, lim, key, im.Interval, im.Interval)
	for range 3 {
		expectAllowedAfter(t, im, lim, key, r)
		r = expectRejected(t, im, lim, key, im.Interval, im.Interval)
	}
	if im.Exact {
		im.Advance(im.Interval / 2)
		expectRejected(t, im, lim, key, im.Interval, im.Interval-im.Interval/2)
		im.Advance(im.Interval - im.Interval/2 - time.Nanosecond)
		expectRejected(t, im, lim, key, im.Interval, time.Nanosecond)
		im.Advance(time.Nanosecond)
		if r := allow(t, lim, key); r != 0 {
			t.Fatalf("Allow after exactly one interval: rejected for %v", r)
		}
	}
	// A quiet key fills up again to the whole burst.
	im.Advance(burst * im.Interval)
	for i := range burst {
		if r := allow(t, lim, key); r != 0 {
			t.Fatalf("event %d of the burst after a quiet period rejected (retry-after %v)", i+1, r)
		}
	}
	expectRejected(t, im, lim, key, im.Interval, im.Interval)
}

func testLimiterRejectedNotCounted(t *testing.T, im Impl) {
	lim := im.NewLimiter(coord.Rate{Burst: burst, Interval: im.Interval})
	key := uniq("rate")
	for range burst {
		allow(t, lim, key)
	}
	first := expectRejected(t, im, lim, key, im.Interval, im.Interval)
	// Hammering while rejected must not push the next allowed event later.
	last := first
	for range 20 {
		r := expectRejected(t, im, lim, key, last, first)
		last = r
	}
	expectAllowedAfter(t, im, lim, key, last)
}

func testLimiterKeysIndependent(t *testing.T, im Impl) {
	rate := coord.Rate{Burst: burst, Interval: im.Interval}
	lim := im.NewLimiter(rate)
	a, b := uniq("rate-a"), uniq("rate-b")
	for range burst {
		allow(t, lim, a)
	}
	expectRejected(t, im, lim, a, im.Interval, im.Interval)
	for i := range burst {
		if r := allow(t, lim, b); r != 0 {
			t.Fatalf("key b event %d rejected after key a was exhausted (retry-after %v)", i+1, r)
		}
	}
	// A second limiter with another rate keeps its own keys' state too.
	other := im.NewLimiter(coord.Rate{Burst: 1, Interval: im.Interval})
	c := uniq("rate-c")
	if r := allow(t, other, c); r != 0 {
		t.Fatalf("burst-1 limiter rejected its first event (retry-after %v)", r)
	}
	expectRejected(t, im, other, c, im.Interval, im.Interval)
}

func testLimiterInvalid(t *testing.T, im Impl) {
	lim := im.NewLimiter(coord.Rate{Burst: burst, Interval: im.Interval})
	for _, key := range []string{"", "has space", "x{y}"} {
		_, err := lim.Allow(testCtx(t), key)
		checkRejected(t, fmt.Sprintf("Allow(%q)", key), err)
	}
}
