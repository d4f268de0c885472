package rtmp

import (
	"net"
)

// The guard sits between the client's net.Conn and gortmplib
// (gortmplib.ServerConn{RW: guard}): every byte the client sends is parsed
// by it before gortmplib may read it, and a read that would hand gortmplib
// a byte past a violation returns only the bytes before it with the error
// (io.Reader allows n > 0 with err). So gortmplib never receives the last
// byte of a message the guard refused, nor the whole header of a chunk
// whose announced length is over a limit, and never allocates for it.
//
// To know which byte is which, the guard must parse the stream exactly as
// gortmplib v1.0.2 does; if the two disagreed on where a message ends, an
// attacker could hide a message from the guard. What is mirrored, and
// where it is in gortmplib:
//
//   - pkg/handshake DoServer: C0 (1 byte; 3 is plain, 6 RTMPE, anything else
//     an error), C1 (1536 bytes), C2 (1536 bytes), read with io.ReadFull
//     straight from the conn (no read-ahead), contents never checked
//     (strict is false). The guard refuses RTMPE: its RC4 stream cannot be
//     checked.
//   - pkg/rawmessage Reader.Read: one basic-header byte; format = b>>6,
//     chunk stream id = b&0x3f; ids 0 and 1 (the 2- and 3-byte forms) are
//     errors there, so only 2..63 exist.
//   - readerChunkStream.readMessage, per format: 0 needs no message in
//     progress on the chunk stream; 1 and 2 need an earlier type-0 chunk on
//     it (curTimestampAvailable) and no message in progress; 3 continues the
//     message in progress, or starts a new one with the previous header
//     (needs the type-0 chunk). Message headers are 11/7/3/0 bytes
//     (pkg/chunk Chunk0..3.Read).
//   - Extended timestamps: a type 0/1/2 header whose 3-byte timestamp (or
//     delta) is 0xFFFFFF is followed by 4 bytes that replace it; the chunk
//     stream's hasExtendedTimestamp becomes "that value >= 0xFFFFFF" (the
//     value after the replacement, so an extended field below 0xFFFFFF
//     turns it off) and is kept for its type-3 chunks, of later messages
//     too, each of which then carries 4 more bytes (Chunk3.Read).
//   - Chunk bodies: min(message length, chunk size) for a message's first
//     chunk (types 0, 1, 2, and 3 starting a message), min(length - received,
//     chunk size) for a continuation; curBodyRecv counts the bytes of the
//     completed chunks and is 0 between messages.
//   - pkg/message Reader.Read applies a SetChunkSize (type 1, body exactly
//     4 bytes, the 32-bit value unmasked: bit 31 is not cleared) as soon as
//     the message is complete, before the next chunk header is read; a value
//     over 10 MiB is an error there. The guard applies it at the same byte.
//   - AbortChunkStream (type 2, 4 bytes): ids outside 2..63 and chunk
//     streams without a message in progress are ignored; otherwise the
//     message is dropped and the chunk stream's message length becomes 0
//     (so a following type-2/3 chunk starts an empty message).
//   - Every decode error ends the gortmplib read (ServerConn, Reader and this
//     package's conn end the connection on any read error), so where
//     gortmplib errors the guard may refuse at the same byte or earlier, and
//     need not follow it further. A bad AMF message is refused at its
//     offending byte, while gortmplib would fail only once the message is
//     complete: messages that complete on other chunk streams in between
//     are then never delivered, which only a client that sent a broken
//     command would notice.
//
// The guard refuses, beyond gortmplib: SetChunkSize below 128 (0 makes
// gortmplib append an empty fragment per 1-byte chunk for ever; tiny sizes
// multiply its per-fragment overhead); SetChunkSize and Abort messages
// whose length is not 4 (at the header rather than at the end); AMF
// markers and structures gortmplib's decoder rejects (at the offending byte
// rather than at the message's end).
//
// A guard is not safe for concurrent Reads; admitted is called by the
// goroutine that reads, between reads. Writes pass through.
type guard struct {
	net.Conn
	p     parser
	total int64 // bytes handed to gortmplib
	err   error // the violation; every later Read returns it
}

// Sizes gortmplib fixes.
const (
	handshakeSize  = 1 + 1536 + 1536 // C0, C1, C2
	gortmplibMax   = 10 * 1024 * 1024
	minChunkSize   = 128 // RTMP's initial chunk size; the guard refuses smaller
	initChunkSize  = 128
	maxChunkStream = 63
)

// limits are the guard's bounds, from the server's Config.
type limits struct {
	preAdmitBudget int64 // Config.PreAdmitBudget
	preAdmitBytes  int64 // handshakeSize + PreAdmitBudget
	maxMessage     int64 // Config.MaxMessageSize
	maxAMF         int64 // Config.MaxAMFMessageSize
	maxDepth       int   // Config.MaxAMFDepth
}

func limitsOf(c Config) limits {
	return limits{
		preAdmitBudget: int64(c.PreAdmitBudget),
		preAdmitBytes:  handshakeSize + int64(c.PreAdmitBudget),
		maxMessage:     int64(c.MaxMessageSize),
		maxAMF:         int64(c.MaxAMFMessageSize),
		maxDepth:       c.MaxAMFDepth,
	}
}

func newGuard(nc net.Conn, lim limits) *guard {
	g := &guard{Conn: nc}
	g.p.init(lim)
	return g
}

// admitted lifts the pre-admission limits: the connection's publish was
// admitted, so from now on the per-message limits apply.
func (g *guard) admitted() { g.p.admitted = true }

// violation is the limit or protocol error the guard refused with, if any.
func (g *guard) violation() error { return g.err }

// Read reads from the client and returns the bytes that pass. Before
// admission it reads no further than the element being parsed (so that no
// read-ahead is judged by the pre-admission limits, and no byte is read
// that gortmplib does not ask for) and no more than the bytes allowed
// before admission.
func (g *guard) Read(b []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if len(b) == 0 {
		return 0, nil
	}
	if !g.p.admitted {
		left := g.p.lim.preAdmitBytes - g.total
		if left <= 0 {
			g.err = limitErr("more than %d bytes before admission (the handshake and Config.PreAdmitBudget)", g.p.lim.preAdmitBytes)
			return 0, g.err
		}
		b = b[:min(int64(len(b)), left, g.p.need())]
	}
	n, err := g.Conn.Read(b)
	k, verr := g.p.feed(b[:n])
	g.total += int64(k)
	if verr != nil {
		g.err = verr
		return k, verr
	}
	return n, err
}

// phase is where the parser is in the byte stream.
type phase uint8

const (
	phC0     phase = iota // the version byte
	phC1                  // 1536 bytes
	phC2                  // 1536 bytes
	phBasic               // a chunk's basic header
	phHeader              // its message header (11, 7 or 3 bytes)
	phExt                 // its extended timestamp (4 bytes)
	phBody                // its body
)

// parser follows the client's byte stream as gortmplib reads it (see the
// guard's comment). It never allocates per byte; a chunk stream's state is
// allocated when the stream is first used (at most 62).
type parser struct {
	lim      limits
	admitted bool

	phase     phase
	skip      int  // handshake bytes left in this part
	fmt       byte // the chunk's format (0..3)
	csid      byte // the chunk's stream id
	cs        *chunkStream
	hdr       [11]byte // message header bytes
	hdrN      int      // of hdrLen read
	hdrLen    int
	ext       uint32 // extended timestamp being read
	extN      int    // of 4 read
	extFor    bool   // the extended field replaces the header's (types 0..2)
	chunkLeft int64  // body bytes of this chunk still to come

	chunkSize  uint32 // gortmplib's current chunk size for reading
	inProgress int64  // announced lengths of the messages in progress, summed
	streams    [maxChunkStream + 1]*chunkStream

	messages int // complete messages seen (for tests)
	// onMessage, if set, is told of each complete message (for tests).
	onMessage func(typ byte, length uint32)
}

// chunkStream mirrors gortmplib's readerChunkStream, plus the guard's view
// of the message in progress.
type chunkStream struct {
	seen     bool   // curTimestampAvailable: a type-0 chunk was read
	typ      byte   // curType
	bodyLen  uint32 // curBodyLen
	recv     uint32 // curBodyRecv: bytes of the completed chunks of the message in progress
	extended bool   // hasExtendedTimestamp

	active bool  // a message is in progress (from its first chunk header)
	length int64 // its announced length, as counted in inProgress
	got    int64 // its body bytes seen so far
	isAMF  bool  // it is walked by amf
	amf    amfWalker
	ctl    [4]byte // the body of a SetChunkSize or Abort message
}

// RTMP message types (RTMP 1.0 spec sections 5.4 and 7.1).
const (
	typeSetChunkSize = 1
	typeAbort        = 2
	typeDataAMF3     = 15
	typeCommandAMF3  = 17
	typeDataAMF0     = 18
	typeCommandAMF0  = 20
)

func isAMFType(t byte) bool {
	return t == typeDataAMF3 || t == typeCommandAMF3 || t == typeDataAMF0 || t == typeCommandAMF0
}

func (p *parser) init(lim limits) {
	p.lim = lim
	p.phase = phC0
	p.chunkSize = initChunkSize
}

// need is how many bytes end the element being parsed (at least 1).
func (p *parser) need() int64 {
	switch p.phase {
	case phC0, phBasic:
		return 1
	case phC1, phC2:
		return int64(p.skip)
	case phHeader:
		return int64(p.hdrLen - p.hdrN)
	case phExt:
		return int64(4 - p.extN)
	default:
		return max(p.chunkLeft, 1)
	}
}

// feed parses b. On a violation it returns how many bytes of b pass (those
// before the offending byte) and the error.
func (p *parser) feed(b []byte) (int, error) {
	for i := 0; i < len(b); {
		switch p.phase {
		case phC0:
			switch b[i] {
			case 3:
			case 6:
				return i, ErrRTMPE
			default:
				return i, protoErr("RTMP version %d in C0; want 3", b[i])
			}
			i++
			p.phase, p.skip = phC1, 1536
		case phC1, phC2:
			k := min(p.skip, len(b)-i)
			p.skip -= k
			i += k
			if p.skip == 0 {
				if p.phase == phC1 {
					p.phase, p.skip = phC2, 1536
				} else {
					p.phase = phBasic
				}
			}
		case phBasic:
			if err := p.basic(b[i]); err != nil {
				return i, err
			}
			i++
		case phHeader:
			k := copy(p.hdr[p.hdrN:p.hdrLen], b[i:])
			p.hdrN += k
			i += k
			if p.hdrN == p.hdrLen {
				if err := p.header(); err != nil {
					return i - 1, err
				}
			}
		case phExt:
			p.ext = p.ext<<8 | uint32(b[i])
			p.extN++
			i++
			if p.extN == 4 {
				if err := p.extDone(); err != nil {
					return i - 1, err
				}
			}
		case phBody:
			k := int(min(p.chunkLeft, int64(len(b)-i)))
			if j, err := p.body(b[i : i+k]); err != nil {
				return i + j, err
			}
			i += k
			p.chunkLeft -= int64(k)
			if p.chunkLeft == 0 {
				if err := p.chunkDone(); err != nil {
					return i - 1, err
				}
			}
		}
	}
	return len(b), nil
}

// basic reads a basic header and gortmplib's checks that precede the
// message header (readMessage's first lines per format).
func (p *parser) basic(v byte) error {
	f, id := v>>6, v&0x3f
	if id < 2 {
		return protoErr("chunk stream id form %d (2- and 3-byte basic headers are not supported)", id)
	}
	cs := p.streams[id]
	if cs == nil {
		cs = &chunkStream{}
		p.streams[id] = cs
	}
	switch f {
	case 0:
		if cs.recv != 0 {
			return protoErr("type 0 chunk inside a message on chunk stream %d", id)
		}
	case 1, 2:
		if !cs.seen {
			return protoErr("type %d chunk without a previous chunk on chunk stream %d", f, id)
		}
		if cs.recv != 0 {
			return protoErr("type %d chunk inside a message on chunk stream %d", f, id)
		}
	case 3:
		if cs.recv == 0 && !cs.seen {
			return protoErr("type 3 chunk without a previous chunk on chunk stream %d", id)
		}
	}
	p.fmt, p.csid, p.cs = f, id, cs
	p.hdrN, p.hdrLen = 0, [4]int{11, 7, 3, 0}[f]
	if f == 3 {
		return p.headerEnd(cs.extended, false)
	}
	p.phase = phHeader
	return nil
}

// header has the message header: it is applied once the extended
// timestamp, if any, is read.
func (p *parser) header() error {
	ts := be24(p.hdr[0:3]) // timestamp (type 0) or delta (types 1, 2)
	return p.headerEnd(ts == 0xFFFFFF, true)
}

// headerEnd reads the extended timestamp next if there is one, else
// applies the header.
func (p *parser) headerEnd(ext, replaces bool) error {
	if ext {
		p.phase, p.ext, p.extN, p.extFor = phExt, 0, 0, replaces
		return nil
	}
	return p.apply(be24(p.hdr[0:3]))
}

func (p *parser) extDone() error {
	if !p.extFor { // a type-3 chunk's: read and ignored
		return p.apply(0)
	}
	return p.apply(p.ext)
}

// apply updates the chunk stream as gortmplib does once the header is
// read, with ts the chunk's timestamp or delta (types 0..2), and starts
// the chunk's body.
func (p *parser) apply(ts uint32) error {
	cs := p.cs
	switch p.fmt {
	case 0:
		cs.seen = true
		cs.bodyLen, cs.typ = be24(p.hdr[3:6]), p.hdr[6]
		cs.extended = ts >= 0xFFFFFF
	case 1:
		cs.bodyLen, cs.typ = be24(p.hdr[3:6]), p.hdr[6]
		cs.extended = ts >= 0xFFFFFF
	case 2:
		cs.extended = ts >= 0xFFFFFF
	}
	if cs.recv != 0 { // a type-3 continuation
		p.chunkLeft = int64(min(cs.bodyLen-cs.recv, p.chunkSize))
	} else {
		if err := p.start(cs); err != nil {
			return err
		}
		p.chunkLeft = int64(min(cs.bodyLen, p.chunkSize))
	}
	if p.chunkLeft == 0 {
		return p.chunkDone()
	}
	p.phase = phBody
	return nil
}

// start begins a message on cs, announced with cs.bodyLen bytes, and
// checks the limits.
func (p *parser) start(cs *chunkStream) error {
	n := int64(cs.bodyLen)
	switch {
	case (cs.typ == typeSetChunkSize || cs.typ == typeAbort) && n != 4:
		return protoErr("control message of type %d with %d bytes; want 4", cs.typ, n)
	case isAMFType(cs.typ) && n > p.lim.maxAMF:
		return limitErr("AMF message of %d bytes exceeds Config.MaxAMFMessageSize (%d)", n, p.lim.maxAMF)
	case !p.admitted && p.inProgress+n > p.lim.preAdmitBudget:
		return limitErr("messages in progress before admission announce %d bytes, over Config.PreAdmitBudget (%d)", p.inProgress+n, p.lim.preAdmitBudget)
	case n > p.lim.maxMessage:
		return limitErr("message of %d bytes exceeds Config.MaxMessageSize (%d)", n, p.lim.maxMessage)
	case p.admitted && p.inProgress+n > 2*p.lim.maxMessage:
		return limitErr("messages in progress announce %d bytes, over twice Config.MaxMessageSize (%d)", p.inProgress+n, 2*p.lim.maxMessage)
	}
	p.inProgress += n
	cs.active, cs.length, cs.got = true, n, 0
	cs.isAMF = isAMFType(cs.typ)
	if cs.isAMF {
		cs.amf.reset(p.lim.maxDepth, cs.typ == typeDataAMF3 || cs.typ == typeCommandAMF3)
	}
	return nil
}

// body passes b, the next bytes of the current chunk's body, to the
// message's checks.
func (p *parser) body(b []byte) (int, error) {
	cs := p.cs
	if cs.isAMF {
		if j, err := cs.amf.feed(b); err != nil {
			return j, err
		}
	} else if cs.typ == typeSetChunkSize || cs.typ == typeAbort {
		copy(cs.ctl[cs.got:], b)
	}
	cs.got += int64(len(b))
	return len(b), nil
}

// chunkDone ends a chunk as readMessage does: the message is complete
// when the bytes received reach its length.
func (p *parser) chunkDone() error {
	cs := p.cs
	p.phase = phBasic
	cs.recv = uint32(cs.got) // the bytes of the chunks read so far
	if cs.recv != cs.bodyLen {
		return nil
	}
	cs.recv = 0
	return p.complete(cs)
}

// complete ends the message on cs; its last byte is the current one, so a
// refusal here keeps it from gortmplib.
func (p *parser) complete(cs *chunkStream) error {
	p.inProgress -= cs.length
	cs.active = false
	p.messages++
	if p.onMessage != nil {
		p.onMessage(cs.typ, cs.bodyLen)
	}
	if cs.isAMF {
		return cs.amf.end()
	}
	switch cs.typ {
	case typeSetChunkSize:
		v := be32(cs.ctl[:])
		switch {
		case v > gortmplibMax:
			return protoErr("chunk size %d over 10 MiB", v)
		case v < minChunkSize:
			return protoErr("chunk size %d below %d", v, minChunkSize)
		}
		p.chunkSize = v
	case typeAbort:
		v := be32(cs.ctl[:])
		if v < 2 || v > maxChunkStream {
			return nil
		}
		if t := p.streams[v]; t != nil && t.recv != 0 {
			p.inProgress -= t.length
			t.active, t.length = false, 0
			t.bodyLen, t.recv, t.got = 0, 0, 0
		}
	}
	return nil
}

func be24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
