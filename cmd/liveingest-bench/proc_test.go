package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A real /proc/<pid>/stat line, with a command name that holds ") (" to
// prove fields are counted after the last ')'.
const statLine = "4242 (evil) (name) S 17 4242 4242 0 -1 4194560 1234 0 0 0 250 31 0 0 20 0 9 0 123456 987654321 2345 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"

func TestParseStat(t *testing.T) {
	st, err := ParseStat([]byte(statLine))
	if err != nil {
		t.Fatal(err)
	}
	if st.PPID != 17 || st.CPU != 281*clockTick {
		t.Errorf("got %+v, want ppid 17 and 2.81s", st)
	}
	for _, bad := range []string{"", "4242 no-parens S 1", "1 (x) S 1 2 3", "1 (x) S one 1 1 0 -1 0 0 0 0 0 a b"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q): no error", bad)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tnginx\nVmPeak:\t  20000 kB\nVmRSS:\t    7068 kB\nRssAnon:\t 1000 kB\n"
	if rss, err := ParseVmRSS([]byte(status)); err != nil || rss != 7068<<10 {
		t.Errorf("got %d, %v; want %d", rss, err, 7068<<10)
	}
	if rss, err := ParseVmRSS([]byte("Name:\tkthreadd\nState:\tS\n")); err != nil || rss != 0 {
		t.Errorf("kernel thread: got %d, %v; want 0", rss, err)
	}
	if _, err := ParseVmRSS([]byte("VmRSS:\t12 MB\n")); err == nil {
		t.Error("bad unit: no error")
	}
}

// fakeProc writes a /proc with pid → ppid, cpu ticks, rss kB.
func fakeProc(t *testing.T, procs map[int][3]int) Proc {
	root := t.TempDir()
	for pid, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		line := strings.Replace(statLine, "4242 (evil) (name) S 17", strconv.Itoa(pid)+" (p) S "+strconv.Itoa(p[0]), 1)
		line = strings.Replace(line, " 250 31 ", " "+strconv.Itoa(p[1])+" 0 ", 1)
		os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644)
		os.WriteFile(filepath.Join(dir, "status"), []byte("VmRSS:\t"+strconv.Itoa(p[2])+" kB\n"), 0o644)
	}
	os.Mkdir(filepath.Join(root, "self"), 0o755) // not a pid: skipped
	return Proc{Root: root}
}

func TestProcTreeUsage(t *testing.T) {
	p := fakeProc(t, map[int][3]int{
		1:   {0, 5, 100},
		100: {1, 10, 1000},  // the target
		101: {100, 20, 200}, // its worker
		102: {101, 30, 300}, // the worker's child
		200: {1, 40, 400},   // unrelated
	})
	u, err := p.Usage(100)
	if err != nil {
		t.Fatal(err)
	}
	if u.Procs != 3 || u.CPU != 60*clockTick || u.RSS != 1500<<10 {
		t.Errorf("got %+v, want 3 procs, 600ms, 1500 KiB", u)
	}
	if _, err := p.Usage(999); err == nil {
		t.Error("missing pid: no error")
	}
}

func TestProcSelfIsReal(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	u, err := (Proc{Root: "/proc"}).Usage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.RSS <= 0 || u.Procs < 1 {
		t.Errorf("own usage %+v: want RSS > 0", u)
	}
	if _, err := (Proc{Root: "/proc"}).Self(); err != nil {
		t.Error(err)
	}
}

func TestCPUCount(t *testing.T) {
	for in, want := range map[string]int{"": 0, "0": 1, "0,2": 2, "0-3": 4, "1-2,5": 3} {
		if got := cpuCount(in); got != want {
			t.Errorf("cpuCount(%q) = %d, want %d", in, got, want)
		}
	}
}
