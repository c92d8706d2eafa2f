package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
)

// link is one authenticated, handshaken connection to a direct peer. Its
// frames go out through one writer goroutine that coalesces everything
// queued since its last write into a single Write, and come in through one
// reader goroutine; requests are multiplexed on it by id.
type link struct {
	m       *Mesh
	c       conn
	dialed  bool   // this host dialled it
	found   string // how the peer was found: configured, mdns, gossip, inbound
	peer    identity.ID
	name    string
	version uint16
	listen  []string
	maxOut  int // largest payload the peer accepts
	since   time.Time
	addr    string

	ctx    context.Context // ends when the link closes
	cancel context.CancelFunc

	w      io.Writer    // main stream, used by the writer goroutine only
	reader *wire.Reader // main stream; it may hold frames read ahead during the handshake

	wmu     sync.Mutex
	wbuf    []byte        // frames waiting for the writer
	spare   []byte        // a drained batch buffer, owned by whoever is writing
	wake    chan struct{} // cap 1: the writer goroutine takes over writing
	writing bool          // someone owns the main stream's writes (and spare)
	// writes counts Writes begun and writeBusy says one is running; the
	// ping loop compares them between ticks to find a Write stuck for
	// longer than the dead time (the peer stopped reading). Counters, not
	// clock readings, because they sit on the path of every message.
	writes    atomic.Uint64
	writeBusy atomic.Bool
	room      chan struct{} // closed when wbuf drains; made by a waiting sender
	closed    bool
	leaving   atomic.Bool // GoAway sent or received: no new requests

	pmu     sync.Mutex
	pending map[uint64]chan *wire.Envelope
	nextID  uint64
	downErr error // set when the link closed; fails new requests

	done chan struct{} // closed when the link is down

	inflight                          atomic.Int64
	soloOut                           atomic.Uint64 // frames sent on their own QUIC stream
	bytesOut, controlOut              atomic.Uint64 // bytes written; of them, control frames
	msgsIn, msgsOut, dropped, refused atomic.Uint64
	rtt                               atomic.Int64  // ns, the last pong's
	srtt                              atomic.Int64  // ns, smoothed over pongs
	framesIn                          atomic.Uint64 // for the liveness check
	// Kept by the ping loop only: when heard() last moved and when the
	// current Write was first seen running.
	seenHeard, seenWrite uint64
	seenAt, writeSeenAt  time.Time
	lastSeen             atomic.Int64 // seenAt for other goroutines (unix ns)
	interest             atomic.Pointer[wire.Interest]
	sentMu               sync.Mutex
	lastSent             string // the last Interest sent, to skip repeats
	lastSeq              uint64 // its Seq
	ackMu                sync.Mutex
	acks                 ackState // ack.go
	closeOnce            sync.Once

	// Liveness of a link that has requests waiting (see watch). suspect is
	// when an unanswered probe made the link suspect (unix ns, 0: not);
	// gone is set when the link starts closing. Routing skips a link that
	// is either.
	suspect atomic.Int64
	gone    atomic.Bool
	watched atomic.Bool // the probe timer runs
	watchMu sync.Mutex
	watchT  *time.Timer
	// Kept under watchMu: heard() at the last check, when the unanswered
	// probe went out (zero: none), and the write count then.
	watchHeard  uint64
	probeAt     time.Time
	probeWrites uint64
}

func newLink(m *Mesh, c conn, dialed bool) *link {
	ctx, cancel := context.WithCancel(context.Background())
	return &link{
		m: m, c: c, dialed: dialed, addr: c.remoteAddr(),
		ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), pending: map[uint64]chan *wire.Envelope{},
		done: make(chan struct{}),
	}
}

// errFull means the link's send buffer is full and the caller chose not to
// wait.
var errFull = errors.New("send buffer full")

// enqueue appends e as a frame to the send batch. While more than the send
// buffer is queued, a sender that may wait blocks until the writer drains
// the batch, the deadline passes or the link closes; one that may not
// returns errFull at once. This is what keeps a slow or stuck peer from
// growing this host's memory.
func (l *link) enqueue(e *wire.Envelope, wait bool, deadline time.Time) error {
	l.wmu.Lock()
	for len(l.wbuf) >= l.m.sendBuffer && !l.closed {
		if !wait {
			l.wmu.Unlock()
			return errFull
		}
		if l.room == nil {
			l.room = make(chan struct{})
		}
		room := l.room
		l.wmu.Unlock()
		if err := l.waitRoom(room, deadline); err != nil {
			return err
		}
		l.wmu.Lock()
	}
	if l.closed {
		l.wmu.Unlock()
		return l.downError()
	}
	l.wbuf = wire.AppendEnvelope(l.wbuf, e)
	l.msgsOut.Add(1)
	l.wakeWriter()
	l.wmu.Unlock()
	return nil
}

// wakeWriter hands the queued frames to the writer goroutine unless it is
// writing already (then it takes them with its next batch); l.wmu is held.
// Senders never write themselves: a peer that stops reading blocks the
// Write, and that must stall neither a publisher nor a caller past its
// deadline.
func (l *link) wakeWriter() {
	if l.writing {
		return
	}
	l.writing = true
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// takeBatch swaps the pending frames out for the spare buffer and releases
// senders waiting for room; l.wmu is held by the writer.
func (l *link) takeBatch() []byte {
	buf := l.wbuf
	l.wbuf = l.spare[:0]
	l.spare = nil
	if l.room != nil {
		close(l.room)
		l.room = nil
	}
	return buf
}

// writeOut writes buf and then whatever queued meanwhile, until nothing
// is left.
func (l *link) writeOut(buf []byte) {
	for {
		if err := l.writeAll(buf); err != nil {
			l.wmu.Lock()
			l.writing = false
			l.wmu.Unlock()
			l.close(fmt.Errorf("write: %w", err))
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
		l.wmu.Lock()
		l.spare = buf[:0]
		if len(l.wbuf) == 0 || l.closed {
			l.writing = false
			l.wmu.Unlock()
			return
		}
		buf = l.takeBatch()
		l.wmu.Unlock()
	}
}

// writeChunk is the most one Write carries. The liveness checks count
// Writes to tell a link whose writes move slowly (a big batch on a slow
// path) from one whose peer takes no more bytes, so a Write must not last
// for a whole batch of several megabytes.
const writeChunk = 64 << 10

// writeAll writes buf in chunks of at most writeChunk.
func (l *link) writeAll(buf []byte) error {
	for len(buf) > 0 {
		n := min(len(buf), writeChunk)
		l.writes.Add(1)
		l.writeBusy.Store(true)
		_, err := l.w.Write(buf[:n])
		l.writeBusy.Store(false)
		l.bytesOut.Add(uint64(n))
		if err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

func (l *link) waitRoom(room chan struct{}, deadline time.Time) error {
	timeout, stop := after(deadline)
	defer stop()
	select {
	case <-room:
		return nil
	case <-l.done:
		return l.downError()
	case <-timeout:
		return message.Errorf(abi.StatusBusy, "link to node %s is congested: %d bytes queued (limits.send_buffer) until the deadline", l.name, l.m.sendBuffer)
	}
}

// enqueueControl appends a control frame. Control frames are small and
// rare, so they bypass the send buffer bound: a ping or an interest update
// must not be lost to a burst of messages.
func (l *link) enqueueControl(t wire.FrameType, v any) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return l.downError()
	}
	b, err := wire.AppendControl(l.wbuf, t, v)
	if err != nil {
		return fmt.Errorf("encode %v frame: %w", t, err)
	}
	l.controlOut.Add(uint64(len(b) - len(l.wbuf)))
	l.wbuf = b
	l.wakeWriter()
	return nil
}

// writeLoop is the only writer of the main stream; wakeWriter hands it
// work (l.writing is true until it is done).
func (l *link) writeLoop() {
	for {
		select {
		case <-l.wake:
		case <-l.done:
			return
		}
		runtime.Gosched()
		l.wmu.Lock()
		if len(l.wbuf) == 0 {
			l.writing = false
			l.wmu.Unlock()
			continue
		}
		buf := l.takeBatch()
		l.wmu.Unlock()
		l.writeOut(buf)
	}
}

// send queues a message envelope; a big non-event frame on QUIC goes on its
// own stream instead, written by the caller's goroutine.
func (l *link) send(e *wire.Envelope, wait bool, deadline time.Time) error {
	if l.c.transport() == QUIC && e.Kind != wire.KindEvent && len(e.Payload) > wire.SeparateStreamAbove {
		frame := wire.AppendEnvelope(nil, e)
		ctx := l.ctx
		if !deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		if ok, err := l.c.solo(ctx, frame); ok {
			if err != nil {
				return message.Errorf(abi.StatusUnreachable, "node %s: %v", l.name, err)
			}
			l.msgsOut.Add(1)
			l.soloOut.Add(1)
			return nil
		}
	}
	return l.enqueue(e, wait, deadline)
}

// readLoop reads the main stream until it fails.
func (l *link) readLoop(fr *wire.Reader) {
	for {
		t, body, err := fr.Next()
		if err != nil {
			l.readFailed(err)
			return
		}
		if err := l.handle(t, body); err != nil {
			l.readFailed(err)
			return
		}
	}
}

// soloLoop accepts single-frame QUIC streams until the link closes.
func (l *link) soloLoop() {
	for {
		r, err := l.c.acceptSolo(l.ctx)
		if err != nil {
			var pe *wire.ProtocolError
			if errors.As(err, &pe) {
				l.readFailed(err)
			}
			return
		}
		// Counted with the loops: a frame handled after Close began could
		// otherwise reach the workers after they are gone.
		l.m.wg.Add(1)
		go func() {
			defer l.m.wg.Done()
			fr := wire.NewReader(r, wire.FrameLimit(l.m.maxFrame))
			t, body, err := fr.Next()
			if err == nil && t != wire.FrameMsg {
				err = &wire.ProtocolError{Code: wire.ErrProtocol, Msg: fmt.Sprintf("a %v frame on a single-frame stream", t)}
			}
			if err == nil {
				// Read to the stream's end: quic-go returns the stream's
				// credit to the peer only once its FIN has been read, and
				// the peer can open no more streams without it.
				body = slices.Clone(body)
				if _, _, end := fr.Next(); end != io.EOF {
					err = &wire.ProtocolError{Code: wire.ErrProtocol, Msg: "a single-frame stream holds more than one frame"}
				}
			}
			if err == nil {
				err = l.handle(t, body)
			}
			if err != nil && !isClosed(err) {
				l.readFailed(err)
			}
		}()
	}
}

// readFailed closes the link after a read error; a protocol violation is
// counted, answered with an Error frame naming it, and logged.
func (l *link) readFailed(err error) {
	var pe *wire.ProtocolError
	if errors.As(err, &pe) {
		l.m.badFrames.Add(1)
		l.m.log.Warn("closing link after a bad frame", "node", l.name, "id", l.peer.Short(), "addr", l.addr, "transport", l.c.transport(), "err", err)
		l.enqueueControl(wire.FrameError, &wire.ErrorFrame{Code: pe.Code, Msg: pe.Msg})
		l.flushAndClose(err)
		return
	}
	if isClosed(err) || errors.Is(err, io.ErrUnexpectedEOF) {
		l.close(fmt.Errorf("connection closed: %w", err))
		return
	}
	l.close(fmt.Errorf("read: %w", err))
}

// flushAndClose gives the writer a moment to send a final Error or GoAway
// frame, then closes.
func (l *link) flushAndClose(cause error) {
	go func() {
		t := time.NewTimer(200 * time.Millisecond)
		defer t.Stop()
		for i := 0; i < 20; i++ {
			// Written, not merely taken by the writer: closing while its
			// Write runs would cut the final frame off.
			l.wmu.Lock()
			empty := len(l.wbuf) == 0 && !l.writing
			l.wmu.Unlock()
			if empty {
				break
			}
			select {
			case <-t.C:
				i = 20
			case <-time.After(10 * time.Millisecond):
			}
		}
		l.close(cause)
	}()
}

// handle dispatches one frame from the peer.
func (l *link) handle(t wire.FrameType, body []byte) error {
	l.framesIn.Add(1)
	if l.suspect.Load() != 0 {
		l.answered()
	}
	switch t {
	case wire.FrameMsg:
		e := new(wire.Envelope)
		if err := wire.DecodeEnvelope(body, e); err != nil {
			return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: err.Error()}
		}
		l.msgsIn.Add(1)
		return l.m.dispatch(l, e)
	case wire.FramePing:
		var p wire.Ping
		if err := wire.DecodeControl(body, &p); err != nil {
			return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: "ping: " + err.Error()}
		}
		l.enqueueControl(wire.FramePong, &p)
	case wire.FramePong:
		var p wire.Ping
		if err := wire.DecodeControl(body, &p); err != nil {
			return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: "pong: " + err.Error()}
		}
		if d := time.Now().UnixNano() - int64(p.Nonce); d > 0 && d < int64(time.Minute) {
			l.rtt.Store(d)
			// RFC 6298's smoothing (gain 1/8): one slow pong moves the
			// probe timeout a little, a lasting change moves it all the
			// way.
			if s := l.srtt.Load(); s == 0 {
				l.srtt.Store(d)
			} else {
				l.srtt.Store(s + (d-s)/8)
			}
		}
	case wire.FrameInterest:
		in := new(wire.Interest)
		if err := wire.DecodeControl(body, in); err != nil {
			return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: "interest: " + err.Error()}
		}
		if old := l.interest.Load(); old == nil || in.Seq > old.Seq {
			l.interest.Store(in)
			l.m.topologyChanged()
		}
		if l.version >= wire.AckVersion {
			l.m.ackInterest(l, in.Seq)
		}
	case wire.FrameMembers:
		f := new(wire.Members)
		if err := wire.DecodeControl(body, f); err != nil {
			return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: "members: " + err.Error()}
		}
		if err := l.m.applyMembers(l, f); err != nil {
			return err
		}
		if f.Ack != 0 && l.version >= wire.AckVersion {
			l.enqueueControl(wire.FrameAck, &wire.Ack{Members: f.Ack})
		}
	case wire.FrameAck:
		if l.version < wire.AckVersion {
			return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: fmt.Sprintf("an ack frame on a link at protocol version %d (acks start at %d)", l.version, wire.AckVersion)}
		}
		var a wire.Ack
		if err := wire.DecodeControl(body, &a); err != nil {
			return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: "ack: " + err.Error()}
		}
		l.gotAck(&a)
	case wire.FrameGoAway:
		var ef wire.ErrorFrame
		wire.DecodeControl(body, &ef)
		l.m.log.Info("peer is leaving", "node", l.name, "id", l.peer.Short(), "reason", ef.Msg)
		l.m.retire(l, wire.ErrShutdown, "")
	case wire.FrameError:
		var ef wire.ErrorFrame
		wire.DecodeControl(body, &ef)
		return fmt.Errorf("peer reported error %d: %s", ef.Code, ef.Msg)
	default:
		return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: fmt.Sprintf("unexpected %v frame after the handshake", t)}
	}
	return nil
}

// request sends a request envelope and waits for its reply, the deadline,
// ctx, or the link's end, whichever comes first. Request/reply is
// at-most-once: a request whose link dies is failed, never resent.
func (l *link) request(ctx context.Context, e *wire.Envelope, deadline time.Time) (*wire.Envelope, error) {
	ch := replyChans.Get().(chan *wire.Envelope)
	l.pmu.Lock()
	if l.downErr != nil {
		l.pmu.Unlock()
		replyChans.Put(ch)
		return nil, l.downError()
	}
	l.nextID++
	id := l.nextID
	l.pending[id] = ch
	l.pmu.Unlock()
	if !l.watched.Load() {
		l.watch()
	}
	e.ID = id
	if err := l.send(e, true, deadline); err != nil {
		l.forget(id, ch)
		return nil, err
	}
	// The deadline is a timer callback that answers the request itself,
	// not a timer channel in a select: that keeps the wait a plain channel
	// receive, which measured cheaper than a three-way select on every
	// call.
	var t *time.Timer
	if !deadline.IsZero() {
		t = time.AfterFunc(time.Until(deadline), func() { l.expire(id, ch) })
	}
	var r *wire.Envelope
	if done := ctx.Done(); done == nil {
		r = <-ch
	} else {
		select {
		case r = <-ch:
		case <-done:
			if t != nil {
				t.Stop()
			}
			l.forget(id, ch)
			l.cancelRemote(id)
			return nil, message.Errorf(abi.StatusTimeout, "request %q to node %s: %v", e.Subject, l.name, ctx.Err())
		}
	}
	if t != nil {
		t.Stop()
	}
	replyChans.Put(ch)
	if r == expired {
		l.cancelRemote(id)
		return nil, message.Errorf(abi.StatusTimeout, "node %s did not reply to %q within its deadline", l.name, e.Subject)
	}
	return r, nil
}

// expired is what a request's channel receives when its deadline passes.
var expired = &wire.Envelope{}

// expire answers request id with expired if it is still waiting. Whoever
// removes a request from pending (a reply, the link closing, this) is the
// one that sends on its channel, so each channel gets exactly one value.
func (l *link) expire(id uint64, ch chan *wire.Envelope) {
	l.pmu.Lock()
	mine := l.pending[id] == ch
	if mine {
		delete(l.pending, id)
	}
	l.pmu.Unlock()
	if mine {
		ch <- expired
	}
}

// cancelRemote tells the peer that nobody waits for request id any more,
// so it can stop working on it.
func (l *link) cancelRemote(id uint64) {
	l.enqueue(&wire.Envelope{Version: l.version, Kind: wire.KindCancel, ReplyTo: id}, false, time.Time{})
}

// forget removes a pending request nobody waits for any more. If the reply
// is being delivered concurrently, it is drained so the channel can be
// reused.
func (l *link) forget(id uint64, ch chan *wire.Envelope) {
	l.pmu.Lock()
	_, mine := l.pending[id]
	delete(l.pending, id)
	l.pmu.Unlock()
	if !mine {
		<-ch
	}
	replyChans.Put(ch)
}

// replyChans recycles the one-slot channels requests wait on.
var replyChans = sync.Pool{New: func() any { return make(chan *wire.Envelope, 1) }}

// deliverReply hands a reply to the request waiting for it; a reply nobody
// waits for (the requester gave up) is dropped.
func (l *link) deliverReply(e *wire.Envelope) {
	l.pmu.Lock()
	ch := l.pending[e.ReplyTo]
	delete(l.pending, e.ReplyTo)
	l.pmu.Unlock()
	if ch != nil {
		ch <- e
	}
}

// downError is the error for using a link that has closed.
func (l *link) downError() error {
	l.pmu.Lock()
	err := l.downErr
	l.pmu.Unlock()
	if err == nil {
		err = errors.New("link closed")
	}
	return message.Errorf(abi.StatusUnreachable, "node %s (%s) is unreachable: %v", l.name, l.peer.Short(), err)
}

// close takes the link down: every pending request fails at once with
// StatusUnreachable, the connection closes, and the mesh forgets the link.
func (l *link) close(cause error) {
	l.closeOnce.Do(func() {
		// Before the requests fail: a caller that retries at once must
		// not be routed onto this link again by a table not rebuilt yet.
		l.gone.Store(true)
		if cause == nil {
			cause = errors.New("closed")
		}
		l.pmu.Lock()
		l.downErr = cause
		pending := l.pending
		l.pending = map[uint64]chan *wire.Envelope{}
		l.pmu.Unlock()
		l.wmu.Lock()
		l.closed = true
		l.wmu.Unlock()
		close(l.done)
		l.cancel()
		l.c.close(cause.Error())
		msg := fmt.Sprintf("node %s went away before replying: %v", l.name, cause)
		for id, ch := range pending {
			ch <- &wire.Envelope{Kind: wire.KindReply, ReplyTo: id, Status: uint16(abi.StatusUnreachable), Error: msg}
		}
		l.m.linkDown(l, cause)
	})
}

// outstanding is how many requests are in flight in either direction.
func (l *link) outstanding() int {
	l.pmu.Lock()
	n := len(l.pending)
	l.pmu.Unlock()
	return n + int(l.inflight.Load())
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
