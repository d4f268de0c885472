package segment_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

// TestReconnectAfterUpgrade: a stream written before the state moved has
// its state in state.m3u8 (framed as a playlist) and no _state.json. A
// publisher reconnecting to an upgraded edge continues it — numbering on
// after an EXT-X-DISCONTINUITY, one more DASH Period — instead of being
// fenced or restarting at sequence 0, and ffprobe decodes both sessions.
func TestReconnectAfterUpgrade(t *testing.T) {
	in := genInput(t, 8, 50)
	st := teststores.Disk(t)
	ctx := t.Context()
	w, err := newSegmenter(t, st).Start(ctx, segment.Stream{Slot: slotID, Role: keys.Primary, Token: 1}, in.tracks)
	if err != nil {
		t.Fatal(err)
	}
	if err := feed(ctx, w, in.aus); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Turn the store into what the earlier release left: its state in
	// state.m3u8 as that release framed it, no _state.json.
	var js bytes.Buffer
	if err := json.Compact(&js, []byte(get(t, st, string(keys.StreamStateName)))); err != nil {
		t.Fatal(err)
	}
	legacy := "#EXTM3U\n# liveingest segmenter state: not a playlist for players.\n#EXT-X-LIVEINGEST-STATE:" + js.String() + "\n"
	if _, err := st.Put(ctx, keys.LegacyStreamState(slotID, keys.Primary), strings.NewReader(legacy),
		store.Meta{Class: store.ClassManifest, ContentType: "application/vnd.apple.mpegurl"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, keys.StreamState(slotID, keys.Primary)); err != nil {
		t.Fatal(err)
	}
	before := parseMedia(t, get(t, st, "video.m3u8"))

	w, err = newSegmenter(t, st).Start(ctx, segment.Stream{Slot: slotID, Role: keys.Primary, Token: 2}, in.tracks)
	if errors.Is(err, segment.ErrFenced) {
		t.Fatalf("the reconnect after the upgrade was fenced: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := feed(ctx, w, in.aus); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	validate(t, st, 2*time.Second, 1)
	p := parseMedia(t, get(t, st, "video.m3u8"))
	if p.seq != before.seq || len(p.uris) != 2*len(before.uris) || len(p.maps) != 2 {
		t.Errorf("video.m3u8 after the upgrade: sequence %d, %d segments, %d maps; want %d, %d, 2",
			p.seq, len(p.uris), len(p.maps), before.seq, 2*len(before.uris))
	}
	if n := strings.Count(get(t, st, "manifest.mpd"), "<Period "); n != 2 {
		t.Errorf("manifest.mpd has %d periods, want 2", n)
	}
	frames := testenv.Probe(t, serve(t, st)+"index.m3u8")
	if frames["h264"] < 2*in.videoFrames-10 {
		t.Errorf("ffprobe decoded %v across the upgrade, want about %d video frames", frames, 2*in.videoFrames)
	}
}
