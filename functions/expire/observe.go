package expire

import (
	"context"
	"io"

	"github.com/liveingest/liveingest/origin/store"
)

// Observe returns st with every successful Put noted in sw's index
// (Sweeper.Note with the Put's Info.Modified), so that a segment written
// through it is swept when due without waiting for a rescan. Give it to
// the writers that share sw's process. Everything else passes straight
// through; the wrapper adds no I/O and is safe for concurrent use as st is.
func Observe(st store.Store, sw *Sweeper) store.Store {
	return &observed{Store: st, sw: sw}
}

type observed struct {
	store.Store
	sw *Sweeper
}

var _ store.Store = (*observed)(nil)

// Put stores and, when that succeeded, notes the key (Note ignores what
// is not a media segment).
func (o *observed) Put(ctx context.Context, key string, r io.Reader, m store.Meta) (store.Info, error) {
	info, err := o.Store.Put(ctx, key, r, m)
	if err == nil {
		o.sw.Note(key, info.Modified)
	}
	return info, err
}
