package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/store"
)

func testGetRange(t *testing.T, st store.Store) {
	ctx := testCtx(t)
	const key = "range/obj"
	data := pattern("ranges", 1000)
	pinfo := put(t, st, key, data, store.Meta{ContentType: "video/mp4"})
	for _, c := range []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"middle", 100, 50, data[100:150]},
		{"start", 0, 10, data[:10]},
		{"toEnd", 900, -1, data[900:]},
		{"whole", 0, -1, data},
		{"lastByte", 999, 1, data[999:]},
		{"lengthPastEnd", 990, 100, data[990:]},
		{"zeroLength", 10, 0, nil},
	} {
		rc, info, err := st.GetRange(ctx, key, c.offset, c.length)
		if err != nil {
			t.Fatalf("%s: GetRange(%d, %d): %v", c.name, c.offset, c.length, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: read: %v", c.name, err)
		}
		if !bytes.Equal(got, c.want) {
			t.Fatalf("%s: GetRange(%d, %d) = %d bytes, want %d", c.name, c.offset, c.length, len(got), len(c.want))
		}
		if info.Key != key || info.Size != int64(len(data)) || info.ETag != pinfo.ETag || info.ContentType != "video/mp4" {
			t.Fatalf("%s: Info %+v, want the whole object's (Size %d, ETag %s)", c.name, info, len(data), pinfo.ETag)
		}
	}
	// Offsets at or past the end are unsatisfiable, as in HTTP (RFC 9110
	// section 14.1.2): there is no first byte to send.
	for _, c := range []struct{ offset, length int64 }{{1000, -1}, {1000, 1}, {5000, 10}, {1000, 0}} {
		rc, _, err := st.GetRange(ctx, key, c.offset, c.length)
		if err == nil {
			rc.Close()
		}
		wantErrIs(t, "GetRange past the end", err, store.ErrRange)
	}
	put(t, st, "range/empty", nil, store.Meta{})
	rc, _, err := st.GetRange(ctx, "range/empty", 0, -1)
	if err == nil {
		rc.Close()
	}
	wantErrIs(t, "GetRange of an empty object", err, store.ErrRange)
}

// genReader yields size deterministic pseudo-random bytes without holding
// them: 64 KiB random blocks, each stamped with its index so that moved or
// repeated blocks change the hash.
type genReader struct {
	size, off int64
	block     []byte // the current block
	seed      []byte
}

const genBlock = 64 << 10

func newGen(size int64) *genReader {
	seed := make([]byte, genBlock)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(seed); i += 8 {
		binary.LittleEndian.PutUint64(seed[i:], rng.Uint64())
	}
	return &genReader{size: size, seed: seed, block: make([]byte, genBlock)}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && g.off < g.size {
		in := int(g.off % genBlock)
		if in == 0 {
			copy(g.block, g.seed)
			binary.BigEndian.PutUint64(g.block, uint64(g.off/genBlock))
		}
		k := copy(p[n:], g.block[in:min(genBlock, in+int(g.size-g.off))])
		n += k
		g.off += int64(k)
	}
	return n, nil
}

// genHash is the SHA-256 of newGen(size)'s output.
func genHash(t *testing.T, size int64) [32]byte {
	h := sha256.New()
	if _, err := io.Copy(h, newGen(size)); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// heapPeak samples the heap every 20 ms until stop is called and returns the
// highest HeapInuse seen above the level at the start.
func heapPeak() (stop func() uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peak uint64
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		if peak < base {
			return 0
		}
		return peak - base
	}
}

func testLargeObject(t *testing.T, st store.Store) {
	const size = 96 << 20
	// A third of the object: room for an s3 part buffer (8 MiB) and the
	// garbage collector's headroom, far below holding the body.
	const maxGrowth = size / 3
	want := genHash(t, size)
	for _, known := range []bool{false, true} {
		key := "large/unknown-size.m4s"
		m := store.Meta{ContentType: "video/mp4"}
		if known {
			key, m.Size = "large/known-size.m4s", size
		}
		stop := heapPeak()
		info, err := st.Put(testCtx(t), key, newGen(size), m)
		growth := stop()
		if err != nil {
			t.Fatalf("Put(%s): %v", key, err)
		}
		t.Logf("Put(%s): heap grew by at most %.1f MiB", key, float64(growth)/(1<<20))
		if growth > maxGrowth {
			t.Errorf("Put(%s) of %d MiB grew the heap by %.1f MiB: the body is buffered, not streamed",
				key, size>>20, float64(growth)/(1<<20))
		}
		if info.Size != size {
			t.Fatalf("Put Info.Size = %d, want %d", info.Size, size)
		}
		rc, ginfo, err := st.Get(testCtx(t), key)
		if err != nil {
			t.Fatalf("Get(%s): %v", key, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s: %v", key, err)
		}
		if n != size || ginfo.Size != size || [32]byte(h.Sum(nil)) != want || ginfo.ETag != info.ETag {
			t.Fatalf("read back %s: %d bytes (Info.Size %d, ETag %s), hash match %v; want %d bytes, ETag %s",
				key, n, ginfo.Size, ginfo.ETag, [32]byte(h.Sum(nil)) == want, size, info.ETag)
		}
	}
}
