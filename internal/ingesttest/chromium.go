package ingesttest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/liveingest/liveingest/internal/testenv"
)

// chromiumNames are the browser binaries NeedChromium and StartChromium
// look for on PATH, in this order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome"}

// chromiumPath returns the browser binary to run, or "" when none is
// installed. Debian's and Ubuntu's /usr/bin/chromium are shell launchers
// that source /etc/chromium.d (Google API keys, extensions to load) before
// they exec /usr/lib/chromium/chromium: the binary is run directly, so that
// the test's flags are the only ones.
func chromiumPath() string {
	for _, name := range chromiumNames {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if real := filepath.Join("/usr/lib", name, name); isScript(p) && isExecutable(real) {
			return real
		}
		return p
	}
	return ""
}

func isScript(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [2]byte
	n, _ := f.Read(b[:])
	return n == 2 && string(b[:]) == "#!"
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// NeedChromium skips when no chromium binary (chromium, chromium-browser,
// google-chrome) is found.
func NeedChromium(t testing.TB) {
	t.Helper()
	if chromiumPath() == "" {
		t.Skipf("no browser found (%s): install chromium (make deps)", strings.Join(chromiumNames, ", "))
	}
}

// Browser is one headless Chromium with a fake camera (a 30 fps test
// pattern) and microphone (a beep), driven over the DevTools protocol by
// chromedp. It has one tab; its methods are for the test's goroutine.
type Browser struct {
	ctx     context.Context // the tab; its first Run started the browser
	pid     int             // the browser process, leader of its own process group
	dataDir string          // --user-data-dir, a t.TempDir()
	out     *testenv.Buffer // the browser's output and chromedp's complaints

	stopTimer func() bool // stops the start watchdog
	closeTab  func()      // chromedp.NewContext's cancel: waits for the process
	closeAll  func()      // chromedp.NewExecAllocator's cancel: waits for its goroutines
	abort     func()      // cancels everything at once, waits for nothing
	once      sync.Once   // the end: Kill or the test's cleanup
}

// chromiumFlags are the browser's flags besides chromedp's defaults
// (headless, no first run, no background networking, no sync, no
// extensions, …): a fake camera and microphone that need no permission
// prompt, WebRTC over loopback, and nothing that calls home.
func chromiumFlags() []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// The fake camera runs at 20 fps unless told: 30, as the page asks.
		chromedp.Flag("use-fake-device-for-media-stream", "fps=30"),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Quiet and offline.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("no-service-autorun", true),
		chromedp.Flag("media-router", "0"),
		// Host candidates as plain addresses, not mDNS names.
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,MediaRouter,DialMediaRouteProvider,OptimizationHints,AutofillServerCommunication,WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("log-level", "2"), // errors only
	}
}

// StartChromium starts a headless Chromium with a fake camera and
// microphone and its own user-data dir (a t.TempDir()), connected to
// chromedp by a pipe (no debugging port). The test's cleanup closes it
// (gracefully, then SIGKILL to its process group and to any process left
// with its user-data dir) and waits for it and for chromedp's goroutines,
// so that a goroutine-leak check passes.
func StartChromium(t testing.TB) *Browser {
	t.Helper()
	NeedChromium(t)
	b := &Browser{dataDir: t.TempDir(), out: &testenv.Buffer{}}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromiumFlags()...)
	opts = append(opts,
		chromedp.ExecPath(chromiumPath()),
		chromedp.UserDataDir(b.dataDir),
		chromedp.CombinedOutput(b.out),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// Its own process group, so that Kill reaches every process of
			// the browser at once; it dies with the test binary.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		}),
	)
	root, abort := context.WithCancel(context.Background())
	allocCtx, closeAll := chromedp.NewExecAllocator(root, opts...)
	logf := func(format string, args ...any) { fmt.Fprintf(b.out, "chromedp: "+format+"\n", args...) }
	tab, closeTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	b.ctx, b.closeTab, b.closeAll, b.abort = tab, closeTab, closeAll, abort
	// The first Run binds the browser's life to its context, which must
	// not carry a deadline: a watchdog cancels a start that hangs.
	b.stopTimer = time.AfterFunc(60*time.Second, abort).Stop
	t.Cleanup(func() {
		b.close()
		if t.Failed() {
			t.Logf("chromium output:\n%s", tail(b.out.String(), 4000))
		}
	})
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, tail(b.out.String(), 4000))
	}
	b.stopTimer()
	c := chromedp.FromContext(tab)
	if c == nil || c.Browser == nil || c.Browser.Process() == nil {
		t.Fatal("chromedp started no browser process")
	}
	b.pid = c.Browser.Process().Pid
	return b
}

// close ends the browser for the cleanup, unless Kill did: a graceful
// close (Browser.close; it runs no pagehide handler, so a publishing page
// sends no DELETE) bounded by a few seconds, then what Kill does.
func (b *Browser) close() {
	b.once.Do(func() {
		b.stopTimer()
		if b.pid != 0 {
			ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
			_ = chromedp.Cancel(ctx)
			cancel()
		}
		b.kill()
	})
}

// Kill kills the browser process at once (SIGKILL to its process group,
// then to anything left that runs with its user-data dir: no DELETE, no
// DTLS close_notify, no RTCP BYE), like a crashed publisher, and waits for
// it to exit and for chromedp to notice. Calling it again does nothing.
func (b *Browser) Kill() {
	b.once.Do(b.kill)
}

func (b *Browser) kill() {
	b.stopTimer()
	if b.pid != 0 {
		_ = syscall.Kill(-b.pid, syscall.SIGKILL)
	}
	killLeftovers(b.dataDir)
	b.abort()
	b.closeTab()
	b.closeAll()
	killLeftovers(b.dataDir)
}

// Processes lists the processes still running with the browser's
// user-data dir (none once Kill returned).
func (b *Browser) Processes() []int {
	return processesUsing(b.dataDir)
}

// killLeftovers SIGKILLs the processes that run with the user-data dir
// until none is found (a child can fork while its parent dies), for at most
// two seconds.
func killLeftovers(dir string) {
	deadline := time.Now().Add(2 * time.Second)
	for quiet := 0; quiet < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		pids := processesUsing(dir)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if len(pids) == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
}

// processesUsing lists the processes whose command line holds
// --user-data-dir=dir (Chromium passes it to every child process).
// Zombies are not listed.
func processesUsing(dir string) []int {
	want := []byte("--user-data-dir=" + dir)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
			if bytes.Equal(arg, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// Start opens pageURL (the publish page of edge/whip/page), types whipURL
// and key into its fields (never via the URL) and clicks Start; it does not
// wait for the outcome: see WaitStatus.
func (b *Browser) Start(t testing.TB, pageURL, whipURL, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible(chromedp.ID("start")),
		// Empty both (?slot= and ?url= prefill the WHIP URL); chromedp's
		// SetValue cannot set "".
		chromedp.Evaluate[chromedp.Void](`for (const id of ['whip-url', 'stream-key']) document.getElementById(id).value = ''`),
		chromedp.SendKeys(chromedp.ID("whip-url"), whipURL),
		chromedp.SendKeys(chromedp.ID("stream-key"), key),
		chromedp.Click(chromedp.ID("start")),
	)
	if err != nil {
		t.Fatalf("open %s and click Start: %v", pageURL, err)
	}
}

// Publish opens pageURL, types whipURL and key into the fields (never via
// the URL), clicks Start and waits (deadline 20 s) until #status is
// "connected"; it fails the test with the status text otherwise.
func (b *Browser) Publish(t testing.TB, pageURL, whipURL, key string) {
	t.Helper()
	b.Start(t, pageURL, whipURL, key)
	b.WaitStatus(t, "connected", 20*time.Second)
}

// Status is #status's text now ("" when the page is not loaded).
func (b *Browser) Status(t testing.TB) string {
	t.Helper()
	s, err := b.status()
	if err != nil {
		t.Fatalf("read #status: %v", err)
	}
	return s
}

func (b *Browser) status() (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById('status') || {}).textContent || ''`))
}

// WaitStatus waits (deadline d) until #status has the prefix want, failing
// with the last text. An "error: …" status is final (only a new Start
// leaves it), so it fails at once unless want is an error prefix.
func (b *Browser) WaitStatus(t testing.TB, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for {
		s, err := b.status()
		if err != nil {
			t.Fatalf("waiting for status %q: read #status: %v (last %q)", want, err, last)
		}
		last = s
		if strings.HasPrefix(s, want) {
			return
		}
		if strings.HasPrefix(s, "error:") && !strings.HasPrefix(want, "error") {
			t.Fatalf("waiting for status %q: the page says %q", want, s)
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %q after %v, want %q", last, d, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop clicks Stop and waits (10 s) for "stopped".
func (b *Browser) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("stop"))); err != nil {
		t.Fatalf("click Stop: %v", err)
	}
	b.WaitStatus(t, "stopped", 10*time.Second)
}

// Eval evaluates a JavaScript expression in the page and returns its value
// as JSON-decoded T (for checks the methods above do not make).
func Eval[T any](t testing.TB, b *Browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("eval %q: %v", expr, err)
	}
	return v
}

// tail is the end of the browser's output, without the lines about the
// D-Bus it does not find (dozens at each start, in a container).
func tail(s string, n int) string {
	var keep []string
	for l := range strings.SplitSeq(s, "\n") {
		if !strings.Contains(l, "dbus/") {
			keep = append(keep, l)
		}
	}
	s = strings.Join(keep, "\n")
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
