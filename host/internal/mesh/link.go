package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	source  string // "node:" + name: the From of every message this link brings in
	version uint16
	listen  []string
	maxOut  int // largest payload the peer accepts
	since   time.Time
	addr    string

	ctx    context.Context // ends when the link closes
	cancel context.CancelFunc

	rd   reader   // the main stream's reader, which may serve requests inline (inline.go)
	out  outbox   // the main stream's send side
	reqs requests // this host's requests waiting for replies on it

	leaving atomic.Bool   // GoAway sent or received: no new requests
	done    chan struct{} // closed when the link is down

	inflight                 atomic.Int64
	soloOut                  atomic.Uint64 // frames sent on their own QUIC stream
	msgsIn, dropped, refused atomic.Uint64
	rtt                      atomic.Int64  // ns, the last pong's
	srtt                     atomic.Int64  // ns, smoothed over pongs
	framesIn                 atomic.Uint64 // for the liveness check
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

	// gone is set when the link starts closing; routing skips a link
	// that is gone or suspect (see probe).
	gone  atomic.Bool
	probe probe       // liveness of the link while requests wait on it
	timed atomic.Bool // the deadline timer looks at its requests
}

// newLink makes the link of a connection whose handshake g describes.
func newLink(m *Mesh, c conn, dialed bool, g *greeted) *link {
	ctx, cancel := context.WithCancel(context.Background())
	now := time.Now()
	l := &link{
		m: m, c: c, dialed: dialed, addr: c.remoteAddr(),
		peer: g.peer, name: g.name, version: g.version, listen: g.listen, maxOut: g.maxOut,
		rd: reader{fr: g.r}, since: now, seenAt: now,
		ctx: ctx, cancel: cancel,
		reqs: requests{pending: map[uint64]pending{}},
		done: make(chan struct{}),
	}
	l.out.l, l.out.w, l.out.limit, l.out.wake = l, g.w, m.sendBuffer, make(chan struct{}, 1)
	l.probe.l = l
	l.source = "node:" + l.name
	l.lastSeen.Store(now.UnixNano())
	return l
}

// enqueueControl queues a control frame (see outbox.enqueueControl).
func (l *link) enqueueControl(t wire.FrameType, v any) error { return l.out.enqueueControl(t, v) }

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
			l.out.msgs.Add(1)
			l.soloOut.Add(1)
			return nil
		}
	}
	return l.out.enqueue(e, wait, deadline)
}

// readLoop reads the main stream until it fails.
// When a request served inline holds it too long, another goroutine takes
// over reading (inline.go) and this one returns once the request is done.
func (l *link) readLoop() {
	fr := l.rd.fr
	for {
		t, body, err := fr.Next()
		if err != nil {
			l.readFailed(err)
			return
		}
		if err := l.handle(t, body, true); err != nil {
			if err != errHandedOver {
				l.readFailed(err)
			}
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
			fr := wire.NewReader(r, wire.FrameLimit(l.m.self.maxFrame))
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
				err = l.handle(t, body, false)
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
		l.m.links.badFrames.Add(1)
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
			if l.out.drained() {
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
// main says whether it runs on the main stream's reader, which may serve a
// request inline.
func (l *link) handle(t wire.FrameType, body []byte, main bool) error {
	l.framesIn.Add(1)
	if l.probe.suspect.Load() != 0 {
		l.probe.answered()
	}
	switch t {
	case wire.FrameMsg:
		e := envelopes.Get().(*wire.Envelope)
		// The main stream's reader (one goroutine at a time) decodes small
		// sends and events from its slab; other streams allocate.
		var slab *wire.Slab
		if main {
			slab = &l.rd.slab
		}
		if err := wire.DecodeEnvelopeSlab(body, e, slab); err != nil {
			return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: err.Error()}
		}
		l.msgsIn.Add(1)
		return l.m.inbound.dispatch(l, e, main)
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
			l.ackInterest(in.Seq)
		}
	case wire.FrameMembers:
		f := new(wire.Members)
		if err := wire.DecodeControl(body, f); err != nil {
			return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: "members: " + err.Error()}
		}
		if err := l.m.members.apply(l, f); err != nil {
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
		l.m.links.retire(l, wire.ErrShutdown, "")
	case wire.FrameError:
		var ef wire.ErrorFrame
		wire.DecodeControl(body, &ef)
		return fmt.Errorf("peer reported error %d: %s", ef.Code, ef.Msg)
	default:
		return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: fmt.Sprintf("unexpected %v frame after the handshake", t)}
	}
	return nil
}

// downError is the error for using a link that has closed.
func (l *link) downError() error {
	err := l.reqs.err()
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
		pending := l.reqs.fail(cause)
		l.out.shut()
		close(l.done)
		l.cancel()
		l.c.close(cause.Error())
		msg := fmt.Sprintf("node %s went away before replying: %v", l.name, cause)
		for id, p := range pending {
			p.ch <- &wire.Envelope{Kind: wire.KindReply, ReplyTo: id, Status: uint16(abi.StatusUnreachable), Error: msg}
		}
		l.m.links.down(l, cause)
	})
}

// outstanding is how many requests are in flight in either direction.
func (l *link) outstanding() int {
	return l.reqs.waiting() + int(l.inflight.Load())
}
