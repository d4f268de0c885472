package rtmp

// amfWalker checks the body of one AMF command or data message as it
// streams past, byte by byte, without buffering it: it follows the AMF0
// grammar exactly as gortmplib's pkg/amf0 Unmarshal decodes it and refuses
// a nesting of objects and arrays deeper than its limit. It keeps one small
// frame per open container (at most maxDepth), so neither its memory nor
// its stack grows with the input.
//
// Mirrored from gortmplib v1.0.2 pkg/amf0/data.go (unmarshal):
//
//   - a body is a sequence of values until it ends (an empty body is valid);
//   - 0x00 number: 8 bytes; 0x01 boolean: 1 byte; 0x02 string: u16 length,
//     then that many bytes; 0x05 null and 0x06 undefined: nothing;
//   - 0x03 object: pairs of u16 key length, key, value until a key length
//     of 0, which must be followed by 0x09 (object end);
//   - 0x08 ECMA array: a u32 count (ignored), then as an object;
//   - 0x0A strict array: a u32 count, then that many values, no terminator;
//   - every other marker is an error there: 0x04 movie clip, 0x07
//     reference, 0x09 as a value, 0x0B date, 0x0C long string, 0x0D
//     unsupported, 0x0E record set, 0x0F XML document, 0x10 typed object and
//     0x11 (the switch to AMF3). gortmplib would refuse the message, so the
//     walker refuses it at that byte.
//
// AMF3 command and data messages (types 17 and 15) carry one leading
// format byte before AMF0 values (nginx-rtmp and ffmpeg skip it the same
// way); gortmplib v1.0.2 refuses both types as unknown, and the walker
// checks them anyway so that a gortmplib that starts decoding them stays
// covered.
type amfWalker struct {
	maxDepth int
	stack    []amfFrame
	state    amfState
	n        int    // bytes still to skip (amfSkip, amfKey)
	acc      uint32 // a length or count being read, big-endian
	accN     int    // bytes of acc still to read
}

type amfFrame struct {
	array bool   // a strict array; otherwise an object or ECMA array
	left  uint32 // values still to read (strict array)
}

type amfState uint8

const (
	amfValue  amfState = iota // a marker starts a value
	amfPrefix                 // the AMF3 format byte
	amfSkip                   // n payload bytes, then the value is done
	amfStrLen                 // a string's u16 length
	amfKeyLen                 // an object key's u16 length, or 0 for the end
	amfKey                    // n key bytes, then a value
	amfObjEnd                 // the 0x09 after a zero key length
	amfECMA                   // an ECMA array's u32 count, then its keys
	amfArrLen                 // a strict array's u32 count
)

const (
	amf0Number      = 0x00
	amf0Boolean     = 0x01
	amf0String      = 0x02
	amf0Object      = 0x03
	amf0Null        = 0x05
	amf0Undefined   = 0x06
	amf0ECMAArray   = 0x08
	amf0ObjectEnd   = 0x09
	amf0StrictArray = 0x0A
)

// reset prepares w for a new message; amf3 skips the format byte first.
func (w *amfWalker) reset(maxDepth int, amf3 bool) {
	w.maxDepth = maxDepth
	w.stack = w.stack[:0]
	w.state = amfValue
	if amf3 {
		w.state = amfPrefix
	}
	w.n, w.acc, w.accN = 0, 0, 0
}

// feed walks b, the message's next bytes. On a violation it returns the
// index of the offending byte (the bytes before it are fine) and the error.
func (w *amfWalker) feed(b []byte) (int, error) {
	for i := 0; i < len(b); {
		switch w.state {
		case amfPrefix:
			i++
			w.state = amfValue
		case amfValue:
			if err := w.marker(b[i]); err != nil {
				return i, err
			}
			i++
		case amfSkip, amfKey:
			k := min(w.n, len(b)-i)
			w.n -= k
			i += k
			if w.n == 0 {
				if w.state == amfKey {
					w.state = amfValue
				} else {
					w.valueDone()
				}
			}
		case amfObjEnd:
			if b[i] != amf0ObjectEnd {
				return i, protoErr("AMF0 object end not found")
			}
			i++
			w.stack = w.stack[:len(w.stack)-1]
			w.valueDone()
		default: // a big-endian length or count
			w.acc = w.acc<<8 | uint32(b[i])
			w.accN--
			i++
			if w.accN > 0 {
				continue
			}
			v := w.acc
			switch w.state {
			case amfStrLen:
				w.skip(int(v))
			case amfKeyLen:
				if v == 0 {
					w.state = amfObjEnd
				} else {
					w.state, w.n = amfKey, int(v)
				}
			case amfECMA:
				w.stack = append(w.stack, amfFrame{})
				w.read(amfKeyLen, 2)
			case amfArrLen:
				w.stack = append(w.stack, amfFrame{array: true, left: v})
				w.valueDone()
			}
		}
	}
	return len(b), nil
}

// marker starts the value whose marker is m.
func (w *amfWalker) marker(m byte) error {
	switch m {
	case amf0Number:
		w.skip(8)
	case amf0Boolean:
		w.skip(1)
	case amf0String:
		w.read(amfStrLen, 2)
	case amf0Null, amf0Undefined:
		w.valueDone()
	case amf0Object, amf0ECMAArray, amf0StrictArray:
		// The container opens at this byte: refuse it here if it is one
		// level too deep, before gortmplib can receive the message whole.
		if len(w.stack) >= w.maxDepth {
			return limitErr("AMF nesting deeper than Config.MaxAMFDepth (%d)", w.maxDepth)
		}
		switch m {
		case amf0Object:
			w.stack = append(w.stack, amfFrame{})
			w.read(amfKeyLen, 2)
		case amf0ECMAArray:
			w.read(amfECMA, 4) // the frame is pushed after the count
		default:
			w.read(amfArrLen, 4)
		}
	default:
		return protoErr("unsupported AMF0 marker 0x%02x", m)
	}
	return nil
}

func (w *amfWalker) read(s amfState, n int) { w.state, w.acc, w.accN = s, 0, n }

func (w *amfWalker) skip(n int) {
	if n == 0 {
		w.valueDone()
		return
	}
	w.state, w.n = amfSkip, n
}

// valueDone moves past a finished value: to the next top-level value, the
// enclosing object's next key, or the enclosing strict array's next value
// (closing every array that is now complete, iteratively).
func (w *amfWalker) valueDone() {
	for {
		if len(w.stack) == 0 {
			w.state = amfValue
			return
		}
		top := &w.stack[len(w.stack)-1]
		if !top.array {
			w.read(amfKeyLen, 2)
			return
		}
		if top.left > 0 {
			top.left--
			w.state = amfValue
			return
		}
		w.stack = w.stack[:len(w.stack)-1]
	}
}

// end reports whether the message may end here: between top-level values,
// as gortmplib's Unmarshal requires.
func (w *amfWalker) end() error {
	if w.state != amfValue || len(w.stack) != 0 {
		return protoErr("AMF0 message ends inside a value")
	}
	return nil
}

// depth is the number of containers open now (for tests).
func (w *amfWalker) depth() int { return len(w.stack) }
