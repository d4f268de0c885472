package main

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// Watcher notices video segments appearing in the disk store. The layout is
// edge/segment's (package doc): <role prefix>/v/<fencing token>/<seq>.m4s,
// seq counting from 0 per slot and continuing across sessions.
//
// It polls with one stat per slot and tick for the next expected sequence
// number instead of listing directories, so watching 100 slots costs the
// generator next to nothing. A file's appearance time is its ctime: the disk
// store's Put writes a temporary file and renames it into place, and Linux
// file systems (ext4, xfs, btrfs, tmpfs) set ctime at that rename, the
// moment the segment became visible. The poll interval therefore bounds only
// when the bench notices, not what it measures. (ctime comes from the
// kernel's coarse clock: it may read up to one jiffy early.)
type Watcher struct {
	// Dirs are the v/ directories to watch, one per publisher.
	Dirs     []string
	Interval time.Duration
	// Leaf, when set, is the file inside each segment's path that is
	// stat'ed instead of the path itself: MinIO keeps an object as a
	// directory holding xl.meta, renamed into place at the commit.
	Leaf string
}

// Appearances are, per watched directory, the time each segment seq became
// visible (zero: not seen).
type Appearances [][]time.Time

type watchedDir struct {
	dir      string
	leaf     string
	tokens   []string // token directories found, oldest first
	next     uint64   // next seq to look for
	appeared []time.Time
	lastList time.Time
}

// listEvery is how often a slot's v/ directory is listed for new token
// directories (a new session); segments are found by stat in between.
const listEvery = time.Second

// Run polls until ctx ends and returns what it saw.
func (w *Watcher) Run(ctx context.Context) Appearances {
	ds := make([]*watchedDir, len(w.Dirs))
	for i, d := range w.Dirs {
		ds[i] = &watchedDir{dir: d, leaf: w.Leaf}
	}
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		now := time.Now()
		for _, d := range ds {
			d.poll(now)
		}
		select {
		case <-ctx.Done():
			// One last look: the caller cancels after its grace period.
			for _, d := range ds {
				d.poll(time.Now())
			}
			out := make(Appearances, len(ds))
			for i, d := range ds {
				out[i] = d.appeared
			}
			return out
		case <-t.C:
		}
	}
}

// poll finds every segment from d.next on that exists now.
func (d *watchedDir) poll(now time.Time) {
	if len(d.tokens) == 0 || now.Sub(d.lastList) >= listEvery {
		d.list(now)
	}
	for {
		found := false
		for _, tok := range d.tokens {
			fi, err := os.Stat(filepath.Join(d.dir, tok, strconv.FormatUint(d.next, 10)+".m4s", d.leaf))
			if err != nil {
				continue
			}
			at := time.Now()
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				if ct := time.Unix(st.Ctim.Sec, st.Ctim.Nsec); ct.Before(at) {
					at = ct
				}
			}
			d.appeared = append(d.appeared, at)
			d.next++
			found = true
			break
		}
		if !found {
			return
		}
	}
}

// list refreshes the token directories, newest first: a later session
// owns the next sequence numbers.
func (d *watchedDir) list(now time.Time) {
	d.lastList = now
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return
	}
	type tok struct {
		n    uint64
		name string
	}
	var toks []tok
	for _, e := range ents {
		if n, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && e.IsDir() {
			toks = append(toks, tok{n, e.Name()})
		}
	}
	slices.SortFunc(toks, func(a, b tok) int { return cmp.Compare(b.n, a.n) })
	d.tokens = d.tokens[:0]
	for _, t := range toks {
		d.tokens = append(d.tokens, t.name)
	}
}
