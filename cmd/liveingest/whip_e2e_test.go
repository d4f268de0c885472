package main

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/ingesttest"
)

// waitNotLive waits until the slot's live status shows no session, within d.
func waitNotLive(t *testing.T, base, token, id string, d time.Duration) {
	t.Helper()
	ingesttest.WaitFor(t, "the slot to be free", d, func() bool {
		var live struct {
			Live bool `json:"live"`
		}
		apiCall(t, base, token, "GET", "/slots/"+id+"/live", nil, &live)
		return !live.Live
	})
}

// checkWHIPDecodes fails unless the probe found H.264 video (at least
// frames) and Opus audio, WebRTC's codecs.
func checkWHIPDecodes(t *testing.T, got map[string]int, frames int) {
	t.Helper()
	if got["video/h264"] < frames || got["audio/opus"] == 0 {
		t.Fatalf("streams = %v, want ≥ %d video/h264 frames and audio/opus", got, frames)
	}
}

// TestWHIPBrowserDev: headless Chromium with a fake camera and microphone
// publishes from dev's publish page; Stop sends the DELETE and ends the
// stream, whose HLS and DASH outputs decode (H.264 + Opus) with segments
// near the 2 s target. A second browser is then killed while publishing:
// the slot is free again within the media timeout.
func TestWHIPBrowserDev(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	ingesttest.NeedChromium(t)
	ingesttest.NeedFFmpeg(t)
	base, _, token, _ := startDev(t)
	created := createStreamSlot(t, base, token, map[string]any{"name": "browser", "type": "transmux"})
	if whip := created.Ingest["whip"].Primary; !strings.HasSuffix(whip, "/whip/"+created.ID) || !strings.HasPrefix(whip, "https://") {
		t.Errorf("ingest_urls.whip = %q", whip)
	}
	page := base + "/publish?slot=" + created.ID
	endpoint := base + "/whip/" + created.ID // plain HTTP: the page and the browser are on this machine

	b := ingesttest.StartChromium(t)
	b.Publish(t, page, endpoint, created.StreamKey)
	waitLive(t, base, token, created.ID, "whip", nil)
	hls := strings.Replace(created.Playback["hls"], "localhost", "127.0.0.1", 1)
	dash := strings.Replace(created.Playback["dash"], "localhost", "127.0.0.1", 1)
	media := strings.TrimSuffix(hls, "index.m3u8") + "video.m3u8"
	ingesttest.WaitFor(t, "five segments", 40*time.Second, func() bool {
		_, body := get(t, media)
		return strings.Count(body, "#EXTINF") >= 5
	})
	b.Stop(t)
	waitNotLive(t, base, token, created.ID, 5*time.Second)
	waitEnded(t, media)
	for _, u := range []string{hls, dash} {
		checkWHIPDecodes(t, probeLossy(t, u, time.Minute), 100) // 10 s at ≥ 10 fps
	}
	// A browser sends a keyframe when the edge asks for one (PLI), a
	// moment before each cut; on a loaded machine its encoder answers up
	// to half a second late, and the segment is that much longer.
	validateMedia(t, media, 2*time.Second, 0.3, 4)

	// A publisher that crashes sends no DELETE and no DTLS close.
	b2 := ingesttest.StartChromium(t)
	b2.Publish(t, page, endpoint, created.StreamKey)
	waitLive(t, base, token, created.ID, "whip", nil)
	killed := time.Now()
	b2.Kill()
	waitNotLive(t, base, token, created.ID, 15*time.Second) // dev's media timeout is 10 s
	t.Logf("slot free %v after the browser was killed", time.Since(killed).Round(time.Millisecond))
}

// TestWHIPPionDevHTTPS: a pion publisher uses the slot's https:// WHIP URL
// as the API shows it (dev's self-signed certificate).
func TestWHIPPionDevHTTPS(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	ingesttest.NeedFFmpeg(t)
	base, _, token, _ := startDev(t)
	created := createStreamSlot(t, base, token, map[string]any{"name": "app", "type": "transmux"})
	endpoint := strings.Replace(created.Ingest["whip"].Primary, "localhost", "127.0.0.1", 1)
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // dev's self-signed certificate, on loopback
	}}
	p := ingesttest.WHIPPublish(t, endpoint, created.StreamKey, ingesttest.WHIPOptions{Client: client})
	waitLive(t, base, token, created.ID, "whip", nil)
	hls := strings.Replace(created.Playback["hls"], "localhost", "127.0.0.1", 1)
	media := strings.TrimSuffix(hls, "index.m3u8") + "video.m3u8"
	ingesttest.WaitFor(t, "four segments", 40*time.Second, func() bool {
		_, body := get(t, media)
		return strings.Count(body, "#EXTINF") >= 4
	})
	if status, body := p.Delete(t); status != http.StatusOK {
		t.Fatalf("DELETE = %d %q", status, body)
	}
	waitNotLive(t, base, token, created.ID, 2*time.Second)
	waitEnded(t, media)
	checkWHIPDecodes(t, probeLossy(t, hls, time.Minute), 200)
	validateMedia(t, media, 2*time.Second, 0.2, 4)
}
