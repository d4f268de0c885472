package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
	gosrt "github.com/datarhei/gosrt"
)

const (
	// srtPayload is what one SRT data packet carries: 7 MPEG-TS packets,
	// as libsrt callers (ffmpeg, OBS) send them; it fits a 1500-byte MTU.
	srtPayload = 7 * 188
	// srtConnectTimeout bounds the handshake, admission included, like
	// the RTMP publisher's connect.
	srtConnectTimeout = 10 * time.Second
	// srtDrainTimeout bounds waiting for the server to acknowledge the
	// last packets before the caller closes (gosrt discards what is
	// unsent or unacknowledged at Close).
	srtDrainTimeout = time.Second
	// tsClockOffset is the MPEG-TS timestamp of the clip's first frame:
	// the writer stamps the PCR a tenth of a second before the video DTS,
	// which must not go below zero.
	tsClockOffset = time.Second
)

// SRTStats are one caller's sender-side SRT counters (gosrt's accumulated
// statistics) when it closed.
type SRTStats struct {
	Packets       uint64  // data packets written (each at most srtPayload bytes)
	Sent          uint64  // data packets sent once by the library
	Retransmitted uint64  // packets sent again after the server reported them missing (NAK)
	Dropped       uint64  // packets the sender gave up on: too late to deliver
	Unacked       uint64  // packets not acknowledged when the caller closed
	Bytes         uint64  // MPEG-TS bytes written
	RTTms         float64 // smoothed round-trip time at the end
}

// SRTPublisher replays a Sample to one SRT listener in real time as an SRT
// caller in live mode: the frames muxed into MPEG-TS (H.264 with its
// parameter sets before every keyframe, AAC in ADTS), 1316 bytes per SRT
// packet, on the same schedule as the RTMP Publisher (replay).
type SRTPublisher struct {
	Index  int
	URL    *url.URL // srt://host:port?streamid=... (srtURL)
	Sample *Sample
	// Start is when the first frame is due; End when the replay stops.
	Start, End time.Time
	// ConnectTimeout bounds the handshake. Default: srtConnectTimeout (10s).
	ConnectTimeout time.Duration
}

// Run connects, publishes until End or ctx ends, waits briefly for the
// server to acknowledge the last packets, and closes. The result always
// comes back, with Err set on failure.
func (p *SRTPublisher) Run(ctx context.Context) (res PubResult) {
	res.Index = p.Index
	res.SRT = &SRTStats{}
	defer func() {
		if res.Stopped.IsZero() {
			res.Stopped = time.Now()
		}
	}()
	cfg := gosrt.DefaultConfig()
	cfg.StreamId = p.URL.Query().Get("streamid")
	cfg.ConnectionTimeout = cmp.Or(p.ConnectTimeout, srtConnectTimeout)
	// gosrt's Dial takes no context: it returns within ConnectionTimeout.
	c, err := gosrt.Dial("srt", p.URL.Host, cfg)
	if err != nil {
		res.Err = fmt.Errorf("connect: %w", err)
		return res
	}
	defer closeSRT(c)
	if err := ctx.Err(); err != nil {
		res.Err = err
		return res
	}
	pw := &packetWriter{w: c}
	bw := bufio.NewWriterSize(pw, srtPayload)
	m, err := newTSMuxer(bw, p.Sample)
	if err != nil {
		res.Err = fmt.Errorf("MPEG-TS writer: %w", err)
		return res
	}
	res.Started = time.Now()
	// gosrt's Write never blocks: it queues the packets for the library's
	// sender (which sends them on its next 10 ms tick) or fails with
	// io.EOF when the connection is closed or its queue is full. So
	// WriteLag stays near zero here; loss shows in res.SRT instead.
	replay(ctx, p.Sample, p.Start, p.End, &res, func(f *Frame, dts time.Duration, _ time.Time) error {
		if err := m.write(f, dts); err != nil {
			return err
		}
		// One frame, then what is left of its last packet: a keyframe's
		// send time is when all of it is queued.
		return bw.Flush()
	})
	res.Stopped = time.Now()
	var st gosrt.Statistics
	if res.Err == nil {
		drainSRT(c, pw.packets, srtDrainTimeout, &st)
	}
	c.Stats(&st)
	*res.SRT = SRTStats{
		Packets: pw.packets, Bytes: pw.bytes,
		Sent: st.Accumulated.PktSentUnique, Retransmitted: st.Accumulated.PktRetrans,
		Dropped: st.Accumulated.PktSendDrop, Unacked: st.Instantaneous.PktSendBuf, RTTms: st.Instantaneous.MsRTT,
	}
	return res
}

// drainSRT waits until the library sent every one of the written packets
// and the server acknowledged them all, or timeout passed.
func drainSRT(c gosrt.Conn, written uint64, timeout time.Duration, st *gosrt.Statistics) {
	deadline := time.Now().Add(timeout)
	for {
		c.Stats(st)
		if st.Accumulated.PktSentUnique >= written && st.Instantaneous.PktSendBuf == 0 {
			return
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond) // the library acknowledges every 10 ms
	}
}

// closeSRT closes c and then takes the exit report of gosrt's socket
// reader. In v0.11.0 that goroutine reports on an unbuffered channel that
// only Read, Write and Close receive from, and Close receives only if the
// report is already waiting: without this every closed caller would leave
// a goroutine blocked forever. After Close, Read returns that report
// (gosrt.ErrClientClosed, or the socket's error) once it is waiting, and
// io.EOF before; if the report was already taken by an earlier Write, the
// loop gives up after a second.
func closeSRT(c gosrt.Conn) {
	_ = c.Close()
	var b [1]byte
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Read(b[:]); err != nil && !errors.Is(err, io.EOF) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// packetWriter hands what it is given to an SRT connection in writes of at
// most srtPayload bytes, each of which gosrt sends as one data packet, and
// counts them. Behind a bufio.Writer of srtPayload bytes every packet but
// the last of a flush is full.
type packetWriter struct {
	w       io.Writer
	packets uint64
	bytes   uint64
}

func (pw *packetWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), srtPayload)
		m, err := pw.w.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		pw.packets++
		pw.bytes += uint64(k)
		p = p[k:]
	}
	return n, nil
}

// tsMuxer writes a Sample's frames as MPEG-TS with mediacommon's writer.
// The writer emits PAT and PMT before every video random access point, so
// a receiver can start at any keyframe.
type tsMuxer struct {
	w            *mpegts.Writer
	video, audio *mpegts.Track
	sps, pps     []byte
}

func newTSMuxer(w io.Writer, s *Sample) (*tsMuxer, error) {
	if s.AudioConfig == nil {
		return nil, errors.New("sample without an AAC configuration")
	}
	m := &tsMuxer{
		video: &mpegts.Track{Codec: &tscodecs.H264{}},
		audio: &mpegts.Track{Codec: &tscodecs.MPEG4Audio{Config: *s.AudioConfig}},
		sps:   s.SPS, pps: s.PPS,
	}
	m.w = &mpegts.Writer{W: w, Tracks: []*mpegts.Track{m.video, m.audio}}
	if err := m.w.Initialize(); err != nil {
		return nil, err
	}
	return m, nil
}

// ts90 is d on the 90 kHz MPEG-TS clock (ISO/IEC 13818-1 §2.4.3.7).
func ts90(d time.Duration) int64 { return int64(d) * 9 / 100_000 }

// write muxes frame f with stream timestamp dts. MPEG-TS carries the H.264
// parameter sets in-band: they go before every keyframe that lacks them
// (the FLV clip keeps them in its configuration record only).
func (m *tsMuxer) write(f *Frame, dts time.Duration) error {
	dts += tsClockOffset
	if !f.Video {
		return m.w.WriteMPEG4Audio(m.audio, ts90(dts), [][]byte{f.Payload})
	}
	var avcc h264.AVCC
	if err := avcc.Unmarshal(f.Payload); err != nil {
		return fmt.Errorf("video frame: %w", err)
	}
	au := [][]byte(avcc)
	if f.Key && !hasSPS(au) {
		au = append([][]byte{m.sps, m.pps}, au...)
	}
	return m.w.WriteH264(m.video, ts90(dts+f.CTS), ts90(dts), au)
}

func hasSPS(au [][]byte) bool {
	for _, n := range au {
		if len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
			return true
		}
	}
	return false
}

// srtURL is the SRT address of a liveingest listener with the stream id a
// publisher of key sends (SRT Access Control: "#!::r=<key>,m=publish"),
// in the form the dev summary prints: srt://host:port?streamid=...
func srtURL(hostPort, key string) *url.URL {
	return &url.URL{Scheme: "srt", Host: hostPort,
		RawQuery: url.Values{"streamid": {"#!::r=" + key + ",m=publish"}}.Encode()}
}
