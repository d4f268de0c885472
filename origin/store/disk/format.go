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
//	data | trailer | footer (16 bytes)
//
// where the footer is the trailer's length as a big-endian uint64 followed
// by a magic that says the trailer's format. Readers find the trailer from
// the end of the file, so the data is written first, streamed, without
// knowing its length in advance.
//
// footerMagic (written since issue 15) marks a binary trailer:
//
//	size uint64 | written uint64 (Unix nanoseconds) | etag | content type | cache control | class
//
// integers big-endian, strings as a uvarint length and the bytes. It costs
// no JSON on the read path, which List pays for every object it reports.
// legacyMagic marks the JSON trailer of earlier versions, still read so
// existing data directories stay readable.
const (
	footerLen   = 16
	footerMagic = "liveobj2"
	legacyMagic = "liveobj1"
	maxTrailer  = 64 << 10 // far above any real trailer; bounds a corrupt length

	// tailRead is what a reader reads from the end of a file in one pread:
	// footer and trailer of every object whose metadata strings are short,
	// as all of liveingest's are.
	tailRead = 512
)

// errCorrupt is returned for files under the root that are not objects
// written by this package.
var errCorrupt = errors.New("disk: object file is corrupt")

// trailerSize is an upper bound of what appendTrailer appends for info.
func trailerSize(info store.Info) int {
	return 16 + 4*binary.MaxVarintLen64 + len(info.ETag) + len(info.ContentType) + len(info.CacheControl) + len(info.Class) + footerLen
}

// appendTrailer appends the trailer and footer of info to b.
func appendTrailer(b []byte, info store.Info) ([]byte, error) {
	start := len(b)
	b = binary.BigEndian.AppendUint64(b, uint64(info.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(info.Modified.UnixNano()))
	for _, s := range []string{info.ETag, info.ContentType, info.CacheControl, string(info.Class)} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	n := len(b) - start
	if n > maxTrailer {
		return nil, fmt.Errorf("write trailer: metadata of %d bytes exceeds %d", n, maxTrailer)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(n))
	return append(b, footerMagic...), nil
}

// readTrailer reads the metadata of the object file r of fileSize bytes and
// checks that it describes the file. One pread of the file's tail finds
// footer and trailer; a trailer longer than that costs a second.
func readTrailer(r io.ReaderAt, fileSize int64) (store.Info, error) {
	if fileSize < footerLen {
		return store.Info{}, errCorrupt
	}
	var buf [tailRead]byte
	tail := buf[:min(fileSize, tailRead)]
	if _, err := r.ReadAt(tail, fileSize-int64(len(tail))); err != nil {
		return store.Info{}, fmt.Errorf("read footer: %w", err)
	}
	foot := tail[len(tail)-footerLen:]
	n := binary.BigEndian.Uint64(foot[:8])
	magic := string(foot[8:])
	if (magic != footerMagic && magic != legacyMagic) || n > maxTrailer || int64(n) > fileSize-footerLen {
		return store.Info{}, errCorrupt
	}
	dataLen := fileSize - footerLen - int64(n)
	var b []byte
	if int(n) <= len(tail)-footerLen {
		b = tail[len(tail)-footerLen-int(n) : len(tail)-footerLen]
	} else {
		b = make([]byte, n)
		if _, err := r.ReadAt(b, dataLen); err != nil {
			return store.Info{}, fmt.Errorf("read trailer: %w", err)
		}
	}
	var (
		info store.Info
		ok   bool
	)
	if magic == footerMagic {
		info, ok = parseTrailer(b)
	} else {
		info, ok = parseLegacyTrailer(b)
	}
	if !ok || info.Size != dataLen {
		return store.Info{}, errCorrupt
	}
	return info, nil
}

// parseTrailer decodes a binary trailer; ok is false if b is not one.
func parseTrailer(b []byte) (info store.Info, ok bool) {
	if len(b) < 16 {
		return store.Info{}, false
	}
	info.Size = int64(binary.BigEndian.Uint64(b))
	info.Modified = time.Unix(0, int64(binary.BigEndian.Uint64(b[8:]))).UTC()
	b = b[16:]
	var strs [4]string
	for i := range strs {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return store.Info{}, false
		}
		strs[i] = string(b[k : k+int(l)])
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return store.Info{}, false
	}
	info.ETag, info.ContentType, info.CacheControl, info.Class = strs[0], strs[1], strs[2], store.Class(strs[3])
	return info, true
}

// legacyTrailer is the JSON trailer of files written before issue 15.
type legacyTrailer struct {
	Size         int64       `json:"size"`
	ETag         string      `json:"etag"`
	Written      time.Time   `json:"written"`
	ContentType  string      `json:"content_type"`
	CacheControl string      `json:"cache_control,omitempty"`
	Class        store.Class `json:"class"`
}

func parseLegacyTrailer(b []byte) (store.Info, bool) {
	var t legacyTrailer
	if err := json.Unmarshal(b, &t); err != nil {
		return store.Info{}, false
	}
	return store.Info{
		Size:         t.Size,
		ETag:         t.ETag,
		Modified:     t.Written,
		ContentType:  t.ContentType,
		CacheControl: t.CacheControl,
		Class:        t.Class,
	}, true
}
