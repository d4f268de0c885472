package main

import (
	"io"
	"log/slog"
	"os"
)

// newLogger is the process's logger on w at level ("debug" … "error") in
// format ("auto", "json" or "text"), every attribute capped (logcap.go).
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if logFormat(format, w) == "text" {
		return slog.New(capHandler{slog.NewTextHandler(w, opts)})
	}
	return slog.New(capHandler{slog.NewJSONHandler(w, opts)})
}

// logFormat resolves "auto": text for a person at a terminal (`make run`),
// JSON for everything that collects logs — a file, a pipe, journald's
// socket, a container runtime without a TTY. An explicit "json" or "text"
// stands.
func logFormat(format string, w io.Writer) string {
	if format != "auto" {
		return format
	}
	if isTerminal(w) {
		return "text"
	}
	return "json"
}

// isTerminal reports whether w is a character device, which a terminal
// is and a file, pipe or socket is not. It needs no terminal library: the
// one other character device stderr is commonly sent to is /dev/null,
// where the format does not matter.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
