package netbaseline

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

const (
	// streamHeaderLen is the Stream frame header: 4-byte big-endian payload
	// length.
	streamHeaderLen = 4
	// maxQueued is how many bytes of frames Send lets accumulate before it
	// blocks.
	maxQueued = 4 << 20
)

// Stream is a raw one-way stream: Send frames (4-byte len + payload) through
// one TLS connection with a coalescing writer; the receiver counts frames.
//
// Memory is bounded: at most about 4 MiB wait in the batch (one larger frame
// is let through alone) while up to as much again is being written.
type Stream struct {
	w io.Writer // sender end, written by writeLoop only
	r io.Reader // receiver end, read by readLoop only

	mu    sync.Mutex
	space sync.Cond // signalled when the batch shrinks or the stream fails
	batch []byte
	err   error // non-nil once the stream is unusable; guarded by mu
	wake  chan struct{}

	received atomic.Uint64

	done      chan struct{}
	closeOnce sync.Once
	closers   []func() error
	wg        sync.WaitGroup
}

// NewTLSStream starts a Stream over TCP + TLS 1.3 on 127.0.0.1:0.
func NewTLSStream() (*Stream, error) {
	serverTLS, clientTLS, err := newTLSConfigs()
	if err != nil {
		return nil, err
	}
	p, err := newTCPPair(serverTLS, clientTLS)
	if err != nil {
		return nil, err
	}
	return newStream(p.client, p.server, p.closers()), nil
}

// newStream starts a stream writing to w and counting frames read from r.
// closers are run in order by Close and must unblock any Read or Write.
func newStream(w io.Writer, r io.Reader, closers []func() error) *Stream {
	s := &Stream{
		w:       w,
		r:       r,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		closers: closers,
	}
	s.space.L = &s.mu
	s.wg.Add(2)
	go s.writeLoop()
	go s.readLoop()
	return s
}

// Send queues one frame. It is safe for concurrent use, and blocks while the
// queue holds more than 4 MiB. It returns ErrClosed after Close, also to a
// Send blocked at that moment.
func (s *Stream) Send(payload []byte) error {
	if len(payload) > MaxPayload {
		return errTooLarge
	}
	frame := streamHeaderLen + len(payload)
	s.mu.Lock()
	for s.err == nil && len(s.batch) > 0 && len(s.batch)+frame > maxQueued {
		s.space.Wait()
	}
	if err := s.err; err != nil {
		s.mu.Unlock()
		return err
	}
	s.batch = binary.BigEndian.AppendUint32(s.batch, uint32(len(payload)))
	s.batch = append(s.batch, payload...)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Received returns how many frames the receiver has read completely.
func (s *Stream) Received() uint64 { return s.received.Load() }

func (s *Stream) writeLoop() {
	defer s.wg.Done()
	var out []byte
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		runtime.Gosched() // let senders that are already runnable join the batch
		s.mu.Lock()
		out, s.batch = s.batch, out[:0]
		s.space.Broadcast()
		s.mu.Unlock()
		if len(out) == 0 {
			continue
		}
		if _, err := s.w.Write(out); err != nil {
			s.fail(fmt.Errorf("netbaseline: stream write: %w", err))
			return
		}
	}
}

func (s *Stream) readLoop() {
	defer s.wg.Done()
	br := bufio.NewReaderSize(s.r, ioBufferSize)
	var hdr [streamHeaderLen]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > MaxPayload {
			s.fail(fmt.Errorf("netbaseline: stream read: frame of %d bytes: %w", n, errTooLarge))
			return
		}
		if _, err := br.Discard(int(n)); err != nil {
			return
		}
		s.received.Add(1)
	}
}

// fail makes the stream unusable with err (the first error wins) and wakes
// blocked senders.
func (s *Stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.space.Broadcast()
	s.mu.Unlock()
}

// Close closes both ends without draining the queue and waits until every
// goroutine of the stream has exited. Close is idempotent.
func (s *Stream) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.fail(ErrClosed)
		close(s.done)
		err = runClosers(s.closers)
		s.wg.Wait()
	})
	return err
}
