package segment

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/liveingest/liveingest/origin/manifest"
)

// referenceSegment is the media segment as mediacommon's marshaller writes
// it for one track: the format moofHead promises to reproduce.
func referenceSegment(t *testing.T, ti trackInfo, seq uint64, aus []testAU, next uint64, haveNext bool) []byte {
	t.Helper()
	var samples []*fmp4.Sample
	for i, au := range aus {
		var d uint64
		switch {
		case i+1 < len(aus):
			d = aus[i+1].dts - au.dts
		case haveNext && next > au.dts:
			d = next - au.dts
		case i > 0:
			d = au.dts - aus[i-1].dts
		default:
			d = uint64(ti.rec.TimeScale) / 25
			if !ti.video {
				d = 1024
			}
		}
		s := &fmp4.Sample{Duration: uint32(d)}
		if ti.video {
			s.Payload, _ = h264.AVCC(au.data).Marshal()
			s.PTSOffset = au.ptsOff
			s.IsNonSyncSample = !au.key
		} else {
			s.Payload = au.data[0]
		}
		samples = append(samples, s)
	}
	p := fmp4.Part{SequenceNumber: uint32(seq), Tracks: []*fmp4.PartTrack{{ID: fileTrackID, BaseTime: aus[0].dts, Samples: samples}}}
	var buf seekablebuffer.Buffer
	if err := p.Marshal(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type testAU struct {
	dts    uint64
	ptsOff int32
	key    bool
	data   [][]byte
}

func randomAUs(r *rand.Rand, video bool, n int) []testAU {
	aus := make([]testAU, n)
	dts := uint64(r.IntN(1 << 40))
	for i := range aus {
		au := testAU{dts: dts, key: !video || i == 0}
		parts := 1
		if video {
			parts = 1 + r.IntN(3)
			if r.IntN(2) == 0 {
				au.ptsOff = int32(r.IntN(9000))
			}
		}
		for range parts {
			b := make([]byte, 1+r.IntN(3*blockSize)) // some span blocks
			for k := range b {
				b[k] = byte(r.Uint32())
			}
			au.data = append(au.data, b)
		}
		aus[i] = au
		dts += uint64(1 + r.IntN(4000))
	}
	return aus
}

// TestMoofHeadMatchesMediacommon: the hand-written moof + the pooled
// sample bytes are byte for byte the segment mediacommon's marshaller
// makes, for video with and without composition offsets and non-sync
// samples, audio, one sample and many, with and without a next DTS.
func TestMoofHeadMatchesMediacommon(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	video := trackInfo{video: true, rec: manifest.Track{TimeScale: videoTimeScale}}
	audio := trackInfo{rec: manifest.Track{TimeScale: 48000}}
	for round := range 60 {
		ti := video
		if round%3 == 2 {
			ti = audio
		}
		aus := randomAUs(r, ti.video, 1+r.IntN(40))
		if round%7 == 0 {
			aus = aus[:1]
		}
		next, haveNext := aus[len(aus)-1].dts+uint64(r.IntN(5000)), round%2 == 0
		seq := uint64(r.IntN(1 << 30))
		seg := &trackSeg{}
		for _, au := range aus {
			seg.add(au.dts, au.ptsOff, au.key, ti.video, au.data)
		}
		head, dur, err := moofHead(ti, seq, seg, next, haveNext)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if _, err := io.Copy(&got, seg.reader(head)); err != nil {
			t.Fatal(err)
		}
		want := referenceSegment(t, ti, seq, aus, next, haveNext)
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("round %d (%d samples, video %v): segment differs from mediacommon's (%d vs %d bytes)", round, len(aus), ti.video, got.Len(), len(want))
		}
		// Read through small buffers as well: the store may read so.
		var small bytes.Buffer
		rd := seg.reader(head)
		buf := make([]byte, 1+r.IntN(7000))
		for {
			n, err := rd.Read(buf)
			small.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(small.Bytes(), want) {
			t.Fatalf("round %d: Read in pieces differs", round)
		}
		if dur == 0 {
			t.Fatalf("round %d: zero duration", round)
		}
		seg.release()
	}
}

func BenchmarkSegment(b *testing.B) {
	// One 2 s segment of the bench's clip: 50 frames of ~13.5 KB, keyframe
	// first, in NAL units the way FLV carries them.
	ti := trackInfo{video: true, rec: manifest.Track{TimeScale: videoTimeScale}}
	frame := [][]byte{make([]byte, 20), make([]byte, 13500)}
	b.ReportAllocs()
	b.SetBytes(50 * 13528)
	for b.Loop() {
		seg := &trackSeg{}
		for i := range 50 {
			seg.add(uint64(i)*3600, 0, i == 0, true, frame)
		}
		head, _, err := moofHead(ti, 7, seg, 50*3600, true)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, seg.reader(head))
		seg.release()
	}
}

func BenchmarkSegmentMediacommon(b *testing.B) {
	frame := [][]byte{make([]byte, 20), make([]byte, 13500)}
	b.ReportAllocs()
	b.SetBytes(50 * 13528)
	for b.Loop() {
		var samples []*fmp4.Sample
		for i := range 50 {
			s := &fmp4.Sample{Duration: 3600, IsNonSyncSample: i != 0}
			if err := s.FillH264(0, frame); err != nil {
				b.Fatal(err)
			}
			samples = append(samples, s)
		}
		p := fmp4.Part{SequenceNumber: 7, Tracks: []*fmp4.PartTrack{{ID: fileTrackID, Samples: samples}}}
		var buf seekablebuffer.Buffer
		if err := p.Marshal(&buf); err != nil {
			b.Fatal(err)
		}
	}
}
