package fuel

import (
	"errors"
	"fmt"
)

var errEOF = errors.New("unexpected end of module")

// reader decodes the WebAssembly binary format; the first error sticks and
// every later read returns zero values, so callers check err once per item.
type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) done() bool { return r.pos >= len(r.b) || r.err != nil }

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b) {
		r.err = errEOF
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.pos {
		r.err = fmt.Errorf("%w: need %d bytes at offset %d", errEOF, n, r.pos)
		return nil
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b
}

func (r *reader) rest() []byte {
	if r.err != nil {
		return nil
	}
	b := r.b[r.pos:]
	r.pos = len(r.b)
	return b
}

// leb returns the raw bytes of one LEB128 number of any width.
func (r *reader) leb() []byte {
	start := r.pos
	for i := 0; ; i++ {
		c := r.byte()
		if r.err != nil {
			return nil
		}
		if c&0x80 == 0 {
			return r.b[start:r.pos]
		}
		if i == 9 {
			r.err = fmt.Errorf("LEB128 number too long at offset %d", start)
			return nil
		}
	}
}

func (r *reader) u32() uint32 {
	start := r.pos
	var v uint64
	for shift := 0; ; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
		if shift >= 28 {
			r.err = fmt.Errorf("u32 too long at offset %d", start)
			return 0
		}
	}
	if v > 0xffffffff {
		r.err = fmt.Errorf("u32 out of range at offset %d", start)
		return 0
	}
	return uint32(v)
}

func (r *reader) name() string {
	n := r.u32()
	return string(r.bytes(int(n)))
}

// memarg skips align, an optional memory index (multi-memory sets bit 6 of
// align) and offset.
func (r *reader) memarg() {
	align := r.u32()
	if align&0x40 != 0 {
		r.u32()
	}
	r.leb()
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}
