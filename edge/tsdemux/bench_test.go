package tsdemux_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/liveingest/liveingest/edge/tsdemux"
)

// BenchmarkDemux measures demuxing throughput over 10 s of H.264 (about
// 2.5 Mbit/s) and AAC in memory, against mediacommon's plain Reader, which
// does the packet and PES work underneath: the difference is this
// package's own cost (track selection, parameter sets, timestamps, the
// continuity check).
func BenchmarkDemux(b *testing.B) {
	raw := encode(b, 10, args(x264, []string{"-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "2500k"}, aac)...)
	b.Run("tsdemux", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			d, err := tsdemux.Open(bytes.NewReader(raw), tsdemux.Options{})
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := d.Next(); err != nil {
					if err != io.EOF {
						b.Fatal(err)
					}
					break
				}
			}
		}
	})
	b.Run("mediacommon", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			r := &mpegts.Reader{R: bytes.NewReader(raw)}
			if err := r.Initialize(); err != nil {
				b.Fatal(err)
			}
			for _, tr := range r.Tracks() {
				switch tr.Codec.(type) {
				case *tscodecs.H264:
					r.OnDataH264(tr, func(_, _ int64, _ [][]byte) error { return nil })
				case *tscodecs.MPEG4Audio:
					r.OnDataMPEG4Audio(tr, func(_ int64, _ [][]byte) error { return nil })
				}
			}
			for r.Read() == nil {
			}
		}
	})
}
