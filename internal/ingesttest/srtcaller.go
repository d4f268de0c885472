package ingesttest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var callers sync.Map // testing.TB → the srtcaller binary built for it

// SRTCaller builds testdata/srtcaller.c against libsrt (once per test) and
// returns the binary: the reference SRT implementation's own report of a
// handshake rejection (srt_getrejectreason), which ffmpeg and
// srt-live-transmit only print as text.
func SRTCaller(t testing.TB) string {
	t.Helper()
	if p, ok := callers.Load(t); ok {
		return p.(string)
	}
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "srt").Output()
	if err != nil {
		t.Fatalf("pkg-config srt: %v (install libsrt-gnutls-dev and pkg-config: make deps)", err)
	}
	_, self, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(self), "testdata", "srtcaller.c")
	bin := filepath.Join(t.TempDir(), "srtcaller")
	args := append([]string{"-O1", "-o", bin, src}, strings.Fields(string(flags))...)
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc srtcaller: %v\n%s", err, out)
	}
	callers.Store(t, bin)
	t.Cleanup(func() { callers.Delete(t) })
	return bin
}

// SRTCall runs srtcaller against hostPort with streamID and extra
// arguments (passphrase, key length, -send) and returns its output line and
// exit code: 0 connected, 2 rejected ("rejected <code> <text>"). stdin
// feeds -send; kbps > 0 paces it.
func SRTCall(t testing.TB, hostPort string, stdin []byte, kbps int, streamID string, args ...string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, SRTCaller(t), append([]string{host, port, streamID}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	if kbps > 0 {
		cmd.Env = append(os.Environ(), "SRTCALLER_KBPS="+strconv.Itoa(kbps))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("srtcaller: %v", err)
	}
	if code == 1 {
		t.Fatalf("srtcaller failed: %s", stderr.String())
	}
	return strings.TrimSpace(string(out)), code
}

// SRTRejectCode runs srtcaller and returns the reject reason libsrt
// reported; it fails the test if the caller was accepted.
func SRTRejectCode(t testing.TB, hostPort, streamID string, args ...string) int {
	t.Helper()
	out, code := SRTCall(t, hostPort, nil, 0, streamID, args...)
	if code != 2 {
		t.Fatalf("srtcaller %q: %q (exit %d), want a rejection", streamID, out, code)
	}
	var n int
	if _, err := fmt.Sscanf(out, "rejected %d", &n); err != nil {
		t.Fatalf("srtcaller output %q", out)
	}
	return n
}
