package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestLogAttributesCapped(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, "debug", "json")
	huge := strings.Repeat("a", 700<<10)
	log.With("ctx", huge).Info("connect refused", "tcurl", huge, "err", errors.New(huge),
		slog.Group("g", "inner", huge), "short", "kept")
	line := buf.String()
	if len(line) > 8*maxAttrLen {
		t.Fatalf("log line is %d bytes; want every attribute capped at %d", len(line), maxAttrLen)
	}
	if !strings.Contains(line, `"short":"kept"`) || !strings.Contains(line, "[716800 bytes]") {
		t.Fatalf("line lost the short attribute or the cut marker: %.300s", line)
	}
	if got := capString(strings.Repeat("é", maxAttrLen), maxAttrLen); !strings.HasPrefix(got, strings.Repeat("é", maxAttrLen/2)+"…") {
		t.Fatalf("cut not on a rune boundary: %.40q", got[maxAttrLen-4:])
	}

	// A stack is the server's own text: kept up to maxStackLen.
	buf.Reset()
	log.Error("connection panicked", "stack", strings.Repeat("s", 8<<10))
	if !strings.Contains(buf.String(), strings.Repeat("s", 8<<10)) {
		t.Fatal("an 8 KiB stack was cut")
	}
}
