package manifest

import (
	"fmt"
	"strings"
	"time"
)

// MPDName is the slot's DASH playback URL under the role prefix.
const MPDName = "manifest.mpd"

// Timing is a stream's segment duration and DVR window, which the MPD
// announces and the window is cut to.
type Timing struct {
	SegmentDuration time.Duration
	DVRWindow       time.Duration
}

// fmtDur is an xs:duration in seconds with millisecond precision.
func fmtDur(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("PT%d.%03dS", ms/1000, ms%1000)
}

func fmtDateTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// MPD renders the DASH MPD (ISO/IEC 23009-1) from the same CMAF files as
// the HLS playlists: one Period per publish session (5.3.2; a reconnect is
// a new Period, the DASH form of EXT-X-DISCONTINUITY), one AdaptationSet
// per track, SegmentTemplate with $Number$ and a SegmentTimeline (5.3.9.4,
// 5.3.9.6) whose times are the segments' baseMediaDecodeTime.
//
// While live the MPD is dynamic (5.4): availabilityStartTime anchors the
// timeline, minimumUpdatePeriod is the segment duration,
// timeShiftBufferDepth is the DVR window, and publishTime is publish. Once
// the stream ended it is static with a mediaPresentationDuration, so a
// player can play it whole.
func MPD(s *State, t Timing, publish time.Time) string {
	segDur, dvr := t.SegmentDuration, t.DVRWindow
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019"`)
	end := s.PeriodsEnd()
	if s.Ended {
		fmt.Fprintf(&b, ` type="static" mediaPresentationDuration="%s"`, fmtDur(end))
	} else {
		fmt.Fprintf(&b, ` type="dynamic" availabilityStartTime="%s" publishTime="%s" minimumUpdatePeriod="%s" timeShiftBufferDepth="%s" suggestedPresentationDelay="%s"`,
			fmtDateTime(s.AvailabilityStart), fmtDateTime(publish), fmtDur(segDur), fmtDur(dvr), fmtDur(3*segDur))
	}
	fmt.Fprintf(&b, ` minBufferTime="%s">`+"\n", fmtDur(2*segDur))
	for pi := range s.Periods {
		p := &s.Periods[pi]
		var segs []*Segment
		for i := range s.Segments {
			if s.Segments[i].Period == p.ID {
				segs = append(segs, &s.Segments[i])
			}
		}
		if len(segs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  <Period id=%q start=%q>\n", p.ID, fmtDur(p.Start))
		for ti, t := range p.Tracks {
			writeAdaptationSet(&b, p, ti, t, segs, s)
		}
		b.WriteString("  </Period>\n")
	}
	b.WriteString("</MPD>\n")
	return b.String()
}

func writeAdaptationSet(b *strings.Builder, p *Period, ti int, t Track, segs []*Segment, s *State) {
	contentType, mime := "video", "video/mp4"
	if t.Kind == Audio {
		contentType, mime = "audio", "audio/mp4"
	}
	lang := ""
	if languageTag(t.Language) {
		lang = fmt.Sprintf(" lang=%q", t.Language) // 5.3.3.2 AdaptationSet@lang
	}
	fmt.Fprintf(b, "    <AdaptationSet id=\"%d\" contentType=%q%s mimeType=%q segmentAlignment=\"true\" startWithSAP=\"1\">\n", ti+1, contentType, lang, mime)
	media := strings.TrimSuffix(t.Init, "init.mp4") + "$Number$.m4s"
	fmt.Fprintf(b, "      <SegmentTemplate timescale=\"%d\" presentationTimeOffset=\"%d\" initialization=%q media=%q startNumber=\"%d\">\n",
		t.TimeScale, t.PTO, t.Init, media, segs[0].Seq)
	b.WriteString("        <SegmentTimeline>\n")
	// 5.3.9.6: S@t only where the time does not follow on, S@r for runs.
	var next uint64
	for i := 0; i < len(segs); {
		st := segs[i].Tracks[ti]
		r := 0
		for i+r+1 < len(segs) && segs[i+r+1].Tracks[ti].D == st.D && segs[i+r+1].Tracks[ti].T == st.T+uint64(r+1)*st.D {
			r++
		}
		b.WriteString("          <S")
		if i == 0 || st.T != next {
			fmt.Fprintf(b, " t=\"%d\"", st.T)
		}
		fmt.Fprintf(b, " d=\"%d\"", st.D)
		if r > 0 {
			fmt.Fprintf(b, " r=\"%d\"", r)
		}
		b.WriteString("/>\n")
		next = st.T + uint64(r+1)*st.D
		i += r + 1
	}
	b.WriteString("        </SegmentTimeline>\n      </SegmentTemplate>\n")
	bw := s.PeakBandwidth
	if bw == 0 {
		bw = DefaultBandwidth
	}
	if t.Kind == Video {
		fmt.Fprintf(b, "      <Representation id=\"%s%s\" codecs=%q bandwidth=\"%d\" width=\"%d\" height=\"%d\"/>\n",
			p.ID, t.Kind, t.Codec, trackBandwidth(s, p.ID, ti, bw), t.Width, t.Height)
	} else {
		fmt.Fprintf(b, "      <Representation id=\"%s%s\" codecs=%q bandwidth=\"%d\" audioSamplingRate=\"%d\">\n",
			p.ID, t.Kind, t.Codec, trackBandwidth(s, p.ID, ti, 128_000), t.SampleRate)
		// The channel count, in the scheme the URN names.
		fmt.Fprintf(b, "        <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"%d\"/>\n", t.Channels)
		b.WriteString("      </Representation>\n")
	}
	b.WriteString("    </AdaptationSet>\n")
}

// trackBandwidth is the peak per-segment bitrate of one track of a period
// in the window (5.3.5.2 @bandwidth), or def before any was measured.
func trackBandwidth(s *State, periodID string, ti int, def int) int {
	peak := 0
	for _, seg := range s.Segments {
		if seg.Period != periodID || ti >= len(seg.Tracks) {
			continue
		}
		p := s.PeriodByID(periodID)
		st := seg.Tracks[ti]
		if st.D == 0 {
			continue
		}
		peak = max(peak, int(uint64(st.Bytes)*8*uint64(p.Tracks[ti].TimeScale)/st.D))
	}
	if peak == 0 {
		return def
	}
	return peak
}
