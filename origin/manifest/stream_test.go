package manifest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/manifest"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const slot keys.SlotID = "cam"

var timing = manifest.Timing{SegmentDuration: 2 * time.Second, DVRWindow: 60 * time.Second}

func backends(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("disk", func(t *testing.T) { fn(t, teststores.Disk(t)) })
	t.Run("minio", func(t *testing.T) { fn(t, teststores.MinIO(t)) })
}

// counting counts the store operations on each key.
type counting struct {
	store.Store
	mu   sync.Mutex
	gets map[string]int
	puts map[string]int
}

func count(st store.Store) *counting {
	return &counting{Store: st, gets: map[string]int{}, puts: map[string]int{}}
}

func (c *counting) Get(ctx context.Context, key string) (io.ReadCloser, store.Info, error) {
	c.mu.Lock()
	c.gets[key]++
	c.mu.Unlock()
	return c.Store.Get(ctx, key)
}

func (c *counting) Put(ctx context.Context, key string, r io.Reader, m store.Meta) (store.Info, error) {
	c.mu.Lock()
	c.puts[key]++
	c.mu.Unlock()
	return c.Store.Put(ctx, key, r, m)
}

func (c *counting) total() (n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.puts {
		n += v
	}
	return n
}

func open(t *testing.T, st store.Store, token uint64) (*manifest.Stream, error) {
	t.Helper()
	return manifest.Open(t.Context(), manifest.Config{Slot: slot, Role: keys.Primary, Token: token, Timing: timing}, manifest.Deps{Store: st})
}

func mustOpen(t *testing.T, st store.Store, token uint64) *manifest.Stream {
	t.Helper()
	ms, err := open(t, st, token)
	if err != nil {
		t.Fatalf("Open with token %d: %v", token, err)
	}
	return ms
}

// appendSegment commits the stream's next 2 s video segment under the
// stream's period p<token> (opened with the first segment of the session).
func appendSegment(t *testing.T, ms *manifest.Stream, token uint64) error {
	t.Helper()
	ns := ms.State().Clone()
	tok := strconv.FormatUint(token, 10)
	seq := ns.NextSeq
	start := uint64(ns.TimelineEnd() / time.Millisecond * 90)
	seg := manifest.Segment{Seq: seq, Period: "p" + tok, PDT: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).Add(time.Duration(seq) * 2 * time.Second),
		Tracks: []manifest.SegmentTrack{{Kind: manifest.Video, URI: "v/" + tok + "/" + strconv.FormatUint(seq, 10) + ".m4s", T: start, D: 180000, Bytes: 1000}}}
	if ns.PeriodByID(seg.Period) == nil {
		tracks := []manifest.Track{{Kind: manifest.Video, Codec: "avc1.64001f", TimeScale: 90000, Width: 320, Height: 240, Init: "v/" + tok + "/init.mp4"}}
		ns.Periods = append(ns.Periods, ns.OpenPeriod(seg.Period, token, tracks, seg))
		seg.Disc = len(ns.Segments) > 0
	}
	ns.Segments = append(ns.Segments, seg)
	ns.NextSeq = seq + 1
	ns.Slide(timing.DVRWindow)
	return ms.Commit(t.Context(), ns)
}

func read(t *testing.T, st store.Store, key string) (string, store.Info) {
	t.Helper()
	rc, info, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), info
}

func storedState(t *testing.T, st store.Store) *manifest.State {
	t.Helper()
	s, _, err := manifest.Load(t.Context(), st, keys.StreamState(slot, keys.Primary))
	if err != nil || s == nil {
		t.Fatalf("load state: %v %v", s, err)
	}
	return s
}

// TestFencing: B (token 2) opens the stream A (token 1) writes; A's next
// Commit is fenced and writes nothing, and every later one returns at once;
// Open refuses tokens not above the stored one; the public playlist shows
// B's stream, which continued A's numbering.
func TestFencing(t *testing.T) {
	backends(t, func(t *testing.T, raw store.Store) {
		st := count(raw)
		a := mustOpen(t, st, 1)
		if err := appendSegment(t, a, 1); err != nil {
			t.Fatal(err)
		}
		b := mustOpen(t, st, 2)
		if got := b.State(); got.Token != 2 || got.NextSeq != 1 || len(got.Segments) != 1 {
			t.Fatalf("B's state %+v: want token 2 continuing after segment 0", got)
		}
		if err := appendSegment(t, b, 2); err != nil {
			t.Fatal(err)
		}
		before := st.total()
		if err := appendSegment(t, a, 1); !errors.Is(err, manifest.ErrFenced) {
			t.Fatalf("A's Commit after B's Open: %v, want ErrFenced", err)
		}
		if !a.Fenced() {
			t.Error("A not Fenced() after ErrFenced")
		}
		if n := st.total() - before; n != 1 {
			t.Errorf("A's fenced Commit made %d writes, want the one state write that failed", n)
		}
		before = st.total()
		if err := appendSegment(t, a, 1); !errors.Is(err, manifest.ErrFenced) || st.total() != before {
			t.Errorf("A's next Commit: %v after %d writes, want ErrFenced at once", err, st.total()-before)
		}
		for _, tok := range []uint64{1, 2} {
			if _, err := open(t, st, tok); !errors.Is(err, manifest.ErrFenced) {
				t.Errorf("Open with token %d after token 2: %v, want ErrFenced", tok, err)
			}
		}
		video, _ := read(t, st, keys.Media(slot, keys.Primary, manifest.VideoPlaylistName))
		if !strings.Contains(video, "v/2/1.m4s") || !strings.Contains(video, "#EXT-X-DISCONTINUITY\n") || strings.Count(video, "#EXTINF") != 2 {
			t.Errorf("video.m3u8 is not B's continuation of A's stream:\n%s", video)
		}
		if s := storedState(t, st); s.Token != 2 || s.NextSeq != 2 {
			t.Errorf("stored state token %d next %d, want 2, 2", s.Token, s.NextSeq)
		}
	})
}

// TestOlderWriterRaceRetried: a state written under a smaller token
// between two commits (a stale writer whose condition still held) makes
// the next Commit's condition fail; the writer re-reads, sees the smaller
// token, and retries on top of it instead of giving up.
func TestOlderWriterRaceRetried(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		ms := mustOpen(t, st, 5)
		if err := appendSegment(t, ms, 5); err != nil {
			t.Fatal(err)
		}
		key := keys.StreamState(slot, keys.Primary)
		cur, etag, err := manifest.Load(t.Context(), st, key)
		if err != nil {
			t.Fatal(err)
		}
		stale := cur.Clone()
		stale.Token = 4
		body, err := manifest.Marshal(stale)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(t.Context(), key, bytes.NewReader(body), store.Meta{IfMatch: etag, Class: store.ClassState}); err != nil {
			t.Fatal(err)
		}
		if err := appendSegment(t, ms, 5); err != nil {
			t.Fatalf("Commit after an older writer's write: %v, want a retry that succeeds", err)
		}
		if s := storedState(t, st); s.Token != 5 || s.NextSeq != 2 {
			t.Errorf("stored state token %d next %d, want 5, 2", s.Token, s.NextSeq)
		}
	})
}

// TestConcurrentOpen: of writers opening one stream at once, the one with
// the largest token ends up owning it, whatever the interleaving, and
// every other either was refused or is fenced at its first Commit.
func TestConcurrentOpen(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		const n = 4 // each other writer may win two writes (tombstone, state): 6 lost races stay under the retry bound
		streams := make([]*manifest.Stream, n+1)
		errs := make([]error, n+1)
		var wg sync.WaitGroup
		for tok := 1; tok <= n; tok++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				streams[tok], errs[tok] = manifest.Open(context.Background(),
					manifest.Config{Slot: slot, Role: keys.Primary, Token: uint64(tok), Timing: timing}, manifest.Deps{Store: st})
			}()
		}
		wg.Wait()
		if errs[n] != nil {
			t.Fatalf("the largest token's Open: %v", errs[n])
		}
		for tok := 1; tok < n; tok++ {
			switch {
			case errors.Is(errs[tok], manifest.ErrFenced):
			case errs[tok] != nil:
				t.Errorf("Open %d: %v, want nil or ErrFenced", tok, errs[tok])
			default:
				if err := appendSegment(t, streams[tok], uint64(tok)); !errors.Is(err, manifest.ErrFenced) {
					t.Errorf("Commit of %d after %d opened: %v, want ErrFenced", tok, n, err)
				}
			}
		}
		if err := appendSegment(t, streams[n], n); err != nil {
			t.Fatal(err)
		}
		if s := storedState(t, st); s.Token != n {
			t.Errorf("stored token %d, want %d", s.Token, n)
		}
	})
}

// legacyRelease is what a release before the state moved does with
// state.m3u8 (edge/segment's state.go of that release, reduced to its
// fencing decisions), so the tests can show how such a writer meets a
// stream this release migrated.
type legacyRelease struct {
	st    store.Store
	token uint64
	etag  string
}

const legacyTag = "#EXT-X-LIVEINGEST-STATE:"

// load decodes the legacy object as that release did: the JSON after the
// tag, unknown fields ignored.
func (l *legacyRelease) load(t *testing.T) (*manifest.State, string) {
	t.Helper()
	rc, info, err := l.st.Get(t.Context(), keys.LegacyStreamState(slot, keys.Primary))
	if errors.Is(err, store.ErrNotExist) {
		return nil, ""
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if js, ok := strings.CutPrefix(sc.Text(), legacyTag); ok {
			var s manifest.State
			if err := json.Unmarshal([]byte(js), &s); err != nil {
				t.Fatalf("the old release cannot read state.m3u8: %v", err)
			}
			return &s, info.ETag
		}
	}
	t.Fatal("state.m3u8 has no state tag")
	return nil, ""
}

// start is that release's claim: refused (fenced) when the state's token
// is ≥ its own.
func (l *legacyRelease) start(t *testing.T) (fenced bool) {
	s, etag := l.load(t)
	if s != nil && s.Token >= l.token {
		return true
	}
	if s == nil {
		s = &manifest.State{Format: 1}
	}
	s.Token = l.token
	l.etag = l.put(t, s, etag)
	return false
}

// commit is that release's state commit: conditional on its last ETag; on
// a failed condition it re-reads and is fenced by a larger token.
func (l *legacyRelease) commit(t *testing.T, s *manifest.State) (fenced bool) {
	if etag := l.put(t, s, l.etag); etag != "" {
		l.etag = etag
		return false
	}
	cur, _ := l.load(t)
	return cur != nil && cur.Token > l.token
}

func (l *legacyRelease) put(t *testing.T, s *manifest.State, etag string) string {
	t.Helper()
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	body := "#EXTM3U\n# liveingest segmenter state: not a playlist for players.\n" + legacyTag + string(js) + "\n"
	m := store.Meta{Class: store.ClassManifest, ContentType: "application/vnd.apple.mpegurl"}
	if etag == "" {
		m.IfNoneMatch = "*"
	} else {
		m.IfMatch = etag
	}
	info, err := l.st.Put(t.Context(), keys.LegacyStreamState(slot, keys.Primary), strings.NewReader(body), m)
	if errors.Is(err, store.ErrPrecondition) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return info.ETag
}

// TestMigration: a stream whose state an earlier release wrote to
// state.m3u8 continues under this release — same sequence numbers, window
// and periods, no fencing of the reconnecting writer — and the old name is
// read only while the new one is missing. The writer of the earlier
// release that was publishing is fenced at its next commit, and one that
// starts later is refused.
func TestMigration(t *testing.T) {
	backends(t, func(t *testing.T, raw store.Store) {
		st := count(raw)
		old := &legacyRelease{st: st, token: 9}
		if old.start(t) {
			t.Fatal("the old release could not start an empty stream")
		}
		legacyState := &manifest.State{Format: 1, Token: 9, NextSeq: 13, DiscSeq: 1, AvailabilityStart: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC),
			Periods: []manifest.Period{{ID: "p9", Token: 9, Tracks: []manifest.Track{{Kind: manifest.Video, Codec: "avc1.64001f", TimeScale: 90000, Init: "v/9/init.mp4"}}}},
			Segments: []manifest.Segment{{Seq: 12, Period: "p9", PDT: time.Date(2026, 11, 21, 10, 0, 24, 0, time.UTC),
				Tracks: []manifest.SegmentTrack{{Kind: manifest.Video, URI: "v/9/12.m4s", T: 24 * 90000, D: 180000, Bytes: 1000}}}}}
		if old.commit(t, legacyState) {
			t.Fatal("the old release was fenced on its own stream")
		}

		ms := mustOpen(t, st, 10)
		got := ms.State()
		if got.Token != 10 || got.NextSeq != 13 || got.DiscSeq != 1 || len(got.Segments) != 1 || got.Segments[0].Tracks[0].URI != "v/9/12.m4s" {
			t.Fatalf("the migrated stream does not continue the legacy one: %+v", got)
		}
		if err := appendSegment(t, ms, 10); err != nil {
			t.Fatal(err)
		}
		video, _ := read(t, st, keys.Media(slot, keys.Primary, manifest.VideoPlaylistName))
		for _, want := range []string{"#EXT-X-MEDIA-SEQUENCE:12\n", "#EXT-X-DISCONTINUITY-SEQUENCE:1\n", "#EXT-X-DISCONTINUITY\n", "v/9/12.m4s", "v/10/13.m4s"} {
			if !strings.Contains(video, want) {
				t.Errorf("video.m3u8 lacks %q:\n%s", want, video)
			}
		}

		// The old release's writer, still publishing, is fenced; one that
		// starts now is refused, even with a larger token than ours.
		if !old.commit(t, legacyState) {
			t.Error("the old release's commit after the migration was not fenced")
		}
		if later := (&legacyRelease{st: st, token: 1 << 40}); !later.start(t) {
			t.Error("the old release started on a migrated stream")
		}

		legacyKey := keys.LegacyStreamState(slot, keys.Primary)
		st.mu.Lock()
		readsBefore := st.gets[legacyKey]
		st.mu.Unlock()
		if _, err := open(t, st, 10); !errors.Is(err, manifest.ErrFenced) {
			t.Errorf("Open with the migrating writer's token: %v, want ErrFenced", err)
		}
		next := mustOpen(t, st, 11)
		if next.State().NextSeq != 14 {
			t.Errorf("the next session starts at %d, want 14", next.State().NextSeq)
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		if n := st.gets[legacyKey] - readsBefore; n != 0 {
			t.Errorf("state.m3u8 read %d times after the migration, want none", n)
		}
	})
}

// TestMigrationRefusesOlderToken: the legacy state's token fences like
// the new state's: a writer whose token is not above it is refused, and
// nothing is written.
func TestMigrationRefusesOlderToken(t *testing.T) {
	st := count(teststores.Disk(t))
	old := &legacyRelease{st: st, token: 9}
	old.start(t)
	before := st.total()
	for _, tok := range []uint64{3, 9} {
		if _, err := open(t, st, tok); !errors.Is(err, manifest.ErrFenced) {
			t.Errorf("Open with %d over a legacy state of token 9: %v, want ErrFenced", tok, err)
		}
	}
	if st.total() != before {
		t.Errorf("refused Opens wrote %d objects", st.total()-before)
	}
}

// TestMigrationCrash: a writer that left the tombstone and died before
// writing _state.json loses nothing: the next writer continues from the
// tombstone's state, and the dead writer's token stays fenced.
func TestMigrationCrash(t *testing.T) {
	raw := teststores.Disk(t)
	old := &legacyRelease{st: raw, token: 9}
	old.start(t)
	old.commit(t, &manifest.State{Format: 1, Token: 9, NextSeq: 40})
	// A store that fails the first write of _state.json: the crash.
	st := &failOnce{Store: raw, key: keys.StreamState(slot, keys.Primary)}
	if _, err := open(t, st, 10); err == nil {
		t.Fatal("Open succeeded although the state write failed")
	}
	if s, _ := (&legacyRelease{st: raw, token: 11}).load(t); s == nil || s.Token != math.MaxUint64 {
		t.Fatalf("no tombstone before the state write: %+v", s)
	}
	if _, err := open(t, raw, 10); !errors.Is(err, manifest.ErrFenced) {
		t.Errorf("the crashed writer's token reopened: %v, want ErrFenced", err)
	}
	if ms := mustOpen(t, raw, 11); ms.State().NextSeq != 40 {
		t.Errorf("after the crash the stream restarts at %d, want 40", ms.State().NextSeq)
	}
}

type failOnce struct {
	store.Store
	key    string
	failed bool
}

func (f *failOnce) Put(ctx context.Context, key string, r io.Reader, m store.Meta) (store.Info, error) {
	if key == f.key && !f.failed {
		f.failed = true
		return store.Info{}, errors.New("injected: the writer died here")
	}
	return f.Store.Put(ctx, key, r, m)
}

// TestFreshStreamTombstone: a stream this release begins carries a
// tombstone at the legacy name too, so an edge of the earlier release
// cannot start writing it during a rolling upgrade.
func TestFreshStreamTombstone(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		ms := mustOpen(t, st, 1)
		if err := appendSegment(t, ms, 1); err != nil {
			t.Fatal(err)
		}
		if old := (&legacyRelease{st: st, token: 1 << 40}); !old.start(t) {
			t.Error("the earlier release started on a stream this release began")
		}
		if s := storedState(t, st); s.Token != 1 || s.NextSeq != 1 {
			t.Errorf("state %+v after the refused start", s)
		}
	})
}

// TestCorruptState: an unreadable state is reported, never overwritten.
func TestCorruptState(t *testing.T) {
	st := count(teststores.Disk(t))
	key := keys.StreamState(slot, keys.Primary)
	if _, err := st.Put(t.Context(), key, strings.NewReader(`{"format": 99}`), store.Meta{Class: store.ClassState}); err != nil {
		t.Fatal(err)
	}
	before := st.total()
	if _, err := open(t, st, 1); !errors.Is(err, manifest.ErrCorruptState) {
		t.Errorf("Open over format 99: %v, want ErrCorruptState", err)
	}
	if st.total() != before {
		t.Error("Open wrote over an unreadable state")
	}
}
