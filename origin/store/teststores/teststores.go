// Package teststores builds the real store backends for tests of the
// packages above the store (slots, api, …), so each of those runs the same
// tests on the embedded disk store and on S3 against a real MinIO.
package teststores

import (
	"context"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/disk"
	"github.com/liveingest/liveingest/origin/store/s3"
)

// Disk returns an empty disk store in a temporary directory.
func Disk(t *testing.T) store.Store {
	t.Helper()
	st, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// MinIO returns an S3 store on a fresh bucket of the package's MinIO server
// (skipped with LIVEINGEST_SKIP_INTEGRATION=1).
func MinIO(t *testing.T) store.Store {
	t.Helper()
	srv := testenv.MinIO(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	st, err := s3.New(ctx, s3.Config{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.NewBucket(t), PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: secret.String(srv.SecretKey),
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}
