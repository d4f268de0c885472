package s3_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/s3"
	"github.com/liveingest/liveingest/origin/store/storetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testPartSize is the smallest S3 allows, so that the suite's 12-24 MiB
// bodies take the multipart path several parts deep.
const testPartSize = 5 << 20

func config(srv *testenv.MinIOServer, bucket string) s3.Config {
	return s3.Config{
		Endpoint:  srv.Endpoint,
		Region:    srv.Region,
		Bucket:    bucket,
		PathStyle: true,
		AccessKey: srv.AccessKey,
		SecretKey: secret.String(srv.SecretKey),
		PartSize:  testPartSize,
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newStore returns a Store on a fresh bucket of the shared MinIO.
func newStore(t *testing.T) (*s3.Store, *testenv.MinIOServer, string) {
	t.Helper()
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	st, err := s3.New(ctxFor(t), config(srv, bucket))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return st, srv, bucket
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		st, _, _ := newStore(t)
		return st
	})
}

func TestProbeRefusesMissingBucket(t *testing.T) {
	srv := testenv.MinIO(t)
	_, err := s3.New(ctxFor(t), config(srv, "no-such-bucket-here"))
	if err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket-here" does not exist`) {
		t.Fatalf("New on a missing bucket: %v, want a clear 'does not exist' error", err)
	}
}

func TestProbeLeavesNothing(t *testing.T) {
	_, srv, bucket := newStore(t)
	out, err := srv.Client().ListObjectsV2(ctxFor(t), &awss3.ListObjectsV2Input{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 0 {
		t.Fatalf("probe left %q behind", aws.ToString(out.Contents[0].Key))
	}
}

func TestWrongCredentials(t *testing.T) {
	srv := testenv.MinIO(t)
	cfg := config(srv, srv.NewBucket(t))
	cfg.SecretKey = "wrong-secret-value"
	_, err := s3.New(ctxFor(t), cfg)
	if err == nil {
		t.Fatal("New with a wrong secret succeeded")
	}
	if strings.Contains(err.Error(), "wrong-secret-value") {
		t.Fatalf("error shows the secret: %v", err)
	}
	t.Logf("wrong secret: %v", err)
}

func TestUnreachableIsUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	cfg := s3.Config{Endpoint: "http://" + addr, Bucket: "b-unreachable", PathStyle: true,
		AccessKey: "a", SecretKey: "s", MaxAttempts: 2}
	_, err = s3.New(ctxFor(t), cfg)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("New against a closed port: %v, want ErrUnavailable", err)
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	cfg := s3.Config{Endpoint: ts.URL, Bucket: "b-flaky", PathStyle: true, AccessKey: "a", SecretKey: "s", MaxAttempts: 2}
	_, err := s3.New(ctxFor(t), cfg)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("New against a 503 server: %v, want ErrUnavailable", err)
	}
	if got := calls.Load(); got != 2 {
		t.Fatalf("%d requests, want 2 (MaxAttempts)", got)
	}
}

func TestProbeRefusesIgnoredConditions(t *testing.T) {
	// A service that accepts every write (as old S3 clones did) must be refused.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("ETag", `"d41d8cd98f00b204e9800998ecf8427e"`)
		w.WriteHeader(http.StatusOK)
	}))
	defer ts.Close()
	cfg := s3.Config{Endpoint: ts.URL, Bucket: "b-naive", PathStyle: true, AccessKey: "a", SecretKey: "s", MaxAttempts: 1}
	_, err := s3.New(ctxFor(t), cfg)
	if err == nil || !strings.Contains(err.Error(), "ignores If-None-Match") {
		t.Fatalf("New against a service without conditional writes: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg   s3.Config
		wants []string // substrings of the error; none: valid
	}{
		{s3.Config{Bucket: "media"}, nil},
		{s3.Config{Bucket: "media", Endpoint: "https://s3.example.com", AccessKey: "a", SecretKey: "b", PartSize: 16 << 20, MaxAttempts: 1}, nil},
		{s3.Config{}, []string{"s3.bucket: required"}},
		{s3.Config{Bucket: "Media_Bucket"}, []string{"s3.bucket:"}},
		{s3.Config{Bucket: "ab"}, []string{"s3.bucket:"}},
		{s3.Config{Bucket: "-media"}, []string{"s3.bucket:"}},
		{s3.Config{Bucket: "media", Endpoint: "ftp://host"}, []string{"s3.endpoint:"}},
		{s3.Config{Bucket: "media", Endpoint: "http://"}, []string{"s3.endpoint:"}},
		{s3.Config{Bucket: "media", Endpoint: "http://user:pw@host"}, []string{"s3.endpoint:"}},
		{s3.Config{Bucket: "media", AccessKey: "a"}, []string{"s3.access_key, s3.secret_key"}},
		{s3.Config{Bucket: "media", SecretKey: "b"}, []string{"s3.access_key, s3.secret_key"}},
		{s3.Config{Bucket: "media", PartSize: 1 << 20}, []string{"s3.part_size:"}},
		{s3.Config{Bucket: "media", MaxAttempts: -1}, []string{"s3.max_attempts:"}},
		{s3.Config{Endpoint: ":bad", PartSize: 1}, []string{"s3.bucket: required", "s3.endpoint:", "s3.part_size:"}},
	} {
		err := c.cfg.Validate()
		if len(c.wants) == 0 {
			if err != nil {
				t.Errorf("Validate(%+v) = %v, want nil", c.cfg, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Validate(%+v) = nil, want errors %q", c.cfg, c.wants)
			continue
		}
		for _, w := range c.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%+v) = %q, want it to contain %q", c.cfg, err, w)
			}
		}
	}
	// New validates too, before any network access.
	if _, err := s3.New(t.Context(), s3.Config{}); err == nil || !strings.Contains(err.Error(), "s3.bucket: required") {
		t.Fatalf("New(Config{}) = %v", err)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	const value = "hunter2-very-secret"
	cfg := s3.Config{Bucket: "media", AccessKey: "AKIDEXAMPLE", SecretKey: value}
	var outs []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
		outs = append(outs, fmt.Sprintf(f, cfg), fmt.Sprintf(f, cfg.SecretKey), fmt.Sprintf(f, &cfg))
	}
	outs = append(outs, fmt.Sprint(cfg), fmt.Sprintln(cfg.SecretKey), cfg.SecretKey.String(), fmt.Sprint(cfg.LogValue()))
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		l := slog.New(h)
		l.Info("config", "s3", cfg, "secret", cfg.SecretKey, "ptr", &cfg)
		l.Info("group", slog.Group("g", slog.Any("s3", cfg)))
	}
	outs = append(outs, logs.String())
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	for _, o := range outs {
		if strings.Contains(o, value) || strings.Contains(o, fmt.Sprintf("%x", value)) {
			t.Fatalf("secret printed: %s", o)
		}
	}
	if !strings.Contains(fmt.Sprintf("%+v", cfg), "[redacted]") || !strings.Contains(logs.String(), "[redacted]") {
		t.Fatalf("no redaction marker in %+v / %s", cfg, logs.String())
	}
	if !strings.Contains(logs.String(), "AKIDEXAMPLE") {
		t.Fatalf("the access key id (not a secret) should be logged: %s", logs.String())
	}
	var back s3.Config
	if err := json.Unmarshal([]byte(`{"SecretKey":"from-file"}`), &back); err != nil || back.SecretKey.Reveal() != "from-file" {
		t.Fatalf("secret not read from JSON: %v", err)
	}
}

func TestClassIsTagAndMetadata(t *testing.T) {
	st, srv, bucket := newStore(t)
	ctx := ctxFor(t)
	cases := []struct {
		key   string
		body  io.Reader
		m     store.Meta
		class store.Class
	}{
		{"live/s/primary/index.m3u8", strings.NewReader("#EXTM3U"), store.Meta{Class: store.ClassManifest}, store.ClassManifest},
		{"live/s/primary/seg1.m4s", strings.NewReader("seg"), store.Meta{}, store.ClassSegment},
		{"live/s/primary/init.mp4", &onlyReader{bytes.NewReader(fill(2*testPartSize + 1))}, store.Meta{Class: store.ClassInit}, store.ClassInit},
		{"config/slots/s.json", &onlyReader{bytes.NewReader(fill(2 * testPartSize))}, store.Meta{Class: store.ClassConfig, Size: 2 * testPartSize}, store.ClassConfig},
	}
	for _, c := range cases {
		if _, err := st.Put(ctx, c.key, c.body, c.m); err != nil {
			t.Fatalf("Put(%s): %v", c.key, err)
		}
		tags, err := srv.Client().GetObjectTagging(ctx, &awss3.GetObjectTaggingInput{Bucket: &bucket, Key: aws.String(c.key)})
		if err != nil {
			t.Fatalf("GetObjectTagging(%s): %v", c.key, err)
		}
		if len(tags.TagSet) != 1 || aws.ToString(tags.TagSet[0].Key) != "class" || aws.ToString(tags.TagSet[0].Value) != string(c.class) {
			t.Errorf("%s: tags %+v, want exactly class=%s", c.key, tags.TagSet, c.class)
		}
		head, err := srv.Client().HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &bucket, Key: aws.String(c.key)})
		if err != nil {
			t.Fatal(err)
		}
		if got := head.Metadata["class"]; got != string(c.class) {
			t.Errorf("%s: x-amz-meta-class %q, want %q", c.key, got, c.class)
		}
	}
}

func fill(n int) []byte { return bytes.Repeat([]byte("m"), n) }

type onlyReader struct{ r io.Reader }

func (o *onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestMultipartRace races conditional Puts that each take the multipart
// path: the service must apply the condition at completion.
func TestMultipartRace(t *testing.T) {
	st, _, _ := newStore(t)
	ctx := ctxFor(t)
	const racers = 6
	const n = testPartSize + 1<<20
	// Bodies differ per race as well as per writer: S3 ETags are content
	// hashes, so a writer re-putting the bytes of the version it replaces
	// would leave the ETag unchanged and a second If-Match would rightly
	// succeed.
	race := func(key string, m store.Meta, salt byte) int {
		t.Helper()
		start := make(chan struct{})
		var wg sync.WaitGroup
		var wins atomic.Int32
		errs := make(chan error, racers)
		for i := range racers {
			wg.Go(func() {
				<-start
				body := bytes.Repeat([]byte{byte('a' + i)}, n)
				body[0] = salt
				_, err := st.Put(ctx, key, &onlyReader{bytes.NewReader(body)}, m)
				if err == nil {
					wins.Add(1)
				} else if !errors.Is(err, store.ErrPrecondition) {
					errs <- err
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("losing Put: %v, want ErrPrecondition", err)
		}
		return int(wins.Load())
	}
	if w := race("mp/create", store.Meta{IfNoneMatch: "*"}, 'x'); w != 1 {
		t.Fatalf("%d multipart Puts with If-None-Match * won, want 1", w)
	}
	info, err := st.Stat(ctx, "mp/create")
	if err != nil {
		t.Fatal(err)
	}
	if w := race("mp/create", store.Meta{IfMatch: info.ETag}, 'y'); w != 1 {
		t.Fatalf("%d multipart Puts with If-Match won, want 1", w)
	}
}

// TestConditionalStreamingRegression: MinIO sends "100 Continue" and then
// rejects a failed condition while the body is still arriving, resetting
// the connection; about half of such Puts used to fail with "connection
// reset" / "failed to rewind" instead of ErrPrecondition. Conditional
// bodies are no longer streamed in one PutObject.
func TestConditionalStreamingRegression(t *testing.T) {
	st, _, _ := newStore(t)
	ctx := ctxFor(t)
	const n = 3 * testPartSize
	body := fill(n)
	if _, err := st.Put(ctx, "exists", strings.NewReader("x"), store.Meta{}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		for _, c := range []struct {
			key     string
			m       store.Meta
			missing bool
		}{
			{fmt.Sprintf("missing-%d", i), store.Meta{IfMatch: `"0123"`, Size: n}, true},
			{"exists", store.Meta{IfMatch: `"0123"`, Size: n}, false},
			{"exists", store.Meta{IfNoneMatch: "*", Size: n}, false},
		} {
			_, err := st.Put(ctx, c.key, &onlyReader{bytes.NewReader(body)}, c.m)
			if !errors.Is(err, store.ErrPrecondition) || errors.Is(err, store.ErrNotExist) != c.missing {
				t.Fatalf("Put(%s, %+v): %v, want ErrPrecondition (with ErrNotExist: %v)", c.key, c.m, err, c.missing)
			}
		}
	}
}

// TestFailedMultipartIsAborted checks that a failed Put leaves no
// incomplete upload behind (they cost storage and are invisible to List).
func TestFailedMultipartIsAborted(t *testing.T) {
	st, srv, bucket := newStore(t)
	ctx := ctxFor(t)
	boom := errors.New("encoder went away")
	r := io.MultiReader(bytes.NewReader(fill(2*testPartSize+100)), &errReader{boom})
	if _, err := st.Put(ctx, "live/aborted.m4s", r, store.Meta{}); !errors.Is(err, boom) {
		t.Fatalf("Put: %v, want %v", err, boom)
	}
	if _, err := st.Put(ctx, "live/exists", strings.NewReader("x"), store.Meta{}); err != nil {
		t.Fatal(err)
	}
	r = &onlyReader{bytes.NewReader(fill(2*testPartSize + 100))}
	if _, err := st.Put(ctx, "live/exists", r, store.Meta{IfNoneMatch: "*"}); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("Put: %v, want ErrPrecondition", err)
	}
	out, err := srv.Client().ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Fatalf("%d incomplete multipart uploads left, first for %q", len(out.Uploads), aws.ToString(out.Uploads[0].Key))
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }
