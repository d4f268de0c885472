// Package testenv starts the real servers that integration tests talk to — a
// redis-server and a MinIO server — on free loopback ports, once per test
// package, and stops them when the package's tests end.
//
// Use it from TestMain so the servers are stopped and goroutine leaks are
// checked:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// With LIVEINGEST_SKIP_INTEGRATION=1 every test that asks for a server is
// skipped with a message; otherwise a missing binary fails the test and says
// how to install it (make deps).
package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// SkipEnv is the variable that skips integration tests when set to 1.
const SkipEnv = "LIVEINGEST_SKIP_INTEGRATION"

var (
	mu     sync.Mutex
	shared = map[string]stopper{} // servers shared by the package's tests
)

type stopper interface{ stop() }

// Main runs the package's tests, stops the shared servers, then fails the run
// if goroutines leaked.
func Main(m *testing.M) {
	code := m.Run()
	mu.Lock()
	for name, s := range shared {
		s.stop()
		delete(shared, name)
	}
	mu.Unlock()
	if code == 0 {
		if err := goleak.Find(LeakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// LeakOptions are the goroutines the leak check tolerates: idle keep-alive
// connections of net/http clients that the standard library closes lazily.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	}
}

// VerifyNoLeaks fails t at cleanup if goroutines started during t are still
// running. Only for tests that do not run in parallel with others.
func VerifyNoLeaks(t testing.TB) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := goleak.Find(append(LeakOptions(), before)...)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutine leak: %v", err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// SkipIfNoIntegration skips t when integration tests are switched off.
func SkipIfNoIntegration(t testing.TB) {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s=1: skipping a test that needs real servers", SkipEnv)
	}
}

// lookBinary finds a server binary: $envVar, then PATH, then $GOPATH/bin.
func lookBinary(t testing.TB, name, envVar string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(gopath, "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Fatalf("%s not found (PATH, $GOPATH/bin, $%s): run `make deps`, or set %s=1 to skip integration tests", name, envVar, SkipEnv)
	return ""
}

// freePort returns a loopback TCP port that was free a moment ago. Servers
// that cannot take it are restarted on another (see startWithRetry).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is a server child process with its output kept for diagnostics.
type process struct {
	cmd  *exec.Cmd
	out  *Buffer
	done chan struct{}
	once sync.Once
}

func startProcess(bin string, args, env []string, dir string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out := &Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// The server dies with the test binary even if the binary is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill stops the process at once and waits for it.
func (p *process) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
}

// waitReady polls ready until it reports true, the process exits, or the
// deadline passes.
func (p *process) waitReady(timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("exited early: %s", p.out.tail())
		}
		if ready() {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %s", timeout, p.out.tail())
}

// startWithRetry starts a server on a fresh free port, retrying when another
// process took the port between freePort and the server's bind.
func startWithRetry(t testing.TB, what string, start func(port int) (*process, error)) (*process, int) {
	t.Helper()
	var last error
	for range 3 {
		port := freePort(t)
		p, err := start(port)
		if err == nil {
			return p, port
		}
		last = err
	}
	t.Fatalf("start %s: %v", what, last)
	return nil, 0
}

// Buffer collects output written from several goroutines (a server's logs,
// a child process's stderr) while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *Buffer) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

func itoa(i int) string { return strconv.Itoa(i) }

// sharedDir makes a directory for a server that outlives the test that
// started it; the server's stop removes it.
func sharedDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "liveingest-"+name+"-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	return dir
}

func removeAll(dir string) { _ = os.RemoveAll(dir) }
