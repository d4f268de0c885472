package manifest

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/manifest/")

// goldenDir is the repository's top-level testdata/manifest.
var goldenDir = filepath.Join("..", "..", "testdata", "manifest")

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func vTrack(token string) Track {
	return Track{Kind: Video, Codec: "avc1.64001f", TimeScale: 90000, Width: 1280, Height: 720, Init: "v/" + token + "/init.mp4"}
}

func aTrack(token string) Track {
	return Track{Kind: Audio, Codec: "mp4a.40.2", TimeScale: 48000, SampleRate: 48000, Channels: 2, Init: "a/" + token + "/init.mp4"}
}

// seg builds a segment of the given track kinds starting at second at
// (2 s video, ~2 s audio).
func seg(seq uint64, period, token string, at float64, disc bool, kinds ...Kind) Segment {
	r := Segment{Seq: seq, Period: period, Disc: disc, PDT: t0.Add(time.Duration(at * float64(time.Second)))}
	n := "/" + strconv.FormatUint(seq, 10) + ".m4s"
	for _, k := range kinds {
		if k == Video {
			r.Tracks = append(r.Tracks, SegmentTrack{Kind: Video, URI: "v/" + token + n, T: uint64(at * 90000), D: 180000, Bytes: 500_000})
		} else {
			r.Tracks = append(r.Tracks, SegmentTrack{Kind: Audio, URI: "a/" + token + n, T: uint64(at * 48000), D: 96256, Bytes: 32_000})
		}
	}
	return r
}

// goldenCases are fixed states covering what the renderers distinguish:
// a live window, the same ended, a reconnect (two periods, a discontinuity
// that slid out of the window and one inside it), audio only, and an audio
// track with a language.
func goldenCases() map[string]*State {
	live := &State{Format: StateFormat, Token: 7, AvailabilityStart: t0, NextSeq: 3, PeakBandwidth: 2_128_000, AvgBandwidth: 2_100_000,
		Periods:  []Period{{ID: "p7", Token: 7, Tracks: []Track{vTrack("7"), aTrack("7")}}},
		Segments: []Segment{seg(0, "p7", "7", 0, false, Video, Audio), seg(1, "p7", "7", 2, false, Video, Audio), seg(2, "p7", "7", 4, false, Video, Audio)}}
	ended := live.Clone()
	ended.Ended = true
	p9 := Period{ID: "p9", Token: 9, Start: 8 * time.Second, Tracks: []Track{vTrack("9"), aTrack("9")}}
	p9.Tracks[0].PTO, p9.Tracks[1].PTO = 6*90000, 6*48000
	reconnect := &State{Format: StateFormat, Token: 9, AvailabilityStart: t0, NextSeq: 13, DiscSeq: 1, PeakBandwidth: 2_200_000, AvgBandwidth: 2_000_000,
		Periods: []Period{{ID: "p7", Token: 7, Tracks: []Track{vTrack("7"), aTrack("7")}}, p9},
		Segments: []Segment{seg(10, "p7", "7", 2, false, Video, Audio), seg(11, "p7", "7", 4, false, Video, Audio),
			seg(12, "p9", "9", 6, true, Video, Audio)}}
	audioOnly := &State{Format: StateFormat, Token: 1, AvailabilityStart: t0, NextSeq: 2,
		Periods:  []Period{{ID: "p1", Token: 1, Tracks: []Track{aTrack("1")}}},
		Segments: []Segment{seg(0, "p1", "1", 0, false, Audio), seg(1, "p1", "1", 2, false, Audio)}}
	language := live.Clone()
	language.Periods = []Period{{ID: "p7", Token: 7, Tracks: []Track{vTrack("7"), aTrack("7")}}}
	language.Periods[0].Tracks[1].Language = "pt-BR"
	return map[string]*State{"live": live, "ended": ended, "reconnect": reconnect, "audio-only": audioOnly, "language": language}
}

// render is every file the package writes for a state: the public
// manifests, the state object, and the tombstone left at the legacy name.
// A file that would not be written (no segment of that kind) is absent.
func render(t *testing.T, s *State) map[string]string {
	t.Helper()
	state, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	tomb, err := marshalLegacy(tombstone(s))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		VideoPlaylistName: MediaPlaylist(s, Video),
		AudioPlaylistName: MediaPlaylist(s, Audio),
		MultivariantName:  MultivariantPlaylist(s),
		MPDName:           MPD(s, Timing{SegmentDuration: 2 * time.Second, DVRWindow: 60 * time.Second}, t0.Add(10*time.Second)),
		"_state.json":     string(state),
		"state.m3u8":      string(tomb),
	}
	for name, body := range files {
		if body == "" {
			delete(files, name)
		}
	}
	return files
}

// TestGolden renders every case and compares each file with
// testdata/manifest/<case>.<file>.golden; go test -run TestGolden -update
// rewrites them. A golden file no case produces fails the test (a renamed
// case must not leave a stale file behind that nobody checks).
func TestGolden(t *testing.T) {
	want := map[string]bool{}
	for name, s := range goldenCases() {
		for file, got := range render(t, s) {
			path := filepath.Join(goldenDir, name+"."+file+".golden")
			want[filepath.Base(path)] = true
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%v (run go test -run TestGolden -update)", err)
				continue
			}
			if got != string(b) {
				t.Errorf("%s: got\n%s\nwant\n%s", path, got, b)
			}
		}
	}
	found, err := filepath.Glob(filepath.Join(goldenDir, "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	var stale []string
	for _, f := range found {
		if !want[filepath.Base(f)] {
			stale = append(stale, f)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("golden files no case renders: %s", strings.Join(stale, ", "))
	}
}

// TestStateRoundTrip: every golden state decodes to the case it was
// rendered from (a writer restarting on it continues the same stream), and
// the tombstone decodes to the same state under the writer's token.
func TestStateRoundTrip(t *testing.T) {
	for name, s := range goldenCases() {
		want, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(goldenDir, name+"._state.json.golden"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if again, _ := Marshal(got); !bytes.Equal(again, want) {
			t.Errorf("%s: state changed by its encoding:\n%s\nwant\n%s", name, again, want)
		}
		tb, err := os.ReadFile(filepath.Join(goldenDir, name+".state.m3u8.golden"))
		if err != nil {
			t.Fatal(err)
		}
		d, err := parseLegacy(tb)
		if err != nil {
			t.Fatalf("%s tombstone: %v", name, err)
		}
		if d.owner() != s.Token || d.MovedTo != "_state.json" {
			t.Errorf("%s tombstone: owner %d moved to %q, want %d, _state.json", name, d.owner(), d.MovedTo, s.Token)
		}
		inner := d.State
		inner.Token = d.owner()
		if again, _ := Marshal(&inner); !bytes.Equal(again, want) {
			t.Errorf("%s tombstone holds another state:\n%s\nwant\n%s", name, again, want)
		}
	}
}

// TestLegacyState: the state.m3u8 the previous release wrote (a fixed
// file, never rewritten by -update) decodes to the state it was written
// from, the reconnect case.
func TestLegacyState(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(goldenDir, "legacy", "reconnect.state.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseLegacy(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.MovedTo != "" || d.owner() != 9 {
		t.Errorf("a legacy state read as a tombstone: %+v", d)
	}
	got, _ := Marshal(&d.State)
	want, _ := Marshal(goldenCases()["reconnect"])
	if !bytes.Equal(got, want) {
		t.Errorf("legacy state decoded as\n%s\nwant\n%s", got, want)
	}
	for _, bad := range []string{"", "#EXTM3U\n", "#EXTM3U\n" + legacyTag + "{", "#EXTM3U\n" + legacyTag + `{"format":2}`} {
		if _, err := parseLegacy([]byte(bad)); !errors.Is(err, ErrCorruptState) {
			t.Errorf("parseLegacy(%q) = %v, want ErrCorruptState", bad, err)
		}
	}
}
