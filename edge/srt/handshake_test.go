package srt

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datarhei/gosrt/packet"
)

// An SRT handshake packet as the tests write it, byte by byte
// (draft-sharabayko-srt §3.2.1; gosrt v0.11.0 packet/packet.go).
type handshake struct {
	version    uint32
	encryption uint16
	extension  uint16
	hsType     uint32
	socketID   uint32
	cookie     uint32
	mtu        uint32 // 0: 1500
}

// Handshake types (§3.2.1, Table 4).
const (
	hsInduction  uint32 = 0x00000001
	hsConclusion uint32 = 0xFFFFFFFF
)

// datagram is h as one UDP payload: the 16-byte SRT header of a control
// packet (the control bit, type 0x0000 handshake, subtype 0, type-specific
// 0, a timestamp, destination socket id 0: a caller not connected yet),
// the 48-byte handshake CIF, then ext (the extension area).
func (h handshake) datagram(ext []byte) []byte {
	b := make([]byte, 16+48, 16+48+len(ext))
	binary.BigEndian.PutUint16(b[0:], 0x8000|0x0000) // control bit | handshake
	binary.BigEndian.PutUint16(b[2:], 0)             // subtype
	binary.BigEndian.PutUint32(b[4:], 0)             // type-specific
	binary.BigEndian.PutUint32(b[8:], 123456)        // timestamp, µs
	binary.BigEndian.PutUint32(b[12:], 0)            // destination socket id
	c := b[16:]
	binary.BigEndian.PutUint32(c[0:], h.version)
	binary.BigEndian.PutUint16(c[4:], h.encryption)
	binary.BigEndian.PutUint16(c[6:], h.extension)
	binary.BigEndian.PutUint32(c[8:], 0x1A2B3C4D)           // initial packet sequence number
	binary.BigEndian.PutUint32(c[12:], cmp.Or(h.mtu, 1500)) // maximum transmission unit
	binary.BigEndian.PutUint32(c[16:], 8192)                // maximum flow window
	binary.BigEndian.PutUint32(c[20:], h.hsType)
	binary.BigEndian.PutUint32(c[24:], h.socketID)
	binary.BigEndian.PutUint32(c[28:], h.cookie)
	copy(c[32:48], []byte{1, 0, 0, 127}) // peer IP 127.0.0.1: four 32-bit words, little-endian as libsrt sends it
	return append(b, ext...)
}

// crasherDatagram is issue 13's datagram: a version-5 conclusion handshake
// with the extension field 1 and SYN cookie 0, then one stray byte where
// gosrt v0.11.0 reads a 4-byte extension header (CIFHandshake.Unmarshal,
// packet.go:605: index out of range). 65 bytes; no cookie needed, since
// gosrt parses before it checks the cookie.
func crasherDatagram() []byte {
	return handshake{version: 5, encryption: 0, extension: 1, hsType: hsConclusion, socketID: 0x0BADF00D, cookie: 0}.datagram([]byte{0})
}

// inductionDatagram is the induction request a libsrt caller sends first:
// version 4, extension field 2 (UDT_DGRAM), no cookie.
func inductionDatagram(socketID uint32) []byte {
	return handshake{version: 4, extension: 2, hsType: hsInduction, socketID: socketID}.datagram(nil)
}

// conclusionDatagram is a well-formed version-5 conclusion as libsrt sends
// it after the induction: the HSREQ extension (SRT 1.4.1, the live-mode
// flags, 120 ms each way) and the stream id extension; cookie 0 for the
// fuzz target to fill in.
func conclusionDatagram(socketID uint32, streamID string) []byte {
	const (
		extHSREQ = 1
		extSID   = 5
		flags    = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<5 // TSBPDSND TSBPDRCV CRYPT TLPKTDROP PERIODICNAK REXMITFLG
	)
	ext := binary.BigEndian.AppendUint16(nil, extHSREQ)
	ext = binary.BigEndian.AppendUint16(ext, 3) // length in 32-bit words
	ext = binary.BigEndian.AppendUint32(ext, 0x010401)
	ext = binary.BigEndian.AppendUint32(ext, flags)
	ext = binary.BigEndian.AppendUint16(ext, 120) // receiver TSBPD delay, ms
	ext = binary.BigEndian.AppendUint16(ext, 120) // sender TSBPD delay, ms
	sid := []byte(streamID)
	for len(sid)%4 != 0 {
		sid = append(sid, 0)
	}
	ext = binary.BigEndian.AppendUint16(ext, extSID)
	ext = binary.BigEndian.AppendUint16(ext, uint16(len(sid)/4))
	for i := 0; i < len(sid); i += 4 { // each word's bytes reversed (§3.2.1.3)
		ext = append(ext, sid[i+3], sid[i+2], sid[i+1], sid[i])
	}
	// Extension flags: HSREQ (1) and CONFIG (4, the stream id).
	return handshake{version: 5, extension: 1 | 4, hsType: hsConclusion, socketID: socketID}.datagram(ext)
}

// gosrtParsePanics reports whether gosrt's own handshake parser panics on
// b (what Listener.Accept2 runs for a handshake to socket id 0).
func gosrtParsePanics(t *testing.T, b []byte) (panicked bool) {
	t.Helper()
	p, err := packet.NewPacketFromData(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}, b)
	if err != nil {
		t.Fatalf("not an SRT packet: %v", err)
	}
	defer p.Decommission()
	defer func() { panicked = recover() != nil }()
	_ = p.UnmarshalCIF(&packet.CIFHandshake{})
	return false
}

// TestHandshakeSeeds: the committed FuzzHandshake seeds are the datagrams
// the builders above make (the crasher stays the exact bytes of issue 13),
// and the crasher still crashes gosrt's parser: the regression input is a
// real crasher, the others are not.
func TestHandshakeSeeds(t *testing.T) {
	if got := len(crasherDatagram()); got != 65 {
		t.Fatalf("crasher is %d bytes, want 65", got)
	}
	if !gosrtParsePanics(t, crasherDatagram()) {
		t.Error("gosrt's CIFHandshake.Unmarshal no longer panics on the crasher: a gosrt upgrade? Keep the test input a real crasher (or retire the recovery)")
	}
	for name, want := range handshakeSeeds() {
		got := readSeed(t, filepath.Join("testdata", "fuzz", "FuzzHandshake", name))
		if string(got) != string(want) {
			t.Errorf("seed %s = %x, want %x", name, got, want)
		}
		if name != "issue13-conclusion-stray-byte" && gosrtParsePanics(t, want) {
			t.Errorf("seed %s panics gosrt's parser", name)
		}
	}
}

// handshakeSeeds are FuzzHandshake's committed seeds by file name.
func handshakeSeeds() map[string][]byte {
	return map[string][]byte{
		"issue13-conclusion-stray-byte": crasherDatagram(),
		"induction":                     inductionDatagram(0x11223344),
		"conclusion":                    conclusionDatagram(0x11223344, "#!::r=no-such-key,m=publish"),
	}
}

// readSeed decodes a one-value []byte file of the fuzzing corpus format
// ("go test fuzz v1").
func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := strings.Cut(strings.TrimSpace(string(b)), "\n")
	lit, ok2 := strings.CutPrefix(body, "[]byte(")
	lit, ok3 := strings.CutSuffix(lit, ")")
	if !ok || !ok2 || !ok3 || head != "go test fuzz v1" {
		t.Fatalf("%s: not a []byte corpus file", path)
	}
	s, err := strconv.Unquote(lit)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

// prober speaks the SRT handshake from one UDP socket of its own.
type prober struct {
	c    *net.UDPConn
	next atomic.Uint32 // socket ids for inductions
}

func newProber(t testing.TB, server net.Addr) *prober {
	t.Helper()
	c, err := net.DialUDP("udp", nil, server.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &prober{c: c}
	p.next.Store(0x30000000)
	return p
}

// send writes one datagram.
func (p *prober) send(t testing.TB, b []byte) {
	t.Helper()
	if _, err := p.c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// conclude does the caller's handshake by hand: an induction, then the
// conclusion b with the SYN cookie it got. It returns the handshake type of
// the answer to socketID (a rejection carries its reason there).
func (p *prober) conclude(t testing.TB, b []byte, socketID uint32) uint32 {
	t.Helper()
	cookie, err := p.induce(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b = append([]byte(nil), b...)
	binary.BigEndian.PutUint32(b[16+28:], cookie)
	p.send(t, b)
	buf := make([]byte, 2048)
	if err := p.c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := p.c.Read(buf)
		if err != nil {
			t.Fatalf("no answer to the conclusion: %v", err)
		}
		if n >= 64 && binary.BigEndian.Uint16(buf[0:]) == 0x8000 && binary.BigEndian.Uint32(buf[12:]) == socketID {
			return binary.BigEndian.Uint32(buf[16+20:])
		}
	}
}

// induce sends a valid induction request and waits (up to d) for the
// listener's answer: an induction handshake of version 5 to our socket id
// with the SRT magic 0x4A17 in the extension field. It returns the SYN
// cookie, or an error when no such answer came. Other datagrams (answers
// to earlier packets) are skipped.
func (p *prober) induce(d time.Duration) (uint32, error) {
	id := p.next.Add(1)
	if _, err := p.c.Write(inductionDatagram(id)); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(d)
	buf := make([]byte, 2048)
	for {
		if err := p.c.SetReadDeadline(deadline); err != nil {
			return 0, err
		}
		n, err := p.c.Read(buf)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return 0, fmt.Errorf("no induction answer within %v", d)
		case err != nil:
			// ICMP port unreachable surfaces as a read error on a connected
			// UDP socket: the server is gone.
			return 0, err
		}
		b := buf[:n]
		if n < 64 || binary.BigEndian.Uint16(b[0:]) != 0x8000 || binary.BigEndian.Uint32(b[12:]) != id {
			continue // not a handshake to this induction
		}
		c := b[16:]
		if v, ext, typ := binary.BigEndian.Uint32(c[0:]), binary.BigEndian.Uint16(c[6:]), binary.BigEndian.Uint32(c[20:]); v != 5 || ext != 0x4A17 || typ != hsInduction {
			return 0, fmt.Errorf("induction answered with version %d, extension %#x, type %#x", v, ext, typ)
		}
		return binary.BigEndian.Uint32(c[28:]), nil
	}
}
