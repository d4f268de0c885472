package testenv

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// redisDo sends one inline command and returns the first reply line.
func redisDo(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// TestRedisRestart: a killed server comes back on the same address, empty.
func TestRedisRestart(t *testing.T) {
	s := NewRedis(t)
	if got := redisDo(t, s.Addr, "SET k v"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	s.Kill()
	if redisPing(s.Addr) {
		t.Fatal("pong after kill")
	}
	s.Restart(t)
	if !redisPing(s.Addr) {
		t.Fatal("no pong after restart")
	}
	if got := redisDo(t, s.Addr, "EXISTS k"); got != ":0" {
		t.Fatalf("EXISTS after restart = %q, want :0 (empty)", got)
	}
	s.Restart(t) // a running server is restarted too
	if !redisPing(s.Addr) {
		t.Fatal("no pong after the second restart")
	}
}
