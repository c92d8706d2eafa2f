package mesh

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
)

// outbox is the send side of a link's main stream. Any goroutine queues
// frames; one writer goroutine coalesces everything queued since its last
// write into a single Write. It owns its lock (mu) and everything under
// it; the link it belongs to is told when a write fails.
type outbox struct {
	l     *link
	w     io.Writer // main stream, used by the writer goroutine only
	limit int       // bytes queued before senders wait (limits.send_buffer)

	mu      sync.Mutex
	buf     []byte        // frames waiting for the writer
	spare   []byte        // a drained batch buffer, owned by whoever is writing
	wake    chan struct{} // cap 1: the writer goroutine takes over writing
	writing bool          // someone owns the main stream's writes (and spare)
	room    chan struct{} // closed when buf drains; made by a waiting sender
	closed  bool

	// writes counts Writes begun and busy says one is running; the
	// liveness checks compare them between ticks to find a Write stuck for
	// longer than the dead time (the peer stopped reading). Counters, not
	// clock readings, because they sit on the path of every message.
	writes atomic.Uint64
	busy   atomic.Bool

	msgs, bytes, control atomic.Uint64 // messages queued; bytes written; of them, control frames
}

// errFull means the link's send buffer is full and the caller chose not to
// wait.
var errFull = errors.New("send buffer full")

// enqueue appends e as a frame to the send batch. While more than the send
// buffer is queued, a sender that may wait blocks until the writer drains
// the batch, the deadline passes or the link closes; one that may not
// returns errFull at once. This is what keeps a slow or stuck peer from
// growing this host's memory.
func (o *outbox) enqueue(e *wire.Envelope, wait bool, deadline time.Time) error {
	o.mu.Lock()
	for len(o.buf) >= o.limit && !o.closed {
		if !wait {
			o.mu.Unlock()
			return errFull
		}
		if o.room == nil {
			o.room = make(chan struct{})
		}
		room := o.room
		o.mu.Unlock()
		if err := o.waitRoom(room, deadline); err != nil {
			return err
		}
		o.mu.Lock()
	}
	if o.closed {
		o.mu.Unlock()
		return o.l.downError()
	}
	o.buf = wire.AppendEnvelope(o.buf, e)
	o.msgs.Add(1)
	o.wakeWriter()
	o.mu.Unlock()
	return nil
}

// enqueueControl appends a control frame. Control frames are small and
// rare, so they bypass the send buffer bound: a ping or an interest update
// must not be lost to a burst of messages.
func (o *outbox) enqueueControl(t wire.FrameType, v any) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return o.l.downError()
	}
	b, err := wire.AppendControl(o.buf, t, v)
	if err != nil {
		return fmt.Errorf("encode %v frame: %w", t, err)
	}
	o.control.Add(uint64(len(b) - len(o.buf)))
	o.buf = b
	o.wakeWriter()
	return nil
}

func (o *outbox) waitRoom(room chan struct{}, deadline time.Time) error {
	timeout, stop := after(deadline)
	defer stop()
	select {
	case <-room:
		return nil
	case <-o.l.done:
		return o.l.downError()
	case <-timeout:
		return message.Errorf(abi.StatusBusy, "link to node %s is congested: %d bytes queued (limits.send_buffer) until the deadline", o.l.name, o.limit)
	}
}

// wakeWriter hands the queued frames to the writer goroutine unless it is
// writing already (then it takes them with its next batch); o.mu is held.
// Senders never write themselves: a peer that stops reading blocks the
// Write, and that must stall neither a publisher nor a caller past its
// deadline.
func (o *outbox) wakeWriter() {
	if o.writing {
		return
	}
	o.writing = true
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// takeBatch swaps the pending frames out for the spare buffer and releases
// senders waiting for room; o.mu is held by the writer.
func (o *outbox) takeBatch() []byte {
	buf := o.buf
	o.buf = o.spare[:0]
	o.spare = nil
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
	return buf
}

// writeLoop is the only writer of the main stream; wakeWriter hands it
// work (o.writing is true until it is done). It returns when the link
// closes.
func (o *outbox) writeLoop() {
	for {
		select {
		case <-o.wake:
		case <-o.l.done:
			return
		}
		runtime.Gosched()
		o.mu.Lock()
		if len(o.buf) == 0 {
			o.writing = false
			o.mu.Unlock()
			continue
		}
		buf := o.takeBatch()
		o.mu.Unlock()
		o.writeOut(buf)
	}
}

// writeOut writes buf and then whatever queued meanwhile, until nothing
// is left.
func (o *outbox) writeOut(buf []byte) {
	for {
		if err := o.writeAll(buf); err != nil {
			o.mu.Lock()
			o.writing = false
			o.mu.Unlock()
			o.l.close(fmt.Errorf("write: %w", err))
			return
		}
		// One burst of big frames must not pin its buffer for the life of
		// the link.
		if cap(buf) > 4<<20 {
			buf = nil
		}
		// Let the goroutines that are about to send (other callers, other
		// replies) append first: on two cores they would otherwise each
		// cost a write system call, most of the CPU per message. With
		// nobody else runnable this returns at once.
		runtime.Gosched()
		o.mu.Lock()
		o.spare = buf[:0]
		if len(o.buf) == 0 || o.closed {
			o.writing = false
			o.mu.Unlock()
			return
		}
		buf = o.takeBatch()
		o.mu.Unlock()
	}
}

// writeChunk is the most one Write carries. The liveness checks count
// Writes to tell a link whose writes move slowly (a big batch on a slow
// path) from one whose peer takes no more bytes, so a Write must not last
// for a whole batch of several megabytes.
const writeChunk = 64 << 10

// writeAll writes buf in chunks of at most writeChunk.
func (o *outbox) writeAll(buf []byte) error {
	for len(buf) > 0 {
		n := min(len(buf), writeChunk)
		o.writes.Add(1)
		o.busy.Store(true)
		_, err := o.w.Write(buf[:n])
		o.busy.Store(false)
		o.bytes.Add(uint64(n))
		if err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

// queued is how many bytes wait for the writer.
func (o *outbox) queued() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.buf)
}

// pendingOwn reports whether frames of this host's own are still to be
// written: queued, or in a Write that is running.
func (o *outbox) pendingOwn() bool {
	return o.busy.Load() || o.queued() > 0
}

// drained reports whether everything queued has been written, not merely
// taken by the writer.
func (o *outbox) drained() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.buf) == 0 && !o.writing
}

// shut refuses further frames; what is queued is dropped with the link.
func (o *outbox) shut() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
}

// after returns a channel that fires at deadline (nil, never firing, for a
// zero deadline) and the function that releases its timer.
func after(deadline time.Time) (<-chan time.Time, func()) {
	if deadline.IsZero() {
		return nil, func() {}
	}
	t := time.NewTimer(time.Until(deadline))
	return t.C, func() { t.Stop() }
}
