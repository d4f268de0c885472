package testenv

import "testing"

func TestMain(m *testing.M) { Main(m) }

func TestRedisStarts(t *testing.T) {
	s := Redis(t)
	if !redisPing(s.Addr) {
		t.Fatal("no pong")
	}
	p := NewRedis(t)
	p.Kill()
	if redisPing(p.Addr) {
		t.Fatal("pong after kill")
	}
}
