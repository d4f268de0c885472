package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/coord/coordtest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newCoord returns a Coord on addr in a namespace of its own, closed when t
// ends.
func newCoord(t *testing.T, addr string) *Coord {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	c, err := New(Config{Addr: addr, Namespace: "test-" + hex.EncodeToString(b[:])})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	t.Parallel()
	addr := testenv.Redis(t).Addr
	coordtest.Run(t, func(t *testing.T) coordtest.Impl {
		c := newCoord(t, addr)
		return coordtest.Impl{
			Locker:   c,
			Registry: c,
			NewLimiter: func(rate coord.Rate) coord.Limiter {
				l, err := c.NewLimiter(rate)
				if err != nil {
					t.Fatalf("NewLimiter(%+v): %v", rate, err)
				}
				return l
			},
			Advance: time.Sleep,
			Now:     time.Now, // the redis-server runs on this host
			// Short enough to wait out, long enough for round trips under -race.
			TTL:      400 * time.Millisecond,
			Interval: 400 * time.Millisecond,
		}
	})
}

// TestRedisDown kills the server under a Coord that was working, and checks
// that every operation then fails fast with a retriable error.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedis(t)
	c := newCoord(t, srv.Addr)
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping while up: %v", err)
	}
	lease, err := c.Acquire(ctx, "slot:down:primary", 30*time.Second, coord.Owner{ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := c.NewLimiter(coord.Rate{Burst: 3, Interval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lim.Allow(ctx, "ip:192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	sess := coord.Session{ID: "s1", Slot: "slot:down", Started: time.Now()}
	if err := c.Heartbeat(ctx, sess, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	srv.Kill()

	for _, op := range []struct {
		name string
		call func(context.Context) error
	}{
		{"Ping", c.Ping},
		{"Acquire", func(ctx context.Context) error {
			_, err := c.Acquire(ctx, "slot:down:backup", time.Second, coord.Owner{ID: "b"})
			return err
		}},
		{"Renew", lease.Renew},
		{"Allow", func(ctx context.Context) error { _, err := lim.Allow(ctx, "ip:192.0.2.1"); return err }},
		{"Heartbeat", func(ctx context.Context) error { return c.Heartbeat(ctx, sess, 30*time.Second) }},
		{"List", func(ctx context.Context) error { _, err := c.List(ctx, sess.Slot); return err }},
		{"Remove", func(ctx context.Context) error { return c.Remove(ctx, sess.Slot, sess.ID) }},
		// Twice: a second round must not hang on a pool full of dead connections.
		{"Acquire again", func(ctx context.Context) error {
			_, err := c.Acquire(ctx, "slot:down:backup", time.Second, coord.Owner{ID: "b"})
			return err
		}},
		{"Renew again", lease.Renew},
	} {
		// A caller without a deadline must still get an answer quickly.
		begin := time.Now()
		err := op.call(context.Background())
		elapsed := time.Since(begin)
		if err == nil {
			t.Fatalf("%s succeeded with Redis killed", op.name)
		}
		if !coord.IsRetriable(err) {
			t.Errorf("%s: %v is not retriable (ErrUnavailable)", op.name, err)
		}
		if errors.Is(err, coord.ErrLeaseLost) || errors.Is(err, coord.ErrHeld) {
			t.Errorf("%s: %v claims a lease outcome Redis never gave", op.name, err)
		}
		if elapsed >= 2*time.Second {
			t.Errorf("%s took %v with Redis down, want < 2s", op.name, elapsed)
		}
		t.Logf("%s: %v after %v", op.name, err, elapsed.Round(time.Millisecond))
	}
	// An unreachable Redis does not end the grant early: it lasts to its deadline.
	select {
	case <-lease.Lost():
		t.Fatal("Lost closed by a Renew that could not reach Redis")
	default:
	}
	begin := time.Now()
	if err := lease.Release(ctx); !coord.IsRetriable(err) {
		t.Errorf("Release with Redis down: %v, want retriable", err)
	}
	if elapsed := time.Since(begin); elapsed >= 2*time.Second {
		t.Errorf("Release took %v with Redis down", elapsed)
	}
	select {
	case <-lease.Lost():
	default:
		t.Fatal("Lost open after Release")
	}
}

// TestLostAtDeadlineWhileDown checks that a grant whose renewals cannot reach
// Redis is given up when its ttl passes on the holder's clock.
func TestLostAtDeadlineWhileDown(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedis(t)
	c := newCoord(t, srv.Addr)
	const ttl = 700 * time.Millisecond
	l, err := c.Acquire(context.Background(), "slot:deadline:primary", ttl, coord.Owner{ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	srv.Kill()
	if err := l.Renew(context.Background()); !coord.IsRetriable(err) {
		t.Fatalf("Renew with Redis down: %v, want retriable", err)
	}
	select {
	case <-l.Lost():
		if since := time.Since(granted); since < ttl-50*time.Millisecond {
			t.Fatalf("Lost closed after %v, before the ttl %v", since, ttl)
		}
	case <-time.After(3 * ttl):
		t.Fatal("Lost still open 3 ttls after the last grant")
	}
}

// TestFencingAcrossDataLoss checks tokens keep increasing when Redis forgets
// everything, and that the stored counter wins over a clock that lags it.
func TestFencingAcrossDataLoss(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedis(t)
	c := newCoord(t, srv.Addr)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr, Protocol: 2})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()
	const name = "slot:fence:primary"
	grant := func() uint64 {
		t.Helper()
		l, err := c.Acquire(ctx, name, time.Minute, coord.Owner{ID: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		return l.Token()
	}
	before := grant()
	if err := admin.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	after := grant()
	if after <= before {
		t.Fatalf("token after FLUSHALL %d, want > %d", after, before)
	}
	now := uint64(time.Now().UnixMicro())
	if after > now+uint64(time.Minute/time.Microsecond) || after+uint64(time.Minute/time.Microsecond) < now {
		t.Fatalf("token %d is not time-seeded (now %d µs)", after, now)
	}
	// A counter ahead of the clock (a grant made on a server whose clock ran
	// fast) is still exceeded: the counter, not the clock, decides.
	ahead := after + uint64(time.Hour/time.Microsecond)
	if err := admin.Set(ctx, c.key(kindFence, name), ahead, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := grant(); got != ahead+1 {
		t.Fatalf("token with the counter ahead of the clock %d, want %d", got, ahead+1)
	}
	// The counter outlives the lease: it has no ttl.
	if ttl, err := admin.PTTL(ctx, c.key(kindFence, name)).Result(); err != nil || ttl != -1 {
		t.Fatalf("fence counter ttl %v (%v), want none", ttl, err)
	}
}

// TestListCleansIndex checks that List drops expired ids from the slot's
// index, and that the index itself expires with its last session: nothing
// is left behind in Redis by sessions that stopped heartbeating.
func TestListCleansIndex(t *testing.T) {
	t.Parallel()
	srv := testenv.Redis(t)
	c := newCoord(t, srv.Addr)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr, Protocol: 2})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()
	const slot = "slot:clean"
	index := c.key(kindSessions, slot)
	if err := c.Heartbeat(ctx, coord.Session{ID: "short", Slot: slot}, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := c.Heartbeat(ctx, coord.Session{ID: "long", Slot: slot}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if ttl, err := admin.PTTL(ctx, index).Result(); err != nil || ttl <= time.Second || ttl > 2*time.Second {
		t.Fatalf("index ttl %v (%v), want the longest session's ttl", ttl, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		ss, err := c.List(ctx, slot)
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired session still listed: %v", ss)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, err := admin.ZCard(ctx, index).Result(); err != nil || n != 1 {
		t.Fatalf("index holds %d ids (%v) after List, want the one live session", n, err)
	}
	if n, err := admin.Exists(ctx, c.key(kindSessionPrefix+"short", slot)).Result(); err != nil || n != 0 {
		t.Fatalf("expired session's record still exists (%d, %v)", n, err)
	}
}

// replyError stands for an error reply from a Redis server.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

func TestUnavailableClassification(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{replyError("LOADING Redis is loading the dataset in memory"), true},
		{replyError("READONLY You can't write against a read only replica."), true},
		{replyError("MASTERDOWN Link with MASTER is down"), true},
		{replyError("CLUSTERDOWN The cluster is down"), true},
		{replyError("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{replyError("BUSY Redis is busy running a script."), true},
		{replyError("OOM command not allowed when used memory > 'maxmemory'."), true},
		{replyError("NOAUTH Authentication required."), true},
		{replyError("WRONGPASS invalid username-password pair or user is disabled."), true},
		{replyError("ERR max number of clients reached"), true},
		{replyError("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{replyError("ERR user_script:1: Script attempted to access nonexistent global variable"), false},
		{io.EOF, true},
		{context.DeadlineExceeded, true},
		{context.Canceled, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{goredis.ErrPoolTimeout, true},
		{goredis.ErrClosed, true},
	} {
		if got := unavailable(fmt.Errorf("wrapped: %w", c.err)); got != c.want {
			t.Errorf("unavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestServerErrorIsNotUnavailable checks that a reply that would be the same
// on retry (a key of the wrong type, written by something else) is reported
// as it is, not as an outage.
func TestServerErrorIsNotUnavailable(t *testing.T) {
	t.Parallel()
	srv := testenv.Redis(t)
	c := newCoord(t, srv.Addr)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr, Protocol: 2})
	t.Cleanup(func() { _ = admin.Close() })
	const name = "slot:clobbered:primary"
	if err := admin.Set(context.Background(), c.key(kindLease, name), "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Acquire(context.Background(), name, time.Second, coord.Owner{ID: "a"})
	if err == nil || coord.IsRetriable(err) || errors.Is(err, coord.ErrHeld) {
		t.Fatalf("Acquire over a clobbered key: %v, want a plain error", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg   Config
		field string
	}{
		{Config{Addr: "no-port"}, "Addr"},
		{Config{Addr: "host:"}, "Addr"},
		{Config{DB: -1}, "DB"},
		{Config{Namespace: "has space"}, "Namespace"},
		{Config{Namespace: "a{b}"}, "Namespace"},
		{Config{OpTimeout: time.Millisecond}, "OpTimeout"},
		{Config{OpTimeout: -time.Second}, "OpTimeout"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("Validate(%v) = %v, want an error naming %s", c.cfg, err, c.field)
		}
		if _, err := New(c.cfg); err == nil {
			t.Errorf("New(%v) accepted an invalid config", c.cfg)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config (all defaults) invalid: %v", err)
	}
}

func TestConfigRedactsPassword(t *testing.T) {
	const pw = "s3cret-pa55"
	cfg := Config{Addr: "127.0.0.1:6379", Password: pw}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "redis", cfg)
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), logged.String()} {
		if strings.Contains(s, pw) {
			t.Errorf("password shown in %q", s)
		}
		if !strings.Contains(s, "REDACTED") {
			t.Errorf("no redaction marker in %q", s)
		}
	}
}

// TestAuth checks that the password reaches Redis, and that a wrong one is
// reported as the service being unavailable to this edge.
func TestAuth(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedis(t)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr, Protocol: 2})
	defer admin.Close()
	const pw = "right-password"
	if err := admin.ConfigSet(context.Background(), "requirepass", pw).Err(); err != nil {
		t.Fatal(err)
	}
	good, err := New(Config{Addr: srv.Addr, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if err := good.Ping(context.Background()); err != nil {
		t.Fatalf("Ping with the right password: %v", err)
	}
	for _, wrong := range []string{"", "wrong"} {
		c, err := New(Config{Addr: srv.Addr, Password: wrong})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Acquire(context.Background(), "slot:auth:primary", time.Second, coord.Owner{ID: "a"})
		_ = c.Close()
		if !coord.IsRetriable(err) {
			t.Errorf("Acquire with password %q: %v, want retriable", wrong, err)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// TestRedisUnresponsive points a Coord at a server that accepts connections
// and never answers (a hung or black-holed Redis): every call must still
// return, retriable, within the operation bound.
func TestRedisUnresponsive(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	stop := make(chan struct{})
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer conn.Close()
				<-stop // hold the connection open, read nothing, answer nothing
			}()
		}
	}()
	defer func() {
		close(stop)
		_ = ln.Close()
		conns.Wait()
	}()

	c := newCoord(t, ln.Addr().String())
	lim, err := c.NewLimiter(coord.Rate{Burst: 3, Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return c.Ping(ctx) }},
		{"Acquire", func() error {
			_, err := c.Acquire(ctx, "slot:hung:primary", time.Second, coord.Owner{ID: "a"})
			return err
		}},
		{"Allow", func() error { _, err := lim.Allow(ctx, "ip:192.0.2.1"); return err }},
		{"Heartbeat", func() error {
			return c.Heartbeat(ctx, coord.Session{ID: "s", Slot: "slot:hung"}, time.Second)
		}},
		{"List", func() error { _, err := c.List(ctx, "slot:hung"); return err }},
	} {
		begin := time.Now()
		err := op.call()
		elapsed := time.Since(begin)
		if !coord.IsRetriable(err) {
			t.Errorf("%s against a hung server: %v, want retriable", op.name, err)
		}
		if elapsed >= 2*time.Second {
			t.Errorf("%s took %v against a hung server, want < 2s", op.name, elapsed)
		}
		t.Logf("%s: %v after %v", op.name, err, elapsed.Round(time.Millisecond))
	}
}
