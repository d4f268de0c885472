package ingesttest

// A WHIP publisher (RFC 9725) that behaves like a browser: H.264
// constrained baseline and Opus over WebRTC, and a video encoder that sends
// a keyframe only at the start and when the server asks with PLI or FIR
// (RFC 4585 §6.3.1, RFC 5104 §4.3.1). Tests of WHIP servers use it to prove
// that the server's own keyframe requests make the segment cuts.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/liveingest/liveingest/internal/testenv"
)

// WHIPOptions configure WHIPPublish. The zero value publishes H.264 and
// Opus, 640x360 at 30 fps, and answers PLI/FIR with a keyframe.
type WHIPOptions struct {
	NoVideo bool // publish no video track. Default: false.
	NoAudio bool // publish no audio track. Default: false.
	Width   int  // picture width, even. Default: 640.
	Height  int  // picture height, even. Default: 360.
	FPS     int  // frames per second. Default: 30.
	// IgnorePLI never switches encoders: only the first frame is a
	// keyframe. PLI and FIR are still counted. Default: false.
	IgnorePLI bool
	Header    http.Header  // extra request headers for the POST. Default: none.
	Client    *http.Client // client for POST and DELETE. Default: one of its own with a 15 s timeout.
}

// keyRequestInterval is the shortest time between two keyframe requests
// that are served: later ones are served by the keyframe already on its
// way, as libwebrtc drops requests within 300 ms of the last one.
const keyRequestInterval = 250 * time.Millisecond

// WHIPPublisher is one publishing WHIP client. Its methods are safe for
// concurrent use.
type WHIPPublisher struct {
	t        testing.TB
	opts     WHIPOptions
	client   *http.Client
	ownsHTTP bool // client was made here: Close closes its idle connections
	bearer   string
	location string
	etag     string
	header   http.Header

	conn *vanishConn
	mux  ice.UDPMux // owns conn
	pc   *webrtc.PeerConnection

	video, audio *webrtc.TrackLocalStaticSample
	opus         [][]byte      // the audio loop's packets, 20 ms each
	spares       chan *encoder // the spare loop hands the next encoder over here
	keyRequest   atomic.Bool   // a PLI/FIR waits for the video loop to switch encoders

	plis, keyframes, frames, audioPackets atomic.Int64

	mu        sync.Mutex
	first     *encoder // the first frames' encoder until the video loop owns it
	stop      chan struct{}
	wg        sync.WaitGroup // every goroutine started here
	closeOnce sync.Once
}

// WHIPPublish POSTs a gathered (non-trickle) SDP offer to endpoint with
// "Authorization: Bearer <bearer>" (none when bearer is "") and Content-Type
// application/sdp. It fails t unless the answer is 201 Created with an
// application/sdp body and a Location header, sets the answer, and returns
// once the PeerConnection is connected and the first frame and audio packet
// are sent (deadline 15 s). Media then flows in real time until Delete,
// Close, Vanish or t's cleanup. It skips t when ffmpeg is not installed.
func WHIPPublish(t testing.TB, endpoint, bearer string, o WHIPOptions) *WHIPPublisher {
	t.Helper()
	NeedFFmpeg(t)
	o.Width, o.Height, o.FPS = orDefault(o.Width, 640), orDefault(o.Height, 360), orDefault(o.FPS, 30)
	if o.Width%2 != 0 || o.Height%2 != 0 || o.Width < 16 || o.Height < 16 || o.FPS > 120 || (o.NoVideo && o.NoAudio) {
		t.Fatalf("WHIPPublish: nothing to publish or a bad picture (%dx%d at %d fps)", o.Width, o.Height, o.FPS)
	}
	p := &WHIPPublisher{t: t, opts: o, client: o.Client, bearer: bearer, stop: make(chan struct{}), spares: make(chan *encoder)}
	if p.client == nil {
		p.client = &http.Client{Timeout: 15 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
		p.ownsHTTP = true
	}
	t.Cleanup(p.Close) // first: a failure below still releases what was made
	deadline := time.Now().Add(15 * time.Second)

	me := &webrtc.MediaEngine{}
	for _, m := range []string{webrtc.MimeTypeH264, webrtc.MimeTypeOpus} {
		if err := me.RegisterCodec(whipCodecs[m], kindOf(m)); err != nil {
			t.Fatal(err)
		}
	}
	p.pc, p.conn, p.mux = newWHIPPeer(t, me)
	connected, failed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			once.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			once.Do(func() { close(failed) })
		}
	})
	if !o.NoVideo {
		p.video = p.addTrack(t, webrtc.MimeTypeH264, true)
		e, err := startEncoder(&p.wg, o.Width, o.Height, o.FPS)
		if err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		p.first = e
		p.mu.Unlock()
		if !o.IgnorePLI {
			p.wg.Go(p.spareLoop)
		}
	}
	if !o.NoAudio {
		p.opus = opusLoop(t)
		p.audio = p.addTrack(t, webrtc.MimeTypeOpus, false)
	}

	p.post(t, endpoint, gatheredOffer(t, p.pc))
	select {
	case <-connected:
	case <-failed:
		t.Fatalf("WHIP: the PeerConnection failed to connect")
	case <-time.After(time.Until(deadline)):
		t.Fatalf("WHIP: not connected after 15 s (state %s)", p.pc.ConnectionState())
	}
	p.mu.Lock()
	if e := p.first; e != nil {
		p.first = nil
		p.wg.Go(func() { p.videoLoop(e) })
	}
	p.mu.Unlock()
	if p.audio != nil {
		p.wg.Go(p.audioLoop)
	}
	for (p.video != nil && p.frames.Load() == 0) || (p.audio != nil && p.audioPackets.Load() == 0) {
		if time.Now().After(deadline) {
			t.Fatalf("WHIP: no media sent 15 s after the POST")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// addTrack adds a send-only track; its RTCP is read so that the
// interceptors see it, and for video it is where PLI and FIR arrive.
func (p *WHIPPublisher) addTrack(t testing.TB, mimeType string, isVideo bool) *webrtc.TrackLocalStaticSample {
	t.Helper()
	tr, err := webrtc.NewTrackLocalStaticSample(whipCodecs[mimeType].RTPCodecCapability, kindOf(mimeType).String(), "liveingest-test")
	if err != nil {
		t.Fatal(err)
	}
	x, err := p.pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	sender := x.Sender()
	p.wg.Go(func() {
		last := time.Now() // the first frame is a keyframe
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return // the sender stopped
			}
			for _, pkt := range pkts {
				switch pkt.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					if !isVideo {
						continue
					}
					p.plis.Add(1)
					if !p.opts.IgnorePLI && time.Since(last) >= keyRequestInterval {
						last = time.Now()
						p.keyRequest.Store(true)
					}
				}
			}
		}
	})
	return tr
}

// post sends the offer (RFC 9725 §4.2) and sets the answer.
func (p *WHIPPublisher) post(t testing.TB, endpoint, offer string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, endpoint, strings.NewReader(offer))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range p.opts.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Content-Type", "application/sdp")
	p.authorize(req)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("WHIP POST %s: %v", endpoint, err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("WHIP POST %s: reading the answer: %v", endpoint, err)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusCreated || mt != "application/sdp" || len(body) == 0 || resp.Header.Get("Location") == "" {
		t.Fatalf("WHIP POST %s: want 201 Created with an application/sdp answer and a Location, got %s (Content-Type %q, Location %q):\n%s",
			endpoint, resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Location"), body)
	}
	base, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := base.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("WHIP POST: bad Location %q: %v", resp.Header.Get("Location"), err)
	}
	p.location, p.etag, p.header = loc.String(), resp.Header.Get("ETag"), resp.Header
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		t.Fatalf("WHIP: setting the answer: %v\n%s", err, body)
	}
}

func (p *WHIPPublisher) authorize(req *http.Request) {
	if p.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+p.bearer)
	}
}

// Location is the absolute URL of the session resource (the POST's
// Location resolved against the endpoint).
func (p *WHIPPublisher) Location() string { return p.location }

// ETag is the POST response's ETag header ("" if none).
func (p *WHIPPublisher) ETag() string { return p.etag }

// Header is the POST response's header; do not modify it.
func (p *WHIPPublisher) Header() http.Header { return p.header }

// PLIs is the number of PLI and FIR packets received so far, coalesced or
// not.
func (p *WHIPPublisher) PLIs() int { return int(p.plis.Load()) }

// Keyframes is the number of IDR frames sent so far.
func (p *WHIPPublisher) Keyframes() int { return int(p.keyframes.Load()) }

// Frames is the number of video frames sent so far.
func (p *WHIPPublisher) Frames() int { return int(p.frames.Load()) }

// Delete ends the session as RFC 9725 §4.3 says: DELETE of Location with
// the same bearer. Then it stops the media and closes the PeerConnection
// (Close), whatever the answer. It returns the response's status and body.
func (p *WHIPPublisher) Delete(t testing.TB) (status int, body string) {
	t.Helper()
	defer p.Close()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodDelete, p.location, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.authorize(req)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("WHIP DELETE %s: %v", p.location, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("WHIP DELETE %s: %v", p.location, err)
	}
	return resp.StatusCode, string(b)
}

// Close stops the media, closes the PeerConnection gracefully (DTLS
// close_notify; no DELETE) and waits until every goroutine and ffmpeg
// process of the publisher is gone. It is idempotent and runs at t's
// cleanup.
func (p *WHIPPublisher) Close() {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.mu.Lock()
		if p.first != nil { // never handed to the video loop
			p.first.stop()
			p.first = nil
		}
		p.mu.Unlock()
		if p.pc != nil {
			_ = p.pc.GracefulClose()
		}
		if p.mux != nil {
			_ = p.mux.Close() // closes the socket, ending the mux's reader
		}
		p.wg.Wait()
		if p.ownsHTTP {
			p.client.CloseIdleConnections()
		}
	})
}

// Vanish makes the client disappear like a killed process: from now on not
// one packet is sent or received (no DTLS close, no RTCP, no STUN), then
// its resources are released as by Close. The server only learns from ICE
// consent freshness (RFC 7675) that it is gone.
func (p *WHIPPublisher) Vanish() {
	if p.conn != nil {
		p.conn.gone.Store(true)
	}
	p.Close()
}

// videoLoop sends one frame per tick from enc, and switches to the spare
// encoder when a keyframe was asked for: a fresh x264 starts with an IDR.
func (p *WHIPPublisher) videoLoop(enc *encoder) {
	defer func() { enc.stop() }()
	w, h, fps := p.opts.Width, p.opts.Height, p.opts.FPS
	frame := make([]byte, w*h*3/2)
	dur := time.Second / time.Duration(fps)
	tick := time.NewTicker(dur)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		if p.keyRequest.Load() {
			select {
			case next := <-p.spares:
				p.keyRequest.Store(false)
				old := enc
				enc = next
				p.wg.Go(old.stop)
			default: // the spare is still starting: switch at a later frame
			}
		}
		paint(frame, w, h, n)
		_ = enc.stdin.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := enc.stdin.Write(frame); err != nil {
			p.failf("WHIP publisher: writing a frame to ffmpeg: %v\n%s", err, enc.stderr.String())
			return
		}
		// ffmpeg answers each frame at once (about 1 ms here); a
		// silent encoder is a broken one.
		var au [][]byte
		var ok bool
		select {
		case au, ok = <-enc.aus:
		case <-p.stop:
			return
		case <-time.After(5 * time.Second):
		}
		if !ok {
			p.failf("WHIP publisher: ffmpeg gave no frame for frame %d\n%s", n, enc.stderr.String())
			return
		}
		annexB, err := h264.AnnexB(au).Marshal()
		if err != nil {
			p.failf("WHIP publisher: %v", err)
			return
		}
		if h264.IsRandomAccess(au) {
			p.keyframes.Add(1)
		}
		_ = p.video.WriteSample(media.Sample{Data: annexB, Duration: dur})
		p.frames.Add(1)
	}
}

// spareLoop keeps one encoder started and idle, so that a switch costs no
// process start-up (tens of milliseconds).
func (p *WHIPPublisher) spareLoop() {
	for {
		e, err := startEncoder(&p.wg, p.opts.Width, p.opts.Height, p.opts.FPS)
		if err != nil {
			p.failf("WHIP publisher: %v", err)
			return
		}
		select {
		case p.spares <- e:
		case <-p.stop:
			e.stop()
			return
		}
	}
}

func (p *WHIPPublisher) audioLoop() {
	const ptime = 20 * time.Millisecond
	tick := time.NewTicker(ptime)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		_ = p.audio.WriteSample(media.Sample{Data: p.opus[i%len(p.opus)], Duration: ptime})
		p.audioPackets.Add(1)
	}
}

// failf reports a media failure unless the publisher is closing.
func (p *WHIPPublisher) failf(format string, args ...any) {
	select {
	case <-p.stop:
	default:
		p.t.Errorf(format, args...)
	}
}

// paint draws frame n in yuv420p: eight colour bars moving 4 pixels per
// frame, so that every P-frame carries data, for the price of one computed
// row per plane.
func paint(buf []byte, w, h, n int) {
	plane := func(b []byte, pw, ph int, shift int, f func(bar int) byte) {
		for x := range pw {
			b[x] = f((x + shift) * 8 / pw % 8)
		}
		for r := 1; r < ph; r++ {
			copy(b[r*pw:(r+1)*pw], b[:pw])
		}
	}
	shift := 4 * n
	plane(buf[:w*h], w, h, shift, func(bar int) byte { return byte(16 + 28*bar) })
	cw, ch := w/2, h/2
	plane(buf[w*h:w*h+cw*ch], cw, ch, shift/2, func(bar int) byte { return byte(128 + 12*(bar-4)) })
	plane(buf[w*h+cw*ch:], cw, ch, shift/2, func(bar int) byte { return byte(128 - 12*(bar-4)) })
}

// encoder is one x264 process in ffmpeg, fed raw frames on stdin. It
// writes FLV rather than raw H.264: an Annex-B NAL unit's end is only
// known when the next start code arrives, one frame later, while an FLV
// tag carries its length, so each frame's access unit is complete as soon
// as it is written.
type encoder struct {
	cmd    *exec.Cmd
	stdin  *os.File
	aus    chan [][]byte // one access unit per frame written; closed at EOF
	quit   chan struct{} // closed by stop: the reader discards what is left
	done   chan struct{} // closed once ffmpeg exited and its output was read
	stderr testenv.Buffer
	once   sync.Once
}

// startEncoder starts ffmpeg; it waits idle until the first frame. With
// -threads 1 each frame is one slice, and keyint=infinite with scenecut=0
// leaves the first frame the only IDR. repeat-headers puts SPS and PPS in
// front of it in-band, as a browser does.
func startEncoder(wg *sync.WaitGroup, w, h, fps int) (*encoder, error) {
	e := &encoder{aus: make(chan [][]byte), quit: make(chan struct{}), done: make(chan struct{})}
	e.cmd = exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", strconv.Itoa(w)+"x"+strconv.Itoa(h), "-r", strconv.Itoa(fps), "-i", "pipe:0",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-threads", "1",
		"-profile:v", "baseline", "-level:v", "3.1", "-bf", "0",
		"-x264-params", "keyint=infinite:scenecut=0:repeat-headers=1",
		"-fps_mode", "passthrough", "-flush_packets", "1", "-f", "flv", "pipe:1")
	e.cmd.Stderr = &e.stderr
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test binary
	// os.Pipe rather than StdinPipe: its write end takes a deadline.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	e.cmd.Stdin, e.stdin = pr, pw
	stdout, err := e.cmd.StdoutPipe()
	if err == nil {
		err = e.cmd.Start()
	}
	_ = pr.Close() // ffmpeg has its own copy
	if err != nil {
		_ = pw.Close()
		return nil, fmt.Errorf("start ffmpeg: %w", err)
	}
	wg.Go(func() {
		e.read(stdout)
		_, _ = io.Copy(io.Discard, stdout) // after an error: let ffmpeg exit
		_ = e.cmd.Wait()
		close(e.done)
	})
	return e, nil
}

// read parses FLV (Adobe FLV spec v10.1 §E.4.3.1): tags of type 9 with
// codec 7 (AVC) and AVCPacketType 1 carry one access unit in AVCC form.
func (e *encoder) read(r io.Reader) {
	defer close(e.aus)
	br := bufio.NewReaderSize(r, 64<<10)
	if _, err := io.ReadFull(br, make([]byte, 9+4)); err != nil { // FLV header, PreviousTagSize0
		return
	}
	var th [11]byte
	for {
		if _, err := io.ReadFull(br, th[:]); err != nil {
			return
		}
		size := int(th[1])<<16 | int(th[2])<<8 | int(th[3])
		body := make([]byte, size+4) // tag data, PreviousTagSize
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		if th[0] != 9 || size < 6 || body[0]&0x0f != 7 || body[1] != 1 {
			continue // script data, AVC sequence header, end of sequence
		}
		var au h264.AVCC
		if err := au.Unmarshal(body[5:size]); err != nil {
			return
		}
		select {
		case e.aus <- au:
		case <-e.quit:
		}
	}
}

// stop closes ffmpeg's stdin and waits for it to exit (killing it after 5 s).
func (e *encoder) stop() {
	e.once.Do(func() {
		close(e.quit)
		_ = e.stdin.Close()
		select {
		case <-e.done:
		case <-time.After(5 * time.Second):
			_ = e.cmd.Process.Kill()
			<-e.done
		}
	})
}

var opusCache struct {
	sync.Mutex
	pkts [][]byte
}

// opusLoop returns one second of a 440 Hz tone as stereo Opus packets of
// 20 ms, encoded by ffmpeg once per test binary and kept in memory. The Ogg
// pages are made one packet each (-page_duration 20 ms), which oggreader
// needs: it returns a page's payload, not its packets.
func opusLoop(t testing.TB) [][]byte {
	t.Helper()
	opusCache.Lock()
	defer opusCache.Unlock()
	if opusCache.pkts != nil {
		return opusCache.pkts
	}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1", "-ac", "2",
		"-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-page_duration", "20000", "-f", "ogg", "pipe:1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg libopus: %v\n%s", err, stderr.String())
	}
	r, _, err := oggreader.NewWith(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	var prev uint64
	short := false
	for {
		payload, page, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if _, isHeader := page.HeaderType(payload); isHeader {
			continue // OpusHead, OpusTags
		}
		// The granule position counts 48 kHz samples (RFC 7845 §4): one
		// 20 ms packet per page adds 960, and only the last page may add
		// fewer (end trimming).
		if d := page.GranulePosition - prev; d > 960 || short {
			t.Fatalf("ffmpeg wrote Ogg pages of more than one 20 ms Opus packet")
		} else if d < 960 {
			short = true
		}
		prev = page.GranulePosition
		pkts = append(pkts, payload)
	}
	if len(pkts) < 40 {
		t.Fatalf("ffmpeg wrote %d Opus packets for one second", len(pkts))
	}
	opusCache.pkts = pkts
	return pkts
}

// whipCodecs are the codecs WHIPOffer can offer, with a browser's payload
// types and feedback; the publisher uses the H.264 and Opus entries.
var whipCodecs = func() map[string]webrtc.RTPCodecParameters {
	video := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	c := func(mt string, pt webrtc.PayloadType, rate uint32, ch uint16, fmtp string) webrtc.RTPCodecParameters {
		var fb []webrtc.RTCPFeedback
		if strings.HasPrefix(mt, "video/") {
			fb = video
		}
		return webrtc.RTPCodecParameters{PayloadType: pt, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: mt, ClockRate: rate, Channels: ch, SDPFmtpLine: fmtp, RTCPFeedback: fb}}
	}
	return map[string]webrtc.RTPCodecParameters{
		webrtc.MimeTypeH264: c(webrtc.MimeTypeH264, 102, 90000, 0, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
		webrtc.MimeTypeH265: c(webrtc.MimeTypeH265, 49, 90000, 0, "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"),
		webrtc.MimeTypeVP8:  c(webrtc.MimeTypeVP8, 96, 90000, 0, ""),
		webrtc.MimeTypeVP9:  c(webrtc.MimeTypeVP9, 98, 90000, 0, "profile-id=0"),
		webrtc.MimeTypeAV1:  c(webrtc.MimeTypeAV1, 45, 90000, 0, ""),
		webrtc.MimeTypeOpus: c(webrtc.MimeTypeOpus, 111, 48000, 2, "minptime=10;useinbandfec=1"),
		webrtc.MimeTypeG722: c(webrtc.MimeTypeG722, 9, 8000, 0, ""),
		webrtc.MimeTypePCMU: c(webrtc.MimeTypePCMU, 0, 8000, 0, ""),
		webrtc.MimeTypePCMA: c(webrtc.MimeTypePCMA, 8, 8000, 0, ""),
	}
}()

func kindOf(mimeType string) webrtc.RTPCodecType {
	if strings.HasPrefix(strings.ToLower(mimeType), "video/") {
		return webrtc.RTPCodecTypeVideo
	}
	return webrtc.RTPCodecTypeAudio
}

// WHIPOffer returns a gathered SDP offer from a throw-away pion
// PeerConnection, for requests a test builds by hand (rejections). It
// offers one send-only track of videoMime and one of audioMime (e.g.
// webrtc.MimeTypeH264, webrtc.MimeTypeVP8, webrtc.MimeTypeOpus), each with
// only that codec, or no such track for "". The offer's ICE candidate is
// on 127.0.0.1; nothing listens on it once WHIPOffer returned.
func WHIPOffer(t testing.TB, videoMime, audioMime string) string {
	t.Helper()
	me := &webrtc.MediaEngine{}
	var mimes []string
	for _, m := range []string{videoMime, audioMime} {
		if m == "" {
			continue
		}
		c, ok := whipCodecs[m]
		if !ok {
			t.Fatalf("WHIPOffer: unknown codec %q", m)
		}
		if err := me.RegisterCodec(c, kindOf(m)); err != nil {
			t.Fatal(err)
		}
		mimes = append(mimes, m)
	}
	pc, _, mux := newWHIPPeer(t, me)
	defer func() { _ = pc.GracefulClose(); _ = mux.Close() }()
	for _, m := range mimes {
		tr, err := webrtc.NewTrackLocalStaticSample(whipCodecs[m].RTPCodecCapability, kindOf(m).String(), "liveingest-test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	return gatheredOffer(t, pc)
}

// newWHIPPeer makes a client PeerConnection like a browser's on loopback:
// default interceptors (NACK, RTCP reports, TWCC), UDP over IPv4 only, no
// mDNS names, and one socket on 127.0.0.1 shared through an ICE UDP mux,
// so that Vanish can silence it. Closing the mux closes the socket.
func newWHIPPeer(t testing.TB, me *webrtc.MediaEngine) (*webrtc.PeerConnection, *vanishConn, ice.UDPMux) {
	t.Helper()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	conn := &vanishConn{PacketConn: uc}
	api, mux := loopbackAPI(t, me, conn, nil)
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		_ = mux.Close()
		t.Fatal(err)
	}
	return pc, conn, mux
}

// loopbackAPI is a pion API for peers on 127.0.0.1 (the test publisher
// and the test WHIP servers): me's codecs with the default interceptors
// (NACK, RTCP reports, TWCC), UDP over IPv4 only, no mDNS names, and every
// PeerConnection on conn through one ICE UDP mux (closing the mux closes
// conn). configure, if set, adjusts the settings further.
func loopbackAPI(t testing.TB, me *webrtc.MediaEngine, conn net.PacketConn, configure func(*webrtc.SettingEngine)) (*webrtc.API, ice.UDPMux) {
	t.Helper()
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	mux := webrtc.NewICEUDPMux(nil, conn)
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICEUDPMux(mux)
	if configure != nil {
		configure(&se)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), mux
}

// gatheredOffer creates the offer and waits for ICE gathering, so that the
// candidates are in the SDP (WHIP without trickle, RFC 9725 §4.3.1).
func gatheredOffer(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(10 * time.Second):
		t.Fatal("WHIP: ICE gathering did not complete in 10 s")
	}
	return pc.LocalDescription().SDP
}

// vanishConn is the client's UDP socket; once gone, it drops every packet
// written and discards every packet read, like a process that was killed.
// It embeds net.PacketConn, not *net.UDPConn: ice.UDPMuxDefault takes an
// allocation-free path of its own for a bare *net.UDPConn (or a conn with
// ReadFromAddrPort/WriteToAddrPort), which would bypass ReadFrom/WriteTo.
type vanishConn struct {
	net.PacketConn
	gone atomic.Bool
}

func (c *vanishConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.gone.Load() {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

func (c *vanishConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.gone.Load() {
			return n, addr, err
		}
	}
}
