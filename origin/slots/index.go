package slots

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

// Name uniqueness is a small protocol over conditional writes, because the
// store has no transactions across objects:
//
//  1. claim: write the name's index object {slot_id, state: pending} with
//     IfNoneMatch "*" — of concurrent claimants exactly one succeeds;
//  2. write the slot object;
//  3. commit: rewrite the index {state: committed} with IfMatch on the ETag
//     the claim got. If someone took the claim over meanwhile the commit
//     fails and the slot object is removed again (ErrNameTaken).
//
// A crash can leave an index that points at no slot (or at a slot that has
// since been renamed). Such an index is stale and a claimant may take it
// over, with IfMatch on the ETag it examined, so two claimants cannot both
// take it over. A committed stale index is taken over at once (its slot was
// deleted or renamed and the cleanup did not finish); a pending one only when
// older than Options.StaleClaimAfter, so that a create in progress (between
// steps 1 and 2) is not robbed. Even if it were, step 3 ensures exactly one
// of the two creates wins; the grace period only avoids the needless loss.
// An index whose slot exists and carries its name is never stale.

type nameIndex struct {
	SlotID    keys.SlotID `json:"slot_id"`
	State     string      `json:"state"`
	ClaimedAt time.Time   `json:"claimed_at"` // also makes every write's bytes (and so its ETag) unique
}

const (
	statePending   = "pending"
	stateCommitted = "committed"
	claimAttempts  = 4
)

func (r *Repo) putJSON(ctx context.Context, key string, v any, cond store.Meta) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return r.putBytes(ctx, key, b, cond)
}

func (r *Repo) putBytes(ctx context.Context, key string, b []byte, cond store.Meta) (string, error) {
	cond.ContentType = "application/json"
	cond.CacheControl = "no-store"
	cond.Class = store.ClassConfig
	cond.Size = int64(len(b))
	info, err := r.st.Put(ctx, key, strings.NewReader(string(b)), cond)
	return info.ETag, err
}

func (r *Repo) readNameIndex(ctx context.Context, key string) (nameIndex, string, error) {
	var idx nameIndex
	b, etag, err := r.getBytes(ctx, key)
	if err != nil {
		return idx, "", err
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, "", fmt.Errorf("name index %s: %w", key, err)
	}
	return idx, etag, nil
}

// claimName takes the name for id (step 1) and returns the index's ETag for
// commitName. The name is taken when another live slot holds it.
func (r *Repo) claimName(ctx context.Context, name string, id keys.SlotID) (string, error) {
	key, err := keys.SlotNameIndex(name)
	if err != nil {
		return "", fieldErr("name", err.Error())
	}
	claim := func(cond store.Meta) (string, error) {
		return r.putJSON(ctx, key, nameIndex{SlotID: id, State: statePending, ClaimedAt: r.now()}, cond)
	}
	for range claimAttempts {
		etag, err := claim(store.Meta{IfNoneMatch: "*"})
		if err == nil {
			return etag, nil
		}
		if !errors.Is(err, store.ErrPrecondition) {
			return "", err
		}
		idx, held, err := r.readNameIndex(ctx, key)
		if errors.Is(err, store.ErrNotExist) {
			continue // released meanwhile: try to create it again
		}
		if err != nil {
			return "", err
		}
		stale, err := r.staleIndex(ctx, name, idx)
		if err != nil {
			return "", err
		}
		if !stale {
			return "", ErrNameTaken
		}
		etag, err = claim(store.Meta{IfMatch: held})
		if err == nil {
			r.log.Info("took over stale slot name index", "name", name, "stale_slot", idx.SlotID, "state", idx.State)
			return etag, nil
		}
		if !errors.Is(err, store.ErrPrecondition) {
			return "", err
		}
		// Someone else changed the index after we examined it: look again.
	}
	return "", ErrNameTaken
}

func (r *Repo) staleIndex(ctx context.Context, name string, idx nameIndex) (bool, error) {
	s, _, err := r.read(ctx, idx.SlotID)
	switch {
	case err == nil && strings.EqualFold(s.Name, name):
		return false, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return false, err
	}
	if idx.State == stateCommitted {
		return true, nil
	}
	return r.now().Sub(idx.ClaimedAt) > r.staleAfter, nil
}

// commitName marks the claim as final (step 3). It fails with ErrNameTaken
// when the claim was taken over since claimName returned etag.
func (r *Repo) commitName(ctx context.Context, name string, id keys.SlotID, etag string) error {
	key, err := keys.SlotNameIndex(name)
	if err != nil {
		return err
	}
	_, err = r.putJSON(ctx, key, nameIndex{SlotID: id, State: stateCommitted, ClaimedAt: r.now()}, store.Meta{IfMatch: etag})
	if errors.Is(err, store.ErrPrecondition) {
		return ErrNameTaken
	}
	return err
}

// releaseName deletes the name's index if it still names id. Deleting an
// index another claimant just took over can only make that claimant's commit
// fail (it then reports ErrNameTaken); it can never let two slots share the
// name.
func (r *Repo) releaseName(ctx context.Context, name string, id keys.SlotID) error {
	key, err := keys.SlotNameIndex(name)
	if err != nil {
		return err
	}
	idx, _, err := r.readNameIndex(ctx, key)
	if errors.Is(err, store.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if idx.SlotID != id {
		return nil
	}
	return r.st.Delete(ctx, key)
}

// keyIndex maps a stream key hash to its slot. The slot record's own hash is
// what authorises a publish (ByStreamKey checks it), so an index entry left
// behind by a crash grants nothing.
type keyIndex struct {
	SlotID keys.SlotID `json:"slot_id"`
}

func (r *Repo) putKeyIndex(ctx context.Context, hash string, id keys.SlotID) error {
	key, err := keys.SlotKeyIndex(hash)
	if err != nil {
		return err
	}
	_, err = r.putJSON(ctx, key, keyIndex{SlotID: id}, store.Meta{IfNoneMatch: "*"})
	return err
}

func (r *Repo) deleteKeyIndex(ctx context.Context, hash string) error {
	if hash == "" {
		return nil
	}
	key, err := keys.SlotKeyIndex(hash)
	if err != nil {
		return err
	}
	return r.st.Delete(ctx, key)
}
