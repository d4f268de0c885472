package segment_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/playback"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const slotID keys.SlotID = "cam"

func backends(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("disk", func(t *testing.T) { fn(t, teststores.Disk(t)) })
	t.Run("minio", func(t *testing.T) { fn(t, teststores.MinIO(t)) })
}

func newSegmenter(t *testing.T, st store.Store) *segment.Segmenter {
	t.Helper()
	s, err := segment.New(segment.Config{SegmentDuration: 2 * time.Second, DVRWindow: 60 * time.Second}, segment.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// feed writes aus and returns the first error.
func feed(ctx context.Context, w *segment.Writer, aus []media.AccessUnit) error {
	for _, au := range aus {
		if err := w.Write(ctx, au); err != nil {
			return err
		}
	}
	return nil
}

type fakeSlots struct{}

func (fakeSlots) Lookup(_ context.Context, id keys.SlotID) (*slots.Slot, error) {
	if id != slotID {
		return nil, slots.ErrNotFound
	}
	return &slots.Slot{ID: id, Name: string(id), SegmentDuration: 2, FileExpiry: 300, DVRWindow: 60}, nil
}

func serve(t *testing.T, st store.Store) string {
	t.Helper()
	srv, err := playback.New(playback.Config{}, playback.Deps{Slots: fakeSlots{}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL + "/live/" + string(slotID) + "/"
}

func get(t *testing.T, st store.Store, rel string) string {
	t.Helper()
	rc, _, err := st.Get(t.Context(), keys.Media(slotID, keys.Primary, keys.RelPath(rel)))
	if err != nil {
		t.Fatalf("get %s: %v", rel, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(t *testing.T, st store.Store, rel string) bool {
	t.Helper()
	_, err := st.Stat(t.Context(), keys.Media(slotID, keys.Primary, keys.RelPath(rel)))
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// mediaPL is a parsed media playlist.
type mediaPL struct {
	target, seq, discSeq int
	durs                 []float64
	uris, maps           []string
	discs                int
	ended                bool
}

func parseMedia(t *testing.T, text string) mediaPL {
	t.Helper()
	var p mediaPL
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#EXT-X-TARGETDURATION:"):
			p.target, _ = strconv.Atoi(strings.TrimPrefix(l, "#EXT-X-TARGETDURATION:"))
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			p.seq, _ = strconv.Atoi(strings.TrimPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"))
		case strings.HasPrefix(l, "#EXT-X-DISCONTINUITY-SEQUENCE:"):
			p.discSeq, _ = strconv.Atoi(strings.TrimPrefix(l, "#EXT-X-DISCONTINUITY-SEQUENCE:"))
		case l == "#EXT-X-DISCONTINUITY":
			p.discs++
		case l == "#EXT-X-ENDLIST":
			p.ended = true
		case strings.HasPrefix(l, "#EXT-X-MAP:URI="):
			p.maps = append(p.maps, strings.Trim(strings.TrimPrefix(l, "#EXT-X-MAP:URI="), `"`))
		case strings.HasPrefix(l, "#EXTINF:"):
			d, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(l, "#EXTINF:"), ","), 64)
			if err != nil {
				t.Fatalf("EXTINF %q: %v", l, err)
			}
			p.durs = append(p.durs, d)
		case l != "" && !strings.HasPrefix(l, "#"):
			p.uris = append(p.uris, l)
		}
	}
	return p
}

var segNum = regexp.MustCompile(`/(\d+)\.m4s$`)

// validate is a mediastreamvalidator-style check of the stored output:
// target duration ≥ every EXTINF, contiguous media sequence, segment
// durations within 10 % of the target but the last, and every URI that a
// playlist or the MPD references exists in the store.
func validate(t *testing.T, st store.Store, target time.Duration, wantDiscs int) {
	t.Helper()
	index := get(t, st, "index.m3u8")
	for _, want := range []string{`CODECS="avc1.`, `mp4a.40.2"`, "RESOLUTION=320x240", `URI="audio.m3u8"`, "video.m3u8"} {
		if !strings.Contains(index, want) {
			t.Errorf("index.m3u8 lacks %s:\n%s", want, index)
		}
	}
	for _, name := range []string{"video.m3u8", "audio.m3u8"} {
		p := parseMedia(t, get(t, st, name))
		if len(p.uris) == 0 || len(p.uris) != len(p.durs) {
			t.Fatalf("%s: %d URIs, %d EXTINF", name, len(p.uris), len(p.durs))
		}
		if p.discs != wantDiscs {
			t.Errorf("%s: %d discontinuities, want %d", name, p.discs, wantDiscs)
		}
		for i, uri := range p.uris {
			m := segNum.FindStringSubmatch(uri)
			if m == nil {
				t.Fatalf("%s: URI %q has no number", name, uri)
			}
			if n, _ := strconv.Atoi(m[1]); n != p.seq+i {
				t.Errorf("%s: segment %d is %s, want number %d (contiguous)", name, i, uri, p.seq+i)
			}
			if !exists(t, st, uri) {
				t.Errorf("%s references missing %s", name, uri)
			}
			d := p.durs[i]
			if d > float64(p.target) {
				t.Errorf("%s: EXTINF %v > target %d", name, d, p.target)
			}
			// The last segment of a session may be short; others within 10 %.
			last := i == len(p.uris)-1 || !strings.HasPrefix(p.uris[i+1], uri[:strings.LastIndex(uri, "/")])
			if !last && math.Abs(d-target.Seconds()) > 0.1*target.Seconds() {
				t.Errorf("%s: segment %s lasts %v, target %v", name, uri, d, target)
			}
		}
		for _, m := range p.maps {
			if !exists(t, st, m) {
				t.Errorf("%s references missing init %s", name, m)
			}
		}
	}
	for _, uri := range mpdURIs(t, get(t, st, "manifest.mpd")) {
		if !exists(t, st, uri) {
			t.Errorf("manifest.mpd references missing %s", uri)
		}
	}
}

// mpdURIs expands every SegmentTemplate of the MPD into its URIs and
// fails when it names none.
func mpdURIs(t *testing.T, doc string) []string {
	t.Helper()
	uris := ingesttest.MPDURIs(t, doc)
	if len(uris) == 0 {
		t.Fatalf("MPD lists nothing:\n%s", doc)
	}
	return uris
}

// TestDecodeHLSAndDASH: real H.264 (B-frames) + AAC through the Writer,
// then ffprobe decodes the HLS and the DASH output through playback, and
// the output passes the validator checks.
func TestDecodeHLSAndDASH(t *testing.T) {
	in := genInput(t, 10, 50)
	backends(t, func(t *testing.T, st store.Store) {
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
		if s := w.Stats(); s.Segments != 5 || s.Bytes == 0 || s.LastSegmentBitrate == 0 {
			t.Errorf("stats %+v, want 5 segments with bytes and bitrate", s)
		}
		validate(t, st, 2*time.Second, 0)
		if p := parseMedia(t, get(t, st, "video.m3u8")); !p.ended {
			t.Error("video.m3u8 lacks EXT-X-ENDLIST after Close")
		}
		base := serve(t, st)
		for _, name := range []string{"index.m3u8", "manifest.mpd"} {
			frames := testenv.Probe(t, base+name)
			if frames["h264"] < in.videoFrames-5 || frames["aac"] < 400 {
				t.Errorf("%s: ffprobe decoded %v, input had %d video frames and 10 s of AAC", name, frames, in.videoFrames)
			}
		}
	})
}

// TestReconnect: a publisher closes and reconnects with a newer token on a
// new Segmenter (as after an edge restart): the stream continues its
// numbering after an EXT-X-DISCONTINUITY, DASH gets a second Period, and
// ffprobe still decodes it all.
func TestReconnect(t *testing.T) {
	in := genInput(t, 8, 50)
	st := teststores.Disk(t)
	ctx := t.Context()
	for token := uint64(1); token <= 2; token++ {
		w, err := newSegmenter(t, st).Start(ctx, segment.Stream{Slot: slotID, Role: keys.Primary, Token: token}, in.tracks)
		if err != nil {
			t.Fatal(err)
		}
		if err := feed(ctx, w, in.aus); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	validate(t, st, 2*time.Second, 1)
	p := parseMedia(t, get(t, st, "video.m3u8"))
	if p.seq != 0 || len(p.uris) != 8 || len(p.maps) != 2 {
		t.Errorf("video.m3u8: sequence %d, %d segments, %d maps; want 0, 8, 2", p.seq, len(p.uris), len(p.maps))
	}
	if n := strings.Count(get(t, st, "manifest.mpd"), "<Period "); n != 2 {
		t.Errorf("manifest.mpd has %d periods, want 2", n)
	}
	frames := testenv.Probe(t, serve(t, st)+"index.m3u8")
	if frames["h264"] < 2*in.videoFrames-10 {
		t.Errorf("ffprobe decoded %v across the reconnect, want about %d video frames", frames, 2*in.videoFrames)
	}
	// A writer with a token not larger than the state's is refused.
	if _, err := newSegmenter(t, st).Start(ctx, segment.Stream{Slot: slotID, Role: keys.Primary, Token: 2}, in.tracks); !errors.Is(err, segment.ErrFenced) {
		t.Errorf("Start with a used token: %v, want ErrFenced", err)
	}
}

// recorder keeps every version of the manifests as it is stored.
type recorder struct {
	store.Store
	mu       sync.Mutex
	versions map[string][]string
	puts     []string // every key put, in order
}

func (r *recorder) Put(ctx context.Context, key string, body io.Reader, m store.Meta) (store.Info, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return store.Info{}, err
	}
	info, err := r.Store.Put(ctx, key, bytes.NewReader(b), m)
	if err == nil {
		r.mu.Lock()
		r.puts = append(r.puts, key)
		if m.Class == store.ClassManifest {
			r.versions[key] = append(r.versions[key], string(b))
		}
		r.mu.Unlock()
	}
	return info, err
}

// TestFencing: writer A (token 1) writes; writer B (token 2) takes over and
// writes; A resumes and gets ErrFenced — from a Write or, since its uploads
// run behind its Writes, from Sync — and then from every Write and Close.
// No version of the public playlists ever goes backwards or references a
// segment A stored after the takeover.
func TestFencing(t *testing.T) {
	in := genInput(t, 12, 50)
	backends(t, func(t *testing.T, st store.Store) {
		ctx := t.Context()
		rec := &recorder{Store: st, versions: map[string][]string{}}
		seg := newSegmenter(t, rec)
		third := len(in.aus) / 3
		a, err := seg.Start(ctx, segment.Stream{Slot: slotID, Role: keys.Primary, Token: 1}, in.tracks)
		if err != nil {
			t.Fatal(err)
		}
		if err := feed(ctx, a, in.aus[:third]); err != nil {
			t.Fatal(err)
		}
		// A's first segments are listed before B takes over: then A's
		// next cut is certainly stored after the takeover.
		if err := a.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		b, err := seg.Start(ctx, segment.Stream{Slot: slotID, Role: keys.Primary, Token: 2}, in.tracks)
		if err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		takeover := len(rec.puts)
		rec.mu.Unlock()
		// Interleave: B writes its first third while A (paused past its
		// lease) resumes with the rest of its input.
		var aErr error
		for i, au := range in.aus[:third] {
			if err := b.Write(ctx, au); err != nil {
				t.Fatal(err)
			}
			if aErr == nil && third+i < len(in.aus) {
				aErr = a.Write(ctx, in.aus[third+i])
			}
		}
		for _, au := range in.aus[2*third:] {
			if aErr == nil {
				aErr = a.Write(ctx, au)
			}
		}
		if aErr == nil {
			// A's uploads run behind its Writes: the fencing may be
			// found after A's last Write, and Sync waits for it.
			aErr = a.Sync(ctx)
		}
		if !errors.Is(aErr, segment.ErrFenced) {
			t.Fatalf("A's Write after the takeover: %v, want ErrFenced", aErr)
		}
		if err := a.Write(ctx, in.aus[0]); !errors.Is(err, segment.ErrFenced) {
			t.Errorf("A's next Write: %v, want ErrFenced", err)
		}
		if err := a.Close(ctx); !errors.Is(err, segment.ErrFenced) {
			t.Errorf("A's Close: %v, want ErrFenced", err)
		}
		if err := feed(ctx, b, in.aus[third:]); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(ctx); err != nil {
			t.Fatal(err)
		}

		rec.mu.Lock()
		defer rec.mu.Unlock()
		prefix := keys.RolePrefix(slotID, keys.Primary)
		var stale []string // A's segments stored after B's Start
		for _, k := range rec.puts[takeover:] {
			if strings.HasPrefix(k, prefix+"v/1/") || strings.HasPrefix(k, prefix+"a/1/") {
				stale = append(stale, strings.TrimPrefix(k, prefix))
			}
		}
		if len(stale) == 0 {
			t.Fatal("A stored no segment after the takeover: the test did not exercise fencing")
		}
		for _, name := range []string{"video.m3u8", "audio.m3u8"} {
			versions := rec.versions[prefix+name]
			lastSeq, lastEnd := -1, -1
			for i, v := range versions {
				p := parseMedia(t, v)
				end := p.seq + len(p.uris) - 1
				if p.seq < lastSeq || end < lastEnd {
					t.Errorf("%s version %d went backwards: sequence %d..%d after %d..%d", name, i, p.seq, end, lastSeq, lastEnd)
				}
				lastSeq, lastEnd = p.seq, end
				for _, s := range stale {
					if strings.Contains(v, s) {
						t.Errorf("%s version %d references %s, stored by the fenced writer", name, i, s)
					}
				}
			}
		}
		for _, v := range rec.versions[prefix+"manifest.mpd"] {
			for _, s := range stale {
				for _, u := range mpdURIs(t, v) {
					if u == s {
						t.Errorf("manifest.mpd references %s, stored by the fenced writer", s)
					}
				}
			}
		}
		validate(t, st, 2*time.Second, 1)
	})
}

// TestGOPTooLong: keyframes every 10 s against a 2 s target (maximum 4 s).
func TestGOPTooLong(t *testing.T) {
	in := genInput(t, 12, 250)
	st := teststores.Disk(t)
	ctx := t.Context()
	w, err := newSegmenter(t, st).Start(ctx, segment.Stream{Slot: slotID, Role: keys.Primary, Token: 1}, in.tracks)
	if err != nil {
		t.Fatal(err)
	}
	err = feed(ctx, w, in.aus)
	if !errors.Is(err, segment.ErrGOPTooLong) {
		t.Fatalf("Write: %v, want ErrGOPTooLong", err)
	}
	if err := w.Write(ctx, in.aus[len(in.aus)-1]); !errors.Is(err, segment.ErrGOPTooLong) {
		t.Errorf("next Write: %v, want ErrGOPTooLong (sticky)", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Errorf("Close after ErrGOPTooLong: %v", err)
	}
}

func TestBadInputAndCodec(t *testing.T) {
	st := teststores.Disk(t)
	seg := newSegmenter(t, st)
	ctx := t.Context()
	if _, err := seg.Start(ctx, segment.Stream{Slot: slotID, Role: keys.Primary, Token: 1}, []media.Track{{ID: 1}}); !errors.Is(err, segment.ErrUnsupportedCodec) {
		t.Errorf("Start without a codec: %v, want ErrUnsupportedCodec", err)
	}
	if _, err := segment.New(segment.Config{DVRWindow: time.Second, SegmentDuration: 2 * time.Second}, segment.Deps{Store: st}); err == nil || !strings.Contains(err.Error(), "DVRWindow") {
		t.Errorf("New with DVRWindow < SegmentDuration: %v, want an error naming DVRWindow", err)
	}
	if _, err := segment.New(segment.Config{}, segment.Deps{}); err == nil || !strings.Contains(err.Error(), "Store") {
		t.Errorf("New without a store: %v", err)
	}
}

// TestStreamTiming: a stream's own segment duration and DVR window (the
// slot's settings) override the Segmenter's defaults.
func TestStreamTiming(t *testing.T) {
	in := genInput(t, 12, 50) // 2 s GOP
	st := teststores.Disk(t)
	ctx := t.Context()
	w, err := newSegmenter(t, st).Start(ctx, segment.Stream{Slot: slotID, Role: keys.Primary, Token: 1,
		SegmentDuration: 4 * time.Second, DVRWindow: 8 * time.Second}, in.tracks)
	if err != nil {
		t.Fatal(err)
	}
	if err := feed(ctx, w, in.aus); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	live := parseMedia(t, get(t, st, "video.m3u8"))
	if len(live.durs) == 0 || len(live.durs) > 3 {
		t.Fatalf("live playlist lists %d segments, want the 8 s window of 4 s segments", len(live.durs))
	}
	for _, d := range live.durs {
		if d < 3.6 || d > 4.4 {
			t.Errorf("segment of %.2f s, want 4 s ± 10 %%", d)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	validate(t, st, 4*time.Second, 0)
}
