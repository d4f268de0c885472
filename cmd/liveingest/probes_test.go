package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
)

// privateRoleArgs are roleArgsOn's flags for role on a MinIO and a Redis of
// the test's own, for tests that pause them or fill their state.
func privateRoleArgs(t *testing.T, role string, m *testenv.MinIOServer, r *testenv.RedisServer) []string {
	t.Helper()
	args := roleArgsOn(t, role, m.NewBucket(t))
	for i := range args {
		switch args[i] {
		case "--s3-endpoint":
			args[i+1] = m.Endpoint
		case "--redis-addr":
			args[i+1] = r.Addr
		}
	}
	return args
}

// TestReadyzStoreHung (issue 13): with MinIO stopped (SIGSTOP: its sockets
// accept, nothing answers) each role's /readyz answers 503 naming the store
// in under a second, every time it is asked, /healthz stays 200, and once
// MinIO runs again /readyz is 200.
func TestReadyzStoreHung(t *testing.T) {
	m, r := testenv.NewMinIO(t), testenv.NewRedis(t)
	bases := map[string]string{}
	for _, role := range []string{"edge", "origin"} {
		base, _ := startRole(t, privateRoleArgs(t, role, m, r))
		bases[role] = base
		if code, body := get(t, base+"/readyz"); code != http.StatusOK {
			t.Fatalf("%s /readyz before the pause = %d %s", role, code, body)
		}
	}
	m.Pause(t)
	var worst time.Duration
	for round := range 3 { // later probes find the first check still hung
		for role, base := range bases {
			start := time.Now()
			code, body := get(t, base+"/readyz")
			took := time.Since(start)
			worst = max(worst, took)
			if code != http.StatusServiceUnavailable || !strings.Contains(body, `"store"`) {
				t.Fatalf("%s /readyz with MinIO stopped (round %d) = %d %s", role, round, code, body)
			}
			if took >= time.Second {
				t.Errorf("%s /readyz took %v with MinIO stopped, want < 1 s", role, took)
			}
			if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
				t.Errorf("%s /healthz = %d with MinIO stopped, want 200", role, code)
			}
		}
	}
	t.Logf("slowest /readyz with MinIO stopped: %v", worst.Round(time.Millisecond))
	m.Resume(t)
	for role, base := range bases {
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := get(t, base+"/readyz")
			if code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s /readyz after MinIO resumed = %d %s", role, code, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// TestAdminTokenLimit (issue 13): the origin role, with its limiter on
// Redis. 40 requests with wrong admin tokens from 127.0.0.1: the first
// burst are 401, then 429 with Retry-After, and the right token from that
// address is refused too while it is blocked; the right token from
// 127.0.0.2 is served.
func TestAdminTokenLimit(t *testing.T) {
	m, r := testenv.MinIO(t), testenv.NewRedis(t)
	args := roleArgsOn(t, "origin", m.NewBucket(t))
	for i := range args {
		if args[i] == "--redis-addr" {
			args[i+1] = r.Addr
		}
	}
	base, _ := startRole(t, args)
	counts := map[int]int{}
	var retryAfter string
	for i := range 40 {
		code, h := getFrom(t, "127.0.0.1", base+"/api/v1/slots", "wrong-token-"+strconv.Itoa(i))
		counts[code]++
		if code == http.StatusTooManyRequests {
			retryAfter = h.Get("Retry-After")
			if retryAfter == "" {
				t.Fatalf("request %d: 429 without Retry-After", i)
			}
		}
	}
	t.Logf("40 wrong tokens: %v, Retry-After %s", counts, retryAfter)
	if counts[http.StatusUnauthorized] == 0 || counts[http.StatusTooManyRequests] < 20 ||
		counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != 40 {
		t.Fatalf("40 wrong tokens answered %v, want some 401 then 429s", counts)
	}
	if code, _ := getFrom(t, "127.0.0.1", base+"/api/v1/slots", roleTestToken); code != http.StatusTooManyRequests {
		t.Errorf("the right token from the blocked address = %d, want 429", code)
	}
	if code, _ := getFrom(t, "127.0.0.2", base+"/api/v1/slots", roleTestToken); code != http.StatusOK {
		t.Errorf("the right token from another address = %d, want 200", code)
	}
}

// getFrom GETs url with a bearer token over a connection from local
// address src (any 127/8 address reaches a loopback listener on Linux).
func getFrom(t *testing.T, src, url, token string) (int, http.Header) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", url, src, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}
