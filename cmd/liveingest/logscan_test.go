package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/message"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
)

// startDevLogged runs dev with debug logs into logs and returns its http and
// https bases and the admin token.
func startDevLogged(t *testing.T, logs *testenv.Buffer) (httpBase, httpsBase, token string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out testenv.Buffer
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- run(ctx, append([]string{"--log-level", "debug"}, devArgs(t.TempDir())...), &out, logs)
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
	})
	httpBase = strings.Replace(waitURL(t, out.String, exited), "localhost", "127.0.0.1", 1)
	m := regexp.MustCompile(`(?m)^\s+https\s+(https://\S+)`).FindStringSubmatch(out.String())
	tok := regexp.MustCompile(`admin token\s+(\S+)`).FindStringSubmatch(out.String())
	if m == nil || tok == nil {
		t.Fatalf("summary lacks https or token:\n%s", out.String())
	}
	return httpBase, strings.Replace(m[1], "localhost", "127.0.0.1", 1), tok[1]
}

// TestNoSecretInLogs (R-OPS, issue 13): publishes that fail in every way a
// client can make them fail — with the stream key in the wrong place of an
// RTMP URL, in a malformed or oversized connect, in malformed SRT stream ids,
// in a WHIP URL or bearer, a wrong Live Push password, wrong admin tokens —
// and one that succeeds; no log line at debug level holds the key, the
// password or the admin token, and none is longer than a few KiB.
func TestNoSecretInLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	var logs testenv.Buffer
	base, httpsBase, token := startDevLogged(t, &logs)
	slot := createStreamSlot(t, base, token, map[string]any{"name": "logscan", "type": "transmux", "srt_passphrase": "correct-horse-battery"})
	key := slot.StreamKey
	const password = "push-secret-1" // pushSlot's
	pushID := pushSlot(t, base, token, "logscan-push", nil)

	rtmpURL, err := url.Parse(slot.Ingest["rtmp"].Primary)
	if err != nil {
		t.Fatal(err)
	}
	rtmpHost := strings.Replace(rtmpURL.Host, "localhost", "127.0.0.1", 1)
	srtURL, err := url.Parse(slot.Ingest["srt"].Primary)
	if err != nil {
		t.Fatal(err)
	}
	srtHost := strings.Replace(srtURL.Host, "localhost", "127.0.0.1", 1)

	t.Run("rtmp", func(t *testing.T) {
		for _, path := range []string{"/xyz/" + key, "/live/" + key + "x", "/" + key, "/live/" + key + "/" + key} {
			ffmpegRefused(t, "rtmp://"+rtmpHost+path)
		}
		rtmpConnect(t, rtmpHost, key, 0)       // a connect with the key in tcUrl and a bad app
		rtmpConnect(t, rtmpHost, key, 700<<10) // the same, 700 KB long
		rtmpConnect(t, rtmpHost, key, -1)      // not a connect: a publish command first
	})
	t.Run("srt", func(t *testing.T) {
		for _, id := range []string{
			"#!::r=" + key + ",r=" + key, "unknown/" + key, "#!::r=x,m=publish" + key, "#!::t=" + key,
			"#!::r=" + key + "x,m=publish", key + "x", "#!::r=" + key + ",m=request",
		} {
			ingesttest.SRTRejectCode(t, srtHost, id)
		}
		ingesttest.SRTRejectCode(t, srtHost, "#!::r="+key+",m=publish", "not-the-passphrase")
	})
	t.Run("whip", func(t *testing.T) {
		for _, path := range []string{"/whip/" + key, "/whip/" + slot.ID + "/" + key} {
			whipPost(t, httpsBase+path, key)
		}
		whipPost(t, httpsBase+"/whip/"+slot.ID, key+"x")
	})
	t.Run("push", func(t *testing.T) {
		for _, user := range []string{"enc1", key} {
			req, _ := http.NewRequest(http.MethodPut, httpsBase+"/push/"+pushID+"/index.m3u8", strings.NewReader("#EXTM3U\n"))
			req.SetBasicAuth(user, password+"x")
			doInsecure(t, req)
		}
	})
	t.Run("admin", func(t *testing.T) {
		for _, tok := range []string{token + "x", token[:len(token)-1], "x" + token} {
			req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/slots", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			doInsecure(t, req)
		}
	})
	t.Run("publish", func(t *testing.T) {
		enc := startEncoder(t, 4, []string{"-f", "flv"}, "rtmp://"+rtmpHost+"/live/"+key)
		waitLive(t, base, token, slot.ID, "rtmp", enc)
		enc.wait(t, time.Minute)
	})

	// Let the last connection-end lines be written (a rejected RTMP
	// connection lingers up to 3 s so the publisher reads the reason).
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(logs.String(), "rtmp connection closed") < 8 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	lines := strings.Split(logs.String(), "\n")
	if len(lines) < 20 {
		t.Fatalf("only %d log lines: the scan would prove nothing", len(lines))
	}
	for i, line := range lines {
		for what, s := range map[string]string{"stream key": key, "push password": password, "admin token": token} {
			if strings.Contains(line, s) {
				t.Errorf("log line %d holds the %s: %.400s", i, what, line)
			}
		}
		if len(line) > 8<<10 {
			t.Errorf("log line %d is %d bytes: %.200s", i, len(line), line)
		}
	}
}

// ffmpegRefused runs an ffmpeg publish to url that the edge must refuse.
func ffmpegRefused(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
		"-f", "flv", url).CombinedOutput()
	if err == nil {
		t.Errorf("ffmpeg publish to %s was accepted:\n%s", url, out)
	}
}

// rtmpConnect sends a connect whose tcUrl carries key (padded by pad bytes
// of query), or a publish command instead of a connect when pad < 0, and
// reads until the edge closes the connection.
func rtmpConnect(t *testing.T, hostPort, key string, pad int) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", hostPort, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, _, err := handshake.DoClient(nc, false, false); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	bc := bytecounter.NewReadWriter(nc)
	mrw := message.NewReadWriter(bc, bc, false)
	tcURL := "rtmp://" + hostPort + "/" + key + "?k=" + key + strings.Repeat("a", max(pad, 0))
	cmd := &message.CommandAMF0{ChunkStreamID: 3, Name: "connect", CommandID: 1,
		Arguments: []any{amf0.Object{{Key: "app", Value: key}, {Key: "tcUrl", Value: tcURL}}}}
	if pad < 0 {
		cmd = &message.CommandAMF0{ChunkStreamID: 3, Name: "publish", CommandID: 1, Arguments: []any{nil, key, "live"}}
	}
	_ = mrw.Write(cmd) // the edge may cut it off half way
	_, _ = io.Copy(io.Discard, nc)
}

// whipPost posts a (non-SDP) offer with bearer key.
func whipPost(t *testing.T, url, key string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte("v=0\r\n")))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+key)
	doInsecure(t, req)
}

// doInsecure sends req, trusting dev's self-signed certificate, and
// discards the answer.
func doInsecure(t *testing.T, req *http.Request) {
	t.Helper()
	c := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // dev's self-signed certificate, loopback only
	}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", req.Method, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Errorf("%s %s answered %d, want a refusal", req.Method, req.URL.Path, resp.StatusCode)
	}
}
