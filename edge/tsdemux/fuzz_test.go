package tsdemux_test

import (
	"bytes"
	"errors"
	"github.com/liveingest/liveingest/edge/media"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/tsdemux"
)

// FuzzOpen feeds arbitrary bytes through Open and Next. Whatever the input,
// Open fails with one of its documented errors or returns tracks the
// segmenter takes, and every unit Next returns keeps media.AccessUnit's
// contract. The seed corpus in testdata/fuzz/FuzzOpen holds small real
// streams (H.264/H.265 with AAC/Opus, a wrapping clock, a restart, MPEG-2)
// besides empty and garbage input; crashers found are committed there,
// named after the bug.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0x47}, 188*3))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := tsdemux.Open(bytes.NewReader(data), tsdemux.Options{MaxDiscovery: 1 << 16})
		if err != nil {
			if !errors.Is(err, tsdemux.ErrNoProgram) && !errors.Is(err, tsdemux.ErrNoVideo) &&
				!errors.Is(err, tsdemux.ErrUnsupportedCodec) {
				t.Fatalf("Open: undocumented error %v", err)
			}
			return
		}
		tracks := d.Tracks()
		if len(tracks) == 0 || !tracks[0].IsVideo() {
			t.Fatalf("tracks %v: no video first", tracks)
		}
		for _, tr := range tracks {
			if !media.Supported(tr.Codec) {
				t.Fatalf("track %d: the segmenter refuses %s", tr.ID, media.CodecName(tr.Codec))
			}
		}
		last := map[int]time.Duration{}
		for n := 0; ; n++ {
			au, err := d.Next()
			if err != nil {
				if err != io.EOF {
					t.Fatalf("Next: %v, want io.EOF from a bytes.Reader", err)
				}
				break
			}
			if msg := checkAU(tracks, last, au); msg != "" {
				t.Fatalf("unit %d: %s", n, msg)
			}
		}
		if s := d.Stats(); s.DecodeErrors < 0 || s.Discontinuities < 0 || s.Dropped < 0 || s.ParamChanges < 0 {
			t.Fatalf("Stats = %+v", s)
		}
	})
}

// TestFuzzSeedsOpen proves the real seeds reach Next (a corpus that fails
// in Open would only fuzz the error paths).
func TestFuzzSeedsOpen(t *testing.T) {
	for _, name := range []string{"real_h264_aac", "real_h265_aac", "real_h264_opus", "real_h264_wrap",
		"real_h264_only", "real_h264_aac_restart"} {
		data := readSeed(t, name)
		res, err := demux(t, bytes.NewReader(data), tsdemux.Options{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if res.frames[1] == 0 || res.err != io.EOF {
			t.Errorf("%s: units %v, end %v", name, res.frames, res.err)
		}
	}
}

// readSeed decodes a seed file of testdata/fuzz/FuzzOpen ("go test fuzz
// v1" and one []byte("...") line).
func readSeed(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzOpen", name))
	if err != nil {
		t.Fatal(err)
	}
	_, lit, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	lit = strings.TrimSuffix(strings.TrimPrefix(lit, "[]byte("), ")")
	s, err := strconv.Unquote(lit)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return []byte(s)
}
