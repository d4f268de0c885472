package disk

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/liveingest/liveingest/origin/store"
)

// An object file is
//
//	data | trailer (JSON) | footer (16 bytes)
//
// where the footer is the trailer's length as a big-endian uint64 followed
// by footerMagic. Readers find the trailer from the end of the file, so the
// data is written first, streamed, without knowing its length in advance.
const (
	footerLen   = 16
	footerMagic = "liveobj1"
	maxTrailer  = 64 << 10 // far above any real trailer; bounds a corrupt length
)

// errCorrupt is returned for files under the root that are not objects
// written by this package.
var errCorrupt = errors.New("disk: object file is corrupt")

// trailer is the metadata stored after the data of an object.
type trailer struct {
	Size         int64       `json:"size"`
	ETag         string      `json:"etag"`
	Written      time.Time   `json:"written"`
	ContentType  string      `json:"content_type"`
	CacheControl string      `json:"cache_control,omitempty"`
	Class        store.Class `json:"class"`
}

func writeTrailer(w io.Writer, info store.Info) error {
	b, err := json.Marshal(trailer{
		Size:         info.Size,
		ETag:         info.ETag,
		Written:      info.Modified,
		ContentType:  info.ContentType,
		CacheControl: info.CacheControl,
		Class:        info.Class,
	})
	if err != nil {
		return err
	}
	var foot [footerLen]byte
	binary.BigEndian.PutUint64(foot[:8], uint64(len(b)))
	copy(foot[8:], footerMagic)
	if _, err := w.Write(append(b, foot[:]...)); err != nil {
		return fmt.Errorf("write trailer: %w", err)
	}
	return nil
}

// readTrailer reads the metadata of the object file r of fileSize bytes and
// checks that it describes the file.
func readTrailer(r io.ReaderAt, fileSize int64) (store.Info, error) {
	if fileSize < footerLen {
		return store.Info{}, errCorrupt
	}
	var foot [footerLen]byte
	if _, err := r.ReadAt(foot[:], fileSize-footerLen); err != nil {
		return store.Info{}, fmt.Errorf("read footer: %w", err)
	}
	n := binary.BigEndian.Uint64(foot[:8])
	if string(foot[8:]) != footerMagic || n > maxTrailer || int64(n) > fileSize-footerLen {
		return store.Info{}, errCorrupt
	}
	dataLen := fileSize - footerLen - int64(n)
	b := make([]byte, n)
	if _, err := r.ReadAt(b, dataLen); err != nil {
		return store.Info{}, fmt.Errorf("read trailer: %w", err)
	}
	var t trailer
	if err := json.Unmarshal(b, &t); err != nil || t.Size != dataLen {
		return store.Info{}, errCorrupt
	}
	return store.Info{
		Size:         t.Size,
		ETag:         t.ETag,
		Modified:     t.Written,
		ContentType:  t.ContentType,
		CacheControl: t.CacheControl,
		Class:        t.Class,
	}, nil
}
