package disk_test

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/liveingest/liveingest/origin/store"
)

// BenchmarkPut measures what one cut of a stream costs the store: a media
// segment under a new key and a playlist replaced in place, both in a stream
// directory that already exists. Run it under `strace -c -f` with
// -test.benchtime=Nx to count system calls per Put.
func BenchmarkPut(b *testing.B) {
	const dir = "live/slot1/primary/v/0123456789abcdef"
	for _, bc := range []struct {
		name string
		size int
		meta store.Meta
		key  func(i int64) string
	}{
		{"segment-700KB", 700 << 10, store.Meta{ContentType: "video/mp4", Class: store.ClassSegment},
			func(i int64) string { return fmt.Sprintf("%s/seg%d.m4s", dir, i) }},
		{"playlist-2KB", 2 << 10, store.Meta{ContentType: "application/vnd.apple.mpegurl", Class: store.ClassManifest},
			func(int64) string { return dir + "/index.m3u8" }},
	} {
		body := bytes.Repeat([]byte{0x5a}, bc.size)
		b.Run(bc.name, func(b *testing.B) {
			st := newStore(b, b.TempDir())
			if _, err := st.Put(b.Context(), dir+"/init.mp4", bytes.NewReader(body[:100]), store.Meta{}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			var i int64
			for b.Loop() {
				m := bc.meta
				m.Size = int64(len(body))
				if _, err := st.Put(b.Context(), bc.key(i), bytes.NewReader(body), m); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			st := newStore(b, b.TempDir())
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			var n atomic.Int64
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					m := bc.meta
					m.Size = int64(len(body))
					// Parallel Puts of distinct keys into one directory, as
					// the renditions of a stream cut together.
					key := fmt.Sprintf("%s/p%d-%s", dir, i, bc.key(i)[len(dir)+1:])
					if _, err := st.Put(b.Context(), key, bytes.NewReader(body), m); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
