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
// frames; one writer goroutine writes everything queued since its last
// write, a chunk per Write. It owns its lock (mu) and everything under
// it; the link it belongs to is told when a write fails.
//
// Frames queue in chunks of chunkSize taken from a pool, not in one
// growing buffer: a publisher that keeps the queue near the send buffer
// limit would otherwise regrow (and copy, and clear fresh pages for) a
// buffer of megabytes for every batch, which cost a quarter of the CPU of
// an unpaced pub/sub run.
type outbox struct {
	l     *link
	w     io.Writer // main stream, used by the writer goroutine only
	limit int       // bytes queued before senders wait (limits.send_buffer)

	mu      sync.Mutex
	queue   [][]byte      // frames waiting for the writer, in chunks; the last one is being filled
	size    int           // bytes in queue
	spare   [][]byte      // a drained batch's chunk list, owned by whoever is writing
	wake    chan struct{} // cap 1: the writer goroutine takes over writing
	writing bool          // someone owns the main stream's writes (and spare)
	room    chan struct{} // closed when the queue drains; made by a waiting sender
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
	for o.size >= o.limit && !o.closed {
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
	t := o.tail(envelopeSize(e))
	b := wire.AppendEnvelope(o.queue[t], e)
	o.size += len(b) - len(o.queue[t])
	o.queue[t] = b
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
	i := o.tail(controlSize)
	b, err := wire.AppendControl(o.queue[i], t, v)
	if err != nil {
		return fmt.Errorf("encode %v frame: %w", t, err)
	}
	n := len(b) - len(o.queue[i])
	o.control.Add(uint64(n))
	o.size += n
	o.queue[i] = b
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

// chunkSize is the size of the pooled chunks frames queue in: one Write's
// worth (writeChunk), so a chunk is written whole.
const chunkSize = writeChunk

// controlSize is room enough for most control frames; a bigger one grows
// its chunk.
const controlSize = 1 << 10

// chunkClasses is how many sizes of chunk are pooled: class k holds
// chunks of chunkSize<<k bytes (64 KiB to 16 MiB), so that a frame larger
// than a chunk, which gets a chunk of its own, is not an allocation per
// frame either.
const chunkClasses = 9

// chunks recycles written chunks across links, by class: a burst on one
// link leaves no buffer pinned to it, and a steady stream allocates none.
// The pools hold *[]byte, whose empty holders go back to holders, so that
// neither a Get nor a Put allocates.
var (
	chunks  [chunkClasses]sync.Pool
	holders = sync.Pool{New: func() any { return new([]byte) }}
)

// chunkClass is the smallest class whose chunks hold n bytes.
func chunkClass(n int) (int, bool) {
	for k := range chunkClasses {
		if n <= chunkSize<<k {
			return k, true
		}
	}
	return 0, false
}

// getChunk returns an empty chunk with room for need bytes.
func getChunk(need int) []byte {
	k, ok := chunkClass(need)
	if !ok {
		return make([]byte, 0, need)
	}
	if p, _ := chunks[k].Get().(*[]byte); p != nil {
		c := (*p)[:0]
		*p = nil
		holders.Put(p)
		return c
	}
	return make([]byte, 0, chunkSize<<k)
}

// putChunk gives a written chunk back to its class's pool.
func putChunk(c []byte) {
	if k, ok := chunkClass(cap(c)); ok && cap(c) == chunkSize<<k {
		p := holders.Get().(*[]byte)
		*p = c[:0]
		chunks[k].Put(p)
	}
}

// tail returns the index in o.queue of a chunk with room for need more
// bytes, starting a new chunk when the last one is too full; o.mu is held.
// A frame larger than a chunk gets a chunk of its own.
func (o *outbox) tail(need int) int {
	if n := len(o.queue); n > 0 {
		if last := o.queue[n-1]; cap(last)-len(last) >= need {
			return n - 1
		}
	}
	o.queue = append(o.queue, getChunk(need))
	return len(o.queue) - 1
}

// recycle returns written chunks to the pools.
func recycle(batch [][]byte) {
	for i, c := range batch {
		putChunk(c)
		batch[i] = nil
	}
}

// envelopeSize is a close upper bound on e's encoded size, so that a frame
// seldom outgrows the chunk chosen for it (when it does, the chunk grows:
// correct, only slower). Strings that are not valid UTF-8 can grow when
// repaired; those are rare error texts.
func envelopeSize(e *wire.Envelope) int {
	n := 128 + len(e.From) + len(e.To) + len(e.Subject) + len(e.Payload) + len(e.Error)
	for k, v := range e.Headers {
		n += 18 + len(k) + len(v)
	}
	return n
}

// takeBatch swaps the pending chunks out for the spare list and releases
// senders waiting for room; o.mu is held by the writer.
func (o *outbox) takeBatch() [][]byte {
	batch := o.queue
	o.queue = o.spare[:0]
	o.spare = nil
	o.size = 0
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
	return batch
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
		if o.size == 0 {
			o.writing = false
			o.mu.Unlock()
			continue
		}
		batch := o.takeBatch()
		o.mu.Unlock()
		o.writeOut(batch)
	}
}

// writeOut writes batch and then whatever queued meanwhile, until nothing
// is left.
func (o *outbox) writeOut(batch [][]byte) {
	for {
		for _, c := range batch {
			if err := o.writeAll(c); err != nil {
				recycle(batch)
				o.mu.Lock()
				o.writing = false
				o.mu.Unlock()
				o.l.close(fmt.Errorf("write: %w", err))
				return
			}
		}
		recycle(batch)
		// Let the goroutines that are about to send (other callers, other
		// replies) append first: on two cores they would otherwise each
		// cost a write system call, most of the CPU per message. With
		// nobody else runnable this returns at once.
		runtime.Gosched()
		o.mu.Lock()
		o.spare = batch[:0]
		if o.size == 0 || o.closed {
			o.writing = false
			o.mu.Unlock()
			return
		}
		batch = o.takeBatch()
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
	return o.size
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
	return o.size == 0 && !o.writing
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
