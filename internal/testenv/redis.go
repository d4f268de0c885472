package testenv

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// RedisServer is a real redis-server on a loopback port.
type RedisServer struct {
	Addr    string // host:port
	bin     string
	dir     string
	port    int
	cleanup func()

	mu sync.Mutex
	p  *process // the running server (or the last one, once killed)
}

// Redis returns the package's shared redis-server, started on first use.
// Tests sharing it must use their own key names or namespaces.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	SkipIfNoIntegration(t)
	mu.Lock()
	defer mu.Unlock()
	if s, ok := shared["redis"].(*RedisServer); ok {
		return s
	}
	dir := sharedDir(t, "redis")
	s := startRedis(t, dir)
	s.cleanup = func() { removeAll(dir) }
	shared["redis"] = s
	return s
}

// NewRedis starts a private redis-server that is stopped when t ends; for
// tests that kill or restart it.
func NewRedis(t testing.TB) *RedisServer {
	t.Helper()
	SkipIfNoIntegration(t)
	s := startRedis(t, t.TempDir())
	t.Cleanup(s.stop)
	return s
}

func startRedis(t testing.TB, dir string) *RedisServer {
	t.Helper()
	bin := lookBinary(t, "redis-server", "LIVEINGEST_REDIS_BIN")
	p, port := startWithRetry(t, "redis-server", func(port int) (*process, error) {
		return runRedis(bin, dir, port)
	})
	return &RedisServer{Addr: "127.0.0.1:" + itoa(port), bin: bin, dir: dir, port: port, p: p}
}

// runRedis starts redis-server on port and waits until it answers PING.
func runRedis(bin, dir string, port int) (*process, error) {
	// No persistence: coordination state may be lost by design (R-COORD).
	p, err := startProcess(bin, []string{
		"--port", itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--protected-mode", "yes", "--dir", dir,
	}, nil, "")
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + itoa(port)
	if err := p.waitReady(10*time.Second, func() bool { return redisPing(addr) }); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *RedisServer) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.p.kill()
}

// Restart starts redis-server again on the same address, empty (there is
// no persistence), as a crashed Redis restarted by its supervisor or a
// failover to a replica that lost the data would come back: clients that
// kept the address reconnect to it. A server still running is killed
// first. Only for servers of NewRedis. Restart fails t if the port cannot
// be bound again within about 10 s (another process took it).
func (s *RedisServer) Restart(t testing.TB) {
	t.Helper()
	if s.cleanup != nil {
		t.Fatal("testenv: Restart of the shared redis-server; use NewRedis")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.p.kill()
	var last error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p, err := runRedis(s.bin, s.dir, s.port)
		if err == nil {
			s.p = p
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testenv: restart redis-server on %s: %v", s.Addr, last)
}

func (s *RedisServer) stop() {
	s.Kill()
	if s.cleanup != nil {
		s.cleanup()
	}
}

func redisPing(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}
