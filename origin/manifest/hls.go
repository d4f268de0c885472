package manifest

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Public HLS names under the role prefix. MultivariantName is the slot's
// HLS playback URL (slots' playback_urls); the renditions are one media
// playlist per track kind.
const (
	MultivariantName  = "index.m3u8"
	VideoPlaylistName = "video.m3u8"
	AudioPlaylistName = "audio.m3u8"
	// hlsVersion: EXT-X-MAP with fMP4 needs 6+ (RFC 8216 7); 7 for the
	// CMAF profile.
	hlsVersion = 7
)

// PlaylistName is the media playlist of a track kind.
func PlaylistName(k Kind) string {
	if k == Video {
		return VideoPlaylistName
	}
	return AudioPlaylistName
}

// fmtPDT formats an EXT-X-PROGRAM-DATE-TIME (RFC 8216 4.3.2.6: ISO 8601
// with milliseconds and a time zone).
func fmtPDT(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// millis is a timescale duration in whole milliseconds, rounded; EXTINF and
// TARGETDURATION are both derived from it so they cannot disagree.
func millis(d uint64, scale uint32) uint64 { return (d*1000 + uint64(scale)/2) / uint64(scale) }

// MediaPlaylist renders the media playlist of one track kind from the
// state (RFC 8216 4.3.3). It returns "" when no segment carries the kind.
func MediaPlaylist(s *State, kind Kind) string {
	type item struct {
		seg  *Segment
		tr   SegmentTrack
		init string
		ms   uint64
	}
	var items []item
	maxMS := uint64(0)
	for i := range s.Segments {
		seg := &s.Segments[i]
		p := s.PeriodByID(seg.Period)
		if p == nil {
			continue
		}
		for j, tr := range seg.Tracks {
			if tr.Kind != kind || j >= len(p.Tracks) {
				continue
			}
			ms := millis(tr.D, p.Tracks[j].TimeScale)
			maxMS = max(maxMS, ms)
			items = append(items, item{seg, tr, p.Tracks[j].Init, ms})
		}
	}
	if len(items) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("#EXTM3U\n")
	fmt.Fprintf(&b, "#EXT-X-VERSION:%d\n", hlsVersion)
	// 4.3.3.1: every EXTINF rounded to the nearest integer must be ≤ the
	// target; rounding the maximum up is the stricter form.
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", max(1, (maxMS+999)/1000))
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", items[0].seg.Seq) // 4.3.3.2
	// 4.3.3.3: counts the discontinuities that slid out of the window.
	if s.DiscSeq > 0 {
		fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", s.DiscSeq)
	}
	// 4.3.5.1: every segment starts with a keyframe (video) or is audio.
	b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	lastInit := ""
	for _, it := range items {
		if it.seg.Disc {
			b.WriteString("#EXT-X-DISCONTINUITY\n") // 4.3.2.3
		}
		if it.init != lastInit {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q\n", it.init) // 4.3.2.5
			lastInit = it.init
		}
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", fmtPDT(it.seg.PDT))
		fmt.Fprintf(&b, "#EXTINF:%d.%03d,\n%s\n", it.ms/1000, it.ms%1000, it.tr.URI) // 4.3.2.1
	}
	if s.Ended {
		b.WriteString("#EXT-X-ENDLIST\n") // 4.3.3.4
	}
	return b.String()
}

// DefaultBandwidth is the BANDWIDTH announced before a segment was
// measured: a 720p-class stream, so a player does not rule it out.
const DefaultBandwidth = 2_500_000

// MultivariantPlaylist renders index.m3u8 for the newest period (RFC 8216
// 4.3.4): one EXT-X-STREAM-INF on the video playlist with the audio
// playlist as its EXT-X-MEDIA group, or the audio playlist alone. It
// returns "" before the stream has a period.
func MultivariantPlaylist(s *State) string {
	if len(s.Periods) == 0 {
		return ""
	}
	p := s.Periods[len(s.Periods)-1]
	var video, audio *Track
	var codecList []string
	for i := range p.Tracks {
		t := &p.Tracks[i]
		if t.Kind == Video && video == nil {
			video = t
			codecList = append(codecList, t.Codec)
		}
		if t.Kind == Audio && audio == nil {
			audio = t
			codecList = append(codecList, t.Codec)
		}
	}
	peak, avg := s.PeakBandwidth, s.AvgBandwidth
	if peak == 0 {
		peak, avg = DefaultBandwidth, DefaultBandwidth
	}
	var b strings.Builder
	b.WriteString("#EXTM3U\n")
	fmt.Fprintf(&b, "#EXT-X-VERSION:%d\n", hlsVersion)
	b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	// 4.3.4.2: BANDWIDTH is the peak segment bit rate, AVERAGE-BANDWIDTH
	// the average; CODECS lists every codec of the variant and its renditions.
	attrs := fmt.Sprintf("BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,CODECS=%q", peak, avg, strings.Join(codecList, ","))
	switch {
	case video != nil:
		if video.Width > 0 && video.Height > 0 {
			attrs += fmt.Sprintf(",RESOLUTION=%dx%d", video.Width, video.Height)
		}
		if audio != nil {
			// 4.3.4.1: the audio rendition group the variant refers to.
			lang := ""
			if languageTag(audio.Language) {
				lang = fmt.Sprintf(",LANGUAGE=%q", audio.Language)
			}
			fmt.Fprintf(&b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\"%s,DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"%d\",URI=%q\n",
				lang, audio.Channels, AudioPlaylistName)
			attrs += `,AUDIO="audio"`
		}
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:%s\n%s\n", attrs, VideoPlaylistName)
	case audio != nil:
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:%s\n%s\n", attrs, AudioPlaylistName)
	}
	return b.String()
}

// langTag is the shape of an RFC 5646 language tag, loosely: what may be
// put in a quoted attribute (RFC 8216 4.2) or an XML attribute unescaped.
var langTag = regexp.MustCompile(`^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$`)

// languageTag reports whether Track.Language is to be announced. A value
// that is no tag (it may come from a publisher's metadata) is left out
// rather than escaped into a manifest.
func languageTag(s string) bool { return s != "" && len(s) <= 35 && langTag.MatchString(s) }
