package manifest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/store"
)

// Config names the stream a writer takes and how it is timed.
type Config struct {
	Slot keys.SlotID // required
	Role keys.Role   // required
	// Token is the fencing token of the writer's lease: strictly larger
	// for every newer grant on the slot/role (coord.Lease.Token).
	Token uint64
	// Timing is announced in the MPD. Both durations must be positive.
	Timing Timing
}

// Deps are a Stream's collaborators.
type Deps struct {
	Store store.Store // required
	// Logger is the caller's logger; the package adds no attributes of its
	// own (the caller's name the component). Default: discard.
	Logger *slog.Logger
	// Now is the clock of the MPD's publishTime. Default: time.Now.
	Now func() time.Time
}

// maxCASRetries bounds the retries of a conditional write that lost a race
// to an older (or equal) token: each retry follows a real competing write,
// and an older writer stops after one failed write of its own.
const maxCASRetries = 8

// publicNames are the public manifests in the order Commit writes them:
// media playlists and the MPD, then the multivariant playlist that refers
// to the media playlists, so a player that reads index.m3u8 finds them.
var publicNames = []string{VideoPlaylistName, AudioPlaylistName, MPDName, MultivariantName}

// Stream is one writer's hold on a slot/role's stream: its committed state
// and the public manifests rendered from it.
//
// A Stream is used by one goroutine at a time (its methods are not safe
// for concurrent use); two writers of one stream are two Streams, possibly
// in two processes, and exclude each other through the store's conditional
// writes alone.
type Stream struct {
	store     store.Store
	log       *slog.Logger
	now       func() time.Time
	timing    Timing
	token     uint64
	prefix    string // keys.RolePrefix
	key       string // keys.StreamState
	legacyKey string // keys.LegacyStreamState

	st   *State
	etag string // of the state as last written or read
	// mu guards pubETag, pubLast and fenced, which the concurrent
	// manifest writes of one Commit share.
	mu      sync.Mutex
	pubETag map[string]string // ETag of each public manifest as last written or read
	pubLast map[string]string // content last written, to skip unchanged writes
	fenced  bool
}

// Open takes the stream of cfg.Slot/cfg.Role for the writer with
// cfg.Token: it reads the state, refuses with ErrFenced when the state
// already carries a token ≥ cfg.Token, and otherwise commits the state
// under cfg.Token (conditionally, retried when an older writer raced it),
// with Ended and the bandwidth figures reset; a stream that had segments
// continues from them. It then reads the ETags of the public manifests, so
// that the first Commit replaces them conditionally too.
//
// Open writes no public manifest. When the state object is missing it reads
// the legacy one and leaves a tombstone there (package documentation,
// Migration). It returns ErrCorruptState for a state it cannot read and
// store errors wrapped.
func Open(ctx context.Context, cfg Config, deps Deps) (*Stream, error) {
	if _, err := keys.ParseSlotID(string(cfg.Slot)); err != nil {
		return nil, fmt.Errorf("manifest: Config.Slot: %w", err)
	}
	if _, err := keys.ParseRole(string(cfg.Role)); err != nil {
		return nil, fmt.Errorf("manifest: Config.Role: %w", err)
	}
	if cfg.Timing.SegmentDuration <= 0 || cfg.Timing.DVRWindow <= 0 {
		return nil, fmt.Errorf("manifest: Config.Timing must have positive durations, got %+v", cfg.Timing)
	}
	if deps.Store == nil {
		return nil, errors.New("manifest: Deps.Store is required")
	}
	s := &Stream{
		store: deps.Store, log: deps.Logger, now: deps.Now, timing: cfg.Timing, token: cfg.Token,
		prefix:    keys.RolePrefix(cfg.Slot, cfg.Role),
		key:       keys.StreamState(cfg.Slot, cfg.Role),
		legacyKey: keys.LegacyStreamState(cfg.Slot, cfg.Role),
		pubETag:   map[string]string{}, pubLast: map[string]string{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.claim(ctx); err != nil {
		return nil, err
	}
	for _, name := range publicNames {
		info, err := s.store.Stat(ctx, s.prefix+name)
		switch {
		case errors.Is(err, store.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("manifest: stat %s: %w", name, err)
		default:
			s.pubETag[name] = info.ETag
		}
	}
	return s, nil
}

// State is the state as this writer last committed it. It must not be
// modified: Clone it, change the clone, Commit that.
func (s *Stream) State() *State { return s.st }

// Fenced reports whether a newer writer took the stream over (Commit
// returned ErrFenced).
func (s *Stream) Fenced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fenced
}

// Commit makes ns the stream's state, then writes the public manifests
// rendered from it that changed: the media playlists and the MPD, then the
// multivariant playlist. ns must carry this writer's token and must not be
// modified afterwards (the Stream keeps it as State).
//
// Every write is conditional on the ETag this writer last wrote or read.
// When a condition fails Commit re-reads the state: a larger token there
// means a newer writer owns the stream, and Commit returns ErrFenced (and
// so does every later call) without writing anything more; otherwise an
// older writer raced it, and Commit retries on the current version.
//
// Visibility: once Commit returns nil the state and every public manifest
// reflect ns. On another error the state may be committed while some
// manifest is not; the next Commit rewrites whatever differs. The segments
// ns names must be stored before Commit is called (R-STORE-2): a player
// may fetch them as soon as a manifest is written.
func (s *Stream) Commit(ctx context.Context, ns *State) error {
	if s.Fenced() {
		return ErrFenced
	}
	etag := s.etag
	for attempt := 0; ; attempt++ {
		err := s.putState(ctx, ns, etag)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrPrecondition) || attempt >= maxCASRetries {
			return err
		}
		fenced, cur, rerr := s.fencedBy(ctx)
		if rerr != nil {
			return rerr
		}
		if fenced {
			return ErrFenced
		}
		etag = cur // an older writer raced us once; ours supersedes it
	}
	// The media playlists and the MPD name segments the state lists and
	// not each other, so they are written at once: a commit waits for one
	// store round trip instead of three (and the disk store's directory
	// fsync covers them together). The multivariant playlist names the
	// media playlists, so it goes after them: a player that reads it finds
	// them.
	media := []document{
		{VideoPlaylistName, MediaPlaylist(ns, Video), "application/vnd.apple.mpegurl"},
		{AudioPlaylistName, MediaPlaylist(ns, Audio), "application/vnd.apple.mpegurl"},
		{MPDName, MPD(ns, s.timing, s.now()), "application/dash+xml"},
	}
	if err := s.putManifests(ctx, media); err != nil {
		return err
	}
	return s.putManifests(ctx, []document{{MultivariantName, MultivariantPlaylist(ns), "application/vnd.apple.mpegurl"}})
}

// document is a public manifest to write.
type document struct{ name, body, ctype string }

// putManifests writes the documents that changed, concurrently, and
// returns ErrFenced if any write found the stream fenced, else the first
// error.
func (s *Stream) putManifests(ctx context.Context, docs []document) error {
	errs := make([]error, len(docs))
	var wg sync.WaitGroup
	for i, d := range docs {
		s.mu.Lock()
		same := d.body == s.pubLast[d.name]
		s.mu.Unlock()
		if d.body == "" || same {
			continue
		}
		wg.Go(func() { errs[i] = s.putManifest(ctx, d.name, d.body, d.ctype) })
	}
	wg.Wait()
	for _, err := range errs {
		if errors.Is(err, ErrFenced) {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// claim makes this writer the owner of the state: read, check the token,
// conditional write; retried when an older writer raced the write.
func (s *Stream) claim(ctx context.Context) error {
	for range maxCASRetries {
		cur, etag, err := Load(ctx, s.store, s.key)
		if err != nil {
			return err
		}
		var legacy *legacyDoc
		var legacyETag string
		if cur == nil {
			if legacy, legacyETag, err = s.loadLegacy(ctx); err != nil {
				return err
			}
		}
		switch {
		case cur != nil && cur.Token >= s.token:
			return fmt.Errorf("%w: state carries token %d ≥ %d", ErrFenced, cur.Token, s.token)
		case legacy != nil && legacy.owner() >= s.token:
			return fmt.Errorf("%w: legacy state carries token %d ≥ %d", ErrFenced, legacy.owner(), s.token)
		}
		ns := &State{Format: StateFormat}
		switch {
		case cur != nil:
			ns = cur.Clone()
		case legacy != nil:
			ns = legacy.State.Clone()
		}
		ns.Token = s.token
		ns.Ended = false
		ns.PeakBandwidth, ns.AvgBandwidth = 0, 0
		if cur == nil {
			// The first state under the new name: close the old one to
			// writers of earlier releases before anything else.
			err = s.putLegacy(ctx, tombstone(ns), legacyETag)
			if errors.Is(err, store.ErrPrecondition) {
				continue
			}
			if err != nil {
				return err
			}
		}
		err = s.putState(ctx, ns, etag)
		if errors.Is(err, store.ErrPrecondition) {
			continue
		}
		return err
	}
	return fmt.Errorf("manifest: claim state: %w after %d attempts", store.ErrPrecondition, maxCASRetries)
}

// loadLegacy reads the legacy state object; a missing one is (nil, "", nil).
func (s *Stream) loadLegacy(ctx context.Context) (*legacyDoc, string, error) {
	b, etag, err := readObject(ctx, s.store, s.legacyKey)
	if err != nil || b == nil {
		return nil, "", err
	}
	d, err := parseLegacy(b)
	if err != nil {
		return nil, "", err
	}
	return d, etag, nil
}

// putLegacy writes the legacy object conditionally on etag ("" = must not
// exist).
func (s *Stream) putLegacy(ctx context.Context, d *legacyDoc, etag string) error {
	body, err := marshalLegacy(d)
	if err != nil {
		return err
	}
	m := store.Meta{ContentType: legacyContentType, Class: lifecycle.ClassOf(s.legacyKey), Size: int64(len(body))}
	if etag == "" {
		m.IfNoneMatch = "*"
	} else {
		m.IfMatch = etag
	}
	if _, err := s.store.Put(ctx, s.legacyKey, bytes.NewReader(body), m); err != nil {
		return fmt.Errorf("manifest: put legacy state: %w", err)
	}
	return nil
}

// putState writes ns conditionally on etag ("" = must not exist) and
// adopts it on success. It returns store.ErrPrecondition wrapped on a lost
// race.
func (s *Stream) putState(ctx context.Context, ns *State, etag string) error {
	body, err := Marshal(ns)
	if err != nil {
		return err
	}
	m := store.Meta{ContentType: stateContentType, Class: lifecycle.ClassOf(s.key), Size: int64(len(body))}
	if etag == "" {
		m.IfNoneMatch = "*"
	} else {
		m.IfMatch = etag
	}
	info, err := s.store.Put(ctx, s.key, bytes.NewReader(body), m)
	if err != nil {
		return fmt.Errorf("manifest: put state: %w", err)
	}
	s.st, s.etag = ns, info.ETag
	return nil
}

// fencedBy re-reads the state after a failed condition and reports whether
// a newer writer owns it (and marks this Stream fenced), returning the
// state's current ETag otherwise.
func (s *Stream) fencedBy(ctx context.Context) (bool, string, error) {
	cur, etag, err := Load(ctx, s.store, s.key)
	if err != nil {
		return false, "", err
	}
	if cur != nil && cur.Token > s.token {
		s.mu.Lock()
		first := !s.fenced
		s.fenced = true
		s.mu.Unlock()
		if first {
			s.log.Warn("stream fenced by a newer writer")
		}
		return true, "", nil
	}
	return false, etag, nil
}

func (s *Stream) setETag(name, etag string) {
	s.mu.Lock()
	s.pubETag[name] = etag
	s.mu.Unlock()
}

// putManifest replaces a public manifest conditionally on the ETag this
// writer last wrote or read; on a lost race it checks the state's token
// and either stops (fenced) or retries on the current version.
func (s *Stream) putManifest(ctx context.Context, name, body, ctype string) error {
	for attempt := 0; ; attempt++ {
		m := store.Meta{ContentType: ctype, Class: lifecycle.ClassOf(name), Size: int64(len(body))}
		s.mu.Lock()
		et := s.pubETag[name]
		s.mu.Unlock()
		if et == "" {
			m.IfNoneMatch = "*"
		} else {
			m.IfMatch = et
		}
		info, err := s.store.Put(ctx, s.prefix+name, strings.NewReader(body), m)
		if err == nil {
			s.mu.Lock()
			s.pubETag[name], s.pubLast[name] = info.ETag, body
			s.mu.Unlock()
			return nil
		}
		if !errors.Is(err, store.ErrPrecondition) || attempt >= maxCASRetries {
			return fmt.Errorf("manifest: put %s: %w", name, err)
		}
		fenced, _, rerr := s.fencedBy(ctx)
		if rerr != nil {
			return rerr
		}
		if fenced {
			return ErrFenced
		}
		st, err := s.store.Stat(ctx, s.prefix+name)
		switch {
		case errors.Is(err, store.ErrNotExist):
			s.setETag(name, "")
		case err != nil:
			return fmt.Errorf("manifest: stat %s: %w", name, err)
		default:
			s.setETag(name, st.ETag)
		}
	}
}
