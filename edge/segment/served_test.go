package segment_test

import (
	"net/http"
	"testing"

	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

// TestStateNotServed: while a stream is live, playback serves its
// playlists and answers 404 for the state object and the legacy name,
// both of which are in the store.
func TestStateNotServed(t *testing.T) {
	in := genInput(t, 6, 50)
	backends(t, func(t *testing.T, st store.Store) {
		ctx := t.Context()
		w, err := newSegmenter(t, st).Start(ctx, segment.Stream{Slot: slotID, Role: keys.Primary, Token: 1}, in.tracks)
		if err != nil {
			t.Fatal(err)
		}
		if err := feed(ctx, w, in.aus[:len(in.aus)*2/3]); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		base := serve(t, st)
		for _, rel := range []string{"index.m3u8", "video.m3u8", "manifest.mpd"} {
			if code := status(t, base+rel); code != 200 {
				t.Errorf("live %s: %d, want 200", rel, code)
			}
		}
		for _, rel := range []keys.RelPath{keys.StreamStateName, keys.LegacyStreamStateName} {
			if !exists(t, st, string(rel)) {
				t.Fatalf("%s is not in the store: the 404 below would prove nothing", rel)
			}
			if code := status(t, base+string(rel)); code != 404 {
				t.Errorf("live %s: %d, want 404", rel, code)
			}
		}
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func status(t *testing.T, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
