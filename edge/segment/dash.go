package segment

import (
	"fmt"
	"strings"
	"time"
)

// mpdName is the slot's DASH playback URL.
const mpdName = "manifest.mpd"

// fmtDur is an xs:duration in seconds with millisecond precision.
func fmtDur(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("PT%d.%03dS", ms/1000, ms%1000)
}

func fmtDateTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// mpdDoc renders the DASH MPD (ISO 23009-1) from the same CMAF files as the
// HLS playlists: one Period per publish session (5.3.2; a reconnect is a new
// Period, the DASH form of EXT-X-DISCONTINUITY), one AdaptationSet per
// track, SegmentTemplate with $Number$ and a SegmentTimeline (5.3.9.4,
// 5.3.9.6) whose times are the segments' baseMediaDecodeTime.
//
// While live the MPD is dynamic (5.4): availabilityStartTime anchors the
// timeline, minimumUpdatePeriod is the segment duration, and
// timeShiftBufferDepth is the DVR window. Once the writer closed it becomes
// static with a mediaPresentationDuration, so a player can play it whole.
func mpdDoc(s *state, segDur, dvr time.Duration, publish time.Time) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019"`)
	end := periodsEnd(s)
	if s.Ended {
		fmt.Fprintf(&b, ` type="static" mediaPresentationDuration="%s"`, fmtDur(end))
	} else {
		fmt.Fprintf(&b, ` type="dynamic" availabilityStartTime="%s" publishTime="%s" minimumUpdatePeriod="%s" timeShiftBufferDepth="%s" suggestedPresentationDelay="%s"`,
			fmtDateTime(s.AvailabilityStart), fmtDateTime(publish), fmtDur(segDur), fmtDur(dvr), fmtDur(3*segDur))
	}
	fmt.Fprintf(&b, ` minBufferTime="%s">`+"\n", fmtDur(2*segDur))
	for pi := range s.Periods {
		p := &s.Periods[pi]
		var segs []*segRec
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

func writeAdaptationSet(b *strings.Builder, p *period, ti int, t trackRec, segs []*segRec, s *state) {
	contentType, mime := "video", "video/mp4"
	if t.Kind == "a" {
		contentType, mime = "audio", "audio/mp4"
	}
	fmt.Fprintf(b, "    <AdaptationSet id=\"%d\" contentType=%q mimeType=%q segmentAlignment=\"true\" startWithSAP=\"1\">\n", ti+1, contentType, mime)
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
		bw = defaultBandwidth
	}
	if t.Kind == "v" {
		fmt.Fprintf(b, "      <Representation id=\"%s%s\" codecs=%q bandwidth=\"%d\" width=\"%d\" height=\"%d\"/>\n",
			p.ID, t.Kind, t.Codec, trackBandwidth(s, p.ID, ti, bw), t.Width, t.Height)
	} else {
		fmt.Fprintf(b, "      <Representation id=\"%s%s\" codecs=%q bandwidth=\"%d\" audioSamplingRate=\"%d\">\n",
			p.ID, t.Kind, t.Codec, trackBandwidth(s, p.ID, ti, 128_000), t.SampleRate)
		fmt.Fprintf(b, "        <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"%d\"/>\n", t.Channels)
		b.WriteString("      </Representation>\n")
	}
	b.WriteString("    </AdaptationSet>\n")
}

// trackBandwidth is the peak per-segment bitrate of one track of a period
// in the window (5.3.5.2 @bandwidth), or def before any was measured.
func trackBandwidth(s *state, periodID string, ti int, def int) int {
	peak := 0
	for _, seg := range s.Segments {
		if seg.Period != periodID || ti >= len(seg.Tracks) {
			continue
		}
		p := s.periodByID(periodID)
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

// periodsEnd is the end of the last period on the MPD timeline: its start
// plus the duration of its segments (the longest track).
func periodsEnd(s *state) time.Duration {
	if len(s.Periods) == 0 {
		return 0
	}
	p := s.Periods[len(s.Periods)-1]
	return p.Start + periodDuration(s, &p)
}

// periodDuration is the media time a period covers, from its PTO to the end
// of its last segment in the window, in the longest track.
func periodDuration(s *state, p *period) time.Duration {
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
