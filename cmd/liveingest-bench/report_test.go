package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpdateDoc(t *testing.T) {
	path := filepath.Join(t.TempDir(), "performance.md")
	if err := UpdateDoc(path, "first\n"); err != nil {
		t.Fatal(err)
	}
	prose := "# Performance\n\nHow we measure.\n\n"
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append([]byte(prose), append(b, []byte("\n## After\n\nkept\n")...)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateDoc(path, "second\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	s := string(got)
	if !strings.HasPrefix(s, prose+markBegin) || !strings.Contains(s, "second\n"+markEnd) || strings.Contains(s, "first") {
		t.Errorf("section not replaced in place:\n%s", s)
	}
	if !strings.HasSuffix(s, markEnd+"\n\n## After\n\nkept\n") {
		t.Errorf("text after the section not kept:\n%s", s)
	}
}

func TestMarkdownPendingAndRatios(t *testing.T) {
	r := &Report{Command: "bin/liveingest-bench --n 16", Reference: "nginx-rtmp", Runs: []RunResult{
		{Target: "liveingest", N: 16, Skipped: true, Err: "target unavailable"},
		{Target: "nginx-rtmp", N: 16, Clean: true, CPUmsPerSS: 2, RSSPerMiB: 0.1},
	}}
	r.AddRatios("liveingest", "nginx-rtmp")
	md := r.Markdown()
	for _, want := range []string{"pending: run `make bench`", "| nginx-rtmp | 16 |", "Ratios: pending", "bin/liveingest-bench --n 16"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	r.Runs[0] = RunResult{Target: "liveingest", N: 16, Clean: true, Watched: true, CPUmsPerSS: 5, RSSPerMiB: 0.4}
	r.Ratios = nil
	r.AddRatios("liveingest", "nginx-rtmp")
	if len(r.Ratios) != 1 || r.Ratios[0].CPURatio != 2.5 || r.Ratios[0].RSSRatio != 4 {
		t.Fatalf("ratios %+v", r.Ratios)
	}
	if md := r.Markdown(); !strings.Contains(md, "**2.50×**") || !strings.Contains(md, "**4.00×**") {
		t.Errorf("ratio lines missing:\n%s", md)
	}
	var sb strings.Builder
	r.WriteTable(&sb)
	if !strings.Contains(sb.String(), "ratio liveingest/nginx-rtmp N=16") {
		t.Errorf("table lacks the ratio line:\n%s", sb.String())
	}
}

func TestParseFlags(t *testing.T) {
	var sb strings.Builder
	c, err := ParseFlags([]string{"--n", "16,64", "--cpus", "0", "--compare", "nginx"}, &sb)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.N) != 2 || c.N[1] != 64 || c.CPUs != "0" {
		t.Errorf("parsed %+v", c)
	}
	for _, args := range [][]string{
		{"--target", "srt"},
		{"--target", "url"},
		{"--target", "url", "--url", "http://x/live", "--pid", "1"},
		{"--n", "0"},
		{"--duration", "1s"},
		{"--compare", "wowza"},
		{"extra"},
	} {
		if _, err := ParseFlags(args, &sb); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
