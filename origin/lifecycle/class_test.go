package lifecycle

import (
	"testing"

	"github.com/liveingest/liveingest/origin/store"
)

func TestClassOf(t *testing.T) {
	for _, c := range []struct {
		key  string
		want store.Class
	}{
		{"live/a/primary/index.m3u8", store.ClassManifest},
		{"live/a/primary/720p/stream.M3U8", store.ClassManifest},
		{"live/a/primary/manifest.mpd", store.ClassManifest},
		{"live/a/primary/video.init", store.ClassInit},
		{"live/a/primary/init.mp4", store.ClassInit},
		{"live/a/primary/init-stream0.m4s", store.ClassInit},
		{"live/a/primary/720p/Init_0.mp4", store.ClassInit},
		{"live/a/primary/seg00001.ts", store.ClassSegment},
		{"live/a/primary/chunk-stream0-00001.m4s", store.ClassSegment},
		{"live/a/primary/m3u8.ts", store.ClassSegment},
		{"live/a/primary/initial/seg1.ts", store.ClassSegment}, // only the file name counts
		{"live/a/primary/mpd", store.ClassSegment},
		{"live/a/primary/_state.json", store.ClassState},
		{"live/a/primary/state.m3u8", store.ClassManifest}, // the legacy name: kept like a manifest
		{"live/a/primary/other.json", store.ClassSegment},
	} {
		if got := ClassOf(c.key); got != c.want {
			t.Errorf("ClassOf(%q) = %q, want %q", c.key, got, c.want)
		}
	}
}
