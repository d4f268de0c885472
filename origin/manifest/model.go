package manifest

import "time"

// Kind is a track's media type. Its value is also the directory of the
// track's files under the role prefix and part of the state's JSON.
type Kind string

// The track kinds.
const (
	Video Kind = "v"
	Audio Kind = "a"
)

// StateFormat is the version of the state's JSON schema that this package
// reads and writes (State.Format).
const StateFormat = 1

// State is the durable record of one slot/role's stream: everything a
// writer needs to continue it and everything the public manifests are
// rendered from. It is plain data; a State shared between goroutines must
// not be modified (Clone it first).
type State struct {
	Format int    `json:"format"`
	Token  uint64 `json:"token"` // fencing token of the owning writer
	// AvailabilityStart anchors the DASH timeline (ISO/IEC 23009-1 5.3.1.2
	// availabilityStartTime): the wall clock of the first segment ever.
	AvailabilityStart time.Time `json:"availability_start"`
	NextSeq           uint64    `json:"next_seq"` // number of the next segment
	DiscSeq           uint64    `json:"disc_seq"` // EXT-X-DISCONTINUITY-SEQUENCE (RFC 8216 4.3.3.3)
	Periods           []Period  `json:"periods"`  // DASH periods with segments in the window
	Segments          []Segment `json:"segments"` // the window, oldest first
	Ended             bool      `json:"ended"`    // the last session closed
	PeakBandwidth     int       `json:"peak_bps"` // of the current period, bits/s
	AvgBandwidth      int       `json:"avg_bps"`  // of the current period, bits/s
}

// Period is one publish session (one writer): its tracks and where it sits
// on the DASH timeline (ISO/IEC 23009-1 5.3.2).
type Period struct {
	ID     string        `json:"id"`
	Token  uint64        `json:"token"`
	Start  time.Duration `json:"start"` // Period@start, since AvailabilityStart
	Tracks []Track       `json:"tracks"`
}

// Track describes one rendition of a period in the manifests' own terms:
// what a playlist or an MPD says about it, nothing of how it was muxed.
type Track struct {
	Kind       Kind   `json:"kind"`
	Codec      string `json:"codec"` // RFC 6381 codecs parameter, e.g. avc1.64001f
	TimeScale  uint32 `json:"timescale"`
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	SampleRate int    `json:"sample_rate,omitempty"`
	Channels   int    `json:"channels,omitempty"`
	// Language is an RFC 5646 language tag of an audio track, announced as
	// EXT-X-MEDIA LANGUAGE and AdaptationSet@lang; empty (or not a tag)
	// announces none.
	Language string `json:"language,omitempty"`
	// Init is the init file's path relative to the role prefix; it ends in
	// "init.mp4" and the track's segments are "<seq>.m4s" in the same
	// directory (the MPD's SegmentTemplate@media is derived from it).
	Init string `json:"init"`
	// PTO is the period's presentationTimeOffset in TimeScale units: the
	// base media decode time of its first segment.
	PTO uint64 `json:"pto"`
}

// Segment is one segment of the window. Tracks are the period's, same order;
// a track without media in this segment has an empty URI.
type Segment struct {
	Seq    uint64         `json:"seq"`
	Period string         `json:"period"`
	Disc   bool           `json:"disc,omitempty"` // first segment after a session switch
	PDT    time.Time      `json:"pdt"`            // wall clock of its first sample
	Tracks []SegmentTrack `json:"tracks"`
}

// SegmentTrack is one track's part of a segment.
type SegmentTrack struct {
	Kind  Kind   `json:"kind"`
	URI   string `json:"uri"` // relative to the role prefix
	T     uint64 `json:"t"`   // baseMediaDecodeTime, track timescale
	D     uint64 `json:"d"`   // duration, track timescale
	Bytes int    `json:"bytes"`
}

// PeriodByID returns the period with that id, or nil.
func (s *State) PeriodByID(id string) *Period {
	for i := range s.Periods {
		if s.Periods[i].ID == id {
			return &s.Periods[i]
		}
	}
	return nil
}

// Clone returns a copy whose top level and period and segment lists can be
// changed without touching s. The tracks of each period and segment are
// shared: replace them, never modify them in place.
func (s *State) Clone() *State {
	c := *s
	c.Periods = append([]Period(nil), s.Periods...)
	c.Segments = append([]Segment(nil), s.Segments...)
	return &c
}

// OpenPeriod returns the period of a new session whose first segment is
// first, for the caller to append to s.Periods: placed at its wall-clock
// offset from availabilityStartTime, but never before the previous period
// ends (ISO/IEC 23009-1 5.3.2.1: periods are ordered and do not overlap),
// with each track's PTO at the first segment's time. On the stream's first
// period it sets s.AvailabilityStart to first.PDT.
func (s *State) OpenPeriod(id string, token uint64, tracks []Track, first Segment) Period {
	if s.AvailabilityStart.IsZero() {
		s.AvailabilityStart = first.PDT
	}
	start := max(first.PDT.Sub(s.AvailabilityStart), s.PeriodsEnd(), 0)
	p := Period{ID: id, Token: token, Start: start}
	for i, tr := range tracks {
		tr.PTO = first.Tracks[i].T
		p.Tracks = append(p.Tracks, tr)
	}
	return p
}

// Slide drops the oldest segments while the rest still cover the DVR
// window (RFC 8216 6.2.2), counting removed discontinuities into DiscSeq
// (4.3.3.3), and drops periods left without segments. The newest segment
// always stays.
func (s *State) Slide(window time.Duration) {
	total := time.Duration(0)
	durs := make([]time.Duration, len(s.Segments))
	for i, seg := range s.Segments {
		p := s.PeriodByID(seg.Period)
		for j, tr := range seg.Tracks {
			if p != nil && j < len(p.Tracks) && tr.D > 0 {
				durs[i] = max(durs[i], time.Duration(tr.D*uint64(time.Second)/uint64(p.Tracks[j].TimeScale)))
			}
		}
		total += durs[i]
	}
	drop := 0
	for drop < len(s.Segments)-1 && total-durs[drop] >= window {
		total -= durs[drop]
		if s.Segments[drop].Disc {
			s.DiscSeq++
		}
		drop++
	}
	s.Segments = append([]Segment(nil), s.Segments[drop:]...)
	keep := s.Periods[:0:0]
	for _, p := range s.Periods {
		for _, seg := range s.Segments {
			if seg.Period == p.ID {
				keep = append(keep, p)
				break
			}
		}
	}
	s.Periods = keep
}

// TimelineEnd is where the stream's media timeline ends: the latest end of
// any track's last segment, rounded up to a millisecond. A new session
// starts its timestamps there, so they keep increasing across a reconnect.
func (s *State) TimelineEnd() time.Duration {
	var end time.Duration
	for _, seg := range s.Segments {
		p := s.PeriodByID(seg.Period)
		for j, tr := range seg.Tracks {
			if p != nil && j < len(p.Tracks) && tr.D > 0 {
				ts := uint64(p.Tracks[j].TimeScale)
				ms := ((tr.T+tr.D)*1000 + ts - 1) / ts
				end = max(end, time.Duration(ms)*time.Millisecond)
			}
		}
	}
	return end
}

// PeriodsEnd is the end of the last period on the MPD timeline: its start
// plus the duration of its segments (the longest track).
func (s *State) PeriodsEnd() time.Duration {
	if len(s.Periods) == 0 {
		return 0
	}
	p := s.Periods[len(s.Periods)-1]
	return p.Start + s.periodDuration(&p)
}

// periodDuration is the media time a period covers, from its PTO to the end
// of its last segment in the window, in the longest track.
func (s *State) periodDuration(p *Period) time.Duration {
	var d time.Duration
	for ti, t := range p.Tracks {
		var end uint64
		for _, seg := range s.Segments {
			if seg.Period == p.ID && ti < len(seg.Tracks) {
				end = seg.Tracks[ti].T + seg.Tracks[ti].D
			}
		}
		if end > t.PTO {
			d = max(d, time.Duration((end-t.PTO)*uint64(time.Millisecond)*1000/uint64(t.TimeScale)))
		}
	}
	return d
}
