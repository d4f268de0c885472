package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
)

// TestStreamDev: ffmpeg publishes 30 s of H.264 (2 s GOP) + AAC over RTMP,
// RTMPS and SRT (MPEG-TS) to dev, each to the ingest URL the slot shows;
// while it runs the live status names the session; after, ffprobe decodes
// the HLS and DASH playback URLs, the media playlist passes
// mediastreamvalidator-style checks, and the segments are 2 s ± 10 %.
func TestStreamDev(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	base, _, token, _ := startDev(t)
	for proto, muxer := range map[string][]string{"rtmp": {"-f", "flv"}, "rtmps": {"-f", "flv"}, "srt": {"-f", "mpegts"}} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			created := createStreamSlot(t, base, token, map[string]any{"name": "cam-" + proto, "type": "transmux"})
			url := strings.Replace(created.Ingest[proto].Primary, "localhost", "127.0.0.1", 1)
			if !strings.Contains(url, created.StreamKey) {
				t.Fatalf("ingest url %q does not carry the stream key", url)
			}
			enc := startEncoder(t, 30, muxer, url)

			waitLive(t, base, token, created.ID, proto, enc)
			hls := strings.Replace(created.Playback["hls"], "localhost", "127.0.0.1", 1)
			dash := strings.Replace(created.Playback["dash"], "localhost", "127.0.0.1", 1)
			waitStatusWhile(t, hls, http.StatusOK, 90*time.Second, enc)
			checkDecodes(t, probeLive(t, hls, enc), 0)
			enc.wait(t, 2*time.Minute)
			// The edge writes the final playlists once it has seen the
			// publisher go; until then a player (ffprobe too) treats the
			// stream as live and starts near its end.
			media := strings.TrimSuffix(hls, "index.m3u8") + "video.m3u8"
			waitEnded(t, media)

			checkDecodes(t, probe(t, hls, true, time.Minute), 600) // 30 s at 25 fps, less a trimmed tail (SRT live mode may drop it)
			checkDecodes(t, probe(t, dash, true, time.Minute), 600)
			validateMedia(t, media, 2*time.Second, 0.1, 10)
			// The store's operations are measured (storemetrics).
			if _, m := get(t, base+"/metrics"); !strings.Contains(m, `liveingest_store_operation_seconds_count{class="segment",op="put",result="ok"}`) {
				t.Error("/metrics has no measured segment puts")
			}
		})
	}
}

var extinf = regexp.MustCompile(`^#EXTINF:([0-9.]+),`)

// validateMedia checks a finished media playlist: target duration ≥ every
// EXTINF (RFC 8216 §4.3.3.1), a media sequence tag, every segment within
// 10 % of target except the last, every URI served, and the end tag.
func validateMedia(t *testing.T, url string, target time.Duration, tolerance float64, minSegments int) {
	t.Helper()
	code, body := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d", url, code)
	}
	var durs []float64
	var uris []string
	targetDur, ended, seq := 0, false, false
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#EXT-X-TARGETDURATION:"):
			targetDur, _ = strconv.Atoi(strings.TrimPrefix(l, "#EXT-X-TARGETDURATION:"))
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			seq = true
		case l == "#EXT-X-ENDLIST":
			ended = true
		case extinf.MatchString(l):
			d, _ := strconv.ParseFloat(extinf.FindStringSubmatch(l)[1], 64)
			durs = append(durs, d)
		case l != "" && !strings.HasPrefix(l, "#"):
			uris = append(uris, l)
		}
	}
	if !ended || !seq || targetDur == 0 || len(durs) < minSegments || len(durs) != len(uris) {
		t.Fatalf("playlist: ended=%v sequence=%v target=%d segments=%d uris=%d\n%s", ended, seq, targetDur, len(durs), len(uris), body)
	}
	for i, d := range durs {
		if d > float64(targetDur) {
			t.Errorf("EXTINF %.3f > target duration %d", d, targetDur)
		}
		if want := target.Seconds(); i < len(durs)-1 && (d < want*(1-tolerance) || d > want*(1+tolerance)) {
			t.Errorf("segment %d lasts %.3f s, want %.1f s ± %.0f %%", i, d, want, tolerance*100)
		}
	}
	dir := url[:strings.LastIndexByte(url, '/')+1]
	for _, u := range uris {
		if code, _ := get(t, dir+u); code != http.StatusOK {
			t.Errorf("segment %s: %d", u, code)
		}
	}
}

// TestRTMPSecondEdge: two edge processes share Redis and MinIO; while a
// publisher is live on edge A, the same stream key on edge B is rejected
// with the reason (ffmpeg prints it); once A's publisher is gone, B takes it.
func TestRTMPSecondEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	bucket := testenv.MinIO(t).NewBucket(t)
	originBase, _ := startRole(t, roleArgsOn(t, "origin", bucket))
	var created struct {
		ID        string `json:"id"`
		StreamKey string `json:"stream_key"`
	}
	if code := apiCall(t, originBase, roleTestToken, "POST", "/slots", map[string]any{"name": "two-edges", "region": "eu"}, &created); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	edgeRTMP := func(node string) string {
		args := roleArgsOn(t, "edge", bucket)
		for i, a := range args {
			if a == "--node-id" {
				args[i+1] = node
			}
		}
		var logs testenv.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx, args, io.Discard, &logs) }()
		t.Cleanup(func() { cancel(); <-done })
		waitLogged(t, &logs, done, "http")
		m := regexp.MustCompile(`"rtmp":"([^"]+)"`).FindStringSubmatch(logs.String())
		if m == nil {
			t.Fatalf("edge %s logged no rtmp address:\n%s", node, logs.String())
		}
		return "rtmp://" + m[1] + "/live/" + created.StreamKey
	}
	urlA, urlB := edgeRTMP("edge-a"), edgeRTMP("edge-b")

	first := startEncoder(t, 12, []string{"-f", "flv"}, urlA)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var live struct {
			Sessions []struct {
				Edge string `json:"edge"`
			} `json:"sessions"`
		}
		apiCall(t, originBase, roleTestToken, "GET", "/slots/"+created.ID+"/live", nil, &live)
		if len(live.Sessions) == 1 && live.Sessions[0].Edge == "edge-a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge-a's session never showed: %+v", live)
		}
		time.Sleep(200 * time.Millisecond)
	}
	second := startEncoder(t, 4, []string{"-f", "flv"}, urlB)
	select {
	case err := <-second.done:
		second.done <- err
		if err == nil || !strings.Contains(second.out.String(), "busy") {
			t.Fatalf("second publisher on edge-b: err=%v, want a busy rejection; ffmpeg said:\n%s", err, second.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the second publisher was not rejected")
	}
	// The operator sees the refusal and its reason in the live status.
	var live struct {
		Live   bool `json:"live"`
		Recent []struct {
			Edge      string `json:"edge"`
			EndReason string `json:"end_reason"`
		} `json:"recent"`
	}
	apiCall(t, originBase, roleTestToken, "GET", "/slots/"+created.ID+"/live", nil, &live)
	if !live.Live || len(live.Recent) != 1 || live.Recent[0].Edge != "edge-b" || !strings.HasPrefix(live.Recent[0].EndReason, "busy: ") {
		t.Fatalf("live status after the refusal: %+v", live)
	}
	first.wait(t, time.Minute)
	third := startEncoder(t, 4, []string{"-f", "flv"}, urlB)
	third.wait(t, time.Minute) // accepted now: ffmpeg exits 0 after publishing
}

// TestSRTDevRefusals: on dev, an SRT caller to a slot an RTMP encoder
// publishes is refused 1409 (one protocol at a time, R-EDGE-2); an
// encrypted slot refuses a caller without its passphrase and takes one
// with it. Codes are as libsrt reports them to the caller.
func TestSRTDevRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	base, _, token, _ := startDev(t)
	busy := createStreamSlot(t, base, token, map[string]any{"name": "held", "type": "transmux"})
	enc := createStreamSlot(t, base, token, map[string]any{"name": "secret", "type": "transmux", "srt_passphrase": "correct-horse-battery"})
	srtHost := func(c createdSlot) string {
		u, err := url.Parse(c.Ingest["srt"].Primary)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Replace(u.Host, "localhost", "127.0.0.1", 1)
	}
	id := func(c createdSlot) string { return "#!::r=" + c.StreamKey + ",m=publish" }

	rtmpURL := strings.Replace(busy.Ingest["rtmp"].Primary, "localhost", "127.0.0.1", 1)
	rtmpEnc := startEncoder(t, 20, []string{"-f", "flv"}, rtmpURL)
	waitLive(t, base, token, busy.ID, "rtmp", rtmpEnc)
	if got := ingesttest.SRTRejectCode(t, srtHost(busy), id(busy)); got != 1409 {
		t.Errorf("SRT caller to a slot published over RTMP: reject reason %d, want 1409", got)
	}

	if got := ingesttest.SRTRejectCode(t, srtHost(enc), id(enc)); got != 11 {
		t.Errorf("no passphrase: reject reason %d, want 11 (SRT_REJ_UNSECURE)", got)
	}
	if got := ingesttest.SRTRejectCode(t, srtHost(enc), id(enc), "not-the-passphrase"); got != 10 {
		t.Errorf("wrong passphrase: reject reason %d, want 10 (SRT_REJ_BADSECRET)", got)
	}
	srtURL := strings.Replace(enc.Ingest["srt"].Primary, "localhost", "127.0.0.1", 1) + "&passphrase=correct-horse-battery"
	srtEnc := startEncoder(t, 10, []string{"-f", "mpegts"}, srtURL)
	waitLive(t, base, token, enc.ID, "srt", srtEnc)
	var live struct {
		Sessions []struct {
			Link *struct {
				PacketsReceived int64 `json:"packets_received"`
			} `json:"link"`
		} `json:"sessions"`
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		apiCall(t, base, token, "GET", "/slots/"+enc.ID+"/live", nil, &live)
		if len(live.Sessions) == 1 && live.Sessions[0].Link != nil && live.Sessions[0].Link.PacketsReceived > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live status never showed SRT link statistics: %+v", live)
		}
		time.Sleep(200 * time.Millisecond)
	}
	srtEnc.wait(t, time.Minute)
	rtmpEnc.wait(t, time.Minute)
}

// waitLive waits until the slot's live status shows one session over proto.
func waitLive(t *testing.T, base, token, id, proto string, enc *encoder) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var live struct {
			Live     bool `json:"live"`
			Sessions []struct {
				Protocol string `json:"protocol"`
			} `json:"sessions"`
		}
		apiCall(t, base, token, "GET", "/slots/"+id+"/live", nil, &live)
		if live.Live && len(live.Sessions) == 1 && live.Sessions[0].Protocol == proto {
			return
		}
		if time.Now().After(deadline) {
			out := ""
			if enc != nil {
				out = "\nencoder:\n" + enc.out.String()
			}
			t.Fatalf("live status never showed the %s session: %+v%s", proto, live, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSRTLiveTransmitDev: srt-live-transmit relays ffmpeg's MPEG-TS to dev
// with the plain-key stream id; the stored stream decodes.
func TestSRTLiveTransmitDev(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	base, _, token, _ := startDev(t)
	created := createStreamSlot(t, base, token, map[string]any{"name": "relay", "type": "transmux"})
	u, err := url.Parse(created.Ingest["srt"].Primary)
	if err != nil {
		t.Fatal(err)
	}
	target := "srt://" + strings.Replace(u.Host, "localhost", "127.0.0.1", 1) + "?streamid=" + created.StreamKey
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	pipeline := "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=640x360:rate=25 " +
		"-re -f lavfi -i sine=frequency=440:sample_rate=48000 -t 12 -c:v libx264 -preset ultrafast -g 50 -keyint_min 50 " +
		"-sc_threshold 0 -c:a aac -f mpegts - | srt-live-transmit -a:no -q file://con '" + target + "'"
	if out, err := exec.CommandContext(ctx, "sh", "-c", pipeline).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg | srt-live-transmit: %v\n%s", err, out)
	}
	hls := strings.Replace(created.Playback["hls"], "localhost", "127.0.0.1", 1)
	waitEnded(t, strings.TrimSuffix(hls, "index.m3u8")+"video.m3u8")
	checkDecodes(t, probe(t, hls, true, time.Minute), 250) // 12 s at 25 fps, less a dropped tail
}

// createdSlot is what the API answers a create with, as these tests read it.
type createdSlot struct {
	ID        string `json:"id"`
	StreamKey string `json:"stream_key"`
	Ingest    map[string]struct {
		Primary string `json:"primary"`
	} `json:"ingest_urls"`
	Playback map[string]string `json:"playback_urls"`
}

// createStreamSlot creates a slot through the API and fails unless it was
// created.
func createStreamSlot(t *testing.T, base, token string, body map[string]any) createdSlot {
	t.Helper()
	var c createdSlot
	if code := apiCall(t, base, token, "POST", "/slots", body, &c); code != http.StatusCreated {
		t.Fatalf("create %v: %d", body["name"], code)
	}
	return c
}

// waitEnded waits until the media playlist carries EXT-X-ENDLIST: the edge
// writes the final playlists once it has seen the publisher go.
func waitEnded(t *testing.T, media string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, body := get(t, media); strings.Contains(body, "#EXT-X-ENDLIST") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the media playlist never ended after the publisher left")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
