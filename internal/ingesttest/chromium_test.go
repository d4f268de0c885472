package ingesttest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/chromedp/chromedp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"github.com/liveingest/liveingest/edge/whip/page"
	"github.com/liveingest/liveingest/internal/testenv"
)

// miniWHIP is a WHIP endpoint (RFC 9725) reduced to what the browser test
// needs: POST /whip/<id> with "Bearer <keys[id]>" → a pion PeerConnection,
// 201 + answer + Location; DELETE of the Location → 200. The slot "busy"
// refuses with 409 and a text body. It counts what it receives.
type miniWHIP struct {
	t    testing.TB
	keys map[string]string
	api  *webrtc.API

	mu       sync.Mutex
	closed   bool
	n        int
	sessions map[string]*webrtc.PeerConnection // by Location
	deletes  []string                          // "<location> <Authorization>"
	events   []string                          // peer connection states, for the log
	codecs   []string                          // negotiated codecs of the tracks
	readers  sync.WaitGroup

	rtpPackets, h264Frames, keyframes, opusPackets atomic.Int64
	lastRTP                                        atomic.Int64 // unix nanoseconds
	spsWidth, spsHeight                            atomic.Int64
}

// busyText is the body of the 409 refusal.
const busyText = "the slot is busy: another publisher is live"

func newMiniWHIP(t testing.TB, keys map[string]string) *miniWHIP {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	api, mux := loopbackAPI(t, defaultCodecs(t), uc, func(se *webrtc.SettingEngine) {
		// Short consent timeouts, so that a killed browser shows quickly.
		se.SetICETimeouts(2*time.Second, 4*time.Second, 500*time.Millisecond)
	})
	w := &miniWHIP{t: t, keys: keys, sessions: map[string]*webrtc.PeerConnection{}, api: api}
	t.Cleanup(func() {
		w.mu.Lock()
		w.closed = true
		pcs := w.sessions
		w.sessions = nil
		w.mu.Unlock()
		for _, pc := range pcs {
			_ = pc.Close()
		}
		w.readers.Wait()
		_ = mux.Close()
		_ = uc.Close()
	})
	return w
}

func (w *miniWHIP) note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

func (w *miniWHIP) Events() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.events...)
}

func (w *miniWHIP) Deletes() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.deletes...)
}

func (w *miniWHIP) Codecs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.codecs...)
}

func (w *miniWHIP) register(mux *http.ServeMux) {
	mux.HandleFunc("POST /whip/{id}", w.post)
	mux.HandleFunc("DELETE /whip/{id}/sessions/{n}", w.delete)
}

func (w *miniWHIP) post(rw http.ResponseWriter, r *http.Request) {
	offer, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	id := r.PathValue("id")
	if id == "busy" {
		http.Error(rw, busyText, http.StatusConflict)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+w.keys[id] || w.keys[id] == "" {
		http.Error(rw, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Content-Type") != "application/sdp" {
		http.Error(rw, "want application/sdp", http.StatusUnsupportedMediaType)
		return
	}
	pc, err := w.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		_ = pc.Close()
		http.Error(rw, "closing", http.StatusServiceUnavailable)
		return
	}
	w.n++
	loc := fmt.Sprintf("/whip/%s/sessions/%d", id, w.n)
	w.sessions[loc] = pc
	w.mu.Unlock()
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { w.note("%s %s", loc, s) })
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return
		}
		w.readers.Add(1)
		w.codecs = append(w.codecs, tr.Codec().MimeType+" "+tr.Codec().SDPFmtpLine)
		w.mu.Unlock()
		defer w.readers.Done()
		w.read(tr)
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	select {
	case <-gathered: // non-trickle: every candidate in the answer
	case <-time.After(5 * time.Second):
	}
	rw.Header().Set("Content-Type", "application/sdp")
	rw.Header().Set("Location", loc)
	rw.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(rw, pc.LocalDescription().SDP)
}

func (w *miniWHIP) delete(rw http.ResponseWriter, r *http.Request) {
	loc := r.URL.Path
	w.mu.Lock()
	w.deletes = append(w.deletes, loc+" "+r.Header.Get("Authorization"))
	pc := w.sessions[loc]
	ok := pc != nil && r.Header.Get("Authorization") == "Bearer "+w.keys[r.PathValue("id")]
	if ok {
		delete(w.sessions, loc)
	}
	w.mu.Unlock()
	if pc == nil {
		http.Error(rw, "no such session", http.StatusNotFound)
		return
	}
	if !ok {
		http.Error(rw, "unauthorized", http.StatusUnauthorized)
		return
	}
	_ = pc.Close()
	rw.WriteHeader(http.StatusOK)
}

// read counts a track's RTP packets; H.264 is depacketized into access
// units (RFC 6184) and counted, with keyframes and the SPS size.
func (w *miniWHIP) read(tr *webrtc.TrackRemote) {
	isH264 := strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeH264)
	isOpus := strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeOpus)
	sb := samplebuilder.New(256, &codecs.H264Packet{}, 90000) // Annex-B out
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		w.rtpPackets.Add(1)
		w.lastRTP.Store(time.Now().UnixNano())
		switch {
		case isOpus:
			w.opusPackets.Add(1)
		case isH264:
			sb.Push(pkt)
			for s := sb.Pop(); s != nil; s = sb.Pop() {
				var au h264.AnnexB
				if au.Unmarshal(s.Data) != nil {
					continue
				}
				w.h264Frames.Add(1)
				if h264.IsRandomAccess(au) {
					w.keyframes.Add(1)
				}
				for _, n := range au {
					if len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
						var sps h264.SPS
						if sps.Unmarshal(n) == nil {
							w.spsWidth.Store(int64(sps.Width()))
							w.spsHeight.Store(int64(sps.Height()))
						}
					}
				}
			}
		}
	}
}

// servePublishPage serves the publish page at /publish and a miniWHIP at
// /whip/ on one 127.0.0.1 origin.
func servePublishPage(t *testing.T, keys map[string]string) (*miniWHIP, *httptest.Server) {
	whip := newMiniWHIP(t, keys)
	mux := http.NewServeMux()
	mux.Handle("/publish", page.Handler())
	whip.register(mux)
	ts := httptest.NewUnstartedServer(mux)
	_ = ts.Listener.Close()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.Listener = l
	ts.Start()
	t.Cleanup(ts.Close)
	return whip, ts
}

// TestChromiumPublish drives the WHIP publish page in headless Chromium
// against a pion endpoint: publish, media arrives, Stop deletes the
// session, a refusal shows in the status, and a killed browser stops
// sending at once.
func TestChromiumPublish(t *testing.T) {
	NeedChromium(t)
	testenv.VerifyNoLeaks(t)

	keys := map[string]string{"s1": "key-one-" + strings.Repeat("x", 20), "s2": "key-two-" + strings.Repeat("y", 20)}
	whip, ts := servePublishPage(t, keys)

	started := time.Now()
	b := StartChromium(t)
	t.Logf("chromium started in %v (pid %d)", time.Since(started).Round(time.Millisecond), b.pid)

	// The page prefills the WHIP URL from ?slot= and ?url=.
	if err := chromedp.Do(b.ctx, chromedp.Navigate(ts.URL+"/publish?slot=s1")); err != nil {
		t.Fatal(err)
	}
	if got, want := Eval[string](t, b, `document.getElementById('whip-url').value`), ts.URL+"/whip/s1"; got != want {
		t.Errorf("?slot=s1 prefills %q, want %q", got, want)
	}
	if got := b.Status(t); got != "idle" {
		t.Errorf("status %q before Start, want idle", got)
	}
	// The policy's hashes let the inline style apply (the script ran, or
	// nothing above would have been prefilled).
	if ff := Eval[string](t, b, `getComputedStyle(document.getElementById('status')).fontFamily`); !strings.Contains(ff, "monospace") {
		t.Errorf("the inline style was not applied (CSP?): #status font-family %q", ff)
	}
	t.Logf("H.264 the browser can send: %v", Eval[[]string](t, b,
		`RTCRtpSender.getCapabilities('video').codecs.filter(c => c.mimeType === 'video/H264').map(c => c.sdpFmtpLine)`))
	if err := chromedp.Do(b.ctx, chromedp.Navigate(ts.URL+"/publish?url=https%3A%2F%2Fedge.example%2Fwhip%2Fabc")); err != nil {
		t.Fatal(err)
	}
	if got := Eval[string](t, b, `document.getElementById('whip-url').value`); got != "https://edge.example/whip/abc" {
		t.Errorf("?url= prefills %q", got)
	}

	// Publish: connected, then H.264 frames and Opus packets arrive.
	started = time.Now()
	b.Publish(t, ts.URL+"/publish", ts.URL+"/whip/s1", keys["s1"])
	t.Logf("Start → connected in %v", time.Since(started).Round(time.Millisecond))
	if u := Eval[string](t, b, `location.href`); strings.Contains(u, keys["s1"]) {
		t.Errorf("the key is in the page URL %q", u)
	}
	WaitFor(t, "60 H.264 frames with a keyframe and 100 Opus packets", 20*time.Second, func() bool {
		return whip.h264Frames.Load() >= 60 && whip.keyframes.Load() >= 1 && whip.opusPackets.Load() >= 100
	})
	t.Logf("received %d H.264 frames (%d keyframes, SPS %dx%d), %d Opus packets; tracks %q; page shows %q",
		whip.h264Frames.Load(), whip.keyframes.Load(), whip.spsWidth.Load(), whip.spsHeight.Load(),
		whip.opusPackets.Load(), whip.Codecs(), Eval[string](t, b, `document.getElementById('stats').textContent`))
	if w, h := whip.spsWidth.Load(), whip.spsHeight.Load(); w != 1280 || h != 720 {
		t.Errorf("the SPS says %dx%d, want the 1280x720 the page asks for", w, h)
	}
	for _, c := range whip.Codecs() {
		if strings.HasPrefix(c, "video/") && !strings.HasPrefix(c, webrtc.MimeTypeH264) {
			t.Errorf("video track negotiated as %q, want H.264", c)
		}
		if strings.HasPrefix(c, webrtc.MimeTypeH264) && !strings.Contains(c, "packetization-mode=1") {
			t.Errorf("H.264 negotiated without packetization-mode=1: %q", c)
		}
	}

	// Stop sends the DELETE with the bearer and releases the camera.
	b.Stop(t)
	if d := whip.Deletes(); len(d) != 1 || d[0] != "/whip/s1/sessions/1 Bearer "+keys["s1"] {
		t.Errorf("DELETEs after Stop: %q", d)
	}
	if Eval[bool](t, b, `document.getElementById('preview').srcObject !== null`) {
		t.Error("the preview still shows the camera after Stop")
	}

	// Refusals show the status code and the server's text.
	b.Start(t, ts.URL+"/publish", ts.URL+"/whip/busy", "any-key")
	b.WaitStatus(t, "error: 409 ", 15*time.Second)
	if got, want := b.Status(t), "error: 409 "+busyText; got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	b.Start(t, ts.URL+"/publish", ts.URL+"/whip/s1", "wrong-key")
	b.WaitStatus(t, "error: 401 unauthorized", 15*time.Second)
	if Eval[bool](t, b, `document.getElementById('start').disabled`) {
		t.Error("Start stays disabled after a refusal")
	}

	// A killed browser: no DELETE, and RTP stops at once.
	b.Publish(t, ts.URL+"/publish", ts.URL+"/whip/s2", keys["s2"])
	before := whip.rtpPackets.Load()
	WaitFor(t, "RTP from the second session", 10*time.Second, func() bool { return whip.rtpPackets.Load() > before+100 })
	killed := time.Now()
	b.Kill()
	t.Logf("Kill returned in %v", time.Since(killed).Round(time.Millisecond))
	if pids := b.Processes(); len(pids) != 0 {
		t.Errorf("browser processes left after Kill: %v", pids)
	}
	time.Sleep(300 * time.Millisecond)
	settled := whip.rtpPackets.Load()
	time.Sleep(2 * time.Second)
	if n := whip.rtpPackets.Load() - settled; n != 0 {
		t.Errorf("%d RTP packets arrived more than 300 ms after the kill", n)
	}
	t.Logf("last RTP packet %v after the kill", time.Unix(0, whip.lastRTP.Load()).Sub(killed).Round(time.Millisecond))
	for _, d := range whip.Deletes() {
		if strings.HasPrefix(d, "/whip/s2/") {
			t.Errorf("a killed browser sent a DELETE: %q", d)
		}
	}
	WaitFor(t, "the server to see the killed session fail", 15*time.Second, func() bool {
		for _, e := range whip.Events() {
			if strings.Contains(e, "/whip/s2/") && strings.HasSuffix(e, " failed") {
				return true
			}
		}
		return false
	})
	t.Logf("kill at %s; server's peer connection states:\n%s", killed.Format("15:04:05.000"), strings.Join(whip.Events(), "\n"))
}

// TestChromiumPagehideDeletes checks that leaving the page ends the
// session on the server (a keepalive DELETE on pagehide), and that the
// browser's cleanup (a graceful close) leaves no process nor goroutine.
func TestChromiumPagehideDeletes(t *testing.T) {
	NeedChromium(t)
	testenv.VerifyNoLeaks(t)
	var b *Browser
	t.Cleanup(func() { // runs after the browser's cleanup
		if pids := b.Processes(); len(pids) != 0 {
			t.Errorf("browser processes left after the cleanup: %v", pids)
		}
	})
	whip, ts := servePublishPage(t, map[string]string{"s1": "the-key"})
	b = StartChromium(t)
	b.Publish(t, ts.URL+"/publish?slot=s1", ts.URL+"/whip/s1", "the-key")
	WaitFor(t, "RTP", 10*time.Second, func() bool { return whip.rtpPackets.Load() > 50 })
	if err := chromedp.Do(b.ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, "the DELETE sent on pagehide", 5*time.Second, func() bool { return len(whip.Deletes()) == 1 })
	if d := whip.Deletes(); d[0] != "/whip/s1/sessions/1 Bearer the-key" {
		t.Errorf("DELETE on pagehide: %q", d)
	}
}
