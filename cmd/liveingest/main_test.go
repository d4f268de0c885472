package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/liveingest/liveingest/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// devAddrs puts every listener of dev on an ephemeral loopback port: tests
// never bind fixed ports.
var devAddrs = []string{"--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--rtmp", "127.0.0.1:0", "--rtmps", "127.0.0.1:0", "--srt", "127.0.0.1:0", "--webrtc-udp", "127.0.0.1:0"}

// devArgs is `dev` on ephemeral ports with data in dir, plus extra flags.
func devArgs(dir string, extra ...string) []string {
	return append(append([]string{"dev", "--data", dir}, devAddrs...), extra...)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigPrecedence: flags beat LIVEINGEST_* variables, variables beat the
// YAML file, the file beats defaults.
func TestConfigPrecedence(t *testing.T) {
	cfg := writeFile(t, "dev.yaml", "http: \"127.0.0.1:7001\"\nregion: file-region\npublic-host: file.example\n")
	t.Setenv("LIVEINGEST_REGION", "env-region")
	var cli CLI
	if _, err := parse(&cli, []string{"--config", cfg, "dev", "--http", "127.0.0.1:7003"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	d := cli.Dev
	if d.HTTP != "127.0.0.1:7003" {
		t.Errorf("http = %q, want the flag's value", d.HTTP)
	}
	if d.Region != "env-region" {
		t.Errorf("region = %q, want the variable's value over the file's", d.Region)
	}
	if d.PublicHost != "file.example" {
		t.Errorf("public-host = %q, want the file's value over the default", d.PublicHost)
	}
	if d.HTTPS != ":8443" || d.RTMP != ":1935" || d.SRT != ":9000" || d.WebRTCUDP != ":8189" {
		t.Errorf("defaults not applied: %+v", d)
	}
	if !filepath.IsAbs(d.Data) || filepath.Base(d.Data) != "data" {
		t.Errorf("data = %q, want ./data made absolute", d.Data)
	}
}

// TestEnvNames: every flag of every command reads LIVEINGEST_<FLAG>, with
// '-' as '_' (SPEC §8).
func TestEnvNames(t *testing.T) {
	var cli CLI
	p, err := kong.New(&cli, kong.DefaultEnvars("LIVEINGEST"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = kong.Visit(p.Model, func(node kong.Visitable, next kong.Next) error {
		if f, ok := node.(*kong.Flag); ok && f.Name != "help" {
			n++
			want := "LIVEINGEST_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
			if f.Name == "token" { // the slots CLI reads the same variable dev serves
				want = "LIVEINGEST_ADMIN_TOKEN"
			}
			if len(f.Envs) != 1 || f.Envs[0] != want {
				t.Errorf("--%s reads %v, want %s", f.Name, f.Envs, want)
			}
		}
		return next(nil)
	})
	if n < 20 {
		t.Fatalf("visited only %d flags", n)
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, c := range []struct{ name, content, want string }{
		{"unknown key", "htpp: \":80\"\n", `unknown key "htpp"`},
		{"not yaml", "http: [\n", "config file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cli CLI
			_, err := parse(&cli, []string{"--config", writeFile(t, "c.yaml", c.content), "dev"}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// TestValidateNamesField: every bad value is refused at start-up with an
// error that names the flag.
func TestValidateNamesField(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--http", "nonsense"}, "--http"},
		{[]string{"--https", "127.0.0.1:99999"}, "--https"},
		{[]string{"--rtmp", "bad host:1935"}, "--rtmp"},
		{[]string{"--srt", ":x"}, "--srt"},
		{[]string{"--webrtc-udp", ""}, "--webrtc-udp"},
		{[]string{"--public-host", "bad_host"}, "--public-host"},
		{[]string{"--region", "EU!"}, "--region"},
		{[]string{"--admin-token", "short"}, "--admin-token"},
	} {
		var cli CLI
		_, err := parse(&cli, append([]string{"dev"}, c.args...), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want it to name %s", c.args, err, c.want)
		}
	}
	var cli CLI
	if _, err := parse(&cli, []string{"dev", "--log-level", "loud"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("log level: err = %v", err)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "liveingest ") {
		t.Fatalf("version printed %q", out.String())
	}
}

var httpLine = regexp.MustCompile(`(?m)^\s+http\s+(http://\S+)`)

// waitURL waits until out shows the summary's http line and returns its URL.
func waitURL(t *testing.T, out func() string, exited <-chan struct{}) string {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		if m := httpLine.FindStringSubmatch(out()); m != nil {
			return m[1]
		}
		select {
		case <-exited:
			t.Fatalf("exited before printing its summary:\n%s", out())
		case <-deadline:
			t.Fatalf("no summary after 2 minutes:\n%s", out())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// checkOps asserts the ops endpoints of a running process.
func checkOps(t *testing.T, base string) {
	t.Helper()
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, `liveingest_build_info{`) || !strings.Contains(body, `role="dev"`) {
		t.Errorf("/metrics = %d, missing liveingest_build_info:\n%.500s", code, body)
	}
}

// TestDevServesAndStops runs dev in-process on a free port: ops endpoints
// answer, the summary shows the generated admin token, and cancelling the
// context (what SIGINT/SIGTERM do) shuts it down cleanly.
func TestDevServesAndStops(t *testing.T) {
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, logs testenv.Buffer
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- run(ctx, devArgs(data), &out, &logs)
		close(exited)
	}()
	base := waitURL(t, out.String, exited)
	base = strings.Replace(base, "localhost", "127.0.0.1", 1)
	checkOps(t, base)

	summary := out.String()
	tok := regexp.MustCompile(`admin token\s+(\S+) \(generated`).FindStringSubmatch(summary)
	if tok == nil || len(tok[1]) < 40 {
		t.Fatalf("summary has no generated admin token:\n%s", summary)
	}
	if strings.Contains(logs.String(), tok[1]) {
		t.Fatal("the admin token reached the log")
	}
	if _, err := os.Stat(filepath.Join(data, "store")); err != nil {
		t.Errorf("dev did not create its store under --data: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("dev did not stop within 20 s of cancellation")
	}
}

// TestDevPortTaken: a port in use fails start-up with an error naming the flag.
func TestDevPortTaken(t *testing.T) {
	first, err := listen("http", "127.0.0.1:0", &http.Server{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.ln.Close()
	err = run(context.Background(), devArgs(t.TempDir(), "--http", first.ln.Addr().String()), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--http") {
		t.Fatalf("err = %v, want a listen error naming --http", err)
	}
}

// TestMakeRun runs the README's `make run` as a user would, on a free port,
// checks /healthz, then stops it with SIGTERM.
func TestMakeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the make run build")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	cmd := exec.Command("make", "--no-print-directory", "run")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "LIVEINGEST_HTTP=127.0.0.1:0", "LIVEINGEST_HTTPS=127.0.0.1:0", "LIVEINGEST_RTMP=127.0.0.1:0",
		"LIVEINGEST_RTMPS=127.0.0.1:0", "LIVEINGEST_SRT=127.0.0.1:0", "LIVEINGEST_DATA="+t.TempDir(), "LIVEINGEST_LOG_FORMAT=text")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out testenv.Buffer
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.Write(append(sc.Bytes(), '\n'))
		}
		_ = cmd.Wait()
		close(exited)
	}()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}()
	base := strings.Replace(waitURL(t, out.String, exited), "localhost", "127.0.0.1", 1)
	if code, body := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("make run did not stop on SIGTERM:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "shutting down") {
		t.Errorf("no graceful shutdown in the output:\n%s", out.String())
	}
}
