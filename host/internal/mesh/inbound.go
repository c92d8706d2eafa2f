package mesh

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
)

// inbound takes the messages that arrive on the links: replies go to the
// requests waiting for them, requests to this host run on the worker pool
// and are answered, sends and events go to the local router, and messages
// for another node are relayed once.
type inbound struct {
	m       *Mesh
	pool    workers
	relayed atomic.Uint64 // messages relayed to another node

	inline inlineWatch // requests served on the link's reader (inline.go)
}

// dispatch handles one message envelope from l.
// main says whether it runs on the link's main reader, which may serve a
// request inline.
func (in *inbound) dispatch(l *link, e *wire.Envelope, main bool) error {
	m := in.m
	switch e.Kind {
	case wire.KindReply:
		l.deliverReply(e)
		return nil
	case wire.KindCancel:
		// Requests here end at their deadline anyway; a cancel only saves
		// work, and the plugin runtime has no way to stop a running call
		// early other than its deadline, so it is accepted and ignored.
		return nil
	}
	// A host speaks only for itself: an envelope that was not relayed must
	// come from the peer at the other end of the link.
	if e.Relays == 0 && e.From != "" && e.From != string(l.peer) {
		return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: fmt.Sprintf("envelope claims to be from node %s on the link of node %s", e.From, l.peer)}
	}
	if e.To != "" && e.To != string(m.id) {
		return in.relay(l, e)
	}
	switch e.Kind {
	case wire.KindRequest:
		if n := l.inflight.Add(1); n > int64(m.inflight) {
			l.inflight.Add(-1)
			l.refused.Add(1)
			in.reply(l, e, time.Time{}, nil, nil, message.Errorf(abi.StatusBusy, "node %s is busy: %d requests from node %s in flight (limits.inflight)", m.name, m.inflight, l.name))
			return nil
		}
		if !main {
			in.pool.run(job{l, e})
			return nil
		}
		return in.tryInline(l, e)
	case wire.KindSend:
		if err := m.local.Send(l.ctx, in.posted(l, e, main)); err != nil {
			m.log.Debug("send from a peer not delivered", "node", l.name, "subject", e.Subject, "err", err)
		}
		recycleEnvelope(e)
	case wire.KindEvent:
		m.local.Publish(l.ctx, in.posted(l, e, main))
		recycleEnvelope(e)
	default:
		return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: fmt.Sprintf("envelope of kind %v", e.Kind)}
	}
	return nil
}

// recycleEnvelope gives back the envelope of a send or event once its message
// is made: the message holds the envelope's strings, payload and headers
// map, never the envelope itself. The map goes with the message, as a
// decode into a pooled envelope would clear it.
func recycleEnvelope(e *wire.Envelope) {
	e.Headers = nil
	envelopes.Put(e)
}

// msgChunk is how many messages of sends and events a link's reader
// allocates at once.
const msgChunk = 32

// posted is message for a send or event: on the main stream its message
// comes from the reader's chunk (l.rd.msgs), which only the reader touches.
func (in *inbound) posted(l *link, e *wire.Envelope, main bool) *message.Message {
	if !main {
		return in.message(l, e)
	}
	if len(l.rd.msgs) == 0 {
		l.rd.msgs = make([]message.Message, msgChunk)
	}
	msg := &l.rd.msgs[0]
	l.rd.msgs = l.rd.msgs[1:]
	in.fill(msg, l, e)
	return msg
}

// message turns an envelope addressed to this host into a message for the
// local router. The deadline is rebuilt from the remaining budget on this
// host's clock.
func (in *inbound) message(l *link, e *wire.Envelope) *message.Message {
	msg := new(message.Message)
	in.fill(msg, l, e)
	return msg
}

// fill sets msg (zero) from e; see message.
func (in *inbound) fill(msg *message.Message, l *link, e *wire.Envelope) {
	*msg = message.Message{Kind: abi.KindRequest, Subject: e.Subject, Payload: e.Payload,
		Headers: abi.Headers(e.Headers), Hops: int(e.Hops), From: l.source, FromNode: e.From}
	if e.Relays > 0 {
		// Name the origin, not the relay.
		msg.From = "node:" + e.From
		if n := in.m.routes.load().nodes[identity.ID(e.From)]; n != nil {
			msg.From = "node:" + n.name
		}
	}
	switch e.Kind {
	case wire.KindSend:
		msg.Kind = abi.KindSend
	case wire.KindEvent:
		msg.Kind = abi.KindEvent
		msg.Seq = e.ID // its number on the origin; 0 from an older host
	}
	if msg.FromNode == "" {
		msg.FromNode = string(l.peer)
	}
	if e.Deadline > 0 {
		msg.Deadline = time.Now().Add(time.Duration(e.Deadline) * time.Microsecond)
	}
}

// served is a request from a peer as it runs on this host: its message
// and the slot its handler's reply headers land in
// (message.Message.ReplyHeaders). One allocation for both, of the size
// class the message alone takes, so a reply without headers costs
// nothing more.
type served struct {
	msg message.Message
	hdr abi.Headers
}

// request is message for a request: the handler's reply headers are
// collected in the message's own slot, to go back in the reply.
func (in *inbound) request(l *link, e *wire.Envelope) *message.Message {
	s := new(served)
	in.fill(&s.msg, l, e)
	s.msg.ReplyHeaders = &s.hdr
	return &s.msg
}

// serve runs one request from a peer on this host and replies.
func (in *inbound) serve(l *link, e *wire.Envelope) {
	defer l.inflight.Add(-1)
	// Without a deadline the plugin's own timeout bounds the call.
	msg := in.request(l, e)
	out, err := in.m.local.Call(l.ctx, msg)
	in.answer(l, e, msg, out, err)
}

// answer replies to request e, which ran as msg (from request) on this
// host. The handler has returned, so its reply headers are final.
func (in *inbound) answer(l *link, e *wire.Envelope, msg *message.Message, out []byte, err error) {
	if err == nil && len(out) > l.maxOut {
		err = message.Errorf(abi.StatusTooLarge, "reply of %d bytes to %q exceeds what node %s accepts (%d bytes, limits.max_frame)", len(out), e.Subject, l.name, l.maxOut)
		out = nil
	}
	in.reply(l, e, msg.Deadline, out, *msg.ReplyHeaders, err)
}

// reply answers request e on l with out and its headers h; dl is the
// request's deadline on this host's clock (zero: none). An error reply
// carries neither.
func (in *inbound) reply(l *link, e *wire.Envelope, dl time.Time, out []byte, h abi.Headers, err error) {
	m := in.m
	// A reply goes back on the link its request came on: no from needed.
	r := &wire.Envelope{Version: l.version, Kind: wire.KindReply, ReplyTo: e.ID, Payload: out, Headers: h}
	if err != nil {
		r.Status = uint16(message.StatusOf(err))
		r.Error = err.Error()
		r.Payload = nil
		r.Headers = nil
	}
	// A reply waits for room like a request does, until the requester's
	// deadline: dropping it would leave the requester waiting for nothing.
	// The deadline is only read when the link is congested.
	if err := l.send(r, true, dl); err != nil && !errors.Is(err, errFull) {
		m.log.Debug("reply not sent", "node", l.name, "subject", e.Subject, "err", err)
	}
}

// relay forwards an envelope addressed to another node, once: only an
// envelope that has not been relayed yet, and only to a direct peer.
func (ib *inbound) relay(in *link, e *wire.Envelope) error {
	m := ib.m
	to := identity.ID(e.To)
	fail := func(format string, args ...any) {
		if e.Kind == wire.KindRequest {
			ib.reply(in, e, time.Time{}, nil, nil, message.Errorf(abi.StatusUnreachable, format, args...))
		}
	}
	if e.Relays >= 1 {
		fail("node %s: a message is relayed at most once (to %s)", m.name, e.To)
		return nil
	}
	out := m.links.get(to)
	if out == nil || out.leaving.Load() {
		fail("node %s has no link to node %s", m.name, e.To)
		return nil
	}
	ib.relayed.Add(1)
	if e.From == "" {
		// Sent directly by the peer: it is the origin.
		e.From = string(in.peer)
	}
	e.Relays++
	e.To = ""
	switch e.Kind {
	case wire.KindRequest:
		if n := in.inflight.Add(1); n > int64(m.inflight) {
			in.inflight.Add(-1)
			ib.reply(in, e, time.Time{}, nil, nil, message.Errorf(abi.StatusBusy, "relay %s is busy: %d requests in flight", m.name, m.inflight))
			return nil
		}
		go func() {
			defer in.inflight.Add(-1)
			id := e.ID
			var dl time.Time
			if e.Deadline > 0 {
				dl = time.Now().Add(time.Duration(e.Deadline) * time.Microsecond)
			}
			r, err := out.request(in.ctx, e, dl)
			e.ID = id
			if err != nil {
				ib.reply(in, e, dl, nil, nil, err)
				return
			}
			defer done(r)
			if r.Status != 0 {
				ib.reply(in, e, dl, nil, nil, &message.Error{Status: abi.Status(r.Status), Msg: r.Error})
				return
			}
			// The reply is written before done(r) gives its headers'
			// map back to the envelope pool.
			ib.reply(in, e, dl, r.Payload, r.Headers, nil)
		}()
	case wire.KindSend:
		if err := out.send(e, false, time.Time{}); err != nil {
			out.dropped.Add(1)
		}
	case wire.KindEvent:
		if err := out.out.enqueue(e, false, time.Time{}); err != nil {
			out.dropped.Add(1)
		}
	}
	return nil
}
