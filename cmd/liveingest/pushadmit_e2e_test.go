package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLivePushAdmission: Live Push admits through the edge's one admission.
// On dev, with real ffmpeg on both sides of each refusal:
//
//   - a Live Push publisher is listed by GET /slots/{id}/live with protocol
//     push and a bitrate;
//   - RTMP and Live Push refuse each other on one slot with the same busy
//     message (the slot is retyped between transmux and live-push while it
//     is published, the one way both protocols can ask for one slot):
//     RTMP's onStatus, which ffmpeg prints, and push's 409 body.
func TestLivePushAdmission(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	base, httpsBase, token, _ := startDev(t)
	creds := []map[string]string{{"username": "enc1", "password": "push-secret-1"}}
	pushURL := func(id string) string {
		return fmt.Sprintf("%s/push/%s/index.m3u8", strings.Replace(httpsBase, "https://", "https://enc1:push-secret-1@", 1), id)
	}
	hlsPush := []string{"-f", "hls", "-method", "PUT", "-hls_time", "2", "-hls_list_size", "5", "-http_persistent", "0"}
	retype := func(t *testing.T, id, typ string) createdSlot {
		t.Helper()
		var s createdSlot
		if code := apiCall(t, base, token, "PATCH", "/slots/"+id, map[string]any{"type": typ}, &s); code != http.StatusOK {
			t.Fatalf("PATCH type %s: %d", typ, code)
		}
		return s
	}
	// busy is the one busy message of admission, whoever holds the slot.
	busy := func(id, holder string) *regexp.Regexp {
		return regexp.MustCompile(`busy: slot ` + id + ` \(primary\) is already being published over ` + holder +
			` since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	}

	t.Run("push-refused-while-rtmp-publishes", func(t *testing.T) {
		t.Parallel()
		c := createStreamSlot(t, base, token, map[string]any{"name": "rtmp-first", "type": "transmux", "credentials": creds})
		rtmp := startEncoder(t, 20, []string{"-f", "flv"}, strings.Replace(c.Ingest["rtmp"].Primary, "localhost", "127.0.0.1", 1))
		waitLive(t, base, token, c.ID, "rtmp", rtmp)
		retype(t, c.ID, "live-push")

		// The reason, as the 409's body says it. (First: the refused
		// attempts spend the slot's attempt budget, burst 3, like any
		// protocol's, and then are rate-limited.)
		status, body := pushPut(t, httpsBase, c.ID)
		if status != http.StatusConflict || !busy(c.ID, "rtmp").MatchString(body) || !strings.HasPrefix(body, "busy: ") {
			t.Fatalf("PUT while RTMP publishes = %d %q", status, body)
		}
		t.Logf("Live Push answered: %d %s", status, strings.TrimSpace(body))
		// ffmpeg's Live Push is refused too. (ffmpeg's HLS muxer does not
		// check the status of its PUTs: it exits 0 and says nothing, so the
		// refusal shows in the store and the live status only.)
		refused := startEncoder(t, 4, hlsPush, strings.Replace(pushURL(c.ID), "index.m3u8", "refused.m3u8", 1))
		refused.wait(t, 90*time.Second)
		for _, name := range []string{"refused.m3u8", "refused0.ts", "refused1.ts"} {
			if code, _ := get(t, base+"/live/"+c.ID+"/"+name); code != http.StatusNotFound {
				t.Errorf("%s of the refused encoder: playback answers %d, want 404", name, code)
			}
		}
		// The operator sees the refusal of the push in the live status.
		var live struct {
			Sessions []struct {
				Protocol string `json:"protocol"`
			} `json:"sessions"`
			Recent []struct {
				Protocol  string `json:"protocol"`
				EndReason string `json:"end_reason"`
			} `json:"recent"`
		}
		apiCall(t, base, token, "GET", "/slots/"+c.ID+"/live", nil, &live)
		recorded := false
		for _, r := range live.Recent {
			recorded = recorded || r.Protocol == "push" && busy(c.ID, "rtmp").MatchString(r.EndReason)
		}
		if len(live.Sessions) != 1 || live.Sessions[0].Protocol != "rtmp" || !recorded {
			t.Fatalf("live status after the refusal: %+v", live)
		}
		rtmp.wait(t, 2*time.Minute)
	})

	t.Run("rtmp-refused-while-push-publishes", func(t *testing.T) {
		t.Parallel()
		c := createStreamSlot(t, base, token, map[string]any{"name": "push-first", "type": "live-push", "credentials": creds})
		push := startEncoder(t, 30, hlsPush, pushURL(c.ID))
		waitLive(t, base, token, c.ID, "push", push)
		kbps := waitPushBitrate(t, base, token, c.ID, push)
		t.Logf("live status: push at %d kbps", kbps)

		// Retyped, the slot takes RTMP — once the push session is over.
		s := retype(t, c.ID, "transmux")
		rtmpURL := strings.NewReplacer("localhost", "127.0.0.1", "<stream_key>", c.StreamKey).Replace(s.Ingest["rtmp"].Primary)
		rtmp := startEncoder(t, 4, []string{"-f", "flv"}, rtmpURL)
		select {
		case err := <-rtmp.done:
			rtmp.done <- err
			if err == nil || !busy(c.ID, "push").MatchString(rtmp.out.String()) {
				t.Fatalf("RTMP while Live Push publishes: err=%v, want the busy message; ffmpeg said:\n%s", err, rtmp.out.String())
			}
			t.Logf("ffmpeg (RTMP) said: %s", busy(c.ID, "push").FindString(rtmp.out.String()))
		case <-time.After(60 * time.Second):
			t.Fatal("the RTMP publisher was not refused")
		}
	})
}

// waitPushBitrate waits until the slot's live status shows its one session
// over push with a bitrate, and returns the bitrate.
func waitPushBitrate(t *testing.T, base, token, id string, enc *encoder) int64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var live struct {
			Sessions []struct {
				Protocol    string `json:"protocol"`
				BitrateKbps int64  `json:"bitrate_kbps"`
			} `json:"sessions"`
		}
		apiCall(t, base, token, "GET", "/slots/"+id+"/live", nil, &live)
		if len(live.Sessions) == 1 && live.Sessions[0].Protocol == "push" && live.Sessions[0].BitrateKbps > 0 {
			return live.Sessions[0].BitrateKbps
		}
		if time.Now().After(deadline) {
			t.Fatalf("live status never showed the push session's bitrate: %+v\nencoder:\n%s", live, enc.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pushPut PUTs one segment to the slot with the test credentials and
// returns the status and body.
func pushPut(t *testing.T, httpsBase, id string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", httpsBase+"/push/"+id+"/probe.ts", strings.NewReader("segment bytes"))
	req.SetBasicAuth("enc1", "push-secret-1")
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
