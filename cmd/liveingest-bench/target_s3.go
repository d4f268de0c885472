package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/liveingest/liveingest/origin/keys"
)

// With --store s3 the liveingest target is the deployed shape instead of
// dev: a MinIO (the binary the test harness uses), a redis-server, an
// `origin` for the slots API and the measured `edge`, which writes every
// segment to MinIO over S3. Only the edge is pinned and measured: MinIO,
// Redis and the origin run beside the generator, as they would on other
// machines, so what the S3 path costs the edge (HTTP, signing, the
// conditional writes) is in the edge's numbers and what it costs the
// object store is not.
//
// Segments are watched in MinIO's data directory. A single-drive MinIO
// keeps each object as a directory named by its key holding xl.meta,
// which it writes to a temporary directory and renames into place when
// the object is committed: that rename's ctime is when the segment
// became visible (Watcher.Leaf), as the disk store's rename is.

// minioBinary finds MinIO as the test harness does.
func minioBinary() (string, error) {
	if p := os.Getenv("LIVEINGEST_MINIO_BIN"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "minio")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: no minio binary (make deps builds it; or set LIVEINGEST_MINIO_BIN)", ErrUnavailable)
}

// s3World is the MinIO and Redis of one s3 run.
type s3World struct {
	minio, redis       *process
	endpoint, bucket   string
	redisAddr, dataDir string
	access, secretKey  string
}

func (w *s3World) stop() {
	for _, p := range []*process{w.minio, w.redis} {
		if p != nil {
			p.stop()
		}
	}
}

// startS3World starts MinIO and redis-server under dir and creates the
// bucket.
func startS3World(ctx context.Context, dir string) (_ *s3World, err error) {
	minioBin, err := minioBinary()
	if err != nil {
		return nil, err
	}
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: no redis-server (make deps installs it)", ErrUnavailable)
	}
	w := &s3World{bucket: "bench", dataDir: filepath.Join(dir, "minio"),
		access: "liveingest-bench", secretKey: rand.Text()}
	defer func() {
		if err != nil {
			w.stop()
		}
	}()
	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort("tcp"); err != nil {
			return nil, err
		}
	}
	w.endpoint = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	w.redisAddr = "127.0.0.1:" + strconv.Itoa(ports[2])
	if err := os.MkdirAll(w.dataDir, 0o755); err != nil {
		return nil, err
	}
	w.minio, err = startProcess("", filepath.Join(dir, "minio.log"), nil, []string{
		"MINIO_ROOT_USER=" + w.access, "MINIO_ROOT_PASSWORD=" + w.secretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_REGION=us-east-1",
	}, minioBin, "server", "--quiet", "--address", "127.0.0.1:"+strconv.Itoa(ports[0]),
		"--console-address", "127.0.0.1:"+strconv.Itoa(ports[1]), w.dataDir)
	if err != nil {
		return nil, err
	}
	w.redis, err = startProcess("", filepath.Join(dir, "redis.log"), nil, nil, redisBin,
		"--port", strconv.Itoa(ports[2]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, w.endpoint+"/minio/health/ready", 60*time.Second); err != nil {
		return nil, fmt.Errorf("minio: %w (log: %s)", err, filepath.Join(dir, "minio.log"))
	}
	if err := waitTCP(ctx, w.redisAddr, w.redis, 10*time.Second); err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	cl := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(w.endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(w.access, w.secretKey, ""),
	})
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(w.bucket)}); err != nil {
		return nil, fmt.Errorf("create bucket: %w", err)
	}
	return w, nil
}

// roleArgs are the flags and environment a deployed role needs for w.
func (w *s3World) roleArgs(role, httpAddr string) (args, env []string) {
	return []string{role, "--http", httpAddr, "--region", "local", "--node-id", "bench-" + role,
			"--s3-endpoint", w.endpoint, "--s3-region", "us-east-1", "--s3-bucket", w.bucket,
			"--s3-path-style", "--s3-access-key", w.access, "--redis-addr", w.redisAddr},
		[]string{"LIVEINGEST_S3_SECRET_KEY=" + w.secretKey}
}

// startS3 is Start for Store "s3".
func (l *Liveingest) startS3(ctx context.Context, n int, dir string) (_ *Running, err error) {
	w, err := startS3World(ctx, dir)
	if err != nil {
		return nil, err
	}
	var procs []*process
	stopAll := func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
		w.stop()
	}
	defer func() {
		if err != nil {
			stopAll()
		}
	}()
	var ports [5]int // origin http, edge http, rtmp, srt (udp), webrtc (udp)
	for i := range ports {
		netw := "tcp"
		if i >= 3 {
			netw = "udp"
		}
		if ports[i], err = freePort(netw); err != nil {
			return nil, err
		}
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	token := rand.Text() + rand.Text()

	oArgs, oEnv := w.roleArgs("origin", addr(0))
	origin, err := startProcess("", filepath.Join(dir, "origin.log"), nil, append(oEnv, "LIVEINGEST_ADMIN_TOKEN="+token), l.Binary, oArgs...)
	if err != nil {
		return nil, err
	}
	procs = append(procs, origin)
	eArgs, eEnv := w.roleArgs("edge", addr(1))
	eArgs = append(eArgs, "--rtmp", addr(2), "--srt", addr(3), "--webrtc-udp", addr(4))
	pArgs, pprofAddr, err := l.pprofArgs()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "liveingest.log")
	edge, err := startProcess(l.CPUs, logPath, nil, eEnv, l.Binary, slices.Concat(eArgs, pArgs)...)
	if err != nil {
		return nil, err
	}
	procs = append(procs, edge)
	base := "http://" + addr(0)
	if err := waitReady(ctx, base+"/readyz", 30*time.Second); err != nil {
		return nil, fmt.Errorf("%w (logs in %s)", err, dir)
	}
	profileNote := ""
	err = waitReady(ctx, "http://"+addr(1)+"/readyz", 30*time.Second)
	if err != nil && pArgs != nil && edge.exited() && refusedFlag(logPath, "--pprof") {
		pprofAddr, profileNote = "", noPprofNote
		if edge, err = startProcess(l.CPUs, logPath, nil, eEnv, l.Binary, eArgs...); err != nil {
			return nil, err
		}
		procs[len(procs)-1] = edge
		err = waitReady(ctx, "http://"+addr(1)+"/readyz", 30*time.Second)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (logs in %s)", err, dir)
	}
	if l.Protocol != "srt" {
		if err := waitTCP(ctx, addr(2), edge, 10*time.Second); err != nil {
			return nil, err
		}
	}

	r := &Running{PID: edge.cmd.Process.Pid, Log: logPath, SegmentDuration: time.Duration(l.SegmentDuration) * time.Second, SegmentLeaf: "xl.meta",
		Pprof: pprofAddr, ProfileNote: profileNote}
	if out, err := exec.CommandContext(ctx, l.Binary, "version").Output(); err == nil {
		r.Version = strings.TrimSpace(string(out))
	}
	cl := &http.Client{Timeout: 10 * time.Second}
	for i := range n {
		id, key, err := createSlot(ctx, cl, base, token, fmt.Sprintf("bench-%d", i), l.SegmentDuration, l.BitrateKbps)
		if err != nil {
			return nil, fmt.Errorf("create slot %d: %w", i, err)
		}
		u, err := streamURL("rtmp://"+addr(2)+"/live", key)
		if err != nil {
			return nil, err
		}
		if l.Protocol == "srt" {
			u = srtURL(addr(3), key)
		}
		r.URLs = append(r.URLs, u)
		r.SegmentDirs = append(r.SegmentDirs, filepath.Join(w.dataDir, w.bucket, filepath.FromSlash(keys.RolePrefix(id, keys.Primary)), "v"))
	}
	r.Stop = func() error {
		stopAll()
		if !l.Keep {
			last := filepath.Join(l.WorkDir, l.Name()+"-bench-last.log")
			_ = os.Rename(logPath, last)
			r.Log = last
			return os.RemoveAll(dir)
		}
		return nil
	}
	return r, nil
}
