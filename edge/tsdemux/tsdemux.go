// Package tsdemux turns an MPEG-TS byte stream (ISO/IEC 13818-1), as an
// SRT publisher sends it or an SRT source is pulled, into edge/media tracks
// and access units for the segmenter.
//
// It chooses one video track (H.264 or H.265) and at most one audio track
// (AAC in ADTS, or Opus) from the stream's program, learns the video
// parameter sets from the access units themselves (MPEG-TS carries them
// in-band), and converts the 33-bit 90 kHz program clock into one
// monotonic timeline per track that survives wraparound and encoder
// restarts. Demultiplexing itself is mediacommon's mpegts.Reader (on
// go-astits).
//
// A Demuxer runs on its caller's goroutine and starts none; the caller
// bounds blocking reads with deadlines on its connection. Access unit data
// is not copied: it points into the PES buffer the reader allocated for it.
// A video access unit is complete, and returned, only when the next one on
// its PID starts (an MPEG-TS video PES has no length), so video lags the
// input by one frame.
package tsdemux

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/liveingest/liveingest/edge/media"
)

// Options tune Open. The zero value is ready to use.
type Options struct {
	// MaxDiscovery caps the stream bytes Open reads before it returns: while
	// it waits for the PMT, the first frame of an AAC track and the video
	// parameter sets with the first keyframe. It bounds the memory a
	// publisher that never sends video can hold (the audio Open keeps for
	// Next is part of what it read). Past it Open fails with ErrNoProgram or
	// ErrNoVideo. Independently, mediacommon reads at most 1 MiB looking for
	// the PMT and the first AAC frame. Default: 8 MiB.
	MaxDiscovery int
	// MaxGap is the largest forward step of a track's DTS that is still
	// continuous; a larger one (an encoder restart, a splice) is a
	// discontinuity and re-bases the timeline. Default: 10s.
	MaxGap time.Duration
	// JitterTolerance is the largest backward step of a track's DTS that is
	// jitter: the access unit is dropped and counted in Stats.Dropped. A
	// larger step back is a discontinuity. Default: 1s.
	JitterTolerance time.Duration
	// OnDecodeError, when set, is called with each non-fatal demux error:
	// continuity counter jumps (packet loss), undecodable PES packets, bad
	// ADTS or Opus framing, an invalid in-band SPS. It runs on the goroutine
	// calling Open or Next and must not call Next. Every such error
	// is counted in Stats.DecodeErrors either way. Default: nil (counted
	// only).
	OnDecodeError func(error)
}

// Defaults for Options' zero values.
const (
	DefaultMaxDiscovery    = 8 << 20
	DefaultMaxGap          = 10 * time.Second
	DefaultJitterTolerance = time.Second
)

// Validate reports the first field with an invalid value, naming it.
func (o Options) Validate() error {
	switch {
	case o.MaxDiscovery < 0:
		return fmt.Errorf("tsdemux: Options.MaxDiscovery %d is negative", o.MaxDiscovery)
	case o.MaxGap < 0:
		return fmt.Errorf("tsdemux: Options.MaxGap %v is negative", o.MaxGap)
	case o.JitterTolerance < 0:
		return fmt.Errorf("tsdemux: Options.JitterTolerance %v is negative", o.JitterTolerance)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.MaxDiscovery == 0 {
		o.MaxDiscovery = DefaultMaxDiscovery
	}
	if o.MaxGap == 0 {
		o.MaxGap = DefaultMaxGap
	}
	if o.JitterTolerance == 0 {
		o.JitterTolerance = DefaultJitterTolerance
	}
	return o
}

// Stats count what the Demuxer repaired or dropped. Each count only grows.
type Stats struct {
	// DecodeErrors is the number of non-fatal demux errors (each one was
	// passed to Options.OnDecodeError).
	DecodeErrors int64
	// Discontinuities is the number of times the timeline was re-based
	// because a DTS jumped (see Options.MaxGap, Options.JitterTolerance).
	Discontinuities int64
	// Dropped is the number of access units Next dropped for their
	// timestamps: a DTS a little behind the track's last (jitter), or a
	// track's first units stamped before the start of the output timeline.
	// Video before the first keyframe, which Open drops, is not counted.
	Dropped int64
	// ParamChanges is the number of video access units carrying a
	// parameter set (SPS, PPS, VPS) different from the one last seen, the
	// first change being against Tracks: a resolution change, say. They
	// are counted, not acted on: the units pass through unchanged, and the
	// track keeps the parameters Open found.
	ParamChanges int64
}

// Indexes of the chosen tracks in Demuxer.tracks and timeline.trk (their
// IDs are one more).
const (
	videoTrack = 0
	audioTrack = 1
)

// Demuxer reads access units from one MPEG-TS stream. Next must be called
// from one goroutine at a time; Tracks, Ignored and Stats may be called
// from any goroutine at any time.
type Demuxer struct {
	opt    Options
	sc     *scanner
	rd     *mpegts.Reader
	td     mpegts.TimeDecoder // one for all tracks: they share the program clock
	tl     timeline
	tracks []media.Track
	ignore []string

	params    paramSets     // the video track's in-band parameter sets
	aacFrame  time.Duration // one AAC frame, or zero for Opus
	ready     bool          // the first keyframe was found: Open is done
	queue     []pending     // units decoded but not returned yet
	head      int           // next unit of queue to return
	firstFail error         // sticky error Next returns

	decodeErrors, discontinuities, dropped, paramChanges atomic.Int64
}

// Open reads r until it knows the program and can deliver video: the PMT,
// and for the video track its parameter sets (H.264 SPS and PPS, H.265
// VPS, SPS and PPS, found in-band in the access units) together with its
// first random-access access unit. Audio that arrives meanwhile is kept for
// Next; video before that keyframe is dropped.
//
// The tracks are the first H.264/H.265 track (ID 1) and the first AAC
// (ADTS) or Opus track (ID 2, if any) in PMT order. Other tracks — a second
// video or audio, an audio codec the segmenter does not take beside one it
// does, KLV, subtitles — are ignored and named by Ignored.
//
// Open fails with ErrNoProgram or ErrNoVideo (wrapping the read error, if
// any: io.EOF, os.ErrDeadlineExceeded from a deadline the caller set on a
// connection), an *UnsupportedError (errors.Is ErrUnsupportedCodec) when
// the only video, or every audio track, has a codec the segmenter does not
// take, or an error from o.Validate. It reads r from the calling goroutine
// and starts none; on error nothing of r is retained.
func Open(r io.Reader, o Options) (*Demuxer, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	d := &Demuxer{opt: o}
	d.sc = &scanner{r: r, limit: int64(o.MaxDiscovery), sniff: true, onError: d.decodeError}
	d.rd = &mpegts.Reader{R: d.sc}
	if err := d.rd.Initialize(); err != nil {
		if !d.sc.sawPMT {
			return nil, fmt.Errorf("%w: %w", ErrNoProgram, err)
		}
		return nil, fmt.Errorf("%w: waiting for the first audio frame: %w", ErrNoVideo, err)
	}
	d.sc.sniff = false
	d.rd.OnDecodeError(d.decodeError)
	sel, err := selectTracks(d.rd.Tracks())
	if err != nil {
		return nil, err
	}
	d.ignore = sel.ignored
	d.setup(sel)
	for !d.ready {
		if err := d.rd.Read(); err != nil {
			return nil, fmt.Errorf("%w: waiting for the video parameter sets and a keyframe: %w", ErrNoVideo, err)
		}
	}
	d.sc.limit = 0
	d.tl.origin = d.queue[0].dts
	for _, q := range d.queue {
		d.tl.origin = min(d.tl.origin, q.dts)
	}
	d.tl.origin -= int64(originSlack / time.Second * clockRate)
	return d, nil
}

// setup registers the chosen tracks with the reader and the scanner.
func (d *Demuxer) setup(sel selection) {
	d.tl.maxGap, d.tl.jitter = d.opt.MaxGap, d.opt.JitterTolerance
	// The video codec is filled in when its parameter sets are known.
	d.tracks = append(d.tracks, media.Track{ID: 1})
	d.tl.trk = append(d.tl.trk, trackTime{video: true})
	d.sc.cc = append(d.sc.cc, ccState{pid: sel.video.PID})
	switch sel.video.Codec.(type) {
	case *tscodecs.H265:
		d.params.h265 = true
		d.rd.OnDataH265(sel.video, d.onVideo)
	default:
		d.rd.OnDataH264(sel.video, d.onVideo)
	}
	if sel.audio == nil {
		return
	}
	c, frame := audioCodec(sel.audio.Codec)
	d.aacFrame = frame
	d.tracks = append(d.tracks, media.Track{ID: 2, Codec: c})
	d.tl.trk = append(d.tl.trk, trackTime{})
	d.sc.cc = append(d.sc.cc, ccState{pid: sel.audio.PID})
	switch sel.audio.Codec.(type) {
	case *tscodecs.MPEG4Audio:
		d.rd.OnDataMPEG4Audio(sel.audio, d.onAAC)
	case *tscodecs.Opus:
		d.rd.OnDataOpus(sel.audio, d.onOpus)
	}
}

// Tracks returns the tracks Open chose: video (ID 1) first, then audio (ID
// 2) if the program has one. The slice is shared: do not modify it.
func (d *Demuxer) Tracks() []media.Track { return d.tracks }

// Ignored names the codecs of the program's tracks that Open did not
// choose, in PMT order, for the caller to log. The slice is shared: do not
// modify it.
func (d *Demuxer) Ignored() []string { return d.ignore }

// Stats returns the counts so far.
func (d *Demuxer) Stats() Stats {
	return Stats{
		DecodeErrors:    d.decodeErrors.Load(),
		Discontinuities: d.discontinuities.Load(),
		Dropped:         d.dropped.Load(),
		ParamChanges:    d.paramChanges.Load(),
	}
}

// Next returns the next access unit in arrival order: first the ones Open
// read, then as read from r. Audio PES packets holding several frames
// become one access unit per frame, each stamped after the previous (AAC:
// 1024 samples at the track's sample rate; Opus: the packet's duration
// from its TOC byte). Video units hold NAL units without start codes or
// access unit delimiters; Key marks random access points.
//
// Timestamps follow media.AccessUnit's rules: per track DTS never goes
// backwards, PTS ≥ DTS (a PTS before its DTS is raised to it), and none is
// negative. The output timeline starts about one second after the
// earliest unit Open read; a DTS jump over Options.MaxGap forward or
// Options.JitterTolerance back re-bases it (Stats.Discontinuities) so the
// unit follows the latest output; a smaller step back drops the unit
// (Stats.Dropped).
//
// The returned Data stays valid after the next call: it is not reused.
//
// Next returns io.EOF when r ends cleanly, r's error wrapped when it fails
// (errors.Is(err, os.ErrDeadlineExceeded) after a read deadline), and the
// same error on every later call. Units already read are returned before
// the error.
func (d *Demuxer) Next() (media.AccessUnit, error) {
	for {
		for d.head < len(d.queue) {
			q := &d.queue[d.head]
			d.head++
			dts, pts, ok := d.tl.stamp(q)
			au := media.AccessUnit{Track: q.track + 1, DTS: dts, PTS: pts, Key: q.key, Data: q.data}
			*q = pending{} // release the data: the queue's array is reused
			d.syncStats()
			if ok {
				return au, nil
			}
		}
		d.queue, d.head = d.queue[:0], 0
		if d.firstFail != nil {
			return media.AccessUnit{}, d.firstFail
		}
		if err := d.rd.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				d.firstFail = io.EOF
			} else {
				d.firstFail = fmt.Errorf("tsdemux: read: %w", err)
			}
		}
	}
}

// syncStats publishes the timeline's counts.
func (d *Demuxer) syncStats() {
	if n := d.tl.rebased; n != d.discontinuities.Load() {
		d.discontinuities.Store(n)
	}
	if n := d.tl.dropped; n != d.dropped.Load() {
		d.dropped.Store(n)
	}
}

// decodeError counts a non-fatal error and reports it.
func (d *Demuxer) decodeError(err error) {
	d.decodeErrors.Add(1)
	if d.opt.OnDecodeError != nil {
		d.opt.OnDecodeError(err)
	}
}

// decode unwraps a PES's timestamps on the shared program clock.
func (d *Demuxer) decode(pts, dts int64) (int64, int64) {
	return d.td.Decode(dts), ptsOffset(pts, dts)
}

// onVideo takes one video access unit from the reader (which removed a
// leading delimiter already).
func (d *Demuxer) onVideo(pts, dts int64, au [][]byte) error {
	h265v := d.params.h265
	n := 0
	for _, nalu := range au { // au is the reader's own slice: filter in place
		if !isAUD(nalu, h265v) {
			au[n] = nalu
			n++
		}
	}
	au = au[:n]
	if len(au) == 0 {
		d.decodeError(errors.New("tsdemux: video access unit holds only delimiters"))
		return nil
	}
	t, off := d.decode(pts, dts)
	changed, err := d.params.observe(au)
	if err != nil {
		d.decodeError(err)
	}
	key := isKey(au, h265v)
	if !d.ready {
		if !key || !d.params.complete() {
			return nil
		}
		d.ready = true
		d.tracks[videoTrack].Codec = d.params.codec()
	} else if changed {
		d.paramChanges.Add(1)
	}
	d.queue = append(d.queue, pending{track: videoTrack, dts: t, ptsOff: off, key: key, data: au})
	return nil
}

// onAAC takes the frames of one ADTS PES packet.
func (d *Demuxer) onAAC(pts int64, aus [][]byte) error {
	t, _ := d.decode(pts, pts)
	for i := range aus {
		d.queue = append(d.queue, pending{
			track: audioTrack, dts: t, extra: time.Duration(i) * d.aacFrame, dur: d.aacFrame, key: true,
			data: aus[i : i+1 : i+1], // one frame, sharing the reader's slice
		})
	}
	return nil
}

// onOpus takes the packets of one Opus PES packet.
func (d *Demuxer) onOpus(pts int64, pkts [][]byte) error {
	t, _ := d.decode(pts, pts)
	var extra time.Duration
	for i, p := range pkts {
		dur := time.Duration(opus.PacketDuration2(p)) * time.Second / 48000
		if dur <= 0 {
			d.decodeError(fmt.Errorf("tsdemux: invalid Opus packet (%d bytes)", len(p)))
			continue
		}
		d.queue = append(d.queue, pending{
			track: audioTrack, dts: t, extra: extra, dur: dur, key: true,
			data: pkts[i : i+1 : i+1],
		})
		extra += dur
	}
	return nil
}
