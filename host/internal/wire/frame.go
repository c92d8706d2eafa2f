package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"slices"
)

// AppendFrame appends a frame of type t with the given body to dst. The
// caller keeps len(body) below the peer's limit (at most 4 GiB - 2), which
// is what the length field can state.
func AppendFrame(dst []byte, t FrameType, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)+1))
	dst = append(dst, byte(t))
	return append(dst, body...)
}

// readBufSize is the bufio buffer of a Reader: large enough that a stream of
// small frames costs one read system call per many frames.
const readBufSize = 64 << 10

// shrinkAbove is the body buffer size a Reader gives back once a frame that
// fits in it arrives. Links are long-lived; without this, one large message
// would pin its buffer for the rest of the link's life.
const shrinkAbove = 1 << 20

// Reader cuts a byte stream into frames. It is not safe for concurrent use.
type Reader struct {
	br    *bufio.Reader
	limit int
	buf   []byte
	err   error
	hdr   [4]byte // here rather than on the stack, which it would escape from
}

// NewReader returns a Reader that refuses frames whose length L exceeds
// limit (see [FrameLimit]). A limit below 1 is taken as 1: a reader that
// accepts only empty bodies.
func NewReader(r io.Reader, limit int) *Reader {
	return &Reader{
		br:    bufio.NewReaderSize(r, readBufSize),
		limit: int(min(uint64(max(limit, 1)), maxL, uint64(maxInt))),
	}
}

// Next reads the next frame and returns its type and body. The body is only
// valid until the following call: the buffer is reused.
//
// Next returns io.EOF only when the stream ends cleanly between two frames,
// io.ErrUnexpectedEOF when it ends inside one, and a *[ProtocolError] for a
// zero length, a length beyond the limit or an unknown type. The limit and
// type are checked before the body is read, so a refused frame costs no
// allocation. Once Next has returned an error the stream is out of step,
// and every later call returns the same error.
func (r *Reader) Next() (FrameType, []byte, error) {
	if r.err != nil {
		return 0, nil, r.err
	}
	t, body, err := r.next()
	if err != nil {
		r.err = err
		return 0, nil, err
	}
	return t, body, nil
}

func (r *Reader) next() (FrameType, []byte, error) {
	// A frame already whole in the buffer is handed out in place: no copy
	// into r.buf (the body is valid until the next call either way). Small
	// frames arrive many to a read, so this is the common case.
	if n := r.br.Buffered(); n >= HeaderLen {
		b, _ := r.br.Peek(n)
		l := binary.BigEndian.Uint32(b)
		if t := FrameType(b[4]); l != 0 && uint64(l) <= uint64(r.limit) && uint64(l)+4 <= uint64(n) && t.known() {
			body := b[HeaderLen : 4+l : 4+l]
			r.br.Discard(int(4 + l))
			return t, body, nil
		}
	}
	// ReadFull reports io.EOF only when not one byte of the header arrived,
	// which is exactly a clean end between frames.
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return 0, nil, err
	}
	l := binary.BigEndian.Uint32(r.hdr[:])
	if l == 0 {
		return 0, nil, protocolErrorf(ErrProtocol, "frame of length 0: a frame has at least its type byte")
	}
	if uint64(l) > uint64(r.limit) {
		return 0, nil, protocolErrorf(ErrTooLarge, "frame of %d bytes exceeds the limit of %d", l, r.limit)
	}
	tb, err := r.br.ReadByte()
	if err != nil {
		return 0, nil, midFrame(err)
	}
	t := FrameType(tb)
	if !t.known() {
		return 0, nil, protocolErrorf(ErrProtocol, "unknown frame type %d", tb)
	}
	body, err := r.readBody(int(l - 1))
	if err != nil {
		return 0, nil, err
	}
	return t, body, nil
}

func (r *Reader) readBody(n int) ([]byte, error) {
	if cap(r.buf) > shrinkAbove && n <= shrinkAbove {
		r.buf = nil
	}
	if n <= cap(r.buf) || n <= readBufSize {
		r.buf = slices.Grow(r.buf[:0], n)[:n]
		if _, err := io.ReadFull(r.br, r.buf); err != nil {
			return nil, midFrame(err)
		}
		return r.buf, nil
	}
	// A large frame: grow the buffer as its bytes arrive instead of trusting
	// the length, so a peer that announces a frame of the full limit and then
	// stalls makes us hold no more memory than it has actually sent.
	b := r.buf[:0]
	for len(b) < n {
		if len(b) == cap(b) {
			// Doubling, but never past n: append's own growth could
			// overshoot and push a frame just under shrinkAbove over it.
			nb := make([]byte, len(b), min(n, max(2*cap(b), readBufSize)))
			copy(nb, b)
			b = nb
		}
		m, err := r.br.Read(b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		if err != nil && len(b) < n {
			r.buf = b[:0]
			return nil, midFrame(err)
		}
	}
	r.buf = b
	return b, nil
}

// midFrame turns an end of stream inside a frame into io.ErrUnexpectedEOF,
// so that io.EOF keeps meaning a clean end between frames.
func midFrame(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
