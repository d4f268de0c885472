package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 for user space whatever the kernel's HZ (sysconf
// (_SC_CLK_TCK) would need cgo to ask).
const clockTick = 10 * time.Millisecond

// ProcStat is what the bench reads from /proc/<pid>/stat.
type ProcStat struct {
	PPID int
	CPU  time.Duration // utime + stime
}

// ParseStat parses the contents of /proc/<pid>/stat (proc(5)). The command
// name may hold spaces and parentheses, so fields are counted after the
// last ')'.
func ParseStat(b []byte) (ProcStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ProcStat{}, errors.New("stat: no command name")
	}
	f := bytes.Fields(b[i+1:])
	// After the name: state(3) ppid(4) … utime(14) stime(15), 1-based.
	if len(f) < 13 {
		return ProcStat{}, fmt.Errorf("stat: %d fields after the name, want at least 13", len(f))
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	ut, err2 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err3 := strconv.ParseUint(string(f[12]), 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return ProcStat{}, fmt.Errorf("stat: %w", err)
	}
	return ProcStat{PPID: ppid, CPU: time.Duration(ut+st) * clockTick}, nil
}

// ParseVmRSS returns the VmRSS line of /proc/<pid>/status in bytes. Kernel
// threads and zombies have none: 0 then.
func ParseVmRSS(b []byte) (int64, error) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("status: bad VmRSS line %q", bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: VmRSS: %w", err)
		}
		return kb << 10, nil
	}
	return 0, nil
}

// Usage is a process tree's resource use at one moment.
type Usage struct {
	At    time.Time
	CPU   time.Duration // utime + stime of every live process in the tree
	RSS   int64         // sum of VmRSS in bytes
	Procs int
}

// Proc reads a process tree under a /proc mount (root, "/proc" outside tests).
type Proc struct {
	Root string
}

// Tree returns pid and its live descendants. A target that forks workers
// (nginx with master_process on) is measured whole; CPU of children that
// exited in between is not counted, which is why nginx runs with one
// process here.
func (p Proc) Tree(pid int) ([]int, error) {
	ents, err := os.ReadDir(p.Root)
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range ents {
		id, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.Root, e.Name(), "stat"))
		if err != nil {
			continue // exited since ReadDir
		}
		if st, err := ParseStat(b); err == nil {
			children[st.PPID] = append(children[st.PPID], id)
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree, nil
}

// Usage sums CPU and RSS over pid's tree. It fails when pid itself is gone.
func (p Proc) Usage(pid int) (Usage, error) {
	tree, err := p.Tree(pid)
	if err != nil {
		return Usage{}, err
	}
	u := Usage{At: time.Now()}
	for i, id := range tree {
		dir := filepath.Join(p.Root, strconv.Itoa(id))
		sb, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err == nil {
			var st ProcStat
			if st, err = ParseStat(sb); err == nil {
				u.CPU += st.CPU
			}
		}
		var rb []byte
		if err == nil {
			rb, err = os.ReadFile(filepath.Join(dir, "status"))
		}
		if err == nil {
			var rss int64
			if rss, err = ParseVmRSS(rb); err == nil {
				u.RSS += rss
			}
		}
		if err != nil {
			if i == 0 {
				return Usage{}, fmt.Errorf("process %d: %w", pid, err)
			}
			continue // a child that just exited
		}
		u.Procs++
	}
	return u, nil
}

// Self is the bench's own CPU time (not a tree: its children are targets).
func (p Proc) Self() (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(p.Root, "self", "stat"))
	if err != nil {
		return 0, err
	}
	st, err := ParseStat(b)
	return st.CPU, err
}
