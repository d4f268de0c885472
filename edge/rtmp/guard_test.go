package rtmp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// guardCase is one client byte stream and what the guard must make of it.
// The table feeds TestGuard and the seeds of FuzzServerConn and
// FuzzGuardMirror.
type guardCase struct {
	name    string
	in      []byte
	admitAt int    // admitted() once this many bytes passed; 0: never
	cut     int    // bytes that pass; -1: all
	err     error  // the sentinel the refusal wraps; nil: none
	errText string // and a text it contains
	msgs    int    // complete messages the guard counts (passing cases); -1: unchecked
}

var hs = handshakeSize

// bodyPos is the stream offset of byte off of a message body written by
// wire.msg at start with a type-0 header of hdr bytes, at chunk size cs
// and without extended timestamps.
func bodyPos(start, hdr, cs, off int) int { return start + hdr + off + off/cs }

func guardCases() []guardCase {
	var cases []guardCase
	add := func(c guardCase) { cases = append(cases, c) }

	add(guardCase{name: "ffmpeg-publish", in: publishSeq("rtmp://127.0.0.1:1935/live", "live", "somekey").bytes(), cut: -1, msgs: 6})

	// Extended timestamps: a type-0 header with one, its type-3
	// continuations carrying it, then a new message as a type-3 chunk
	// (the previous header, and the extended field again).
	{
		w := newWire()
		w.admitAt(hs)
		body := bytes.Repeat([]byte{0x17, 1}, 150)
		w.msg(6, 9, 1, 0x01000000, body)
		w.raw(3<<6|6).raw(1, 0, 0, 40)
		for i := 0; i < len(body); i += 128 {
			if i > 0 {
				w.raw(3<<6|6).raw(1, 0, 0, 40)
			}
			w.Write(body[i:min(i+128, len(body))])
		}
		add(guardCase{name: "extended-timestamp", in: w.bytes(), admitAt: hs, cut: -1, msgs: 2})
	}
	// An extended field below 0xFFFFFF turns hasExtendedTimestamp off, as
	// in gortmplib: the continuation then carries no extended field.
	{
		w := newWire()
		w.raw(6, 0xff, 0xff, 0xff, 0, 0, 200, 9, 1, 0, 0, 0, 0, 0, 0, 5)
		w.Write(make([]byte, 128))
		w.raw(3<<6 | 6)
		w.Write(make([]byte, 72))
		add(guardCase{name: "extended-field-below-threshold", in: w.bytes(), admitAt: hs, cut: -1, msgs: 1})
	}
	// Types 1 and 2: a new length and type, then the same with a delta;
	// type 2 with an extended delta.
	{
		w := newWire()
		w.msg(6, 9, 1, 0, make([]byte, 10))
		w.raw(1<<6|6, 0, 0, 40, 0, 0, 3, 8).raw(1, 2, 3)
		w.raw(2<<6|6, 0, 0, 40).raw(4, 5, 6)
		w.raw(2<<6|6, 0xff, 0xff, 0xff, 0xff, 0, 0, 0).raw(7, 8, 9)
		w.raw(3<<6|6, 0, 0, 0, 0).raw(1, 1, 1) // the type-3 chunk carries it too
		add(guardCase{name: "type-1-2-3-headers", in: w.bytes(), admitAt: hs, cut: -1, msgs: 5})
	}
	// SetChunkSize applies from the next chunk on.
	{
		w := newWire().setChunkSize(4096)
		w.msg(6, 9, 1, 0, make([]byte, 10000))
		w.setChunkSize(128)
		w.msg(6, 9, 1, 40, make([]byte, 300))
		add(guardCase{name: "chunk-size-changes", in: w.bytes(), admitAt: hs, cut: -1, msgs: 4})
	}
	// Abort drops the message in progress and zeroes its length: the next
	// type-3 chunk on that chunk stream is an empty message.
	{
		w := newWire()
		w.header0(6, 9, 1, 0, 1000).raw(make([]byte, 128)...)
		w.msg(2, typeAbort, 0, 0, []byte{0, 0, 0, 6})
		w.raw(3<<6 | 6)
		w.msg(6, 9, 1, 0, make([]byte, 20))
		add(guardCase{name: "abort", in: w.bytes(), admitAt: hs, cut: -1, msgs: 3})
	}
	// An Abort of a chunk stream with no message in progress, or out of
	// range, is ignored.
	{
		w := newWire()
		w.msg(6, 9, 1, 0, make([]byte, 20))
		w.msg(2, typeAbort, 0, 0, []byte{0, 0, 0, 6})
		w.msg(2, typeAbort, 0, 0, []byte{0, 0, 1, 6})
		w.raw(3<<6 | 6).raw(make([]byte, 20)...)
		add(guardCase{name: "abort-ignored", in: w.bytes(), admitAt: hs, cut: -1, msgs: 4})
	}
	{
		w := newWire()
		w.admitAt(hs)
		add(guardCase{name: "admission-lifts-the-budget", in: w.msg(6, 9, 1, 0, make([]byte, 1<<20)).bytes(), admitAt: hs, cut: -1, msgs: 1})
	}
	{
		w := newWire()
		w.msg(4, 18, 1, 0, amfBody("@setDataFrame", "onMetaData", amf0.ECMAArray{{Key: "width", Value: 640.0}, {Key: "encoder", Value: "Lavf"}}))
		w.msg(4, 18, 1, 0, amfBody("onMetaData", amf0.StrictArray{1.0, true, nil, amf0.Undefined{}}))
		add(guardCase{name: "data-messages", in: w.bytes(), cut: -1, msgs: 2})
	}

	// Refusals.
	add(guardCase{name: "rtmpe", in: append([]byte{6}, make([]byte, 1536)...), cut: 0, err: ErrRTMPE, errText: "use RTMPS"})
	add(guardCase{name: "bad-version", in: []byte{9, 0, 0}, cut: 0, err: ErrProtocol, errText: "RTMP version 9"})
	{
		in := amplification()
		add(guardCase{name: "amplification-10MiB", in: in, cut: len(in) - 1, err: ErrLimit, errText: "Config.PreAdmitBudget"})
	}
	{
		w := newWire()
		start := w.Len()
		w.msg(3, typeCommandAMF0, 0, 0, deepConnect(40, true))
		// The 33rd container: connect's first 03 is depth 1 at body offset
		// 19, the k-th repeat's at 19+4k is depth k+1.
		add(guardCase{name: "amf-depth-33", in: w.bytes(), cut: bodyPos(start, 12, 128, 19+4*32), err: ErrLimit, errText: "Config.MaxAMFDepth (32)"})
	}
	{
		w := newWire()
		w.msg(3, typeCommandAMF0, 0, 0, deepConnect(31, true))
		add(guardCase{name: "amf-depth-32", in: w.bytes(), cut: -1, msgs: 1})
	}
	{
		w := newWire()
		start := w.Len()
		w.msg(3, typeCommandAMF0, 0, 0, deepConnect(600, false))
		add(guardCase{name: "amf-depth-unclosed", in: w.bytes(), cut: bodyPos(start, 12, 128, 19+4*32), err: ErrLimit, errText: "MaxAMFDepth"})
	}
	{
		// 0x0A strict arrays nest too.
		b := amfBody("connect", 1.0)
		for range 40 {
			b = append(b, amf0StrictArray, 0, 0, 0, 1)
		}
		b = append(b, amf0Null)
		w := newWire()
		start := w.Len()
		w.msg(3, typeCommandAMF0, 0, 0, b)
		add(guardCase{name: "amf-strict-array-depth", in: w.bytes(), cut: bodyPos(start, 12, 128, 19+5*32), err: ErrLimit, errText: "MaxAMFDepth"})
	}
	{
		w := newWire()
		start := w.Len()
		w.command(3, 0, "connect", 1, connectObject("live", "rtmp://h/live/"+strings.Repeat("k", 70<<10)))
		add(guardCase{name: "amf-too-large", in: w.bytes(), cut: start + 11, err: ErrLimit, errText: "Config.MaxAMFMessageSize (65536)"})
	}
	{
		w := newWire()
		start := w.Len()
		w.header0(6, 9, 1, 0, 9<<20)
		add(guardCase{name: "message-too-large", in: w.bytes(), admitAt: hs, cut: start + 11, err: ErrLimit, errText: "Config.MaxMessageSize (8388608)"})
	}
	{
		// Three video messages in progress on three chunk streams: the
		// third passes the budget.
		w := newWire()
		w.header0(4, 9, 1, 0, 100000).raw(make([]byte, 128)...)
		w.header0(5, 9, 1, 0, 100000).raw(make([]byte, 128)...)
		start := w.Len()
		w.header0(6, 9, 1, 0, 100000)
		add(guardCase{name: "budget-over-chunk-streams", in: w.bytes(), cut: start + 11, err: ErrLimit, errText: "announce 300000 bytes, over Config.PreAdmitBudget (262144)"})
	}
	{
		// Small messages until more than the handshake + budget was read.
		w := newWire()
		for w.Len() < hs+(300<<10) {
			w.msg(2, 3, 0, 0, []byte{0, 0, 0, 1})
		}
		add(guardCase{name: "bytes-before-admission", in: w.bytes(), cut: hs + 256<<10, err: ErrLimit, errText: "before admission"})
	}
	{
		w := newWire()
		in := w.setChunkSize(0).bytes()
		add(guardCase{name: "chunk-size-zero", in: in, cut: len(in) - 1, err: ErrProtocol, errText: "chunk size 0 below 128"})
	}
	{
		w := newWire()
		in := w.setChunkSize(gortmplibMax + 1).bytes()
		add(guardCase{name: "chunk-size-over-10MiB", in: in, cut: len(in) - 1, err: ErrProtocol, errText: "over 10 MiB"})
	}
	{
		w := newWire()
		in := w.setChunkSize(1 << 31).bytes() // bit 31 is not masked
		add(guardCase{name: "chunk-size-bit-31", in: in, cut: len(in) - 1, err: ErrProtocol, errText: "over 10 MiB"})
	}
	{
		w := newWire()
		start := w.Len()
		w.header0(2, typeSetChunkSize, 0, 0, 5).raw(0, 0, 16, 0, 0)
		add(guardCase{name: "set-chunk-size-length", in: w.bytes(), cut: start + 11, err: ErrProtocol, errText: "want 4"})
	}
	add(guardCase{name: "chunk-stream-id-0", in: newWire().raw(0).bytes(), cut: hs, err: ErrProtocol, errText: "basic headers"})
	add(guardCase{name: "chunk-stream-id-1", in: newWire().raw(3<<6 | 1).bytes(), cut: hs, err: ErrProtocol, errText: "basic headers"})
	add(guardCase{name: "type-1-first", in: newWire().raw(1<<6|3, 0, 0, 0, 0, 0, 4, 20).bytes(), cut: hs, err: ErrProtocol, errText: "without a previous chunk"})
	add(guardCase{name: "type-3-first", in: newWire().raw(3<<6 | 3).bytes(), cut: hs, err: ErrProtocol, errText: "without a previous chunk"})
	{
		w := newWire()
		w.header0(6, 9, 1, 0, 1000).raw(make([]byte, 128)...)
		start := w.Len()
		w.header0(6, 9, 1, 0, 10)
		add(guardCase{name: "type-0-inside-message", in: w.bytes(), cut: start, err: ErrProtocol, errText: "inside a message"})
	}
	{
		b := append(amfBody("connect", 1.0), 0x07, 0, 1) // a reference
		w := newWire()
		start := w.Len()
		w.msg(3, typeCommandAMF0, 0, 0, b)
		add(guardCase{name: "amf-reference", in: w.bytes(), cut: start + 12 + 19, err: ErrProtocol, errText: "marker 0x07"})
	}
	{
		b := append(amfBody("connect", 1.0), 0x11, 0x01) // the AMF3 switch
		w := newWire()
		start := w.Len()
		w.msg(3, typeCommandAMF0, 0, 0, b)
		add(guardCase{name: "amf3-switch", in: w.bytes(), cut: start + 12 + 19, err: ErrProtocol, errText: "marker 0x11"})
	}
	{
		b := append(amfBody("connect", 1.0), amf0Object, 0, 1, 'a') // ends inside the object
		w := newWire()
		in := w.msg(3, typeCommandAMF0, 0, 0, b).bytes()
		add(guardCase{name: "amf-truncated", in: in, cut: len(in) - 1, err: ErrProtocol, errText: "ends inside a value"})
	}
	{
		b := append(amfBody("connect", 1.0), amf0Object, 0, 0, 0x05) // a null where 0x09 belongs
		w := newWire()
		in := w.msg(3, typeCommandAMF0, 0, 0, b).bytes()
		add(guardCase{name: "amf-object-end-missing", in: in, cut: len(in) - 1, err: ErrProtocol, errText: "object end"})
	}
	{
		// An AMF3 command: one format byte, then AMF0, nested too deep.
		b := append([]byte{0}, deepConnect(40, true)...)
		w := newWire()
		start := w.Len()
		w.msg(3, typeCommandAMF3, 0, 0, b)
		add(guardCase{name: "amf3-command-depth", in: w.bytes(), cut: bodyPos(start, 12, 128, 1+19+4*32), err: ErrLimit, errText: "MaxAMFDepth"})
	}
	return cases
}

// admitAt is a no-op marker in case builders (the case's admitAt field
// decides).
func (w *wire) admitAt(int) {}

// chunkedConn is a client that delivers at most step bytes per Read.
type chunkedConn struct {
	net.Conn
	r    *bytes.Reader
	step int
}

func (c *chunkedConn) Read(b []byte) (int, error) {
	if c.step > 0 && len(b) > c.step {
		b = b[:c.step]
	}
	return c.r.Read(b)
}

// runGuard reads in through a guard as gortmplib would, with reads of
// bufSize, admitting once admitAt bytes passed.
func runGuard(in []byte, step, bufSize, admitAt int) ([]byte, *guard, error) {
	g := newGuard(&chunkedConn{r: bytes.NewReader(in), step: step}, limitsOf(Config{}.WithDefaults()))
	var out []byte
	buf := make([]byte, bufSize)
	for {
		if admitAt > 0 && len(out) >= admitAt {
			g.admitted()
		}
		n, err := g.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, g, nil
		}
		if err != nil {
			return out, g, err
		}
	}
}

func TestGuard(t *testing.T) {
	for _, tc := range guardCases() {
		t.Run(tc.name, func(t *testing.T) {
			for _, split := range []struct{ step, buf int }{{0, 4096}, {1, 4096}, {3, 7}, {127, 65536}, {0, 1 << 20}} {
				out, g, err := runGuard(tc.in, split.step, split.buf, tc.admitAt)
				want := len(tc.in)
				if tc.cut >= 0 {
					want = tc.cut
				}
				where := fmt.Sprintf("reads of %d (client writes of %d)", split.buf, split.step)
				if len(out) != want || !bytes.Equal(out, tc.in[:len(out)]) {
					t.Fatalf("%s: %d bytes passed, want %d", where, len(out), want)
				}
				switch {
				case tc.err == nil && err != nil:
					t.Fatalf("%s: %v", where, err)
				case tc.err != nil && (!errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.errText)):
					t.Fatalf("%s: error %v, want %v containing %q", where, err, tc.err, tc.errText)
				}
				if tc.err == nil && tc.msgs >= 0 && g.p.messages != tc.msgs {
					t.Fatalf("%s: the guard counted %d messages, want %d", where, g.p.messages, tc.msgs)
				}
				if err != nil {
					if n, err2 := g.Read(make([]byte, 10)); n != 0 || err2 != err {
						t.Fatalf("a read after the refusal returned %d, %v", n, err2)
					}
				}
			}
			if tc.err == nil {
				checkMirror(t, tc.in)
			}
		})
	}
}

// TestGuardNoReadAhead: before admission the guard reads from the client
// only what the element being parsed needs, so a publisher that sends its
// first video frame right behind the publish command is not judged by the
// pre-admission budget.
func TestGuardNoReadAhead(t *testing.T) {
	pub := publishSeq("rtmp://h/live", "live", "k").bytes()
	in := newWire()
	in.Write(pub[hs:])
	in.chunkSize = 4096
	in.msg(6, 9, 1, 0, make([]byte, 1<<20)) // over the budget, after the publish
	all := append(handshake(), in.Bytes()[hs:]...)
	g := newGuard(&chunkedConn{r: bytes.NewReader(all)}, limitsOf(Config{}.WithDefaults()))
	var out []byte
	buf := make([]byte, 4096)
	for len(out) < len(pub) {
		n, err := g.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(out), err)
		}
		out = append(out, buf[:n]...)
	}
	if len(out) != len(pub) {
		t.Fatalf("read %d bytes before admission, the publish ends at %d", len(out), len(pub))
	}
	g.admitted()
	if _, err := io.ReadAll(g); err != nil {
		t.Fatalf("after admission: %v", err)
	}
}

// checkMirror runs gortmplib's own reader (pkg/message, unguarded) and the
// guard's parser (with limits it cannot reach) over in, and fails t unless
// they see the same messages in the same order (checkMirrorErr).
func checkMirror(t testing.TB, in []byte) {
	t.Helper()
	if err := mirror(in); err != nil {
		t.Fatal(err)
	}
}

// mirror reports how the guard's view of in differs from gortmplib's: in
// is a client's stream (handshake first); gortmplib reads what follows the
// handshake. Every message gortmplib returns must be one the guard
// completed, at the same position in the sequence, of the same type. If
// the guard did not refuse (or refused only for a reason gortmplib does
// not share: a limit, a chunk size below 128), gortmplib may not return
// more messages than the guard completed, and where gortmplib reached the
// end of in without an error the two counts are equal.
func mirror(in []byte) error {
	if len(in) < hs || in[0] != 3 {
		return nil
	}
	var gtypes []byte
	var p parser
	p.init(limits{preAdmitBudget: 1 << 40, preAdmitBytes: 1 << 40, maxMessage: gortmplibMax, maxAMF: gortmplibMax, maxDepth: 1 << 30})
	p.admitted = true
	p.onMessage = func(typ byte, _ uint32) { gtypes = append(gtypes, typ) }
	_, gerr := p.feed(in)

	var (
		ltypes []byte
		lcs    []byte // the chunk stream of each AMF command or data message, else 0
	)
	r := message.NewReader(bytes.NewReader(in[hs:]), bytecounter.NewReader(bytes.NewReader(nil)), func(uint32) error { return nil })
	var lerr error
	for {
		m, err := r.Read()
		if err != nil {
			lerr = err
			break
		}
		ltypes = append(ltypes, rawType(m))
		lcs = append(lcs, amfChunkStream(m))
	}
	for i := range min(len(gtypes), len(ltypes)) {
		if gtypes[i] != ltypes[i] {
			return fmt.Errorf("message %d: guard type %d, gortmplib type %d (guard %v, gortmplib %v)", i, gtypes[i], ltypes[i], gtypes, ltypes)
		}
	}
	// The guard refuses a bad AMF message at its offending byte, gortmplib
	// only once it is complete (see the guard's comment): messages on other
	// chunk streams may complete in gortmplib in between, but never an AMF
	// message on the refused one.
	amfRefused := errors.Is(gerr, ErrProtocol) && strings.Contains(gerr.Error(), "AMF")
	if amfRefused {
		for i := len(gtypes); i < len(ltypes); i++ {
			if lcs[i] == p.csid {
				return fmt.Errorf("gortmplib read AMF message %d on chunk stream %d, which the guard refused (%v)", i, p.csid, gerr)
			}
		}
	}
	shared := gerr == nil || (errors.Is(gerr, ErrProtocol) && !amfRefused && !strings.Contains(gerr.Error(), "below 128"))
	if shared && len(ltypes) > len(gtypes) {
		return fmt.Errorf("gortmplib read %d messages, the guard completed %d (guard error %v)", len(ltypes), len(gtypes), gerr)
	}
	if gerr == nil && (lerr == io.EOF || lerr == io.ErrUnexpectedEOF) && len(ltypes) != len(gtypes) {
		return fmt.Errorf("at the end gortmplib read %d messages, the guard completed %d", len(ltypes), len(gtypes))
	}
	return nil
}

// amfChunkStream is the chunk stream of an AMF command or data message
// (the only ones the guard refuses by content), else 0.
func amfChunkStream(m message.Message) byte {
	switch m := m.(type) {
	case *message.CommandAMF0:
		return m.ChunkStreamID
	case *message.DataAMF0:
		return m.ChunkStreamID
	}
	return 0
}

// rawType is the RTMP message type a gortmplib message was decoded from.
func rawType(m message.Message) byte {
	switch m.(type) {
	case *message.SetChunkSize:
		return typeSetChunkSize
	case *message.AbortMessage:
		return typeAbort
	case *message.Acknowledge:
		return 3
	case *message.UserControlStreamBegin, *message.UserControlStreamEOF, *message.UserControlStreamDry,
		*message.UserControlSetBufferLength, *message.UserControlStreamIsRecorded,
		*message.UserControlPingRequest, *message.UserControlPingResponse, *message.UserControlUndocumented:
		return 4
	case *message.SetWindowAckSize:
		return 5
	case *message.SetPeerBandwidth:
		return 6
	case *message.Audio, *message.AudioExSequenceStart, *message.AudioExSequenceEnd,
		*message.AudioExMultichannelConfig, *message.AudioExCodedFrames, *message.AudioExMultitrack:
		return 8
	case *message.Video, *message.VideoExSequenceStart, *message.VideoExSequenceEnd, *message.VideoExCodedFrames,
		*message.VideoExFramesX, *message.VideoExMetadata, *message.VideoExMultitrack:
		return 9
	case *message.DataAMF0:
		return typeDataAMF0
	case *message.CommandAMF0:
		return typeCommandAMF0
	}
	return 0
}

// FuzzGuardMirror: on any stream the guard and gortmplib agree on the
// messages (mirror).
func FuzzGuardMirror(f *testing.F) {
	for _, tc := range guardCases() {
		if len(tc.in) > hs && tc.in[0] == 3 && len(tc.in) < 64<<10 {
			f.Add(tc.in[hs:])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := mirror(append(handshake(), b...)); err != nil {
			t.Fatal(err)
		}
	})
}
