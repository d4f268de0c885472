package tsdemux

import (
	"bytes"
	"fmt"
	"io"
	"slices"
)

// MPEG-TS packet layout, ISO/IEC 13818-1 §2.4.3.2.
const (
	packetSize = 188
	syncByte   = 0x47
	pidPAT     = 0
	maxPMTPIDs = 16 // programs a PAT may announce that the sniffer follows
)

// scanner sits between the caller's reader and mediacommon's. It sees every
// stream byte once, as read, and looks at whole 188-byte packets for what
// mediacommon (and go-astits below it) does not report:
//
//   - whether a PMT arrived, while Open waits for the program (sniff), so
//     Open can tell ErrNoProgram from ErrNoVideo;
//   - continuity counter jumps on the chosen tracks' PIDs and the transport
//     error indicator (§2.4.3.3): go-astits silently drops the packets of a
//     PES broken by packet loss, so without this check a lossy SRT link
//     would not show in Stats.DecodeErrors.
//
// Packets are inspected in place; only one straddling two reads is copied.
// The byte alignment search (next sync byte) mirrors mediacommon's.
type scanner struct {
	r io.Reader

	part  [packetSize]byte // a packet split across reads
	npart int

	n     int64 // bytes read so far
	limit int64 // >0: Read fails with errDiscoveryLimit past this many bytes

	sniff   bool // looking for the PMT (until mediacommon knows the program)
	pmtPIDs []uint16
	sawPMT  bool

	cc      []ccState // the chosen tracks' PIDs, once known
	onError func(error)
}

// ccState is one PID's continuity counter.
type ccState struct {
	pid  uint16
	last uint8
	has  bool
}

// Read reads from the caller's reader and inspects what it got.
func (s *scanner) Read(p []byte) (int, error) {
	if s.limit > 0 && s.n >= s.limit {
		return 0, errDiscoveryLimit
	}
	n, err := s.r.Read(p)
	if n > 0 {
		s.n += int64(n)
		if s.sniff || len(s.cc) > 0 {
			s.scan(p[:n])
		}
	}
	return n, err
}

// scan splits b, the next bytes of the stream, into packets.
func (s *scanner) scan(b []byte) {
	for len(b) > 0 {
		if s.npart > 0 {
			k := copy(s.part[s.npart:], b)
			s.npart += k
			b = b[k:]
			if s.npart == packetSize {
				s.npart = 0
				s.packet(s.part[:])
			}
			continue
		}
		if b[0] != syncByte {
			i := bytes.IndexByte(b, syncByte)
			if i < 0 {
				return
			}
			b = b[i:]
		}
		if len(b) < packetSize {
			s.npart = copy(s.part[:], b)
			return
		}
		s.packet(b[:packetSize])
		b = b[packetSize:]
	}
}

// packet inspects one 188-byte packet starting with the sync byte.
func (s *scanner) packet(b []byte) {
	pid := uint16(b[1]&0x1f)<<8 | uint16(b[2])
	afc := b[3] >> 4 & 0x3
	hasPayload := afc&0x1 != 0
	payload := 4
	discontinuity := false
	if afc&0x2 != 0 {
		if b[4] > 0 {
			discontinuity = b[5]&0x80 != 0
		}
		payload += 1 + int(b[4])
	}
	if s.sniff && b[1]&0x40 != 0 && hasPayload && payload < packetSize {
		s.psi(pid, b[payload:])
	}
	for i := range s.cc {
		c := &s.cc[i]
		if c.pid != pid {
			continue
		}
		switch {
		case b[1]&0x80 != 0:
			s.onError(fmt.Errorf("tsdemux: transport error indicator set on PID %d", pid))
		case !hasPayload:
			// The counter only counts packets with payload; go-astits drops
			// the others unread, so a wrong counter there harms nothing.
		case !c.has || discontinuity:
			c.last, c.has = b[3]&0xf, true
		default:
			got, want := b[3]&0xf, (c.last+1)&0xf
			c.last = got
			if got != want && got != (want-1)&0xf { // the same counter again is a duplicate packet
				s.onError(fmt.Errorf("tsdemux: continuity counter error on PID %d: got %d, want %d (packet loss)", pid, got, want))
			}
		}
		return
	}
}

// psi looks at the start of a section on pid (§2.4.4): a PAT records the
// PMT PIDs it announces, a PMT on one of them marks the program as seen.
func (s *scanner) psi(pid uint16, p []byte) {
	ptr := int(p[0]) // pointer_field
	if 1+ptr >= len(p) {
		return
	}
	p = p[1+ptr:]
	switch {
	case pid == pidPAT && p[0] == 0x00 && len(p) >= 8: // program_association_section
		end := min(3+(int(p[1]&0x0f)<<8|int(p[2]))-4, len(p)) // before the CRC
		for i := 8; i+4 <= end; i += 4 {
			program := uint16(p[i])<<8 | uint16(p[i+1])
			pmt := uint16(p[i+2]&0x1f)<<8 | uint16(p[i+3])
			if program != 0 && !slices.Contains(s.pmtPIDs, pmt) && len(s.pmtPIDs) < maxPMTPIDs {
				s.pmtPIDs = append(s.pmtPIDs, pmt)
			}
		}
	case p[0] == 0x02 && slices.Contains(s.pmtPIDs, pid): // TS_program_map_section
		s.sawPMT = true
	}
}
