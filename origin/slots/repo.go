package slots

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/store"
)

// maxRecordSize bounds a slot object read back from the store.
const maxRecordSize = 1 << 20

// Options configure a Repo.
type Options struct {
	// Deployment gives the regions slots may use and the URL hosts and ports.
	// Default: DevDeployment("localhost", "local").
	Deployment Deployment
	// Provisioners run, in order, after the built-in store check when a slot
	// is created; the first error puts the slot in status error with the
	// error as reason. An S3 lifecycle installer plugs in here. Default: none.
	Provisioners []Provisioner
	// CacheTTL is how long ByStreamKey, Lookup and CheckPassword may serve a
	// slot without reading the store. This process's own writes invalidate
	// at once; other processes' writes are seen within the TTL. Negative
	// disables the cache. Default: 3s.
	CacheTTL time.Duration
	// BcryptCost is the cost of password hashes. Default: bcrypt.DefaultCost.
	BcryptCost int
	// StaleClaimAfter is how old a pending name claim whose slot does not
	// exist must be before another create may take the name over (see
	// index.go). Default: 30s.
	StaleClaimAfter time.Duration
	// Logger gets operational messages; never a secret. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Repo is the durable slot repository (R-API-2): one JSON object per slot in
// the store, plus name and stream key index objects. It is safe for
// concurrent use, also by several processes sharing one store: every
// read-modify-write is conditional on the ETag that was read.
type Repo struct {
	st         store.Store
	dep        Deployment
	provs      []Provisioner
	cache      *cache // nil: disabled
	cost       int
	staleAfter time.Duration
	log        *slog.Logger
	now        func() time.Time
}

// New returns a Repo on st.
func New(st store.Store, o Options) (*Repo, error) {
	if len(o.Deployment.Regions) == 0 {
		o.Deployment = DevDeployment("localhost", "local")
	}
	o.Deployment = o.Deployment.withDefaults()
	if err := o.Deployment.Validate(); err != nil {
		return nil, err
	}
	if o.BcryptCost == 0 {
		o.BcryptCost = bcrypt.DefaultCost
	}
	if o.BcryptCost < bcrypt.MinCost || o.BcryptCost > bcrypt.MaxCost {
		return nil, fmt.Errorf("Options.BcryptCost: must be %d-%d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	if o.StaleClaimAfter <= 0 {
		o.StaleClaimAfter = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Repo{
		st: st, dep: o.Deployment, provs: o.Provisioners, cost: o.BcryptCost,
		staleAfter: o.StaleClaimAfter, log: o.Logger.With("component", "slots"), now: o.Now,
	}
	switch {
	case o.CacheTTL == 0:
		r.cache = newCache(3*time.Second, o.Now)
	case o.CacheTTL > 0:
		r.cache = newCache(o.CacheTTL, o.Now)
	}
	return r, nil
}

// Deployment returns the deployment slots' URLs are derived from.
func (r *Repo) Deployment() Deployment { return r.dep }

// Created is the result of Create, Clone and RotateKey: the only moments the
// plaintext stream key exists. Show it once (View(d, StreamKey.Reveal())).
type Created struct {
	Slot      *Slot
	StreamKey secret.String
}

func (r *Repo) getBytes(ctx context.Context, key string) ([]byte, string, error) {
	rc, info, err := r.st.Get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxRecordSize+1))
	if err != nil {
		return nil, "", err
	}
	if len(b) > maxRecordSize {
		return nil, "", fmt.Errorf("%s: larger than %d bytes", key, maxRecordSize)
	}
	return b, info.ETag, nil
}

// read returns the stored slot and its object's ETag.
func (r *Repo) read(ctx context.Context, id keys.SlotID) (*Slot, string, error) {
	b, etag, err := r.getBytes(ctx, keys.SlotConfig(id))
	if errors.Is(err, store.ErrNotExist) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", err
	}
	s, err := decodeRecord(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", keys.SlotConfig(id), err)
	}
	return s, etag, nil
}

func (r *Repo) write(ctx context.Context, s *Slot, cond store.Meta) (string, error) {
	return r.putBytes(ctx, keys.SlotConfig(s.ID), encodeRecord(s), cond)
}

// Get returns the slot, reading the store (never the cache), or ErrNotFound.
func (r *Repo) Get(ctx context.Context, id keys.SlotID) (*Slot, error) {
	s, _, err := r.read(ctx, id)
	return s, err
}

// Create validates in (defaults for absent fields), stores a new slot with a
// fresh id and stream key, provisions it and returns it with the plaintext
// key. Errors: *FieldError, ErrNameTaken, or a store error.
func (r *Repo) Create(ctx context.Context, in Input) (*Created, error) {
	s := newDraft(r.dep)
	if err := s.apply(in, r.dep, r.cost); err != nil {
		return nil, err
	}
	return r.create(ctx, s)
}

// Clone creates a new slot with every setting of the slot id — credentials
// (their hashes), SRT passphrase and token secrets included — under a new,
// required name, with a new id and a new stream key.
func (r *Repo) Clone(ctx context.Context, id keys.SlotID, name string) (*Created, error) {
	if name == "" {
		return nil, fieldErr("name", "is required: a clone needs a new name")
	}
	src, _, err := r.read(ctx, id)
	if err != nil {
		return nil, err
	}
	s := src.clone()
	s.Name = name
	if err := s.Validate(r.dep); err != nil {
		return nil, err
	}
	return r.create(ctx, s)
}

// create stores the validated draft s (see index.go for the name protocol).
func (r *Repo) create(ctx context.Context, s *Slot) (_ *Created, err error) {
	s.ID = newID()
	key, hash := newStreamKey()
	s.streamKeyHash = hash
	s.Status, s.StatusReason = StatusProvisioning, ""
	s.Version = 1
	s.CreatedAt = r.now().UTC().Truncate(time.Millisecond)
	s.UpdatedAt = s.CreatedAt

	claim, err := r.claimName(ctx, s.Name, s.ID)
	if err != nil {
		return nil, err
	}
	var wroteKey, wroteSlot bool
	defer func() {
		if err == nil {
			return
		}
		// Roll back on a context of our own: the caller's may be the reason.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if wroteSlot {
			_ = r.st.Delete(cctx, keys.SlotConfig(s.ID))
		}
		if wroteKey {
			_ = r.deleteKeyIndex(cctx, hash)
		}
		_ = r.releaseName(cctx, s.Name, s.ID)
	}()
	if err = r.putKeyIndex(ctx, hash, s.ID); err != nil {
		return nil, err
	}
	wroteKey = true
	etag, err := r.write(ctx, s, store.Meta{IfNoneMatch: "*"})
	if err != nil {
		return nil, err
	}
	wroteSlot = true
	if err = r.commitName(ctx, s.Name, s.ID, claim); err != nil {
		return nil, err
	}
	r.log.Info("slot created", "slot", s)
	return &Created{Slot: r.provision(ctx, s, etag), StreamKey: key}, nil
}

// Update applies in to the slot if its stored version is version (0: any),
// and returns the slot with Version incremented. A stale version, or another
// writer winning the race, is ErrVersionMismatch; a rename to a taken name is
// ErrNameTaken and changes nothing.
func (r *Repo) Update(ctx context.Context, id keys.SlotID, version int64, in Input) (*Slot, error) {
	for range 3 {
		s, etag, err := r.read(ctx, id)
		if err != nil {
			return nil, err
		}
		if version != 0 && s.Version != version {
			return nil, ErrVersionMismatch
		}
		old := s.clone()
		if err := s.apply(in, r.dep, r.cost); err != nil {
			return nil, err
		}
		s.Version++
		s.UpdatedAt = r.now().UTC().Truncate(time.Millisecond)
		retry, err := r.replace(ctx, old, s, etag)
		if retry && version != 0 {
			continue // only the status changed under us: the version still holds
		}
		if err != nil {
			return nil, err
		}
		r.invalidate(id)
		r.log.Info("slot updated", "slot", s)
		return s, nil
	}
	return nil, ErrVersionMismatch
}

// replace writes s over old (whose object has etag), moving the name index on
// a rename. retry reports a lost race in which only the status changed, so
// the caller's version is still current.
func (r *Repo) replace(ctx context.Context, old, s *Slot, etag string) (retry bool, err error) {
	renamed := !strings.EqualFold(old.Name, s.Name)
	var claim string
	if renamed {
		if claim, err = r.claimName(ctx, s.Name, s.ID); err != nil {
			return false, err
		}
	}
	newTag, err := r.write(ctx, s, store.Meta{IfMatch: etag})
	if err != nil {
		if renamed {
			_ = r.releaseName(context.WithoutCancel(ctx), s.Name, s.ID)
		}
		if !errors.Is(err, store.ErrPrecondition) {
			return false, err
		}
		cur, _, rerr := r.read(ctx, s.ID)
		if errors.Is(rerr, ErrNotFound) {
			return false, ErrNotFound
		}
		return rerr == nil && cur.Version == old.Version, ErrVersionMismatch
	}
	if !renamed {
		return false, nil
	}
	if err := r.commitName(ctx, s.Name, s.ID, claim); err != nil {
		// Our pending claim was taken over (we were slower than
		// StaleClaimAfter): put the old record back under a new version.
		back := old.clone()
		back.Version = s.Version + 1
		back.UpdatedAt = s.UpdatedAt
		if _, rerr := r.write(context.WithoutCancel(ctx), back, store.Meta{IfMatch: newTag}); rerr != nil {
			r.log.Error("rename lost its name claim and could not be reverted", "slot", s, "err", rerr)
		}
		return false, err
	}
	if err := r.releaseName(ctx, old.Name, s.ID); err != nil {
		// Harmless: the old index is stale (its slot has another name) and
		// will be taken over by the next claimant.
		r.log.Warn("old slot name index not removed", "slot", s, "err", err)
	}
	return false, nil
}

// RotateKey gives the slot a new stream key. The old key stops resolving at
// once in this process and, because the slot record holds the key's hash,
// everywhere as soon as a reader misses its cache (≤ CacheTTL).
func (r *Repo) RotateKey(ctx context.Context, id keys.SlotID) (*Created, error) {
	for range 3 {
		s, etag, err := r.read(ctx, id)
		if err != nil {
			return nil, err
		}
		key, hash := newStreamKey()
		if err := r.putKeyIndex(ctx, hash, id); err != nil {
			return nil, err
		}
		oldHash := s.streamKeyHash
		s.streamKeyHash = hash
		s.Version++
		s.UpdatedAt = r.now().UTC().Truncate(time.Millisecond)
		if _, err := r.write(ctx, s, store.Meta{IfMatch: etag}); err != nil {
			_ = r.deleteKeyIndex(context.WithoutCancel(ctx), hash)
			if errors.Is(err, store.ErrPrecondition) {
				continue
			}
			return nil, err
		}
		r.invalidate(id)
		if err := r.deleteKeyIndex(ctx, oldHash); err != nil {
			r.log.Warn("old stream key index not removed (it grants nothing)", "slot", s, "err", err)
		}
		r.log.Info("slot stream key rotated", "slot", s)
		return &Created{Slot: s, StreamKey: key}, nil
	}
	return nil, ErrVersionMismatch
}

// Delete removes the slot if its stored version is version (0: any): first
// the slot object (from then on it is gone), then its indexes, then every
// media object under keys.MediaPrefix. A failure in the media cleanup is
// returned; the slot is already gone, and calling Delete again gives
// ErrNotFound (segments left behind expire by the lifecycle rules).
func (r *Repo) Delete(ctx context.Context, id keys.SlotID, version int64) error {
	s, _, err := r.read(ctx, id)
	if err != nil {
		return err
	}
	if version != 0 && s.Version != version {
		return ErrVersionMismatch
	}
	if err := r.st.Delete(ctx, keys.SlotConfig(id)); err != nil {
		return err
	}
	r.invalidate(id)
	r.log.Info("slot deleted", "slot", s)
	if err := r.releaseName(ctx, s.Name, id); err != nil {
		r.log.Warn("slot name index not removed (stale, will be taken over)", "slot", s, "err", err)
	}
	if err := r.deleteKeyIndex(ctx, s.streamKeyHash); err != nil {
		r.log.Warn("stream key index not removed (it grants nothing)", "slot", s, "err", err)
	}
	return r.deleteMedia(ctx, id)
}

func (r *Repo) deleteMedia(ctx context.Context, id keys.SlotID) error {
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := r.st.Delete(ctx, batch...)
		batch = batch[:0]
		return err
	}
	err := r.st.List(ctx, keys.MediaPrefix(id), func(i store.Info) error {
		batch = append(batch, i.Key)
		if len(batch) == 1000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("delete media of slot %s: %w: %w", id, ErrMediaCleanup, err)
	}
	return nil
}

// ListOptions filter and order List. Zero values: all regions and types,
// sorted by creation time, ascending.
type ListOptions struct {
	Region string
	Type   Type
	Sort   string // "created" (default), "name", "region" or "type"
	Order  string // "asc" (default) or "desc"
}

// Validate names the bad option as a *FieldError (fields as query parameters).
func (o ListOptions) Validate() error {
	switch o.Sort {
	case "", "created", "name", "region", "type":
	default:
		return fieldErr("sort", `must be "created", "name", "region" or "type"`)
	}
	switch o.Order {
	case "", "asc", "desc":
	default:
		return fieldErr("order", `must be "asc" or "desc"`)
	}
	if o.Type != "" && !o.Type.Valid() {
		return fieldErr("type", fmt.Sprintf("must be one of %v", Types))
	}
	return nil
}

// List returns the slots matching o, ordered by o. Ties are broken by name
// then id, so the order is stable.
func (r *Repo) List(ctx context.Context, o ListOptions) ([]*Slot, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var ids []keys.SlotID
	err := r.st.List(ctx, keys.SlotConfigPrefix(), func(i store.Info) error {
		name, ok := strings.CutSuffix(strings.TrimPrefix(i.Key, keys.SlotConfigPrefix()), ".json")
		if id, err := keys.ParseSlotID(name); ok && err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*Slot, 0, len(ids))
	for _, id := range ids {
		s, _, err := r.read(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		if (o.Region == "" || s.Region == o.Region) && (o.Type == "" || s.Type == o.Type) {
			out = append(out, s)
		}
	}
	by := func(a, b *Slot) int { return a.CreatedAt.Compare(b.CreatedAt) }
	switch o.Sort {
	case "name":
		by = func(a, b *Slot) int { return cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) }
	case "region":
		by = func(a, b *Slot) int { return cmp.Compare(a.Region, b.Region) }
	case "type":
		by = func(a, b *Slot) int { return cmp.Compare(a.Type, b.Type) }
	}
	slices.SortStableFunc(out, func(a, b *Slot) int {
		c := by(a, b)
		if o.Order == "desc" {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}
