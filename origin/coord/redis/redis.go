// Package redis implements the coordination contracts of origin/coord on a
// Redis server shared by every edge: leases with fencing tokens, GCRA rate
// limiters and the registry of live sessions.
//
// Every read-modify-write is one Lua script, so it is atomic on the server,
// and lease expiry, session expiry, rate limits and tokens use the server's
// TIME, so all edges share one clock. Only a holder's own deadline (when its
// Lost closes) is measured on the holder's clock, as the contract says.
//
// Keys are built only with keys.Redis: the logical
// name sits in a hash tag, which keeps a lease and its fencing counter (and a
// slot's session index and its sessions) on one Redis Cluster slot, as the
// scripts require.
//
// # Failing fast
//
// Coordination sits on the publish path, so an unreachable Redis must not
// hang a publisher: dial, read, write and pool waits are bounded by half of
// Config.OpTimeout, go-redis retries at most once, and every operation runs
// under a context deadline of Config.OpTimeout (1 s by default). Errors that
// come from not reaching a Redis able to serve — refused or reset
// connections, timeouts, the context ending, and replies saying the server
// cannot serve now (LOADING, READONLY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN,
// BUSY, OOM, max clients) or will not serve this client (NOAUTH, WRONGPASS,
// NOPERM) — wrap coord.ErrUnavailable. Other replies (a key of the wrong
// type) are returned as they are, and never as ErrHeld or ErrLeaseLost.
//
// # Logging
//
// go-redis prints every failed dial to stderr by itself, several lines a
// second while Redis is down. New routes go-redis's log (process-wide: it is
// one setting in go-redis) to slog.Default at Debug level instead: every such
// failure also reaches the caller as an ErrUnavailable error, and the callers
// log an outage once (edge/admit.Session), not once per attempt.
//
// # Fencing tokens
//
// The acquire script grants token = max(stored counter + 1, Redis TIME in
// microseconds since the epoch) and stores the token in a counter key that
// has no expiry, beside the lease. The guarantee:
//
//   - While Redis keeps its data, tokens on a name increase strictly, whatever
//     Redis's clock does.
//   - After Redis loses its data (restart without persistence, failover to a
//     replica that missed the write, FLUSHALL), the next token still exceeds
//     every earlier token on the name provided the clock of the Redis server
//     that grants it has advanced past the last token granted before the
//     loss. That token is the time of the last grant unless grants came
//     faster than one per microsecond or the clock had stepped back, so in
//     practice: provided Redis's clock reads later than at the last grant.
//     Time moving forward across a restart is the usual case; a failover
//     target's clock must not lag the old primary's by more than the outage
//     lasted.
//   - Microseconds since the epoch (about 1.8e15 now) stay below 2^53, so
//     Lua's doubles hold them, and every counter derived from them, exactly.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
)

var (
	_ coord.Locker   = (*Coord)(nil)
	_ coord.Registry = (*Coord)(nil)
)

// Config configures the connection to Redis.
type Config struct {
	// Addr is the Redis server as host:port. Default: 127.0.0.1:6379.
	Addr string

	// Username is the ACL user for AUTH; empty uses the default user.
	// Default: "".
	Username string

	// Password is sent with AUTH when set. It is redacted by String, GoString
	// and LogValue. Default: "" (no AUTH).
	Password string

	// DB is the database number to SELECT. Default: 0.
	DB int

	// TLS connects with TLS, verifying the server's certificate against the
	// system roots and Addr's host. Default: false.
	TLS bool

	// Namespace prefixes every key, so deployments can share one Redis; it
	// must be a valid coordination name (keys.ValidateCoordName).
	// Default: liveingest.
	Namespace string

	// OpTimeout bounds one operation, retries included; dial, read, write
	// and pool waits are each bounded by half of it. Default: 1s.
	OpTimeout time.Duration

	// Clock measures lease deadlines on this process (Lost closes when the
	// ttl has passed on it since the last successful grant or renewal).
	// Decisions shared between edges use Redis's clock instead.
	// Default: coord.SystemClock{}.
	Clock coord.Clock
}

const (
	defaultAddr      = "127.0.0.1:6379"
	defaultNamespace = "liveingest"
	defaultOpTimeout = time.Second
)

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = defaultAddr
	}
	if c.Namespace == "" {
		c.Namespace = defaultNamespace
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = defaultOpTimeout
	}
	if c.Clock == nil {
		c.Clock = coord.SystemClock{}
	}
	return c
}

// Validate checks the configuration as New would use it (zero fields take
// their defaults); its error names the offending field.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		return fmt.Errorf("coord/redis: Config.Addr %q: want host:port", c.Addr)
	}
	if c.DB < 0 {
		return fmt.Errorf("coord/redis: Config.DB %d: must not be negative", c.DB)
	}
	if err := keys.ValidateCoordName(c.Namespace); err != nil {
		return fmt.Errorf("coord/redis: Config.Namespace: %w", err)
	}
	if c.OpTimeout < 10*time.Millisecond {
		return fmt.Errorf("coord/redis: Config.OpTimeout %v: must be at least 10ms", c.OpTimeout)
	}
	return nil
}

// String shows the configuration with the password redacted.
func (c Config) String() string {
	return fmt.Sprintf("redis.Config{Addr:%q Username:%q Password:%s DB:%d TLS:%t Namespace:%q OpTimeout:%v}",
		c.Addr, c.Username, redact(c.Password), c.DB, c.TLS, c.Namespace, c.OpTimeout)
}

// GoString keeps %#v from printing the password.
func (c Config) GoString() string { return c.String() }

// LogValue logs the configuration with the password redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("username", c.Username),
		slog.String("password", redact(c.Password)),
		slog.Int("db", c.DB),
		slog.Bool("tls", c.TLS),
		slog.String("namespace", c.Namespace),
		slog.Duration("op_timeout", c.OpTimeout),
	)
}

func redact(s string) string {
	if s == "" {
		return `""`
	}
	return "[REDACTED]"
}

// Coord is a Locker and Registry on Redis, and the factory of its Limiters.
// It is safe for concurrent use; Close it when done.
type Coord struct {
	cfg    Config
	client *goredis.Client
	clock  coord.Clock
}

// New validates cfg and returns a Coord. It does not dial: Redis may come up
// later, and Ping tells whether it is reachable now.
func New(cfg Config) (*Coord, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	quietOnce.Do(func() { goredis.SetLogger(debugLogger{}) })
	step := cfg.OpTimeout / 2
	opts := &goredis.Options{
		Addr:     cfg.Addr,
		Username: cfg.Username,
		Password: cfg.Password,
		DB:       cfg.DB,
		// RESP2 replies are what the scripts are written against, and every
		// Redis and managed service speaks it.
		Protocol:              2,
		DialTimeout:           step,
		ReadTimeout:           step,
		WriteTimeout:          step,
		PoolTimeout:           step,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
		MinRetryBackoff:       10 * time.Millisecond,
		MaxRetryBackoff:       100 * time.Millisecond,
		DialerRetries:         1, // one dial per attempt: a refused dial is final for this attempt
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
	if cfg.TLS {
		host, _, _ := net.SplitHostPort(cfg.Addr)
		opts.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return &Coord{cfg: cfg, client: goredis.NewClient(opts), clock: cfg.Clock}, nil
}

var quietOnce sync.Once

// debugLogger is go-redis's log on slog.Default at Debug level (see the
// package doc, Logging).
type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().Log(ctx, slog.LevelDebug, fmt.Sprintf(format, v...), "component", "go-redis")
}

// Ping checks that Redis answers, for readiness probes.
func (c *Coord) Ping(ctx context.Context) error {
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	if err := c.client.Ping(ctx).Err(); err != nil {
		return c.fail("ping", "", err)
	}
	return nil
}

// Close closes the connections. Leases already granted keep their Lost
// timers; operations after Close fail with ErrUnavailable.
func (c *Coord) Close() error { return c.client.Close() }

// key builds the Redis key of one kind of record about a logical name.
func (c *Coord) key(kind, name string) string { return keys.Redis(c.cfg.Namespace, kind, name) }

// opContext bounds one operation, so that nothing waits on Redis for longer
// than OpTimeout whatever deadline the caller brought.
func (c *Coord) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.OpTimeout)
}

// fail wraps err from Redis for op on name, marking it ErrUnavailable when it
// comes from not reaching a Redis able to serve.
func (c *Coord) fail(op, name string, err error) error {
	if name != "" {
		op = fmt.Sprintf("%s %q", op, name)
	}
	if unavailable(err) {
		return fmt.Errorf("coord/redis: %s: %w: %w", op, coord.ErrUnavailable, err)
	}
	return fmt.Errorf("coord/redis: %s: %w", op, err)
}

// unavailable reports whether err means Redis could not serve the request,
// as opposed to a reply that would be the same on retry (a script error, a
// key of the wrong type).
func unavailable(err error) bool {
	var reply goredis.Error
	if !errors.As(err, &reply) {
		// Not a server reply: network, timeout, pool, closed client, or the
		// context ending.
		return true
	}
	msg := reply.Error()
	for _, p := range transientReplies {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// transientReplies are the error replies by which a Redis server says it
// cannot serve now (starting, failing over, overloaded, out of memory) or
// will not serve this client (authentication): retrying later, or after the
// operator fixed the deployment, can succeed.
var transientReplies = []string{
	"LOADING ", "READONLY ", "MASTERDOWN ", "CLUSTERDOWN ", "TRYAGAIN ",
	"BUSY ", "OOM ", "NOREPLICAS ", "NOAUTH ", "WRONGPASS ", "NOPERM ",
	"ERR max number of clients reached",
}
