package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	gosrt "github.com/datarhei/gosrt"

	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/edge/tsdemux"
	"github.com/liveingest/liveingest/internal/testenv"
)

func TestTS90(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{{0, 0}, {time.Second, 90000}, {40 * time.Millisecond, 3600}, {23 * time.Millisecond, 2070}, {10 * time.Hour, 3_240_000_000}} {
		if got := ts90(c.d); got != c.want {
			t.Errorf("ts90(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestSRTURL(t *testing.T) {
	u := srtURL("127.0.0.1:9000", "k3Y_x")
	if got := u.Query().Get("streamid"); got != "#!::r=k3Y_x,m=publish" {
		t.Errorf("stream id %q", got)
	}
	if u.Host != "127.0.0.1:9000" || u.Port() != "9000" || protocolOf(u) != "srt" {
		t.Errorf("url %v", u)
	}
	if got := u.String(); got != "srt://127.0.0.1:9000?streamid=%23%21%3A%3Ar%3Dk3Y_x%2Cm%3Dpublish" {
		t.Errorf("String() = %s", got)
	}
}

// sizes records the length of every Write.
type sizes struct{ n []int }

func (s *sizes) Write(p []byte) (int, error) {
	s.n = append(s.n, len(p))
	return len(p), nil
}

// TestPacketWriter: behind a bufio.Writer of srtPayload bytes, every SRT
// write of a frame is 1316 bytes but the last, and every write is whole
// MPEG-TS packets; a write larger than a packet is split.
func TestPacketWriter(t *testing.T) {
	_, s := tinySample(t)
	rec := &sizes{}
	pw := &packetWriter{w: rec}
	bw := bufio.NewWriterSize(pw, srtPayload)
	m, err := newTSMuxer(bw, s)
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for i := range s.Frames {
		before := len(rec.n)
		if err := m.write(&s.Frames[i], s.Frames[i].DTS); err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		frame := rec.n[before:]
		if len(frame) == 0 {
			t.Fatalf("frame %d: nothing written", i)
		}
		for j, n := range frame {
			total += n
			if n%188 != 0 || n > srtPayload || (j < len(frame)-1 && n != srtPayload) {
				t.Fatalf("frame %d: writes %v: want 1316-byte packets, the last whole TS packets", i, frame)
			}
		}
	}
	if pw.packets != uint64(len(rec.n)) || pw.bytes != uint64(total) {
		t.Errorf("counted %d packets, %d bytes; wrote %d, %d", pw.packets, pw.bytes, len(rec.n), total)
	}

	rec.n = nil
	if n, err := pw.Write(make([]byte, 3*srtPayload+188)); err != nil || n != 3*srtPayload+188 {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if len(rec.n) != 4 || rec.n[0] != srtPayload || rec.n[3] != 188 {
		t.Errorf("a long write went out as %v", rec.n)
	}
}

// TestTSMuxerRoundTrip demuxes what the SRT publisher sends with the
// product's own MPEG-TS demuxer: H.264 with the clip's parameter sets and
// AAC, every frame back, keyframes where they were, and timestamps that
// keep the clip's spacing across a loop seam.
func TestTSMuxerRoundTrip(t *testing.T) {
	_, s := tinySample(t)
	var buf bytes.Buffer
	bw := bufio.NewWriterSize(&packetWriter{w: &buf}, srtPayload)
	m, err := newTSMuxer(bw, s)
	if err != nil {
		t.Fatal(err)
	}
	var sent []Frame
	for loop := range 2 {
		for _, f := range s.Frames {
			f.DTS += time.Duration(loop) * s.Loop
			if err := m.write(&f, f.DTS); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, f)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	dm, err := tsdemux.Open(&buf, tsdemux.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr := dm.Tracks()
	if len(tr) != 2 || !tr[0].IsVideo() || tr[0].Name() != "h264" || tr[1].IsVideo() {
		t.Fatalf("tracks %v", tr)
	}
	var got []media.AccessUnit
	for {
		au, err := dm.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		got = append(got, au)
	}
	if st := dm.Stats(); st.DecodeErrors != 0 || st.Dropped != 0 || st.Discontinuities != 0 {
		t.Errorf("demuxer stats %+v", st)
	}
	var video, audio []Frame
	for _, f := range sent {
		if f.Video {
			video = append(video, f)
		} else {
			audio = append(audio, f)
		}
	}
	var gv, ga []media.AccessUnit
	for _, au := range got {
		if au.Track == tr[0].ID {
			gv = append(gv, au)
		} else {
			ga = append(ga, au)
		}
	}
	// (A TS video PES ends only when the next one starts, or at the end of
	// the stream: the last frame comes out at EOF.)
	if len(gv) != len(video) || len(ga) != len(audio) {
		t.Fatalf("got %d video and %d audio units, want %d and %d", len(gv), len(ga), len(video), len(audio))
	}
	for i, au := range gv {
		f := video[i]
		if au.Key != f.Key || au.DTS-gv[0].DTS != f.DTS || au.PTS-au.DTS != f.CTS {
			t.Fatalf("video %d: key %v dts %v cts %v, want %v %v %v", i, au.Key, au.DTS-gv[0].DTS, au.PTS-au.DTS, f.Key, f.DTS, f.CTS)
		}
	}
	for i, au := range ga {
		// AAC timestamps go through the 90 kHz clock: within a tick.
		if d := au.DTS - ga[0].DTS - audio[i].DTS; d < -12*time.Microsecond || d > 12*time.Microsecond {
			t.Fatalf("audio %d at %v, want %v", i, au.DTS-ga[0].DTS, audio[i].DTS)
		}
		if !bytes.Equal(au.Data[0], audio[i].Payload) {
			t.Fatalf("audio %d payload differs", i)
		}
	}
}

// srtSink is an in-process SRT listener that accepts one caller and counts
// what it receives, packet by packet.
type srtSink struct {
	ln       gosrt.Listener
	mu       sync.Mutex
	streamID string
	payloads []int
	done     chan struct{}
}

func newSRTSink(t *testing.T) *srtSink {
	t.Helper()
	ln, err := gosrt.Listen("srt", "127.0.0.1:0", gosrt.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	k := &srtSink{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(k.done)
		req, err := ln.Accept2()
		if err != nil {
			return
		}
		k.mu.Lock()
		k.streamID = req.StreamId()
		k.mu.Unlock()
		c, err := req.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for {
			p, err := c.ReadPacket()
			if err != nil {
				return
			}
			k.mu.Lock()
			k.payloads = append(k.payloads, len(p.Data()))
			k.mu.Unlock()
			p.Decommission()
		}
	}()
	return k
}

// TestSRTPublisher publishes the clip for two seconds to an in-process
// gosrt listener: the stream id arrives, every packet is whole TS packets
// of at most 1316 bytes, the schedule is the shared one, everything sent
// is acknowledged, and closing leaves no goroutine behind.
func TestSRTPublisher(t *testing.T) {
	_, s := tinySample(t)
	testenv.VerifyNoLeaks(t)
	k := newSRTSink(t)
	addr := k.ln.Addr().(*net.UDPAddr)
	start := time.Now().Add(200 * time.Millisecond)
	p := &SRTPublisher{Index: 3, URL: srtURL(addr.String(), "key-1"), Sample: s, Start: start, End: start.Add(2 * time.Second)}
	res := p.Run(t.Context())
	k.ln.Close()
	<-k.done
	if res.Err != nil {
		t.Fatalf("publisher: %v", res.Err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.streamID != "#!::r=key-1,m=publish" {
		t.Errorf("stream id %q", k.streamID)
	}
	q := res.SRT
	// Keyframes at 0, 1 s and 2 s: a frame due exactly at End is sent.
	if res.Index != 3 || res.Frames < 50 || len(res.Keys) != 3 || res.Started.IsZero() || res.Stopped.Before(start.Add(2*time.Second)) {
		t.Errorf("result %+v", res)
	}
	if q == nil || q.Packets == 0 || q.Sent != q.Packets || q.Unacked != 0 || q.Dropped != 0 || q.Bytes < uint64(res.Bytes) {
		t.Fatalf("SRT stats %+v (payload %d bytes)", q, res.Bytes)
	}
	// All were acknowledged (Unacked 0), but a receiver discards what its
	// TSBPD buffer still holds (120 ms of stream) when the caller's
	// shutdown arrives, so the listener reads a little less.
	if n := uint64(len(k.payloads)); n > q.Packets || n < q.Packets*8/10 {
		t.Errorf("the listener read %d packets, the caller wrote %d", n, q.Packets)
	}
	full := 0
	for _, n := range k.payloads {
		if n == 0 || n%188 != 0 || n > srtPayload {
			t.Fatalf("a %d-byte packet", n)
		}
		if n == srtPayload {
			full++
		}
	}
	if full == 0 {
		t.Error("no full 1316-byte packet")
	}
}

// TestSRTPublisherConnectFails: nobody listening is a connect error (the
// library's handshake timeout), not a hang.
func TestSRTPublisherConnectFails(t *testing.T) {
	testenv.VerifyNoLeaks(t)
	port, err := freePort("udp")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s := &Sample{Loop: time.Second, Keyframes: 1}
	p := &SRTPublisher{URL: srtURL("127.0.0.1:"+strconv.Itoa(port), "k"), Sample: s, Start: start, End: start.Add(time.Second),
		ConnectTimeout: 500 * time.Millisecond}
	res := p.Run(t.Context())
	if res.Err == nil || res.Stopped.IsZero() || res.Frames != 0 {
		t.Fatalf("result %+v, want a connect error", res)
	}
	if took := res.Stopped.Sub(start); took > 5*time.Second {
		t.Errorf("gave up after %v, want about the 500ms connect timeout", took)
	}
}
