package segment

import (
	"encoding/binary"
	"io"
	"sync"
	"time"
)

// A track's media between two cuts is kept as a sample table and the
// samples' bytes, already in the form the media segment carries them
// (AVCC for video: every NAL unit behind its 4-byte length), copied into
// pooled blocks as each access unit arrives. So a protocol's buffers are
// garbage as soon as Write returns, a segment's bytes exist once, and
// muxing the segment writes only its moof: the store reads the mdat
// straight from the blocks.

// blockSize is the unit the samples' bytes are kept in. Small enough that
// an audio track's segment (~32 KB at 128 kb/s for 2 s) wastes little of
// its last block, large enough that a video segment is a few dozen.
const blockSize = 32 << 10

var blockPool = sync.Pool{New: func() any { b := make([]byte, blockSize); return &b }}

// sample is one access unit of a trackSeg.
type sample struct {
	dts    uint64 // track timescale, on the stream's media timeline
	ptsOff int32  // PTS − DTS
	size   uint32 // bytes in the mdat
	key    bool
}

// trackSeg is one track's share of one segment while it is being filled
// and until it is stored.
type trackSeg struct {
	start   time.Duration // input DTS of the cut this segment starts at
	samples []sample
	blocks  []*[]byte
	last    int // bytes used in the last block
	size    int // bytes in all blocks
}

// add appends one access unit. With avcc each part is one NAL unit and
// gets its 4-byte length; without, the parts are the sample's bytes.
func (t *trackSeg) add(dts uint64, ptsOff int32, key, avcc bool, data [][]byte) {
	n := 0
	for _, p := range data {
		if avcc {
			var l [4]byte
			binary.BigEndian.PutUint32(l[:], uint32(len(p)))
			t.write(l[:])
			n += 4
		}
		t.write(p)
		n += len(p)
	}
	t.samples = append(t.samples, sample{dts: dts, ptsOff: ptsOff, size: uint32(n), key: key})
}

func (t *trackSeg) write(p []byte) {
	for len(p) > 0 {
		if len(t.blocks) == 0 || t.last == blockSize {
			t.blocks = append(t.blocks, blockPool.Get().(*[]byte))
			t.last = 0
		}
		c := copy((*t.blocks[len(t.blocks)-1])[t.last:], p)
		t.last += c
		t.size += c
		p = p[c:]
	}
}

// merge appends o's samples and bytes to t (Close's last segment, when more
// than one was still open). o must not be used afterwards.
func (t *trackSeg) merge(o *trackSeg) {
	if len(o.samples) == 0 {
		o.release()
		return
	}
	t.samples = append(t.samples, o.samples...)
	for i, b := range o.blocks {
		n := blockSize
		if i == len(o.blocks)-1 {
			n = o.last
		}
		t.write((*b)[:n])
	}
	o.release()
}

// release hands the blocks back to the pool. The trackSeg holds no bytes
// afterwards; a reader made before must not be read after it.
func (t *trackSeg) release() {
	for _, b := range t.blocks {
		blockPool.Put(b)
	}
	t.blocks, t.last, t.size = nil, 0, 0
}

// reader returns head followed by the samples' bytes.
func (t *trackSeg) reader(head []byte) *segReader {
	r := &segReader{bufs: make([][]byte, 0, 1+len(t.blocks))}
	r.bufs = append(r.bufs, head)
	for i, b := range t.blocks {
		n := blockSize
		if i == len(t.blocks)-1 {
			n = t.last
		}
		r.bufs = append(r.bufs, (*b)[:n])
	}
	return r
}

// segReader reads a sequence of buffers without copying them together.
type segReader struct{ bufs [][]byte }

var (
	_ io.Reader   = (*segReader)(nil)
	_ io.WriterTo = (*segReader)(nil)
)

func (r *segReader) Read(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && len(r.bufs) > 0 {
		c := copy(p, r.bufs[0])
		n += c
		p = p[c:]
		if r.bufs[0] = r.bufs[0][c:]; len(r.bufs[0]) == 0 {
			r.bufs = r.bufs[1:]
		}
	}
	if n == 0 && len(r.bufs) == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// WriteTo writes the buffers as they are: no copy through a read buffer.
func (r *segReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for len(r.bufs) > 0 {
		c, err := w.Write(r.bufs[0])
		n += int64(c)
		if r.bufs[0] = r.bufs[0][c:]; len(r.bufs[0]) == 0 {
			r.bufs = r.bufs[1:]
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
