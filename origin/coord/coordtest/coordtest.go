// Package coordtest is the conformance suite of the origin/coord contracts.
// Every implementation runs it from its own tests:
//
//	coordtest.Run(t, func(t *testing.T) coordtest.Impl { … })
//
// Run calls the factory once per subtest, and subtests run in parallel; each
// uses fresh random names, so they may share one Redis server. Time is driven
// through Impl.Advance: a manual clock makes the suite exact and instant, a
// real clock makes it sleep through short ttls. Conditions that depend on
// time passing are polled with a bound (waitFor), never slept on once and
// hoped for.
package coordtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
)

// Impl is one implementation under test, as the suite needs it.
type Impl struct {
	Locker   coord.Locker
	Registry coord.Registry

	// NewLimiter returns a Limiter with rate; it fails the test itself if it
	// cannot.
	NewLimiter func(rate coord.Rate) coord.Limiter

	// Advance lets d pass on the implementation's clock: a manual clock moves
	// (and fires due timers before returning), a real one sleeps.
	Advance func(d time.Duration)

	// Now reads the clock the implementation decides on (for a Redis server
	// on this host, time.Now). HeldError.Since is checked against it.
	Now func() time.Time

	// TTL is the lease and heartbeat ttl the suite uses, and Interval the
	// limiter interval (burst 3, then one per Interval). With a real clock
	// they must be long enough that a few round trips fit well inside them
	// (a few hundred ms), and short enough to wait out.
	TTL      time.Duration
	Interval time.Duration

	// Exact says time passes only through Advance and is kept to the
	// nanosecond, so the suite asserts exact durations and boundaries.
	// Without it the suite allows for the time its own requests take.
	Exact bool
}

// Run runs the conformance suite against the implementation newImpl returns.
func Run(t *testing.T, newImpl func(t *testing.T) Impl) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, im Impl)
	}{
		{"Lease/HeldErrorNamesHolder", testHeldErrorNamesHolder},
		{"Lease/TakeoverAfterLapse", testTakeoverAfterLapse},
		{"Lease/LostWhenTTLPasses", testLostWhenTTLPasses},
		{"Lease/RenewKeepsAlive", testRenewKeepsAlive},
		{"Lease/ReleaseFreesName", testReleaseFreesName},
		{"Lease/StaleReleaseKeepsSuccessor", testStaleReleaseKeepsSuccessor},
		{"Lease/TokensIncrease", testTokensIncrease},
		{"Lease/ConcurrentAcquireOneWins", testConcurrentAcquire},
		{"Lease/NamesIndependent", testLeaseNamesIndependent},
		{"Lease/InvalidArguments", testLeaseInvalid},
		{"Limiter/BurstThenInterval", testLimiterBurstThenInterval},
		{"Limiter/RejectedNotCounted", testLimiterRejectedNotCounted},
		{"Limiter/KeysIndependent", testLimiterKeysIndependent},
		{"Limiter/InvalidKey", testLimiterInvalid},
		{"Registry/HeartbeatListRemove", testRegistryHeartbeatListRemove},
		{"Registry/OldestFirst", testRegistryOrder},
		{"Registry/Expiry", testRegistryExpiry},
		{"Registry/HeartbeatKeepsListed", testRegistryHeartbeatKeepsListed},
		{"Registry/InvalidArguments", testRegistryInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			im := newImpl(t)
			checkImpl(t, im)
			c.fn(t, im)
		})
	}
}

func checkImpl(t *testing.T, im Impl) {
	t.Helper()
	if im.Locker == nil || im.Registry == nil || im.NewLimiter == nil || im.Advance == nil || im.Now == nil {
		t.Fatal("coordtest: Impl has a nil field")
	}
	if im.TTL <= 0 || im.Interval <= 0 {
		t.Fatalf("coordtest: Impl.TTL %v and Impl.Interval %v must be positive", im.TTL, im.Interval)
	}
}

// testCtx bounds every call a test makes, so a hanging implementation fails
// the test instead of the whole run.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// uniq returns a coordination name no other test uses.
func uniq(what string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "coordtest:" + hex.EncodeToString(b[:]) + ":" + what
}

// waitFor polls cond, letting time pass in steps between polls, until it
// holds or limit has passed on the implementation's clock.
func waitFor(t *testing.T, im Impl, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	step := max(limit/50, time.Millisecond)
	for elapsed := time.Duration(0); ; elapsed += step {
		if cond() {
			return
		}
		if elapsed >= limit {
			t.Fatalf("%s: still not true after %v", what, limit)
		}
		im.Advance(step)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// checkRejected fails t if err is nil or claims the service is down:
// the suite runs against a healthy service, so invalid arguments and
// rejections must not be reported as retriable outages.
func checkRejected(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted, want an error", what)
	}
	if errors.Is(err, coord.ErrUnavailable) || coord.IsRetriable(err) {
		t.Fatalf("%s: error %v wraps ErrUnavailable", what, err)
	}
}
