package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
)

// startDev runs dev in-process on free ports and returns its http and https
// base URLs, admin token and data directory.
func startDev(t *testing.T) (httpBase, httpsBase, token, data string) {
	t.Helper()
	data = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out testenv.Buffer
	done := make(chan error, 1)
	exited := make(chan struct{})
	var logs testenv.Buffer
	go func() {
		done <- run(ctx, devArgs(data), &out, &logs)
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dev returned %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("dev did not stop")
		}
		if t.Failed() {
			// What dev said explains most failures of a test against it.
			l := logs.String()
			t.Logf("dev's log (last 16 KiB):\n%s", l[max(0, len(l)-16<<10):])
		}
	})
	httpBase = strings.Replace(waitURL(t, out.String, exited), "localhost", "127.0.0.1", 1)
	m := regexp.MustCompile(`(?m)^\s+https\s+(https://\S+)`).FindStringSubmatch(out.String())
	tok := regexp.MustCompile(`admin token\s+(\S+)`).FindStringSubmatch(out.String())
	if m == nil || tok == nil {
		t.Fatalf("summary lacks https or token:\n%s", out.String())
	}
	return httpBase, m[1], tok[1], data
}

// cli runs `liveingest slots …` in-process and returns stdout.
func cli(t *testing.T, server string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"slots", "--server", server}, args...), &out, io.Discard)
	return out.String(), err
}

func mustCLI(t *testing.T, server string, args ...string) string {
	t.Helper()
	out, err := cli(t, server, args...)
	if err != nil {
		t.Fatalf("slots %v: %v\n%s", args, err, out)
	}
	return out
}

func decodeSlot(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return m
}

// TestSlotsCLIRoundTrip drives every slots command against a running dev.
func TestSlotsCLIRoundTrip(t *testing.T) {
	base, httpsBase, token, data := startDev(t)
	t.Setenv("LIVEINGEST_ADMIN_TOKEN", token)

	// create (table): the stream key is shown once.
	out := mustCLI(t, base, "create", "--name", "cam-1", "--type", "live-push", "--credential", "enc1:password-123", "--description", "studio")
	key := regexp.MustCompile(`stream key\s+(\S+)\s+\(shown once`).FindStringSubmatch(out)
	if key == nil {
		t.Fatalf("create did not show the stream key:\n%s", out)
	}
	if strings.Contains(out, "password-123") {
		t.Fatal("create echoed the password")
	}
	id := regexp.MustCompile(`(?m)^id\s+(\S+)`).FindStringSubmatch(out)[1]

	// get (json): no stream key, fields as created.
	got := decodeSlot(t, mustCLI(t, base, "-o", "json", "get", id))
	if got["name"] != "cam-1" || got["description"] != "studio" || got["type"] != "live-push" {
		t.Fatalf("get = %v", got)
	}
	if _, ok := got["stream_key"]; ok {
		t.Fatal("get showed the stream key")
	}
	version := str(got["version"])

	// list (table) shows it.
	if out := mustCLI(t, base, "list", "--sort", "name"); !strings.Contains(out, id) || !strings.Contains(out, "cam-1") {
		t.Fatalf("list:\n%s", out)
	}

	// update with the current version, then with the stale one.
	upd := decodeSlot(t, mustCLI(t, base, "-o", "json", "update", id, "--if-match", version, "--description", "studio B"))
	if upd["description"] != "studio B" || str(upd["version"]) == version {
		t.Fatalf("update = %v", upd)
	}
	if _, err := cli(t, base, "update", id, "--if-match", version, "--description", "x"); err == nil || !strings.Contains(err.Error(), "412") {
		t.Fatalf("stale update: err = %v, want 412", err)
	}

	// clone: a new name and a new key.
	cl := decodeSlot(t, mustCLI(t, base, "-o", "json", "clone", id, "--name", "cam-2"))
	if cl["name"] != "cam-2" || cl["stream_key"] == "" || cl["stream_key"] == key[1] || cl["id"] == id {
		t.Fatalf("clone = %v", cl)
	}
	if _, err := cli(t, base, "clone", id, "--name", "CAM-1"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("clone onto a taken name: err = %v, want 409", err)
	}

	// rotate-key over HTTPS, trusting dev's certificate.
	rot := decodeSlot(t, mustCLI(t, httpsBase, "--ca-cert", filepath.Join(data, "tls", "cert.pem"), "-o", "json", "rotate-key", id))
	if rot["stream_key"] == "" || rot["stream_key"] == key[1] {
		t.Fatalf("rotate-key = %v", rot)
	}
	// HTTPS without trusting the certificate fails verification.
	if _, err := cli(t, httpsBase, "get", id); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted https: err = %v", err)
	}

	if out := mustCLI(t, base, "live", id); !strings.Contains(out, "not live") {
		t.Fatalf("live:\n%s", out)
	}

	mustCLI(t, base, "delete", id)
	if _, err := cli(t, base, "get", id); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("get after delete: err = %v, want 404", err)
	}

	// Errors reach the user with the field the API names.
	if _, err := cli(t, base, "create", "--name", "-bad-"); err == nil || !strings.Contains(err.Error(), "name") {
		t.Fatalf("bad name: err = %v", err)
	}
	t.Setenv("LIVEINGEST_ADMIN_TOKEN", "wrong-token-wrong-token")
	if _, err := cli(t, base, "list"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: err = %v, want 401", err)
	}
}

// TestPrintLiveLink: the live table shows an SRT session's link statistics
// and a dash for protocols without them.
func TestPrintLiveLink(t *testing.T) {
	raw := json.RawMessage(`{"live":true,"sessions":[
		{"role":"primary","protocol":"srt","remote":"192.0.2.1:5000","edge":"e1","started":"2026-11-21T10:00:00Z","bitrate_kbps":2500,
		 "link":{"rtt_ms":12.4,"receive_rate_kbps":2600,"packets_received":1000,"packets_lost":7,"packets_retransmitted":6,"packets_dropped":1}},
		{"role":"backup","protocol":"rtmp","remote":"192.0.2.2:5000","edge":"e2","started":"2026-11-21T10:00:00Z","bitrate_kbps":2400}]}`)
	var b strings.Builder
	if err := printLive(&b, raw); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"rtt 12ms, 1000 pkts: 7 lost 6 retransmitted 1 dropped", "LINK"} {
		if !strings.Contains(out, want) {
			t.Errorf("live table lacks %q:\n%s", want, out)
		}
	}
	if lines := strings.Split(out, "\n"); len(lines) < 3 || !strings.HasSuffix(strings.TrimSpace(lines[2]), "-") {
		t.Errorf("the rtmp row should end with '-' (no link statistics):\n%s", out)
	}
}
