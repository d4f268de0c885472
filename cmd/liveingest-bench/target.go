package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
)

// ErrUnavailable is returned by Target.Start when the server cannot run on
// this machine at all (nginx or its RTMP module not installed, liveingest
// without the RTMP or SRT ingest asked for): a skip, not a failure.
var ErrUnavailable = errors.New("target unavailable")

// Target is an ingest server under test.
type Target interface {
	// Name is how reports call it.
	Name() string
	// Start brings the server up (idle) and prepares n stream keys.
	Start(ctx context.Context, n int) (*Running, error)
}

var (
	_ Target = (*Liveingest)(nil)
	_ Target = (*Nginx)(nil)
	_ Target = (*External)(nil)
)

// Running is a started target.
type Running struct {
	PID     int
	Version string
	// URLs are per publisher: rtmp://host:port/app#<stream key>, or
	// srt://host:port?streamid=... for SRT (srtURL).
	URLs []*url.URL
	// SegmentDirs are the v/ directories of each publisher's slot in the
	// disk store; nil for targets without a store to watch.
	SegmentDirs []string
	// SegmentLeaf, when set, is the file inside a segment's path whose
	// appearance marks the segment visible (MinIO: its xl.meta).
	SegmentLeaf string
	// Scan, when set instead of SegmentDirs, lists each publisher's
	// recorded segments after the run, for a server whose files cannot be
	// watched appearing (MediaMTX: a segment's file exists before it is
	// complete); matchRecorded maps them to the cut model.
	Scan            func() [][]RecordedSegment
	SegmentDuration time.Duration
	// Log is where the server's own output went (kept after Stop).
	Log string
	// Pprof is the host:port of the server's /debug/pprof endpoints; ""
	// when it serves none. ProfileNote says why a server that was asked
	// to serve them does not (a build without --pprof).
	Pprof, ProfileNote string
	// After, when set, is called once the publishers are done and says
	// what the server did besides the measured numbers (report Note).
	After func() string
	// Stop ends the server (only one the bench started) and cleans up.
	Stop func() error
}

// process runs a server binary, optionally pinned with taskset, and stops
// it with SIGTERM (SIGKILL after a grace period).
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProcess(cpus, logPath string, stdout io.Writer, env []string, name string, args ...string) (*process, error) {
	if cpus != "" {
		// taskset execs the server in place: the PID stays the server's.
		args = append([]string{"-c", cpus, name}, args...)
		name = "taskset"
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stderr = logf
	cmd.Stdout = logf
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Env = append(os.Environ(), env...)
	// Own process group: a Ctrl-C at the terminal reaches the bench, which
	// then stops the server itself after writing what it measured.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// freePort asks the kernel for a free loopback port. The port is free
// again when the server binds it; the short race is acceptable for a bench.
func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitTCP waits until addr accepts a connection.
func waitTCP(ctx context.Context, addr string, p *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("server exited: %v", p.err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s does not accept connections: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Liveingest starts `liveingest dev` with a fresh data directory; its
// publishers use RTMP or SRT.
type Liveingest struct {
	// Protocol is the ingest the publishers use: rtmp or srt. Default: rtmp.
	Protocol string
	// Label is how reports call it. Default: liveingest over RTMP,
	// liveingest-srt over SRT.
	Label           string
	Binary          string // built liveingest binary
	CPUs            string // taskset CPU list; "" leaves the server unpinned
	WorkDir         string // parent of the temporary data directory
	Keep            bool   // keep the data directory after the run
	SegmentDuration int    // slot segment_duration, seconds
	BitrateKbps     int    // slot ingest_bitrate_kbps
	// Store is where segments go: "disk" (dev's embedded store) or "s3"
	// (the edge role writing to a MinIO, target_s3.go). Default: disk.
	Store string
	// Pprof starts the measured process with --pprof on a free loopback
	// port, so runs can be profiled (profile.go); a build that refuses
	// the flag runs without it. Default: false.
	Pprof bool
}

// noPprofNote is the report's word on a build from before --pprof.
const noPprofNote = "not profiled: this liveingest build has no --pprof (it refused the flag)"

// errNoPprof is returned by startDev when the binary refused --pprof.
var errNoPprof = errors.New("liveingest refused --pprof")

// refusedFlag reports whether a server that exited did so because it
// does not know flag (kong's "unknown flag --x").
func refusedFlag(logPath, flag string) bool {
	b, _ := os.ReadFile(logPath)
	return bytes.Contains(b, []byte("unknown flag "+flag))
}

// pprofArgs are the --pprof flag and its address when l profiles, on a
// free port.
func (l *Liveingest) pprofArgs() (args []string, addr string, err error) {
	if !l.Pprof {
		return nil, "", nil
	}
	port, err := freePort("tcp")
	if err != nil {
		return nil, "", err
	}
	addr = "127.0.0.1:" + strconv.Itoa(port)
	return []string{"--pprof", addr}, addr, nil
}

// Name implements Target.
func (l *Liveingest) Name() string {
	name := "liveingest"
	switch {
	case l.Label != "":
		return l.Label
	case l.Protocol == "srt":
		name = "liveingest-srt"
	}
	if l.Store == "s3" {
		name += "-s3"
	}
	return name
}

// Start implements Target.
func (l *Liveingest) Start(ctx context.Context, n int) (_ *Running, err error) {
	dir, err := os.MkdirTemp(l.WorkDir, "liveingest-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && !l.Keep {
			// The server's log explains a failed start: keep it beside the
			// work directory, as Stop does.
			last := filepath.Join(l.WorkDir, l.Name()+"-bench-last.log")
			if os.Rename(filepath.Join(dir, "liveingest.log"), last) == nil {
				err = fmt.Errorf("%w (log kept: %s)", err, last)
			}
			os.RemoveAll(dir)
		}
	}()
	if l.Store == "s3" {
		return l.startS3(ctx, n, dir)
	}
	var ports [6]int
	for i := range ports {
		netw := "tcp"
		if i >= 4 {
			netw = "udp"
		}
		if ports[i], err = freePort(netw); err != nil {
			return nil, err
		}
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	token := rand.Text() + rand.Text() // 52 base32 characters: a throwaway admin token
	logPath := filepath.Join(dir, "liveingest.log")
	args := []string{"dev", "--data", filepath.Join(dir, "data"),
		"--http", addr(0), "--https", addr(1), "--rtmp", addr(2), "--rtmps", addr(3),
		"--srt", addr(4), "--webrtc-udp", addr(5), "--public-host", "localhost"}
	pArgs, pprofAddr, err := l.pprofArgs()
	if err != nil {
		return nil, err
	}
	profileNote := ""
	p, summary, err := l.startDev(ctx, logPath, token, slices.Concat(args, pArgs))
	if errors.Is(err, errNoPprof) {
		pprofAddr, profileNote = "", noPprofNote
		p, summary, err = l.startDev(ctx, logPath, token, args)
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.stop()
		}
	}()
	base := "http://" + addr(0)
	if err := waitReady(ctx, base+"/readyz", 20*time.Second); err != nil {
		return nil, err
	}
	if l.Protocol == "srt" {
		// SRT has no connection to probe without a handshake: the
		// summary's srt row is the word of a build that serves it.
		if !summary.has("srt") {
			return nil, fmt.Errorf("%w: this liveingest build serves no SRT ingest (no srt line in the dev summary)", ErrUnavailable)
		}
	} else if !summary.has("rtmp") {
		// The summary names every ingest it serves; an RTMP listener that
		// does not even accept means this build has no RTMP ingest yet.
		if err := waitTCP(ctx, addr(2), p, 2*time.Second); err != nil {
			return nil, fmt.Errorf("%w: this liveingest build serves no RTMP ingest (no rtmp line in the dev summary, nothing on --rtmp)", ErrUnavailable)
		}
	}
	r := &Running{PID: p.cmd.Process.Pid, Log: logPath, SegmentDuration: time.Duration(l.SegmentDuration) * time.Second,
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
			u = srtURL(addr(4), key)
		}
		r.URLs = append(r.URLs, u)
		r.SegmentDirs = append(r.SegmentDirs, filepath.Join(dir, "data", "store", filepath.FromSlash(keys.RolePrefix(id, keys.Primary)), "v"))
	}
	r.Stop = func() error {
		p.stop()
		if !l.Keep {
			// The log outlives the data: it is what explains a bad run.
			// Named after the target: an SRT run and its RTMP reference
			// keep one each.
			last := filepath.Join(l.WorkDir, l.Name()+"-bench-last.log")
			_ = os.Rename(logPath, last)
			r.Log = last
			return os.RemoveAll(dir)
		}
		return nil
	}
	return r, nil
}

// startDev starts `liveingest dev` with args and waits for its summary;
// errNoPprof when it exited because it does not know --pprof.
func (l *Liveingest) startDev(ctx context.Context, logPath, token string, args []string) (*process, *summaryWriter, error) {
	summary := &summaryWriter{seen: make(chan struct{})}
	p, err := startProcess(l.CPUs, logPath, summary, []string{"LIVEINGEST_ADMIN_TOKEN=" + token}, l.Binary, args...)
	if err != nil {
		return nil, nil, err
	}
	select {
	case <-summary.seen:
		return p, summary, nil
	case <-p.done:
		if slices.Contains(args, "--pprof") && refusedFlag(logPath, "--pprof") {
			return nil, nil, errNoPprof
		}
		return nil, nil, fmt.Errorf("liveingest dev exited: %v (log: %s)", p.err, logPath)
	case <-time.After(30 * time.Second):
		err = fmt.Errorf("liveingest dev printed no summary in 30s (log: %s)", logPath)
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.stop()
	return nil, nil, err
}

// summaryWriter takes dev's stdout: it signals once the summary is complete
// (the admin token line is its last table row) and remembers the row names.
type summaryWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	rows map[string]bool
	seen chan struct{}
	done bool
}

func (s *summaryWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return len(b), nil
	}
	s.buf.Write(b)
	if s.rows == nil {
		s.rows = map[string]bool{}
	}
	sc := bufio.NewScanner(bytes.NewReader(s.buf.Bytes()))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "  ") {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		s.rows[f[0]] = true
		if len(f) > 1 && f[0] == "admin" && f[1] == "token" && !s.done {
			s.done = true
			close(s.seen)
		}
	}
	return len(b), nil
}

func (s *summaryWriter) has(row string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rows[row]
}

func waitReady(ctx context.Context, u string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready in %v (last: %v)", u, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// createSlot makes a transmux slot through the API and returns its id and
// stream key (shown only in this response).
func createSlot(ctx context.Context, cl *http.Client, base, token, name string, segDur, kbps int) (keys.SlotID, string, error) {
	body, _ := json.Marshal(map[string]any{
		"name": name, "type": "transmux", "segment_duration": segDur, "ingest_bitrate_kbps": kbps,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/slots", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("POST /api/v1/slots: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var v struct {
		ID        string `json:"id"`
		StreamKey string `json:"stream_key"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return "", "", fmt.Errorf("POST /api/v1/slots: %w", err)
	}
	id, err := keys.ParseSlotID(v.ID)
	if err != nil {
		return "", "", fmt.Errorf("POST /api/v1/slots: slot id: %w", err)
	}
	if v.StreamKey == "" {
		return "", "", errors.New("POST /api/v1/slots: no stream_key in the response")
	}
	return id, v.StreamKey, nil
}

// Nginx starts nginx with the RTMP module as one process (no master, no
// daemon), so one PID carries all the work.
type Nginx struct {
	Binary  string // "" looks up nginx in PATH and /usr/sbin
	Module  string // "" finds ngx_rtmp_module.so unless compiled in
	CPUs    string
	WorkDir string
	// HLS makes nginx-rtmp also cut HLS (MPEG-TS) segments to disk, 2 s
	// fragments like our slots': the closer reference for a transmuxing
	// ingest; without it nginx only relays. Default: false.
	HLS bool
}

// Name implements Target.
func (g *Nginx) Name() string {
	if g.HLS {
		return "nginx-rtmp-hls"
	}
	return "nginx-rtmp"
}

// nginxModuleDirs are where Debian and upstream builds keep dynamic modules.
var nginxModuleDirs = []string{"/usr/lib/nginx/modules", "/usr/lib64/nginx/modules", "/usr/local/nginx/modules"}

// locate finds the nginx binary and, unless compiled in, the RTMP module;
// ErrUnavailable when either is missing.
func (g *Nginx) locate() (bin, module, version string, err error) {
	bin = g.Binary
	if bin == "" {
		if bin, err = exec.LookPath("nginx"); err != nil {
			bin = "/usr/sbin/nginx"
		}
	}
	out, err := exec.Command(bin, "-V").CombinedOutput()
	if err != nil {
		return "", "", "", fmt.Errorf("%w: nginx not installed (%s: %v); `make bench-deps` installs it", ErrUnavailable, bin, err)
	}
	version = strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "nginx version: ")
	if v, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "libnginx-mod-rtmp").Output(); err == nil && len(v) > 0 {
		version += ", libnginx-mod-rtmp " + string(v)
	}
	if bytes.Contains(out, []byte("rtmp")) && g.Module == "" {
		return bin, "", version, nil // compiled in
	}
	module = g.Module
	if module == "" {
		for _, d := range nginxModuleDirs {
			if _, err := os.Stat(filepath.Join(d, "ngx_rtmp_module.so")); err == nil {
				module = filepath.Join(d, "ngx_rtmp_module.so")
				break
			}
		}
	}
	if module == "" {
		return "", "", "", fmt.Errorf("%w: nginx RTMP module not installed; `make bench-deps` installs libnginx-mod-rtmp", ErrUnavailable)
	}
	return bin, module, version, nil
}

// Start implements Target.
func (g *Nginx) Start(ctx context.Context, n int) (_ *Running, err error) {
	bin, module, version, err := g.locate()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(g.WorkDir, "nginx-rtmp-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	port, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	app := "live on;"
	if g.HLS {
		// Fragments cut at keyframes (hls_fragment is the minimum), no
		// continuous playlist cleanup beyond nginx's own.
		app += fmt.Sprintf(" hls on; hls_path %s/hls; hls_fragment 2s; hls_playlist_length 60s;", dir)
	}
	var conf strings.Builder
	if module != "" {
		fmt.Fprintf(&conf, "load_module %s;\n", module)
	}
	fmt.Fprintf(&conf, `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections %[2]d; }
rtmp {
    server {
        listen 127.0.0.1:%[3]d;
        chunk_size 4096;
        application live { %[4]s }
    }
}
`, dir, max(1024, 2*n+64), port, app)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "stderr.log")
	// -e: the error log before the configuration is read (default
	// /var/log/nginx, which may not be writable).
	p, err := startProcess(g.CPUs, logPath, nil, nil, bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitTCP(ctx, addr, p, 10*time.Second); err != nil {
		p.stop()
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, fmt.Errorf("nginx: %w: %s", err, bytes.TrimSpace(b))
	}
	r := &Running{PID: p.cmd.Process.Pid, Version: version, Log: filepath.Join(dir, "error.log")}
	for i := range n {
		u, err := streamURL("rtmp://"+addr+"/live", fmt.Sprintf("bench-%d", i))
		if err != nil {
			p.stop()
			return nil, err
		}
		r.URLs = append(r.URLs, u)
	}
	r.Stop = func() error {
		p.stop()
		last := filepath.Join(g.WorkDir, "nginx-rtmp-bench-last.log")
		if os.Rename(r.Log, last) == nil {
			r.Log = last
		}
		return os.RemoveAll(dir)
	}
	return r, nil
}

// External is an RTMP server the bench did not start: it only publishes to
// it and reads the given PID's use.
type External struct {
	URL string // rtmp://host:port/app
	PID int
}

// Name implements Target.
func (*External) Name() string { return "url" }

// Start implements Target.
func (e *External) Start(_ context.Context, n int) (*Running, error) {
	if _, err := (Proc{Root: "/proc"}).Usage(e.PID); err != nil {
		return nil, fmt.Errorf("--pid: %w", err)
	}
	r := &Running{PID: e.PID, Stop: func() error { return nil }}
	for i := range n {
		u, err := streamURL(e.URL, fmt.Sprintf("bench-%d", i))
		if err != nil {
			return nil, fmt.Errorf("--url: %w", err)
		}
		r.URLs = append(r.URLs, u)
	}
	return r, nil
}
