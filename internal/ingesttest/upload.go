package ingesttest

import (
	"bufio"
	"encoding/xml"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/manifest"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

// CheckUploadOrder checks, from a Log of the store, the order in which the
// segmenter wrote the primary role of slot id (R-STORE-2):
//
//   - every object a manifest or the state names (segments, init files,
//     the media playlists the multivariant playlist names) had been stored
//     — its Put had returned — before that manifest's Put was called;
//   - each track's segments were stored in sequence order;
//   - the state and each media playlist only move forward: a commit never
//     lists fewer or older segments than the one before it (cut N+1's
//     commit never precedes cut N's).
//
// Only the session(s) recorded in log may be named. It returns the number
// of media segments stored.
func CheckUploadOrder(t testing.TB, log *teststores.Log, id keys.SlotID) int {
	t.Helper()
	prefix := keys.RolePrefix(id, keys.Primary)
	puts := log.Puts()
	stored := map[string]int{} // rel → index of its first Put in puts
	lastSeq := map[string]int{}
	lastEnd := map[string]int{} // manifest → the largest segment number it listed
	segments := 0
	for i, p := range puts {
		if !strings.HasPrefix(p.Key, prefix) {
			continue
		}
		rel := strings.TrimPrefix(p.Key, prefix)
		var named []string
		var end int
		switch {
		case p.Class == store.ClassSegment:
			dir, n, ok := segmentNumber(rel)
			if !ok {
				t.Errorf("segment %s has no number", rel)
				break
			}
			if last, seen := lastSeq[dir]; seen && n <= last {
				t.Errorf("segment %s stored after %s%d.m4s: out of order", rel, dir, last)
			}
			lastSeq[dir] = n
			segments++
		case rel == string(keys.StreamStateName):
			st, err := manifest.Unmarshal(p.Body)
			if err != nil {
				t.Fatalf("state version %d: %v", i, err)
			}
			for _, pr := range st.Periods {
				for _, tr := range pr.Tracks {
					named = append(named, tr.Init)
				}
			}
			for _, s := range st.Segments {
				for _, tr := range s.Tracks {
					if tr.URI != "" {
						named = append(named, tr.URI)
					}
				}
			}
		case strings.HasSuffix(rel, ".m3u8") && p.Class == store.ClassManifest:
			named, _ = playlistURIs(string(p.Body))
		case strings.HasSuffix(rel, ".mpd"):
			named = MPDURIs(t, string(p.Body))
		}
		for _, n := range named {
			if _, k, ok := segmentNumber(n); ok {
				end = max(end, k)
			}
		}
		for _, n := range named {
			j, ok := stored[n]
			switch {
			case !ok:
				t.Errorf("%s (put %d) names %s, which was not stored before it", rel, i, n)
			case puts[j].End.After(p.Start):
				t.Errorf("%s (put %d, called %v) names %s, whose put returned only at %v", rel, i,
					p.Start.Format("15:04:05.000"), n, puts[j].End.Format("15:04:05.000"))
			}
		}
		if named != nil && rel != "index.m3u8" {
			if last, seen := lastEnd[rel]; seen && end < last {
				t.Errorf("%s (put %d) lists up to %d after a version listing up to %d: a commit went backwards", rel, i, end, last)
			}
			lastEnd[rel] = end
		}
		if _, ok := stored[rel]; !ok {
			stored[rel] = i
		}
	}
	return segments
}

var segNum = regexp.MustCompile(`^(.*/)(\d+)\.m4s$`)

func segmentNumber(rel string) (dir string, n int, ok bool) {
	m := segNum.FindStringSubmatch(rel)
	if m == nil {
		return "", 0, false
	}
	n, err := strconv.Atoi(m[2])
	return m[1], n, err == nil
}

// playlistURIs are the URIs an HLS playlist names (segments, EXT-X-MAP,
// and a multivariant playlist's media playlists) and its media sequence.
func playlistURIs(text string) ([]string, int) {
	uris := []string{}
	seq := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			seq, _ = strconv.Atoi(strings.TrimPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"))
		case strings.Contains(l, `URI="`):
			_, u, _ := strings.Cut(l, `URI="`)
			u, _, _ = strings.Cut(u, `"`)
			uris = append(uris, u)
		case l != "" && !strings.HasPrefix(l, "#"):
			uris = append(uris, l)
		}
	}
	return uris, seq
}

// MPDURIs expands every SegmentTemplate of an MPD into the URIs it names.
func MPDURIs(t testing.TB, doc string) []string {
	t.Helper()
	var m struct {
		Periods []struct {
			Sets []struct {
				Tmpl struct {
					Init  string `xml:"initialization,attr"`
					Media string `xml:"media,attr"`
					Start int    `xml:"startNumber,attr"`
					Ss    []struct {
						R int `xml:"r,attr"`
					} `xml:"SegmentTimeline>S"`
				} `xml:"SegmentTemplate"`
			} `xml:"AdaptationSet"`
		} `xml:"Period"`
	}
	if err := xml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("MPD: %v\n%s", err, doc)
	}
	uris := []string{}
	for _, p := range m.Periods {
		for _, as := range p.Sets {
			uris = append(uris, as.Tmpl.Init)
			n := as.Tmpl.Start
			for _, s := range as.Tmpl.Ss {
				for range s.R + 1 {
					uris = append(uris, strings.ReplaceAll(as.Tmpl.Media, "$Number$", strconv.Itoa(n)))
					n++
				}
			}
		}
	}
	return uris
}

// CheckListedStored checks that every segment and init file the last
// committed media playlists of slot id's primary role name is in the
// store — nothing acknowledged was lost — and returns the video
// playlist's segment URIs.
func (w *World) CheckListedStored(t testing.TB, id keys.SlotID) []string {
	t.Helper()
	var video []string
	for _, name := range []string{"video.m3u8", "audio.m3u8"} {
		uris, _ := playlistURIs(w.Get(t, id, name))
		for _, u := range uris {
			if !w.Exists(t, id, u) {
				t.Errorf("%s lists %s, which is not in the store", name, u)
			}
			if name == "video.m3u8" && strings.HasSuffix(u, ".m4s") {
				video = append(video, u)
			}
		}
	}
	return video
}
