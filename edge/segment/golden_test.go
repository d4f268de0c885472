package segment

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func vTrack(token string) trackRec {
	return trackRec{Kind: "v", Codec: "avc1.64001f", TimeScale: 90000, Width: 1280, Height: 720, Init: "v/" + token + "/init.mp4"}
}

func aTrack(token string) trackRec {
	return trackRec{Kind: "a", Codec: "mp4a.40.2", TimeScale: 48000, SampleRate: 48000, Channels: 2, Init: "a/" + token + "/init.mp4"}
}

// seg builds a segment of both tracks starting at second at (2 s video, ~2 s audio).
func seg(seq uint64, period, token string, at float64, disc bool, tracks ...string) segRec {
	r := segRec{Seq: seq, Period: period, Disc: disc, PDT: t0.Add(time.Duration(at * float64(time.Second)))}
	n := "/" + itoa(seq) + ".m4s"
	for _, k := range tracks {
		if k == "v" {
			r.Tracks = append(r.Tracks, segTrack{Kind: "v", URI: "v/" + token + n, T: uint64(at * 90000), D: 180000, Bytes: 500_000})
		} else {
			r.Tracks = append(r.Tracks, segTrack{Kind: "a", URI: "a/" + token + n, T: uint64(at * 48000), D: 96256, Bytes: 32_000})
		}
	}
	return r
}

func itoa(n uint64) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// TestGolden renders the playlists and the MPD of fixed states with a
// fixed clock and compares them with testdata/<case>.<file>.golden
// (go test -run TestGolden -update rewrites them).
func TestGolden(t *testing.T) {
	live := &state{Format: stateFormat, Token: 7, AvailabilityStart: t0, NextSeq: 3, PeakBandwidth: 2_128_000, AvgBandwidth: 2_100_000,
		Periods:  []period{{ID: "p7", Token: 7, Tracks: []trackRec{vTrack("7"), aTrack("7")}}},
		Segments: []segRec{seg(0, "p7", "7", 0, false, "v", "a"), seg(1, "p7", "7", 2, false, "v", "a"), seg(2, "p7", "7", 4, false, "v", "a")}}
	ended := live.clone()
	ended.Ended = true
	p9 := period{ID: "p9", Token: 9, Start: 8 * time.Second, Tracks: []trackRec{vTrack("9"), aTrack("9")}}
	p9.Tracks[0].PTO, p9.Tracks[1].PTO = 6*90000, 6*48000
	reconnect := &state{Format: stateFormat, Token: 9, AvailabilityStart: t0, NextSeq: 13, DiscSeq: 1, PeakBandwidth: 2_200_000, AvgBandwidth: 2_000_000,
		Periods: []period{{ID: "p7", Token: 7, Tracks: []trackRec{vTrack("7"), aTrack("7")}}, p9},
		Segments: []segRec{seg(10, "p7", "7", 2, false, "v", "a"), seg(11, "p7", "7", 4, false, "v", "a"),
			seg(12, "p9", "9", 6, true, "v", "a")}}
	audioOnly := &state{Format: stateFormat, Token: 1, AvailabilityStart: t0, NextSeq: 2,
		Periods:  []period{{ID: "p1", Token: 1, Tracks: []trackRec{aTrack("1")}}},
		Segments: []segRec{seg(0, "p1", "1", 0, false, "a"), seg(1, "p1", "1", 2, false, "a")}}

	cases := map[string]*state{"live": live, "ended": ended, "reconnect": reconnect, "audio-only": audioOnly}
	for name, s := range cases {
		files := map[string]string{
			videoPlaylist:    mediaPlaylist(s, "v"),
			audioPlaylist:    mediaPlaylist(s, "a"),
			multivariantName: multivariantPlaylist(s),
			mpdName:          mpdDoc(s, 2*time.Second, 60*time.Second, t0.Add(10*time.Second)),
		}
		for file, got := range files {
			if got == "" {
				continue
			}
			path := filepath.Join("testdata", name+"."+file+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s: got\n%s\nwant\n%s", path, got, want)
			}
		}
	}
}

// TestStateRoundTrip: the state survives its own encoding (a restart).
func TestStateRoundTrip(t *testing.T) {
	s := &state{Format: stateFormat, Token: 3, AvailabilityStart: t0, NextSeq: 2, DiscSeq: 1,
		Periods:  []period{{ID: "p3", Token: 3, Tracks: []trackRec{vTrack("3")}}},
		Segments: []segRec{seg(1, "p3", "3", 0, true, "v")}}
	b, err := s.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseState(b)
	if err != nil {
		t.Fatal(err)
	}
	if mediaPlaylist(got, "v") != mediaPlaylist(s, "v") || got.Token != 3 || got.NextSeq != 2 {
		t.Errorf("round trip changed the state: %+v", got)
	}
}
