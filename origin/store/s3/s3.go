// Package s3 is the store.Store backend on Amazon S3 and S3-compatible
// services (MinIO, Ceph RGW, R2, …), built on aws-sdk-go-v2.
//
// It relies on the service for atomic visibility (an object appears when its
// PutObject or CompleteMultipartUpload succeeds) and for conditional writes
// (If-None-Match / If-Match on both). New refuses a service that ignores
// conditional writes, since slot configuration depends on them.
//
// Each object carries its class twice: as the object tag class=<class>,
// which S3 lifecycle rules can filter on, and as the user metadata
// x-amz-meta-class, which HeadObject and GetObject return without a second
// request.
//
// Behaviour of MinIO (built from commit 7aac2a2c5b7c, 2026-02-12) that
// callers should know:
//
//   - A GetObject holds a read lock on the object while its body streams.
//     An overwrite of the key waits for the reader; a reader that stops
//     reading holds the writer up for about 30 s, after which the write
//     proceeds and the reader's body ends with an error (never with bytes
//     of the new version). Readers should drain or close bodies promptly.
//   - If-None-Match and If-Match are honoured on PutObject and on
//     CompleteMultipartUpload, race-free (one winner among concurrent
//     writers). If-Match on a missing key answers 404 NoSuchKey.
//   - A failed condition is reported after "100 Continue", while the body
//     is being sent; see Put.
//
// ETags are content hashes (MD5, or MD5 of part MD5s for multipart), so a
// Put of the same bytes keeps the ETag of a single-part object.
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store on one S3 bucket. It is safe for concurrent use;
// concurrency control between writers (also in other processes) is the
// service's conditional writes.
type Store struct {
	client   *awss3.Client
	bucket   string
	partSize int64
}

// New checks cfg, builds the client and probes the bucket: it must exist and
// the service must honour If-None-Match on PutObject. New fails rather than
// return a Store that would silently break conditional writes.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = cfg.MaxAttempts })
		}),
		// Checksums only where an operation requires one (DeleteObjects):
		// bodies of unknown length over plain HTTP cannot carry the SDK's
		// default checksum, and buffered bodies carry Content-MD5 instead.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey.Reveal(), "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = defaultRegion
	}
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		o.UsePathStyle = cfg.PathStyle
		// Our objects carry no SDK checksum (see above); without this the
		// SDK logs a line to stderr for every GetObject.
		o.DisableLogOutputChecksumValidationSkipped = true
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	s := &Store{client: client, bucket: cfg.Bucket, partSize: cfg.PartSize}
	if err := s.probe(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// probe checks the bucket and conditional writes, leaving nothing behind.
func (s *Store) probe(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &s.bucket}); err != nil {
		switch status(err) {
		case http.StatusNotFound:
			return fmt.Errorf("s3: bucket %q does not exist (s3.bucket); create it first", s.bucket)
		case http.StatusForbidden:
			return fmt.Errorf("s3: access to bucket %q denied: check s3.access_key/s3.secret_key or the role's policy: %w", s.bucket, err)
		}
		return fmt.Errorf("s3: bucket %q: %w", s.bucket, mapErr(err))
	}
	key, err := keys.Probe("conditional-write-" + rand.Text())
	if err != nil {
		return fmt.Errorf("s3: probe key: %w", err)
	}
	m := store.Meta{IfNoneMatch: "*", Class: store.ClassConfig, ContentType: "text/plain"}
	if _, err := s.Put(ctx, key, strings.NewReader("probe"), m); err != nil {
		return fmt.Errorf("s3: probe write to bucket %q: %w", s.bucket, err)
	}
	defer func() {
		// Best effort: a leftover probe object is small and harmless.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = s.Delete(dctx, key)
	}()
	_, err = s.Put(ctx, key, strings.NewReader("probe"), m)
	switch {
	case err == nil:
		return fmt.Errorf("s3: the service behind bucket %q ignores If-None-Match on PutObject; conditional writes are required, refusing to start", s.bucket)
	case !errors.Is(err, store.ErrPrecondition):
		return fmt.Errorf("s3: probe conditional write to bucket %q: %w", s.bucket, err)
	}
	return nil
}

// status is the HTTP status of an SDK error, or 0 when there was no response.
func status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// mapErr adds the store sentinel that err stands for:
//
//	404, NoSuchKey, NotFound                  → ErrNotExist
//	412, PreconditionFailed                   → ErrPrecondition
//	409 ConditionalRequestConflict            → ErrPrecondition
//	416, InvalidRange                         → ErrRange
//	5xx, 429, throttling, network errors      → ErrUnavailable (after the retries)
//
// Context errors stay as they are (they remain visible to errors.Is).
func mapErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	st := status(err)
	switch {
	case code == "NoSuchBucket", code == "NoSuchUpload":
		return err
	case code == "NoSuchKey", code == "NotFound", st == http.StatusNotFound:
		return fmt.Errorf("%w: %w", store.ErrNotExist, err)
	case code == "PreconditionFailed", st == http.StatusPreconditionFailed,
		code == "ConditionalRequestConflict":
		return fmt.Errorf("%w: %w", store.ErrPrecondition, err)
	case code == "InvalidRange", st == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("%w: %w", store.ErrRange, err)
	case st >= 500, st == http.StatusTooManyRequests,
		code == "SlowDown", code == "Throttling", code == "RequestTimeout", code == "RequestTimeTooSkewed",
		st == 0 && unreachable(err):
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// unreachable reports errors of the network or of the SDK's retry budget:
// the request got no answer. Other errors without a response (signing,
// serialisation) are bugs or configuration, not worth retrying.
func unreachable(err error) bool {
	var send *smithyhttp.RequestSendError
	var netErr net.Error
	var quota ratelimit.QuotaExceededError
	var quotaPtr *ratelimit.QuotaExceededError
	return errors.As(err, &send) || errors.As(err, &netErr) || errors.As(err, &quota) || errors.As(err, &quotaPtr)
}

// Get implements store.Store. The reader is the HTTP response body; it is
// not an io.Seeker (use GetRange) and fails once ctx is done.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, store.Info, error) {
	if err := keys.ValidateObjectKey(key); err != nil {
		return nil, store.Info{}, fmt.Errorf("s3: get: %w", err)
	}
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, store.Info{}, fmt.Errorf("s3: get %q: %w", key, mapErr(err))
	}
	info := store.Info{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         aws.ToString(out.ETag),
		Modified:     aws.ToTime(out.LastModified),
		ContentType:  aws.ToString(out.ContentType),
		CacheControl: aws.ToString(out.CacheControl),
		Class:        store.Class(out.Metadata[metaClass]),
	}
	return out.Body, info, nil
}

// GetRange implements store.Store with an HTTP Range request. length beyond
// the end is cut at the end; offset >= the object's size (including 0 on an
// empty object) fails with ErrRange, as HTTP 416 does. The Info describes
// the whole object.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, store.Info, error) {
	if err := keys.ValidateObjectKey(key); err != nil {
		return nil, store.Info{}, fmt.Errorf("s3: get range: %w", err)
	}
	if offset < 0 {
		return nil, store.Info{}, fmt.Errorf("s3: get range %q: negative offset %d: %w", key, offset, store.ErrRange)
	}
	if length == 0 {
		// HTTP cannot ask for zero bytes; Stat answers the same question.
		info, err := s.Stat(ctx, key)
		if err != nil {
			return nil, store.Info{}, err
		}
		if offset >= info.Size {
			return nil, store.Info{}, fmt.Errorf("s3: get range %q: offset %d, size %d: %w", key, offset, info.Size, store.ErrRange)
		}
		return io.NopCloser(bytes.NewReader(nil)), info, nil
	}
	rng := fmt.Sprintf("bytes=%d-", offset)
	if length > 0 {
		rng += strconv.FormatInt(offset+length-1, 10)
	}
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key, Range: &rng})
	if err != nil {
		return nil, store.Info{}, fmt.Errorf("s3: get range %q: %w", key, mapErr(err))
	}
	size, err := totalSize(aws.ToString(out.ContentRange))
	if err != nil {
		out.Body.Close()
		return nil, store.Info{}, fmt.Errorf("s3: get range %q: %w", key, err)
	}
	info := store.Info{
		Key:          key,
		Size:         size,
		ETag:         aws.ToString(out.ETag),
		Modified:     aws.ToTime(out.LastModified),
		ContentType:  aws.ToString(out.ContentType),
		CacheControl: aws.ToString(out.CacheControl),
		Class:        store.Class(out.Metadata[metaClass]),
	}
	return out.Body, info, nil
}

// totalSize reads the complete length from a Content-Range header such as
// "bytes 100-149/1000" (RFC 9110 section 14.4).
func totalSize(contentRange string) (int64, error) {
	_, total, ok := strings.Cut(contentRange, "/")
	if !ok || !strings.HasPrefix(contentRange, "bytes ") {
		return 0, fmt.Errorf("unexpected Content-Range %q", contentRange)
	}
	n, err := strconv.ParseInt(total, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("unexpected Content-Range %q", contentRange)
	}
	return n, nil
}

// Stat implements store.Store with HeadObject.
func (s *Store) Stat(ctx context.Context, key string) (store.Info, error) {
	if err := keys.ValidateObjectKey(key); err != nil {
		return store.Info{}, fmt.Errorf("s3: stat: %w", err)
	}
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return store.Info{}, fmt.Errorf("s3: stat %q: %w", key, mapErr(err))
	}
	return store.Info{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         aws.ToString(out.ETag),
		Modified:     aws.ToTime(out.LastModified),
		ContentType:  aws.ToString(out.ContentType),
		CacheControl: aws.ToString(out.CacheControl),
		Class:        store.Class(out.Metadata[metaClass]),
	}, nil
}

// List implements store.Store with ListObjectsV2, one page (up to 1000
// keys) at a time. S3 lists keys in UTF-8 binary order, which is lexical
// order for valid keys; objects under keys that keys.ValidateObjectKey
// refuses (written by other tools) are skipped, since no other method could
// reach them.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := keys.ValidatePrefix(prefix); err != nil {
		return fmt.Errorf("s3: list: %w", err)
	}
	p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3: list %q: %w", prefix, mapErr(err))
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if keys.ValidateObjectKey(key) != nil {
				continue
			}
			info := store.Info{Key: key, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag), Modified: aws.ToTime(o.LastModified)}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteBatch is the most keys one DeleteObjects request may carry.
const deleteBatch = 1000

// Delete implements store.Store with DeleteObjects in batches of 1000. All
// keys are validated before any is deleted. Keys the service could not
// delete are reported together in one joined error; batches after a failed
// request are not attempted.
func (s *Store) Delete(ctx context.Context, keyList ...string) error {
	for _, key := range keyList {
		if err := keys.ValidateObjectKey(key); err != nil {
			return fmt.Errorf("s3: delete: %w", err)
		}
	}
	var errs []error
	for start := 0; start < len(keyList); start += deleteBatch {
		batch := keyList[start:min(start+deleteBatch, len(keyList))]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i := range batch {
			ids[i] = types.ObjectIdentifier{Key: &batch[i]}
		}
		out, err := s.client.DeleteObjects(ctx, &awss3.DeleteObjectsInput{
			Bucket: &s.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("s3: delete %d keys from %q: %w", len(batch), batch[0], mapErr(err)))
			return errors.Join(errs...)
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			errs = append(errs, fmt.Errorf("s3: delete %q: %s: %s", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message)))
		}
	}
	return errors.Join(errs...)
}
