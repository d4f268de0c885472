package main

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// KeySent is one keyframe a publisher sent: its stream DTS and the wall time
// the write of its last byte returned (the earliest moment a server could
// have cut a segment at it).
type KeySent struct {
	DTS  time.Duration
	Sent time.Time
}

// PubResult is what one publisher did.
type PubResult struct {
	Index    int
	Keys     []KeySent
	Frames   int
	Bytes    int64
	Started  time.Time // connected and configured
	Stopped  time.Time // last frame sent (or error)
	MaxLag   time.Duration
	Behind   int       // frames sent more than behindLag after their schedule
	WakeLag  Histogram // timer oversleep before a frame: the generator's own lateness
	WriteLag Histogram // how long a write blocked: the server's back-pressure
	SRT      *SRTStats // the caller's SRT counters; nil over RTMP
	Err      error
}

// publisher is one stream of the load, whatever its protocol: Run
// connects, replays the sample on the shared schedule (replay) until its
// end or ctx's, closes, and always returns a result, with Err set on
// failure. Run is called once.
type publisher interface {
	Run(ctx context.Context) PubResult
}

var (
	_ publisher = (*Publisher)(nil)
	_ publisher = (*SRTPublisher)(nil)
)

// newPublisher returns the publisher for u's scheme: an SRT caller for
// srt://, an RTMP client otherwise.
func newPublisher(index int, u *url.URL, s *Sample, start, end time.Time) publisher {
	if u.Scheme == "srt" {
		return &SRTPublisher{Index: index, URL: u, Sample: s, Start: start, End: end}
	}
	return &Publisher{Index: index, URL: u, Sample: s, Start: start, End: end}
}

// behindLag is how late a frame may leave before the publisher counts as
// fallen behind real time: about one video frame more than a jittery
// encoder on a good network.
const behindLag = 100 * time.Millisecond

// writeTimeout bounds one blocked write: a server that stops reading for
// this long has failed the publisher.
const writeTimeout = 5 * time.Second

// Publisher replays a Sample to one RTMP URL in real time.
type Publisher struct {
	Index  int
	URL    *url.URL // rtmp://host:port/app#streamkey
	Sample *Sample
	// Start is when the first frame is due; End when the replay stops.
	Start, End time.Time
}

// Run connects, publishes until End or ctx ends, and closes. The result
// always comes back, with Err set on failure.
func (p *Publisher) Run(ctx context.Context) (res PubResult) {
	res.Index = p.Index
	defer func() { res.Stopped = time.Now() }()
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := &gortmplib.Client{URL: p.URL, Publish: true}
	if err := c.Initialize(ictx); err != nil {
		res.Err = fmt.Errorf("connect: %w", err)
		return res
	}
	defer c.Close()
	// Close the connection when ctx ends so a blocked write returns.
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	s := p.Sample
	video := &gortmplib.Track{Codec: &codecs.H264{SPS: s.SPS, PPS: s.PPS}}
	audio := &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: s.AudioConfig}}
	w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{video, audio}}
	nc := c.NetConn()
	_ = nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := w.Initialize(); err != nil {
		res.Err = fmt.Errorf("send track headers: %w", err)
		return res
	}
	res.Started = time.Now()
	replay(ctx, s, p.Start, p.End, &res, func(f *Frame, dts time.Duration, woke time.Time) error {
		_ = nc.SetWriteDeadline(woke.Add(writeTimeout))
		if f.Video {
			return c.Write(&message.Video{
				ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: 0x1000000,
				Codec: message.CodecH264, IsKeyFrame: f.Key, Type: message.VideoTypeAU,
				AU: f.Payload, DTS: dts, PTSDelta: f.CTS,
			})
		}
		// The rate field is informative only: the AudioSpecificConfig
		// carries the real sample rate.
		return c.Write(&message.Audio{
			ChunkStreamID: message.AudioChunkStreamID, MessageStreamID: 0x1000000,
			Codec: message.CodecMPEG4Audio, Rate: message.AudioRate44100,
			Depth: message.AudioDepth16, IsStereo: true,
			AACType: message.AudioAACTypeAU, AU: f.Payload, DTS: dts,
		})
	})
	return res
}

// sendFunc sends one frame of the replay with its stream timestamp dts
// (the clip's DTS shifted by the loops before); woke is when the schedule
// released it. It returns once the frame is handed to the connection.
type sendFunc func(f *Frame, dts time.Duration, woke time.Time) error

// replay is the schedule every protocol's publisher shares: it sends s's
// frames in real time from start (the first frame's due time) until a
// frame would be due after end, looping the clip with ever-increasing
// timestamps, and accounts in res for when each frame left against when
// it was due (WakeLag, WriteLag, MaxLag, Behind), the frames, their
// payload bytes and the keyframes sent. It returns at end, when ctx ends
// (res.Err = ctx.Err()) or on the first send error (res.Err set).
func replay(ctx context.Context, s *Sample, start, end time.Time, res *PubResult, send sendFunc) {
	res.Keys = make([]KeySent, 0, int(end.Sub(start)/s.Loop+1)*s.Keyframes)
	timer := time.NewTimer(0)
	<-timer.C
	for loop := 0; ; loop++ {
		shift := time.Duration(loop) * s.Loop
		for i := range s.Frames {
			f := &s.Frames[i]
			dts := shift + f.DTS
			due := start.Add(dts)
			if due.After(end) {
				return
			}
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					res.Err = ctx.Err()
					return
				}
			}
			woke := time.Now()
			res.WakeLag.Add(max(0, woke.Sub(due)))
			err := send(f, dts, woke)
			done := time.Now()
			if err != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				res.Err = fmt.Errorf("write at %v: %w", dts, err)
				return
			}
			res.WriteLag.Add(done.Sub(woke))
			lag := done.Sub(due)
			res.MaxLag = max(res.MaxLag, lag)
			if lag > behindLag {
				res.Behind++
			}
			res.Frames++
			res.Bytes += int64(len(f.Payload))
			if f.Video && f.Key {
				res.Keys = append(res.Keys, KeySent{DTS: dts, Sent: done})
			}
		}
	}
}

// streamURL is base (rtmp://host:port/app) with the stream key as the
// fragment: gortmplib's client then sends app and stream name apart, as
// ffmpeg and OBS do, which every RTMP server understands.
func streamURL(base, key string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "rtmp" && u.Scheme != "rtmps" {
		return nil, fmt.Errorf("want an rtmp:// or rtmps:// URL, got %q", base)
	}
	u.Fragment = key
	return u, nil
}
