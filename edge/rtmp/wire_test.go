package rtmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
)

// Raw RTMP byte streams for tests: what a client sends, built by hand so
// that a test controls every chunk.

// handshake is C0 (version 3), C1 and C2 (the server checks neither).
func handshake() []byte {
	b := make([]byte, handshakeSize)
	b[0] = 3
	return b
}

// wire builds a client's chunk stream.
type wire struct {
	bytes.Buffer
	chunkSize int
}

func newWire() *wire {
	w := &wire{chunkSize: initChunkSize}
	w.Write(handshake())
	return w
}

// msg writes one message as a type-0 chunk and type-3 continuations at the
// wire's chunk size; a timestamp ≥ 0xFFFFFF is sent extended, in every
// chunk.
func (w *wire) msg(csid byte, typ byte, msid uint32, ts uint32, body []byte) *wire {
	w.header0(csid, typ, msid, ts, len(body))
	ext := ts >= 0xFFFFFF
	for i := 0; ; {
		n := min(w.chunkSize, len(body)-i)
		w.Write(body[i : i+n])
		i += n
		if i == len(body) {
			break
		}
		w.WriteByte(3<<6 | csid)
		if ext {
			_ = binary.Write(w, binary.BigEndian, ts)
		}
	}
	if typ == typeSetChunkSize {
		w.chunkSize = int(binary.BigEndian.Uint32(body))
	}
	return w
}

// header0 writes a type-0 chunk header announcing length bytes.
func (w *wire) header0(csid byte, typ byte, msid uint32, ts uint32, length int) *wire {
	w.WriteByte(csid)
	t := min(ts, 0xFFFFFF)
	w.Write([]byte{byte(t >> 16), byte(t >> 8), byte(t), byte(length >> 16), byte(length >> 8), byte(length), typ})
	_ = binary.Write(w, binary.LittleEndian, msid) // RTMP's one little-endian field
	if t == 0xFFFFFF {
		_ = binary.Write(w, binary.BigEndian, ts)
	}
	return w
}

func (w *wire) raw(b ...byte) *wire { w.Write(b); return w }

func (w *wire) setChunkSize(v uint32) *wire {
	return w.msg(2, typeSetChunkSize, 0, 0, binary.BigEndian.AppendUint32(nil, v))
}

func (w *wire) command(csid byte, msid uint32, name string, id float64, args ...any) *wire {
	return w.msg(csid, typeCommandAMF0, msid, 0, amfBody(append([]any{name, id}, args...)...))
}

func amfBody(v ...any) []byte {
	b, err := amf0.Data(v).Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

func (w *wire) bytes() []byte { return bytes.Clone(w.Bytes()) }

// connectObject is a connect command's first argument, as ffmpeg sends it.
func connectObject(app, tcURL string) amf0.Object {
	return amf0.Object{
		{Key: "app", Value: app}, {Key: "type", Value: "nonprivate"},
		{Key: "flashVer", Value: "FMLE/3.0 (compatible; FMSc/1.0)"}, {Key: "tcUrl", Value: tcURL},
	}
}

// publishSeq is a whole publish as ffmpeg begins it: connect, SetChunkSize,
// releaseStream, FCPublish, createStream, publish.
func publishSeq(tcURL, app, name string) *wire {
	w := newWire()
	w.command(3, 0, "connect", 1, connectObject(app, tcURL))
	w.setChunkSize(4096)
	w.command(3, 0, "releaseStream", 2, nil, name)
	w.command(3, 0, "FCPublish", 3, nil, name)
	w.command(3, 0, "createStream", 4, nil)
	w.command(8, 1, "publish", 5, nil, name, "live")
	return w
}

// deepConnect is a connect command whose first argument is an object
// nested levels deep: 03, then `00 01 'a' 03` levels times, closed with
// `00 00 09` each when closed (the bug report's 4.2 MB message at 600,000).
func deepConnect(levels int, closed bool) []byte {
	b := amfBody("connect", 1.0)
	b = append(b, amf0Object)
	b = append(b, bytes.Repeat([]byte{0, 1, 'a', amf0Object}, levels)...)
	if closed {
		b = append(b, bytes.Repeat([]byte{0, 0, amf0ObjectEnd}, levels+1)...)
	}
	return b
}

// amplification is the bug report's memory amplification: SetChunkSize 10
// MiB, then one chunk header announcing a 10 MiB message, and no body.
func amplification() []byte {
	w := newWire().setChunkSize(gortmplibMax)
	w.header0(3, 9, 1, 0, gortmplibMax)
	return w.bytes()
}

// dial connects to addr, failing t.
func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// exchange sends in to addr (then half-closes) while it reads what the
// server sends, until the server closes or d passes; it returns what was
// read and whether the server closed.
func exchange(t testing.TB, addr string, in []byte, d time.Duration) ([]byte, bool) {
	t.Helper()
	nc := dial(t, addr)
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(d))
	go func() {
		_, _ = nc.Write(in) // the server may refuse and close first
		_ = nc.(*net.TCPConn).CloseWrite()
	}()
	out, err := io.ReadAll(nc)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		return out, false
	}
	return out, true
}

// answersHandshake reports whether a server at addr answers C0+C1 with
// S0+S1+S2 within d.
func answersHandshake(t testing.TB, addr string, d time.Duration) bool {
	t.Helper()
	nc := dial(t, addr)
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(d))
	if _, err := nc.Write(handshake()[:1+1536]); err != nil {
		return false
	}
	buf := make([]byte, handshakeSize)
	if _, err := io.ReadFull(nc, buf); err != nil {
		return false
	}
	return buf[0] == 3
}
