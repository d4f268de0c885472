package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

// metaClass is the user-metadata name (x-amz-meta-class) and tag key of an
// object's class.
const metaClass = "class"

// abortTimeout bounds the clean-up of a failed multipart upload, which runs
// even when the Put's context is cancelled.
const abortTimeout = time.Minute

// object is what every request of one Put sends besides the body.
type object struct {
	key                  string
	size                 int64 // Meta.Size
	contentType, cache   string
	cacheControl         *string // nil when cache is "": no header
	class                store.Class
	ifNoneMatch, ifMatch *string
	tagging              string // class=<class>, the object tag
	metadata             map[string]string
}

func newObject(key string, m store.Meta) object {
	o := object{key: key, contentType: m.ContentType, cache: m.CacheControl, class: m.Class, size: m.Size}
	if o.contentType == "" {
		o.contentType = "application/octet-stream"
	}
	if o.class == "" {
		o.class = store.ClassSegment
	}
	if m.IfNoneMatch != "" {
		o.ifNoneMatch = aws.String(m.IfNoneMatch)
	}
	if m.IfMatch != "" {
		o.ifMatch = aws.String(m.IfMatch)
	}
	if o.cache != "" {
		o.cacheControl = aws.String(o.cache)
	}
	o.tagging = url.Values{metaClass: {string(o.class)}}.Encode()
	o.metadata = map[string]string{metaClass: string(o.class)}
	return o
}

func (o object) info(size int64, etag string) store.Info {
	return store.Info{
		Key: o.key, Size: size, ETag: etag, Modified: time.Now().UTC(),
		ContentType: o.contentType, CacheControl: o.cache, Class: o.class,
	}
}

// Put implements store.Store.
//
// An unconditional body of known size larger than PartSize (up to 5 GiB)
// is streamed in one PutObject with an unsigned payload; it cannot be
// retried, as the body cannot be rewound, and a failure of the connection is
// ErrUnavailable. Any other body is read in PartSize pieces: one piece is
// sent as one PutObject with Content-MD5 (retried on failure), more as a
// multipart upload whose completion carries the conditions and which is
// aborted on any error, so nothing becomes visible. At most one piece is in
// memory.
//
// Conditional Puts are never streamed: MinIO answers "100 Continue" and then
// rejects a failed condition while the body is still being sent, resetting
// the connection, so the client often sees "connection reset" instead of
// the 412. The condition of a multipart upload is checked on the small
// CompleteMultipartUpload request instead, and a HeadObject before the
// upload makes an already failed condition fail fast.
//
// The returned Info's Modified is the local clock when the service answered
// (S3 does not return the stored time); Stat returns the service's.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, m store.Meta) (store.Info, error) {
	if err := keys.ValidateObjectKey(key); err != nil {
		return store.Info{}, fmt.Errorf("s3: put: %w", err)
	}
	if err := m.Validate(); err != nil {
		return store.Info{}, fmt.Errorf("s3: put %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return store.Info{}, fmt.Errorf("s3: put %q: %w", key, err)
	}
	o := newObject(key, m)
	body := &body{ctx: ctx, r: r}
	var info store.Info
	var err error
	conditional := m.IfNoneMatch != "" || m.IfMatch != ""
	if m.Size > s.partSize && m.Size <= maxSinglePut && !conditional {
		info, err = s.putStream(ctx, o, body)
	} else {
		info, err = s.putParts(ctx, o, body)
	}
	if err != nil {
		// The body's own failure (reader error, ErrSize, cancellation) is
		// the cause; the SDK's error about the aborted request is noise.
		if body.err != nil {
			err = body.err
		} else {
			err = mapErr(err)
			if o.ifMatch != nil && errors.Is(err, store.ErrNotExist) {
				err = fmt.Errorf("%w: If-Match %s: %w", store.ErrPrecondition, *o.ifMatch, err)
			}
		}
		return store.Info{}, fmt.Errorf("s3: put %q: %w", key, err)
	}
	return info, nil
}

// putStream sends an unconditional body of known size as it is read (see
// Put for why conditional bodies are not streamed).
func (s *Store) putStream(ctx context.Context, o object, b *body) (store.Info, error) {
	er := &exactReader{r: b, remaining: o.size}
	out, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket: &s.bucket, Key: &o.key, Body: er, ContentLength: aws.Int64(o.size),
		ContentType: &o.contentType, CacheControl: o.cacheControl,
		Metadata: o.metadata, Tagging: &o.tagging,
	}, awss3.WithAPIOptions(
		// SigV4 would hash the payload before sending, which needs the whole
		// body; over TLS the SDK does this by itself, over plain HTTP (MinIO
		// in dev and tests) we ask for it.
		v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware,
	), func(opts *awss3.Options) {
		// A retry would have to rewind the body, which it cannot; one
		// attempt returns the real error (not "failed to rewind").
		opts.RetryMaxAttempts = 1
	})
	if err != nil {
		return store.Info{}, err
	}
	if b.err == nil && er.remaining != 0 {
		// The transport stopped reading early; never report a short object.
		return store.Info{}, fmt.Errorf("%w: sent %d of %d bytes", store.ErrSize, o.size-er.remaining, o.size)
	}
	return o.info(o.size, aws.ToString(out.ETag)), nil
}

// putParts reads the body in pieces of PartSize: one piece is one PutObject,
// more make a multipart upload.
func (s *Store) putParts(ctx context.Context, o object, b *body) (store.Info, error) {
	var src io.Reader = b
	if o.size > 0 {
		src = &sizeChecker{b: b, r: io.LimitReader(b, o.size+1), want: o.size}
	}
	var buf []byte
	if o.size > 0 && o.size < s.partSize {
		// Room for the whole body and the one byte more that would make
		// it too long: read in one allocation, not a doubling series.
		buf = make([]byte, 0, o.size+1)
	}
	buf, eof, err := readPart(src, buf, s.partSize)
	if err != nil {
		return store.Info{}, err
	}
	if !eof {
		return s.putMultipart(ctx, o, src, buf)
	}
	sum := md5.Sum(buf)
	out, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket: &s.bucket, Key: &o.key, Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(len(buf))),
		ContentMD5:  aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		ContentType: &o.contentType, CacheControl: o.cacheControl,
		Metadata: o.metadata, Tagging: &o.tagging,
		IfNoneMatch: o.ifNoneMatch, IfMatch: o.ifMatch,
	})
	if err != nil {
		return store.Info{}, err
	}
	return o.info(int64(len(buf)), aws.ToString(out.ETag)), nil
}

// putMultipart uploads first and the rest of src as parts and completes the
// upload with the Put's conditions. MinIO and S3 check If-None-Match and
// If-Match at completion, so a losing writer's parts never become visible.
func (s *Store) putMultipart(ctx context.Context, o object, src io.Reader, first []byte) (store.Info, error) {
	if err := s.precheck(ctx, o); err != nil {
		return store.Info{}, err
	}
	created, err := s.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{
		Bucket: &s.bucket, Key: &o.key,
		ContentType: &o.contentType, CacheControl: o.cacheControl,
		Metadata: o.metadata, Tagging: &o.tagging,
	})
	if err != nil {
		return store.Info{}, err
	}
	completed := false
	defer func() {
		if completed {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		// An upload left behind is invisible; a bucket lifecycle rule
		// (AbortIncompleteMultipartUpload) reclaims it if this fails.
		_, _ = s.client.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{
			Bucket: &s.bucket, Key: &o.key, UploadId: created.UploadId,
		})
	}()

	var parts []types.CompletedPart
	var total int64
	buf, eof := first, false
	for len(buf) > 0 {
		n := int32(len(parts) + 1)
		if n > maxParts {
			return store.Info{}, fmt.Errorf("body larger than %d parts of %d bytes (raise s3.part_size)", maxParts, s.partSize)
		}
		sum := md5.Sum(buf)
		out, err := s.client.UploadPart(ctx, &awss3.UploadPartInput{
			Bucket: &s.bucket, Key: &o.key, UploadId: created.UploadId, PartNumber: &n,
			Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(len(buf))),
			ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		})
		if err != nil {
			return store.Info{}, err
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: &n})
		total += int64(len(buf))
		if eof {
			break
		}
		if buf, eof, err = readPart(src, buf[:0], s.partSize); err != nil {
			return store.Info{}, err
		}
	}
	out, err := s.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &o.key, UploadId: created.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     o.ifNoneMatch, IfMatch: o.ifMatch,
	})
	if err != nil {
		return store.Info{}, err
	}
	completed = true
	return o.info(total, aws.ToString(out.ETag)), nil
}

// precheck fails a conditional Put whose condition does not hold now,
// before any part is uploaded. It only saves work: the condition sent with
// CompleteMultipartUpload decides. SDK errors are returned unmapped (Put
// maps them).
func (s *Store) precheck(ctx context.Context, o object) error {
	if o.ifNoneMatch == nil && o.ifMatch == nil {
		return nil
	}
	head, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &o.key})
	switch {
	case err != nil && errors.Is(mapErr(err), store.ErrNotExist) && o.ifMatch == nil:
		return nil // If-None-Match * holds
	case err != nil:
		return err
	case o.ifNoneMatch != nil:
		return fmt.Errorf("%w: If-None-Match *: object exists", store.ErrPrecondition)
	case unquote(aws.ToString(head.ETag)) != unquote(*o.ifMatch):
		return fmt.Errorf("%w: If-Match %s: current ETag is %s", store.ErrPrecondition, *o.ifMatch, aws.ToString(head.ETag))
	}
	return nil
}

func unquote(etag string) string {
	if len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"' {
		return etag[1 : len(etag)-1]
	}
	return etag
}

// readPart appends to buf from r until buf holds limit bytes or r ends;
// eof reports the end. buf grows as data arrives, so a small body costs a
// small buffer.
func readPart(r io.Reader, buf []byte, limit int64) (_ []byte, eof bool, _ error) {
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(max(2*int64(cap(buf)), 64<<10), limit))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, true, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
	return buf, false, nil
}

// body is the caller's reader as a Put sees it: it stops at ctx's end and
// remembers the first error it returned, so that Put reports that cause
// rather than the transport's view of an aborted request.
type body struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if err := b.ctx.Err(); err != nil {
		return 0, b.fail(err)
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		return n, b.fail(fmt.Errorf("read body: %w", err))
	}
	return n, err
}

func (b *body) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return b.err
}

// sizeChecker fails with ErrSize when r (limited to want+1 bytes) ends at
// another length than want.
type sizeChecker struct {
	b    *body
	r    io.Reader
	want int64
	n    int64
}

func (c *sizeChecker) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.want {
		return 0, c.b.fail(fmt.Errorf("%w: body longer than Meta.Size %d", store.ErrSize, c.want))
	}
	if err == io.EOF && c.n != c.want {
		return n, c.b.fail(fmt.Errorf("%w: body has %d bytes, Meta.Size is %d", store.ErrSize, c.n, c.want))
	}
	return n, err
}

// exactReader streams exactly remaining bytes of a body. It fails the
// request with ErrSize when the body is shorter, and when it is longer it
// fails before the last announced byte is handed over, so the service never
// receives a complete (wrong) body.
type exactReader struct {
	r         *body
	remaining int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.r.err != nil {
		return 0, e.r.err
	}
	if e.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.remaining {
		p = p[:e.remaining]
	}
	n, err := e.r.Read(p)
	e.remaining -= int64(n)
	switch {
	case err == io.EOF && e.remaining > 0:
		return 0, e.r.fail(fmt.Errorf("%w: body ended %d bytes short of Meta.Size", store.ErrSize, e.remaining))
	case err != nil && err != io.EOF:
		return 0, err
	case e.remaining > 0:
		return n, nil
	}
	// The announced length is complete: the body must end here.
	var one [1]byte
	for range 100 {
		m, err := e.r.Read(one[:])
		if m > 0 {
			return 0, e.r.fail(fmt.Errorf("%w: body longer than Meta.Size", store.ErrSize))
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
	return 0, e.r.fail(io.ErrNoProgress)
}
