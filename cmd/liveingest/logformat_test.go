package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogFormat: auto gives text on a terminal and JSON on a file, a pipe
// or a buffer; json and text are taken as given.
func TestLogFormat(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	tty, _ := openTerminal(t)

	for _, c := range []struct {
		name, format string
		w            io.Writer
		want         string
	}{
		{"auto, terminal", "auto", tty, "text"},
		{"auto, file", "auto", file, "json"},
		{"auto, pipe", "auto", pw, "json"},
		{"auto, buffer", "auto", &bytes.Buffer{}, "json"},
		{"json on a terminal", "json", tty, "json"},
		{"text into a pipe", "text", pw, "text"},
	} {
		if got := logFormat(c.format, c.w); got != c.want {
			t.Errorf("%s: logFormat = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestLogFormatDefault: with no flag, a log that goes into a pipe (as a
// collector reads it) is JSON lines, and one on a terminal is slog's text.
func TestLogFormatDefault(t *testing.T) {
	var cli CLI
	if _, err := parse(&cli, []string{"version"}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if cli.LogFormat != "auto" {
		t.Fatalf("--log-format defaults to %q, want auto", cli.LogFormat)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	newLogger(pw, "info", cli.LogFormat).Info("hello", "proto", "rtmp")
	pw.Close()
	line, _ := bufio.NewReader(pr).ReadString('\n')
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil || m["msg"] != "hello" || m["proto"] != "rtmp" {
		t.Errorf("into a pipe: %q is not the JSON line (%v)", line, err)
	}

	tty, master := openTerminal(t)
	newLogger(tty, "info", cli.LogFormat).Info("hello", "proto", "rtmp")
	if got := readTerminal(t, master); !strings.Contains(got, "level=INFO msg=hello proto=rtmp") {
		t.Errorf("on a terminal: %q is not slog's text form", got)
	}
}
