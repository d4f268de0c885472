package slots

import (
	"context"
	"errors"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

// Provisioner prepares something a slot needs before it can take a stream
// (R-SLOT-10), e.g. an S3 lifecycle rule for its media prefix. Provision must
// be idempotent: it may run again for the same slot. Its error becomes the
// slot's status_reason, so it must not contain a secret.
type Provisioner interface {
	Provision(ctx context.Context, s *Slot) error
}

// ProvisionFunc adapts a function to Provisioner.
type ProvisionFunc func(ctx context.Context, s *Slot) error

// Provision calls f.
func (f ProvisionFunc) Provision(ctx context.Context, s *Slot) error { return f(ctx, s) }

// storeCheck is the built-in provisioning step: the slot's media prefix can
// be listed in the store. Today "published" means exactly this: the
// configuration is durable, its indexes are committed, and the store that
// will hold the media answers for the slot's prefix — an edge that resolves
// the stream key can start writing segments. Nothing is reserved per slot on
// the edges, so there is nothing else to wait for.
func (r *Repo) storeCheck(ctx context.Context, s *Slot) error {
	errStop := errors.New("stop")
	err := r.st.List(ctx, keys.MediaPrefix(s.ID), func(store.Info) error { return errStop })
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// provision runs the steps on the freshly written slot (object ETag etag)
// and records the outcome in its status. The status write does not bump
// Version (it is not a configuration change) and is conditional; if the
// slot changed meanwhile the status is applied to the current record.
func (r *Repo) provision(ctx context.Context, s *Slot, etag string) *Slot {
	status, reason := StatusPublished, ""
	steps := append([]Provisioner{ProvisionFunc(r.storeCheck)}, r.provs...)
	for _, p := range steps {
		if err := p.Provision(ctx, s.clone()); err != nil {
			status, reason = StatusError, "provisioning failed: "+err.Error()
			r.log.Warn("slot provisioning failed", "slot", s, "err", err)
			break
		}
	}
	for range 3 {
		s.Status, s.StatusReason = status, reason
		_, err := r.write(ctx, s, store.Meta{IfMatch: etag})
		if err == nil {
			r.invalidate(s.ID)
			return s
		}
		if !errors.Is(err, store.ErrPrecondition) {
			r.log.Warn("slot status not recorded; it stays provisioning", "slot", s, "err", err)
			break
		}
		cur, curTag, rerr := r.read(ctx, s.ID)
		if rerr != nil {
			break
		}
		s, etag = cur, curTag
	}
	s.Status, s.StatusReason = StatusProvisioning, ""
	if cur, _, err := r.read(ctx, s.ID); err == nil {
		return cur
	}
	return s
}

// Reprovision runs provisioning again for a slot in status provisioning or
// error (after a crash, or once the cause of the error is fixed).
func (r *Repo) Reprovision(ctx context.Context, id keys.SlotID) (*Slot, error) {
	s, etag, err := r.read(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.Status == StatusPublished {
		return s, nil
	}
	return r.provision(ctx, s, etag), nil
}
