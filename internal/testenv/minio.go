package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MinIOServer is a real MinIO server on a loopback port.
type MinIOServer struct {
	Endpoint  string // http://127.0.0.1:port
	Region    string
	AccessKey string
	SecretKey string

	p       *process
	cleanup func()
}

// MinIO returns the package's shared MinIO server, started on first use.
// Tests get a bucket of their own with NewBucket.
func MinIO(t testing.TB) *MinIOServer {
	t.Helper()
	SkipIfNoIntegration(t)
	mu.Lock()
	defer mu.Unlock()
	if s, ok := shared["minio"].(*MinIOServer); ok {
		return s
	}
	dir := sharedDir(t, "minio")
	s := startMinIO(t, dir)
	s.cleanup = func() { removeAll(dir) }
	shared["minio"] = s
	return s
}

// NewMinIO starts a private MinIO server that is stopped when t ends; for
// tests that pause it.
func NewMinIO(t testing.TB) *MinIOServer {
	t.Helper()
	SkipIfNoIntegration(t)
	s := startMinIO(t, t.TempDir())
	t.Cleanup(s.stop)
	return s
}

// Pause stops the server's process (SIGSTOP): it keeps its sockets, so
// connections and new requests hang instead of failing, as a storage
// service that stopped answering does. Only for servers of NewMinIO; t's
// cleanup resumes it.
func (s *MinIOServer) Pause(t testing.TB) {
	t.Helper()
	if s.cleanup != nil {
		t.Fatal("testenv: Pause of the shared MinIO; use NewMinIO")
	}
	if err := s.p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("testenv: pause minio: %v", err)
	}
	t.Cleanup(func() { _ = s.p.cmd.Process.Signal(syscall.SIGCONT) })
}

// Resume continues a paused server (SIGCONT).
func (s *MinIOServer) Resume(t testing.TB) {
	t.Helper()
	if err := s.p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("testenv: resume minio: %v", err)
	}
}

func startMinIO(t testing.TB, dir string) *MinIOServer {
	t.Helper()
	bin := lookBinary(t, "minio", "LIVEINGEST_MINIO_BIN")
	s := &MinIOServer{Region: "us-east-1", AccessKey: "liveingest", SecretKey: "liveingest-test-secret"}
	p, port := startWithRetry(t, "minio", func(port int) (*process, error) {
		console := freePort(t)
		p, err := startProcess(bin, []string{
			"server", "--quiet", "--address", "127.0.0.1:" + itoa(port),
			"--console-address", "127.0.0.1:" + itoa(console), dir,
		}, []string{
			"MINIO_ROOT_USER=" + s.AccessKey, "MINIO_ROOT_PASSWORD=" + s.SecretKey,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_REGION=" + s.Region,
		}, dir)
		if err != nil {
			return nil, err
		}
		ready := "http://127.0.0.1:" + itoa(port) + "/minio/health/ready"
		if err := p.waitReady(60*time.Second, func() bool { return httpOK(ready) }); err != nil {
			p.kill()
			return nil, err
		}
		return p, nil
	})
	s.p = p
	s.Endpoint = "http://127.0.0.1:" + itoa(port)
	return s
}

func (s *MinIOServer) stop() {
	_ = s.p.cmd.Process.Signal(syscall.SIGCONT) // a paused process cannot be reaped otherwise
	s.p.kill()
	if s.cleanup != nil {
		s.cleanup()
	}
}

// Client returns an S3 client for the server (path-style addressing).
func (s *MinIOServer) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// NewBucket creates an empty bucket with a unique name for t.
func (s *MinIOServer) NewBucket(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

func httpOK(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	c.CloseIdleConnections()
	return resp.StatusCode == http.StatusOK
}
