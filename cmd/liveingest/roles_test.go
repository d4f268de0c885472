package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
)

// roleTestToken is the admin token of the deployed roles under test.
const roleTestToken = "roles-test-admin-token"

// roleArgs are the flags a deployed role needs for the harness's servers,
// on a fresh bucket.
func roleArgs(t *testing.T, role string) []string {
	t.Helper()
	return roleArgsOn(t, role, testenv.MinIO(t).NewBucket(t))
}

// roleArgsOn is roleArgs on a given bucket, for roles that share one.
func roleArgsOn(t *testing.T, role, bucket string) []string {
	t.Helper()
	m := testenv.MinIO(t)
	r := testenv.Redis(t)
	t.Setenv("LIVEINGEST_S3_SECRET_KEY", m.SecretKey)
	t.Setenv("LIVEINGEST_ADMIN_TOKEN", roleTestToken)
	args := []string{role, "--http", "127.0.0.1:0", "--region", "eu", "--node-id", "node-1",
		"--s3-endpoint", m.Endpoint, "--s3-region", m.Region, "--s3-bucket", bucket,
		"--s3-path-style", "--s3-access-key", m.AccessKey, "--redis-addr", r.Addr}
	if role == "edge" {
		args = append(args, "--rtmp", "127.0.0.1:0", "--srt", "127.0.0.1:0", "--webrtc-udp", "127.0.0.1:0")
	}
	return args
}

// TestRolesServe starts each deployed role against real MinIO and Redis:
// readiness is green, and cancellation stops it cleanly.
func TestRolesServe(t *testing.T) {
	for _, role := range []string{"edge", "origin", "functions"} {
		t.Run(role, func(t *testing.T) {
			args := roleArgs(t, role)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var logs testenv.Buffer
			done := make(chan error, 1)
			go func() { done <- run(ctx, args, io.Discard, &logs) }()
			base := waitLoggedHTTP(t, &logs, done)
			if code, body := get(t, base+"/readyz"); code != 200 {
				t.Fatalf("/readyz = %d %s", code, body)
			}
			if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, `role="`+role+`"`) {
				t.Fatalf("/metrics = %d, no role label", code)
			}
			if role == "origin" {
				// The slots API on S3 and Redis, through the CLI.
				out := mustCLI(t, base, "-o", "json", "create", "--name", "origin-cam", "--region", "eu")
				created := decodeSlot(t, out)
				got := decodeSlot(t, mustCLI(t, base, "-o", "json", "get", str(created["id"])))
				if got["name"] != "origin-cam" || got["status"] != "published" {
					t.Fatalf("origin get = %v", got)
				}
				if !strings.Contains(str(got["playback_urls"].(map[string]any)["hls"]), "/live/"+str(created["id"])+"/index.m3u8") {
					t.Fatalf("playback urls = %v", got["playback_urls"])
				}
			}
			if strings.Contains(logs.String(), testenv.MinIO(t).SecretKey) {
				t.Fatal("the S3 secret key reached the log")
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s returned %v", role, err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s did not stop", role)
			}
		})
	}
}

// waitLoggedHTTP waits for the "started" log line and returns the base URL.
func waitLoggedHTTP(t *testing.T, logs *testenv.Buffer, done <-chan error) string {
	t.Helper()
	return "http://" + waitLogged(t, logs, done, "http")
}

// waitLogged waits for the "started" log line and returns its attribute key.
func waitLogged(t *testing.T, logs *testenv.Buffer, done <-chan error, key string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		s := logs.String()
		if j := strings.Index(s, `"msg":"started"`); j >= 0 {
			line := s[j:]
			if i := strings.Index(line, `"`+key+`":"`); i >= 0 {
				v := line[i+len(key)+4:]
				return v[:strings.IndexByte(v, '"')]
			}
		}
		select {
		case err := <-done:
			t.Fatalf("exited early: %v\n%s", err, s)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("not started after 30 s:\n%s", logs.String())
	return ""
}

// TestRoleRefusesBadDependencies: a missing bucket or an unreachable Redis
// fails start-up with an error that says which.
func TestRoleRefusesBadDependencies(t *testing.T) {
	t.Run("missing bucket", func(t *testing.T) {
		args := roleArgs(t, "edge")
		for i, a := range args {
			if a == "--s3-bucket" {
				args[i+1] = "no-such-bucket-liveingest"
			}
		}
		err := run(context.Background(), args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "storage") || !strings.Contains(err.Error(), "no-such-bucket-liveingest") {
			t.Fatalf("err = %v, want a storage error naming the bucket", err)
		}
	})
	t.Run("redis down", func(t *testing.T) {
		args := roleArgs(t, "edge")
		dead := testenv.NewRedis(t)
		dead.Kill()
		for i, a := range args {
			if a == "--redis-addr" {
				args[i+1] = dead.Addr
			}
		}
		start := time.Now()
		err := run(context.Background(), args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "coordination") {
			t.Fatalf("err = %v, want a coordination error", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("took %s to give up on a dead Redis", d)
		}
	})
	t.Run("bucket required", func(t *testing.T) {
		err := run(context.Background(), []string{"origin"}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "bucket") {
			t.Fatalf("err = %v, want it to name the bucket field", err)
		}
	})
}
