package ingesttest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"github.com/liveingest/liveingest/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestWHIPPublishAnswersPLI: the first frame is an IDR with SPS and PPS,
// then exactly one IDR follows each PLI, quickly; audio flows at 50
// packets/s; the resource URL, ETag and DELETE work.
func TestWHIPPublishAnswersPLI(t *testing.T) {
	testenv.VerifyNoLeaks(t)
	NeedFFmpeg(t)
	const plis = 4
	srv := newWHIPServer(t, time.Second, plis)
	p := WHIPPublish(t, srv.url, "secret", WHIPOptions{Header: http.Header{"X-Test": {"yes"}}})
	s := srv.session(t)

	if want := srv.url + "/sessions/1"; p.Location() != want {
		t.Errorf("Location() = %q, want %q (resolved against the endpoint)", p.Location(), want)
	}
	if p.ETag() != `"s1"` || p.Header().Get("X-Server") != "test" {
		t.Errorf("ETag() = %q, Header() = %v", p.ETag(), p.Header())
	}
	if s.header.Get("X-Test") != "yes" {
		t.Errorf("the POST lacked the extra header: %v", s.header)
	}

	// Every PLI sent, then time for the last IDR to arrive.
	WaitFor(t, "the server's PLIs", 15*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.plis) == plis && time.Since(s.plis[plis-1]) > 500*time.Millisecond
	})
	s.mu.Lock()
	frames, sent, opus := append([]rxFrame(nil), s.frames...), append([]time.Time(nil), s.plis...), append([]time.Time(nil), s.opus...)
	s.mu.Unlock()

	if f := frames[0]; !f.idr || !f.sps || !f.pps {
		t.Errorf("first frame: IDR %v, SPS %v, PPS %v; want all three", f.idr, f.sps, f.pps)
	}
	var idrs []time.Time
	for i, f := range frames {
		if f.idr {
			idrs = append(idrs, f.at)
		}
		if f.idr != (f.sps && f.pps) {
			t.Errorf("frame %d: IDR %v, SPS %v, PPS %v: every IDR and only IDRs carry SPS and PPS", i, f.idr, f.sps, f.pps)
		}
	}
	if len(idrs) != 1+plis {
		t.Errorf("%d IDR frames for %d PLIs, want %d", len(idrs), plis, 1+plis)
	}
	// Latency: from a PLI's sending to the arrival of the next IDR's last packet.
	var lat []string
	for _, at := range sent {
		for _, idr := range idrs {
			if idr.After(at) {
				d := idr.Sub(at)
				lat = append(lat, d.Round(time.Millisecond).String())
				if d > 150*time.Millisecond {
					t.Errorf("IDR %v after the PLI, want < 150ms", d)
				}
				break
			}
		}
	}
	t.Logf("PLI → IDR latencies: %v", lat)
	if p.PLIs() != plis || p.Keyframes() != 1+plis {
		t.Errorf("publisher counted %d PLIs and %d keyframes, want %d and %d", p.PLIs(), p.Keyframes(), plis, 1+plis)
	}
	checkRate(t, "video frames", len(frames), frames[0].at, frames[len(frames)-1].at, 30)
	checkRate(t, "Opus packets", len(opus), opus[0], opus[len(opus)-1], 50)
	if n := p.Frames(); n < len(frames) {
		t.Errorf("publisher counted %d frames, the server got %d", n, len(frames))
	}

	if status, body := p.Delete(t); status != http.StatusOK {
		t.Errorf("DELETE: %d %s", status, body)
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Error("the session did not end on DELETE")
	}
	if kids := children(t); len(kids) != 0 {
		t.Errorf("processes left after Delete: %v", kids)
	}
}

// children lists the test binary's child processes (Linux /proc).
func children(t *testing.T) []string {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid …; comm may contain spaces.
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) {
			out = append(out, string(b[:i+1]))
		}
	}
	return out
}

func checkRate(t *testing.T, what string, n int, from, to time.Time, want float64) {
	t.Helper()
	got := float64(n-1) / to.Sub(from).Seconds()
	t.Logf("%s: %d at %.1f/s", what, n, got)
	if got < want*0.9 || got > want*1.1 {
		t.Errorf("%s arrive at %.1f/s, want %v/s", what, got, want)
	}
}

// TestWHIPPublishIgnorePLI: with IgnorePLI the first frame stays the only
// IDR, though every PLI is counted. Without audio no audio track is offered.
func TestWHIPPublishIgnorePLI(t *testing.T) {
	testenv.VerifyNoLeaks(t)
	NeedFFmpeg(t)
	srv := newWHIPServer(t, 500*time.Millisecond, 3)
	p := WHIPPublish(t, srv.url, "secret", WHIPOptions{IgnorePLI: true, NoAudio: true, Width: 320, Height: 180, FPS: 25})
	s := srv.session(t)
	WaitFor(t, "3 PLIs counted", 10*time.Second, func() bool { return p.PLIs() == 3 })
	// Long enough for an answer to the last PLI (a switch takes one frame).
	sent := p.Frames()
	WaitFor(t, "5 frames after the last PLI", 5*time.Second, func() bool { return p.Frames() >= sent+5 })
	s.mu.Lock()
	defer s.mu.Unlock()
	idrs := 0
	for _, f := range s.frames {
		if f.idr {
			idrs++
		}
	}
	if idrs != 1 || p.Keyframes() != 1 {
		t.Errorf("server got %d IDRs, publisher sent %d; want 1", idrs, p.Keyframes())
	}
	if len(s.opus) != 0 || s.audioTrack {
		t.Errorf("NoAudio: the server got an audio track and %d packets", len(s.opus))
	}
	if len(s.frames) < 25 {
		t.Errorf("only %d frames arrived", len(s.frames))
	}
}

// TestWHIPPublishVanish: after Vanish the server's socket receives not one
// more packet (no RTP, RTCP, STUN or DTLS alert), while after Close it
// learns at once that the session ended.
func TestWHIPPublishVanish(t *testing.T) {
	testenv.VerifyNoLeaks(t)
	NeedFFmpeg(t)
	srv := newWHIPServer(t, time.Second, 0)
	p := WHIPPublish(t, srv.url, "secret", WHIPOptions{})
	srv.session(t)
	WaitFor(t, "media at the server", 10*time.Second, func() bool { return srv.conn.packets.Load() >= 20 })
	p.Vanish()
	time.Sleep(100 * time.Millisecond) // packets in flight
	before := srv.conn.packets.Load()
	if before < 20 {
		t.Fatalf("the server received only %d packets before Vanish", before)
	}
	time.Sleep(3 * time.Second) // past pion's 2 s consent checks and keepalives
	if after := srv.conn.packets.Load(); after != before {
		t.Errorf("the server received %d packets after Vanish", after-before)
	}

	// Close, by contrast, sends a DTLS close_notify.
	p2 := WHIPPublish(t, srv.url, "secret", WHIPOptions{NoVideo: true})
	s2 := srv.session(t)
	p2.Close()
	select {
	case <-s2.done:
	case <-time.After(2 * time.Second):
		t.Errorf("the server did not see Close end the session (state %s)", s2.pc.ConnectionState())
	}
}

// TestWHIPOffer: a hand-made offer carries only the codecs asked for.
func TestWHIPOffer(t *testing.T) {
	testenv.VerifyNoLeaks(t)
	sdp := WHIPOffer(t, webrtc.MimeTypeVP8, "")
	MustContain(t, "VP8 offer", sdp, "m=video", "VP8/90000", "a=sendonly", "127.0.0.1")
	if strings.Contains(sdp, "H264") || strings.Contains(sdp, "m=audio") {
		t.Errorf("VP8 offer carries more:\n%s", sdp)
	}
	sdp = WHIPOffer(t, webrtc.MimeTypeH264, webrtc.MimeTypeOpus)
	MustContain(t, "H.264+Opus offer", sdp, "H264/90000", "profile-level-id=42e01f", "packetization-mode=1", "opus/48000/2", "nack pli", "ccm fir")
}

// whipServer is a minimal WHIP endpoint (RFC 9725) in pion on 127.0.0.1,
// for testing the publisher: one PeerConnection per POST, which
// depacketizes H.264, counts Opus packets, and sends a PLI every pliEvery
// (max times).
type whipServer struct {
	t        *testing.T
	url      string
	api      *webrtc.API
	conn     *countingConn
	pliEvery time.Duration
	max      int
	wg       sync.WaitGroup

	mu       sync.Mutex
	sessions []*whipSession
	taken    int
}

type whipSession struct {
	pc     *webrtc.PeerConnection
	header http.Header
	done   chan struct{} // closed when the session ended
	end    sync.Once

	mu         sync.Mutex
	frames     []rxFrame
	plis       []time.Time // when each PLI was sent
	opus       []time.Time // when each Opus packet arrived
	audioTrack bool
}

type rxFrame struct {
	at            time.Time // arrival of the frame's last packet
	idr, sps, pps bool
}

// countingConn counts every packet the server's socket receives.
type countingConn struct {
	net.PacketConn
	packets atomic.Int64
}

func (c *countingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.packets.Add(1)
	}
	return n, addr, err
}

func newWHIPServer(t *testing.T, pliEvery time.Duration, maxPLIs int) *whipServer {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &whipServer{t: t, conn: &countingConn{PacketConn: uc}, pliEvery: pliEvery, max: maxPLIs}
	var mux ice.UDPMux
	srv.api, mux = loopbackAPI(t, defaultCodecs(t), srv.conn, nil)

	h := http.NewServeMux()
	h.HandleFunc("POST /whip", srv.post)
	h.HandleFunc("DELETE /whip/sessions/{n}", func(w http.ResponseWriter, r *http.Request) {
		srv.mu.Lock()
		var s *whipSession
		if n, err := strconv.Atoi(r.PathValue("n")); err == nil && n >= 1 && n <= len(srv.sessions) {
			s = srv.sessions[n-1]
		}
		srv.mu.Unlock()
		if s == nil {
			http.NotFound(w, r)
			return
		}
		_ = s.pc.Close()
	})
	ts := httptest.NewServer(h)
	srv.url = ts.URL + "/whip"
	t.Cleanup(func() {
		ts.Close()
		srv.mu.Lock()
		for _, s := range srv.sessions {
			_ = s.pc.GracefulClose()
			s.end.Do(func() { close(s.done) })
		}
		srv.mu.Unlock()
		srv.wg.Wait()
		_ = mux.Close()
	})
	return srv
}

// session returns the next session in POST order.
func (srv *whipServer) session(t *testing.T) *whipSession {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.taken >= len(srv.sessions) {
		t.Fatal("no new WHIP session")
	}
	srv.taken++
	return srv.sessions[srv.taken-1]
}

func (srv *whipServer) post(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer secret" || r.Header.Get("Content-Type") != "application/sdp" {
		http.Error(w, "bad token or content type", http.StatusUnauthorized)
		return
	}
	offer, _ := io.ReadAll(r.Body)
	pc, err := srv.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s := &whipSession{pc: pc, header: r.Header, done: make(chan struct{})}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateClosed || st == webrtc.PeerConnectionStateFailed {
			s.end.Do(func() { close(s.done) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() == webrtc.RTPCodecTypeAudio {
			s.mu.Lock()
			s.audioTrack = true
			s.mu.Unlock()
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				s.mu.Lock()
				s.opus = append(s.opus, time.Now())
				s.mu.Unlock()
			}
		}
		srv.wg.Go(func() { srv.sendPLIs(s, uint32(tr.SSRC())) })
		s.readVideo(tr)
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		_ = pc.Close()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		_ = pc.Close()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	_ = pc.SetLocalDescription(answer)
	<-gathered
	srv.mu.Lock()
	srv.sessions = append(srv.sessions, s)
	n := len(srv.sessions)
	srv.mu.Unlock()
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", fmt.Sprintf("whip/sessions/%d", n)) // relative: the client resolves it
	w.Header().Set("ETag", fmt.Sprintf(`"s%d"`, n))
	w.Header().Set("X-Server", "test")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, pc.LocalDescription().SDP)
}

// defaultCodecs is pion's default codec set: a test server takes whatever
// its client offers.
func defaultCodecs(t testing.TB) *webrtc.MediaEngine {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	return me
}

// sendPLIs asks for a keyframe every pliEvery, as a segmenter does at its
// target duration.
func (srv *whipServer) sendPLIs(s *whipSession, ssrc uint32) {
	tick := time.NewTicker(srv.pliEvery)
	defer tick.Stop()
	for range srv.max {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		s.plis = append(s.plis, time.Now())
		s.mu.Unlock()
		_ = s.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	}
}

// readVideo rebuilds access units. The samplebuilder releases a frame only
// once the next frame's first packet arrived, so a frame's arrival is taken
// from its last packet (marker bit) instead.
func (s *whipSession) readVideo(tr *webrtc.TrackRemote) {
	sb := samplebuilder.New(512, &codecs.H264Packet{}, 90000)
	last := map[uint32]time.Time{}
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if pkt.Marker {
			last[pkt.Timestamp] = time.Now()
		}
		sb.Push(pkt)
		for smp := sb.Pop(); smp != nil; smp = sb.Pop() {
			var au h264.AnnexB
			if err := au.Unmarshal(smp.Data); err != nil {
				continue
			}
			f := rxFrame{at: last[smp.PacketTimestamp]}
			delete(last, smp.PacketTimestamp)
			for _, n := range au {
				switch h264.NALUType(n[0] & 0x1f) {
				case h264.NALUTypeIDR:
					f.idr = true
				case h264.NALUTypeSPS:
					f.sps = true
				case h264.NALUTypePPS:
					f.pps = true
				}
			}
			s.mu.Lock()
			s.frames = append(s.frames, f)
			s.mu.Unlock()
		}
	}
}
