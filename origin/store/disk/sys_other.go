//go:build !linux

package disk

import "os"

// tempFile is a Put's temporary file. Elsewhere than on Linux it is an
// *os.File of the cached directory's sub-root (see sys_linux.go for why
// Linux uses bare descriptors).
type tempFile struct{ *os.File }

// createTemp creates name in d, exclusively.
func createTemp(d *dirEntry, name string) (*tempFile, error) {
	f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &tempFile{f}, nil
}

// renameIn renames from over to, both names in d. os.Root refuses to
// replace a directory (an error wrapping fs.ErrExist).
func renameIn(d *dirEntry, from, to string) error { return d.root.Rename(from, to) }
