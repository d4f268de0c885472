//go:build linux

package disk

import (
	"io"
	"os"
	"syscall"
)

// On Linux a Put's temporary file is a bare descriptor made with openat on
// the cached directory: an *os.File from os.Root.OpenFile would add four
// fcntl calls and a failing epoll_ctl (regular files cannot be polled), and
// os.Root.Rename an fstatat, to the six system calls a Put needs. The names
// are single components the Store made ("…/.tmp-<id>-<seq>" and the key's
// last segment), opened with O_EXCL|O_NOFOLLOW and renamed (which never
// follows a link), so no path is resolved and nothing can lead outside the
// directory — the guarantee os.Root gives, kept without its bookkeeping.

// tempFile is a Put's temporary file.
type tempFile struct {
	fd   int // -1 once closed
	name string
}

// createTemp creates name in d, exclusively.
func createTemp(d *dirEntry, name string) (*tempFile, error) {
	fd, err := -1, error(nil)
	cerr := d.raw.Control(func(dfd uintptr) {
		err = retryEINTR(func() (e error) {
			fd, e = syscall.Openat(int(dfd), name, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o644)
			return e
		})
	})
	if cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: name, Err: err}
	}
	return &tempFile{fd: fd, name: name}, nil
}

func (f *tempFile) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := syscall.Write(f.fd, p[n:])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return n, &os.PathError{Op: "write", Path: f.name, Err: err}
		case m == 0:
			return n, io.ErrShortWrite
		}
		n += m
	}
	return n, nil
}

// Sync makes the data and the size durable. fdatasync skips the timestamps,
// which the Store does not use (the write time is in the trailer).
func (f *tempFile) Sync() error {
	if err := retryEINTR(func() error { return syscall.Fdatasync(f.fd) }); err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.name, Err: err}
	}
	return nil
}

// Close closes the descriptor; closing again does nothing (the number may
// already belong to another file).
func (f *tempFile) Close() error {
	if f.fd < 0 {
		return nil
	}
	err := syscall.Close(f.fd)
	f.fd = -1
	if err != nil {
		return &os.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}

// renameIn renames from over to, both names in d. A directory at to fails
// with EISDIR.
func renameIn(d *dirEntry, from, to string) error {
	var err error
	cerr := d.raw.Control(func(dfd uintptr) {
		err = retryEINTR(func() error { return syscall.Renameat(int(dfd), from, int(dfd), to) })
	})
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return &os.LinkError{Op: "renameat", Old: from, New: to, Err: err}
	}
	return nil
}

func retryEINTR(fn func() error) error {
	for {
		if err := fn(); err != syscall.EINTR {
			return err
		}
	}
}
