package coordtest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
)

var (
	owner1 = coord.Owner{ID: "sess-1", Edge: "edge-a", Protocol: "rtmp", Remote: "192.0.2.1:50000"}
	owner2 = coord.Owner{ID: "sess-2", Edge: "edge-b", Protocol: "srt", Remote: "198.51.100.7:9000"}
	owner3 = coord.Owner{ID: "sess-3", Edge: "edge-c", Protocol: "whip"}
)

func acquire(t *testing.T, im Impl, name string, ttl time.Duration, o coord.Owner) coord.Lease {
	t.Helper()
	l, err := im.Locker.Acquire(testCtx(t), name, ttl, o)
	if err != nil {
		t.Fatalf("Acquire(%q) by %s: %v", name, o.ID, err)
	}
	if l.Token() == 0 {
		t.Fatalf("Acquire(%q): token 0", name)
	}
	t.Cleanup(func() { _ = l.Release(testCtx(t)) })
	return l
}

// expectHeld checks that Acquire of name fails because holder holds it.
func expectHeld(t *testing.T, im Impl, name string, by coord.Owner, holder coord.Owner) *coord.HeldError {
	t.Helper()
	l, err := im.Locker.Acquire(testCtx(t), name, im.TTL, by)
	if err == nil {
		_ = l.Release(testCtx(t))
		t.Fatalf("Acquire(%q) by %s succeeded while %s holds it", name, by.ID, holder.ID)
	}
	if !errors.Is(err, coord.ErrHeld) {
		t.Fatalf("Acquire(%q) by %s: %v, want ErrHeld", name, by.ID, err)
	}
	var held *coord.HeldError
	if !errors.As(err, &held) {
		t.Fatalf("Acquire(%q): %T is not a *coord.HeldError", name, err)
	}
	if held.Name != name || held.Holder != holder {
		t.Fatalf("HeldError names %q held by %+v, want %q held by %+v", held.Name, held.Holder, name, holder)
	}
	return held
}

func expectLeaseLost(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, coord.ErrLeaseLost) {
		t.Fatalf("%s: %v, want ErrLeaseLost", what, err)
	}
	if errors.Is(err, coord.ErrUnavailable) {
		t.Fatalf("%s: %v also wraps ErrUnavailable", what, err)
	}
}

func testHeldErrorNamesHolder(t *testing.T, im Impl) {
	name := uniq("lease")
	before := im.Now()
	acquire(t, im, name, 20*im.TTL, owner1)
	after := im.Now()
	held := expectHeld(t, im, name, owner2, owner1)
	slack := time.Second // the implementation's clock is read elsewhere
	if im.Exact {
		slack = 0
	}
	if held.Since.Before(before.Add(-slack)) || held.Since.After(after.Add(slack)) {
		t.Errorf("HeldError.Since = %v, want the grant's time in [%v, %v]", held.Since, before, after)
	}
	if msg := held.Error(); msg == "" {
		t.Error("HeldError.Error() is empty")
	}
	// The holder's own second request is a new grant request too.
	expectHeld(t, im, name, owner1, owner1)
}

func testTakeoverAfterLapse(t *testing.T, im Impl) {
	name := uniq("lease")
	l1 := acquire(t, im, name, im.TTL, owner1)
	var l2 coord.Lease
	waitFor(t, im, 3*im.TTL, "acquire after the holder's ttl", func() bool {
		l, err := im.Locker.Acquire(testCtx(t), name, 20*im.TTL, owner2)
		if err != nil {
			if !errors.Is(err, coord.ErrHeld) {
				t.Fatalf("Acquire while waiting for the ttl: %v", err)
			}
			return false
		}
		l2 = l
		return true
	})
	t.Cleanup(func() { _ = l2.Release(testCtx(t)) })
	if l2.Token() <= l1.Token() {
		t.Fatalf("token after take-over %d, want > %d", l2.Token(), l1.Token())
	}
	expectLeaseLost(t, "old holder's Renew", l1.Renew(testCtx(t)))
	if !closed(l1.Lost()) {
		t.Fatal("old holder's Lost still open after its Renew failed")
	}
	if closed(l2.Lost()) {
		t.Fatal("new holder's Lost closed")
	}
	if err := l2.Renew(testCtx(t)); err != nil {
		t.Fatalf("new holder's Renew: %v", err)
	}
	expectHeld(t, im, name, owner3, owner2)
}

func testLostWhenTTLPasses(t *testing.T, im Impl) {
	name := uniq("lease")
	l := acquire(t, im, name, im.TTL, owner1)
	if closed(l.Lost()) {
		t.Fatal("Lost closed right after Acquire")
	}
	if im.Exact {
		im.Advance(im.TTL - time.Nanosecond)
		if closed(l.Lost()) {
			t.Fatal("Lost closed before the ttl passed")
		}
		expectHeld(t, im, name, owner2, owner1)
		im.Advance(time.Nanosecond)
		if !closed(l.Lost()) {
			t.Fatal("Lost still open when the ttl passed")
		}
	} else {
		waitFor(t, im, 3*im.TTL, "Lost closed without renewal", func() bool { return closed(l.Lost()) })
	}
	expectLeaseLost(t, "Renew after the ttl", l.Renew(testCtx(t)))
	// The lapsed grant no longer blocks the name.
	waitFor(t, im, 2*im.TTL, "acquire after lapse", func() bool {
		l2, err := im.Locker.Acquire(testCtx(t), name, im.TTL, owner2)
		if err == nil {
			_ = l2.Release(testCtx(t))
		}
		return err == nil
	})
}

func testRenewKeepsAlive(t *testing.T, im Impl) {
	name := uniq("lease")
	l := acquire(t, im, name, im.TTL, owner1)
	step := im.TTL / 3
	for elapsed := time.Duration(0); elapsed < 4*im.TTL; elapsed += step {
		im.Advance(step)
		if err := l.Renew(testCtx(t)); err != nil {
			t.Fatalf("Renew after %v: %v", elapsed+step, err)
		}
		if closed(l.Lost()) {
			t.Fatalf("Lost closed after %v despite renewals", elapsed+step)
		}
		expectHeld(t, im, name, owner2, owner1)
	}
}

func testReleaseFreesName(t *testing.T, im Impl) {
	name := uniq("lease")
	l1 := acquire(t, im, name, 20*im.TTL, owner1)
	if err := l1.Release(testCtx(t)); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if !closed(l1.Lost()) {
		t.Fatal("Lost open after Release")
	}
	l2 := acquire(t, im, name, 20*im.TTL, owner2) // at once: no waiting for the ttl
	if l2.Token() <= l1.Token() {
		t.Fatalf("token after release %d, want > %d", l2.Token(), l1.Token())
	}
	if err := l1.Release(testCtx(t)); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	expectLeaseLost(t, "Renew after Release", l1.Renew(testCtx(t)))
	expectHeld(t, im, name, owner3, owner2)
}

func testStaleReleaseKeepsSuccessor(t *testing.T, im Impl) {
	name := uniq("lease")
	l1 := acquire(t, im, name, im.TTL, owner1)
	var l2 coord.Lease
	waitFor(t, im, 3*im.TTL, "acquire after the holder's ttl", func() bool {
		l, err := im.Locker.Acquire(testCtx(t), name, 20*im.TTL, owner2)
		l2 = l
		return err == nil
	})
	t.Cleanup(func() { _ = l2.Release(testCtx(t)) })
	if err := l1.Release(testCtx(t)); err != nil {
		t.Fatalf("stale holder's Release: %v", err)
	}
	expectHeld(t, im, name, owner3, owner2)
	if err := l2.Renew(testCtx(t)); err != nil {
		t.Fatalf("successor's Renew after the stale Release: %v", err)
	}
	if closed(l2.Lost()) {
		t.Fatal("successor's Lost closed by the stale Release")
	}
}

func testTokensIncrease(t *testing.T, im Impl) {
	name := uniq("lease")
	var last uint64
	for i := range 50 {
		l, err := im.Locker.Acquire(testCtx(t), name, 20*im.TTL, owner1)
		if err != nil {
			t.Fatalf("grant %d: %v", i, err)
		}
		if l.Token() <= last {
			t.Fatalf("grant %d: token %d, want > %d", i, l.Token(), last)
		}
		last = l.Token()
		if err := l.Release(testCtx(t)); err != nil {
			t.Fatalf("grant %d: Release: %v", i, err)
		}
	}
}

func testConcurrentAcquire(t *testing.T, im Impl) {
	name := uniq("lease")
	const n = 20
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		leases  = make([]coord.Lease, n)
		errs    = make([]error, n)
		owners  = make([]coord.Owner, n)
		ctx     = testCtx(t)
		winners []int
	)
	for i := range n {
		owners[i] = coord.Owner{ID: fmt.Sprintf("racer-%d", i), Protocol: "rtmp"}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			leases[i], errs[i] = im.Locker.Acquire(ctx, name, 20*im.TTL, owners[i])
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] == nil {
			winners = append(winners, i)
			t.Cleanup(func() { _ = leases[i].Release(testCtx(t)) })
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent Acquires won, want exactly 1", len(winners), n)
	}
	w := owners[winners[0]]
	for i := range n {
		if errs[i] == nil {
			continue
		}
		var held *coord.HeldError
		if !errors.As(errs[i], &held) || !errors.Is(errs[i], coord.ErrHeld) {
			t.Fatalf("loser %d: %v, want a *HeldError", i, errs[i])
		}
		if held.Holder != w {
			t.Fatalf("loser %d told holder %+v, want the winner %+v", i, held.Holder, w)
		}
	}
}

func testLeaseNamesIndependent(t *testing.T, im Impl) {
	a, b := uniq("a"), uniq("b")
	la := acquire(t, im, a, 20*im.TTL, owner1)
	lb := acquire(t, im, b, 20*im.TTL, owner2)
	if err := la.Release(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	expectHeld(t, im, b, owner3, owner2)
	if closed(lb.Lost()) {
		t.Fatal("releasing one name closed another name's Lost")
	}
}

func testLeaseInvalid(t *testing.T, im Impl) {
	for _, name := range []string{"", "has space", "brace{x}", "nul\x00"} {
		l, err := im.Locker.Acquire(testCtx(t), name, im.TTL, owner1)
		if err == nil {
			_ = l.Release(testCtx(t))
		}
		checkRejected(t, fmt.Sprintf("Acquire(%q)", name), err)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		l, err := im.Locker.Acquire(testCtx(t), uniq("lease"), ttl, owner1)
		if err == nil {
			_ = l.Release(testCtx(t))
		}
		checkRejected(t, fmt.Sprintf("Acquire with ttl %v", ttl), err)
	}
}
