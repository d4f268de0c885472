package playback_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/manifest"
	"github.com/liveingest/liveingest/origin/playback"
	"github.com/liveingest/liveingest/origin/store"
)

// liveStream writes what a live stream of slot cam has in the store: an
// init file and a segment, then the stream state and public manifests
// through origin/manifest (as the segmenter does), and returns the state
// object's stored info.
func liveStream(t *testing.T, st store.Store) store.Info {
	t.Helper()
	ctx := t.Context()
	for rel, class := range map[string]store.Class{"v/3/init.mp4": store.ClassInit, "v/3/0.m4s": store.ClassSegment} {
		if _, err := st.Put(ctx, keys.Media("cam", keys.Primary, keys.RelPath(rel)), strings.NewReader(rel), store.Meta{Class: class}); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := manifest.Open(ctx, manifest.Config{Slot: "cam", Role: keys.Primary, Token: 3,
		Timing: manifest.Timing{SegmentDuration: 2 * time.Second, DVRWindow: 60 * time.Second}}, manifest.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ns := ms.State().Clone()
	first := manifest.Segment{Seq: 0, Period: "p3", PDT: time.Now(),
		Tracks: []manifest.SegmentTrack{{Kind: manifest.Video, URI: "v/3/0.m4s", D: 180000, Bytes: 3}}}
	tracks := []manifest.Track{{Kind: manifest.Video, Codec: "avc1.64001f", TimeScale: 90000, Width: 320, Height: 240, Init: "v/3/init.mp4"}}
	ns.Periods = append(ns.Periods, ns.OpenPeriod("p3", 3, tracks, first))
	ns.Segments, ns.NextSeq = append(ns.Segments, first), 1
	if err := ms.Commit(ctx, ns); err != nil {
		t.Fatal(err)
	}
	info, err := st.Stat(ctx, keys.StreamState("cam", keys.Primary))
	if err != nil {
		t.Fatalf("the live stream has no state object: %v", err)
	}
	return info
}

// TestInternalObjectsNotServed: of a live stream, the public manifests,
// init file and segment are served; the stream state (by its name, with
// every kind of request, even one that names its ETag) and the tombstone
// at the legacy name answer the same 404 as a missing object.
func TestInternalObjectsNotServed(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		state := liveStream(t, st)
		ts := serve(t, st, playback.Config{}, fakeSlots{"cam": slot("cam")})
		base := ts.URL + "/live/cam/"
		for _, rel := range []string{"index.m3u8", "video.m3u8", "manifest.mpd", "v/3/init.mp4", "v/3/0.m4s"} {
			if resp, _ := do(t, http.MethodGet, base+rel, nil); resp.StatusCode != 200 {
				t.Errorf("GET %s: %d, want 200", rel, resp.StatusCode)
			}
		}
		_, missing := do(t, http.MethodGet, base+"nothing-here.m4s", nil)
		requests := []struct {
			method string
			hdr    map[string]string
		}{
			{http.MethodGet, nil},
			{http.MethodHead, nil},
			{http.MethodGet, map[string]string{"Range": "bytes=0-9"}},
			{http.MethodGet, map[string]string{"If-None-Match": state.ETag}},
		}
		for _, rel := range []string{string(keys.StreamStateName), string(keys.LegacyStreamStateName)} {
			for _, r := range requests {
				resp, body := do(t, r.method, base+rel, r.hdr)
				if resp.StatusCode != 404 {
					t.Errorf("%s %s %v: %d, want 404", r.method, rel, r.hdr, resp.StatusCode)
				}
				if r.method == http.MethodGet && body != missing {
					t.Errorf("%s %s: body %q differs from a missing object's %q", r.method, rel, body, missing)
				}
				if resp.Header.Get("ETag") != "" || strings.Contains(body, "token") {
					t.Errorf("%s %s: the 404 tells something of the object: %v %q", r.method, rel, resp.Header, body)
				}
			}
		}
	})
}

// TestOnlyPublicClassesServed: objects under a role prefix are served
// only when both their name and their stored class are public (segment,
// init, manifest). Every other class answers 404, whatever the name looks
// like, and so does the internal namespace whatever the class.
func TestOnlyPublicClassesServed(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		ts := serve(t, st, playback.Config{}, fakeSlots{"cam": slot("cam")})
		cases := []struct {
			rel   string
			class store.Class
			code  int
		}{
			{"seg1.m4s", store.ClassSegment, 200},
			{"seg2.ts", "", 200}, // no class given: a segment
			{"v/init.mp4", store.ClassInit, 200},
			{"index.m3u8", store.ClassManifest, 200},
			{"720p/stream.m3u8", store.ClassManifest, 200},
			// Outside the public classes, with names that look public.
			{"config.m3u8", store.ClassConfig, 404},
			{"slot.json", store.ClassConfig, 404},
			{"other.mpd", store.ClassState, 404},
			{"seg3.m4s", store.ClassState, 404},
			// The internal namespace and the legacy state name, whatever
			// class they were stored with.
			{"_state.json", store.ClassState, 404},
			{"_state.json", store.ClassSegment, 404},
			{"_jobs/queue.json", store.ClassSegment, 404},
			{"state.m3u8", store.ClassManifest, 404},
		}
		for _, c := range cases {
			key := keys.Media("cam", keys.Primary, keys.RelPath(c.rel))
			if _, err := st.Put(t.Context(), key, strings.NewReader("body of "+c.rel), store.Meta{Class: c.class}); err != nil {
				t.Fatal(err)
			}
			for _, m := range []string{http.MethodGet, http.MethodHead} {
				resp, body := do(t, m, ts.URL+"/live/cam/"+c.rel, nil)
				if resp.StatusCode != c.code {
					t.Errorf("%s %s (class %q): %d, want %d", m, c.rel, c.class, resp.StatusCode, c.code)
				}
				if c.code == 404 && strings.Contains(body, "body of") {
					t.Errorf("%s %s: 404 carries the object: %q", m, c.rel, body)
				}
			}
		}
	})
}
