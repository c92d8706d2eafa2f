package mesh

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
)

// Call sends a request to a remote provider of m.Subject (router.Remote).
func (m *Mesh) Call(ctx context.Context, msg *message.Message) ([]byte, error) {
	t := m.routes.load()
	p := t.lookup(msg.Subject)
	if p == nil {
		return nil, t.noHandler(msg.Subject)
	}
	return m.callNode(ctx, p.pick(), msg)
}

// Send hands a one-way message to a remote provider (router.Remote).
func (m *Mesh) Send(ctx context.Context, msg *message.Message) error {
	t := m.routes.load()
	p := t.lookup(msg.Subject)
	if p == nil {
		return t.noHandler(msg.Subject)
	}
	return m.sendNode(ctx, p.pick(), msg)
}

// noHandler is the error for a subject nothing in t serves.
func (t *table) noHandler(subj string) error {
	return message.Errorf(abi.StatusNoHandler, "no handler for %q on this host or any of the %d other hosts it knows", subj, len(t.nodes))
}

// Publish sends the event to every remote host with a matching topic
// pattern (router.Remote). A link whose send buffer is full drops the
// event and counts it: pub/sub is at-most-once and a slow peer must not
// hold up the publisher. A publisher that gives the event a deadline asks
// to be held up instead: it waits for room until then (flow control, as a
// NATS client that blocks on a full socket), and only then is the event
// dropped. The deadline is not sent: it bounds the publisher's wait, not
// the event's life.
func (m *Mesh) Publish(msg *message.Message) int {
	t := m.routes.load()
	n := 0
	for _, nd := range t.listeners {
		if !abi.MatchAny(nd.topics, msg.Subject) {
			continue
		}
		l := nd.out()
		if l == nil {
			// A far subscriber: link to it now; events reach it once the
			// link is up (pub/sub delivers to the interest it knows of, as
			// a route to a new subscriber always appears a moment late).
			m.dialers.needDirect(nd)
			continue
		}
		var e wire.Envelope
		l.fill(&e, nd, wire.KindEvent, msg)
		e.Deadline = 0
		// An event's id is its number on its origin (this host): its
		// identity, with the origin, for hosts it reaches by two paths.
		e.ID = msg.Seq
		if err := l.out.enqueue(&e, !msg.Deadline.IsZero(), msg.Deadline); err != nil {
			l.dropped.Add(1)
			if m.log.Enabled(context.Background(), slog.LevelDebug) {
				// Not boxed for a log that drops it: a publisher that
				// outruns the link meets this for every event.
				m.log.Debug("event dropped", "topic", msg.Subject, "node", nd.name, "err", err)
			}
			continue
		}
		n++
	}
	return n
}

// Target resolves a node reference (name, id or id prefix) for --node.
// self is true when it names this host. A name several nodes claim is
// refused with status invalid, listing their ids (see table.resolve).
func (m *Mesh) Target(ref string) (self bool, err error) {
	_, self, err = m.routes.load().target(ref)
	return self, err
}

// target resolves ref in t: the node it names, or self for this host.
func (t *table) target(ref string) (*node, bool, error) {
	nd, self, ambiguous := t.resolve(ref)
	switch {
	case len(ambiguous) > 0:
		return nil, false, message.Errorf(abi.StatusInvalid, "node %q is ambiguous: it matches the name or id of %d nodes (%s); node names are claimed, not proved, so address the node by its id", ref, len(ambiguous), joinIDs(ambiguous))
	case self, nd != nil:
		return nd, self, nil
	}
	return nil, false, t.unknownNode(ref)
}

func joinIDs(ids []identity.ID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, ", ")
}

func (t *table) unknownNode(ref string) error {
	names := []string{t.selfName}
	for _, n := range t.nodes {
		names = append(names, n.name)
	}
	return message.Errorf(abi.StatusUnreachable, "no node %q in the mesh (known: %v)", ref, names)
}

// CallTo sends a request to the named node, whatever else serves the
// subject. The caller handles a reference to this host (see Target).
func (m *Mesh) CallTo(ctx context.Context, ref string, msg *message.Message) ([]byte, error) {
	nd, err := m.routes.load().remoteTarget(ref)
	if err != nil {
		return nil, err
	}
	return m.callNode(ctx, nd, msg)
}

// SendTo delivers a one-way message to the named node.
func (m *Mesh) SendTo(ctx context.Context, ref string, msg *message.Message) error {
	nd, err := m.routes.load().remoteTarget(ref)
	if err != nil {
		return err
	}
	return m.sendNode(ctx, nd, msg)
}

// remoteTarget resolves ref to another node for CallTo and SendTo; a
// reference to this host is refused, as the mesh cannot deliver to it.
func (t *table) remoteTarget(ref string) (*node, error) {
	nd, self, err := t.target(ref)
	if err != nil {
		return nil, err
	}
	if self {
		return nil, message.Errorf(abi.StatusInvalid, "node %q is this host: deliver through the local router (see Target)", ref)
	}
	return nd, nil
}

func (m *Mesh) callNode(ctx context.Context, nd *node, msg *message.Message) ([]byte, error) {
	l, nd, err := m.outLink(ctx, nd, msg.Deadline)
	if err != nil {
		return nil, err
	}
	m.dialers.needDirect(nd)
	if err := l.checkSize(nd, msg); err != nil {
		return nil, err
	}
	var e wire.Envelope
	l.fill(&e, nd, wire.KindRequest, msg)
	r, err := l.request(ctx, &e, msg.Deadline)
	if err != nil {
		return nil, err
	}
	defer done(r)
	if r.Status != uint16(abi.StatusOK) {
		return nil, remoteError(nd.name, r)
	}
	if len(r.Headers) > 0 && msg.ReplyHeaders != nil {
		// The caller waits on this goroutine, so it may have the map
		// itself: the envelope goes back to the pool without it, and the
		// next decode into that envelope makes a new one.
		*msg.ReplyHeaders = abi.Headers(r.Headers)
		r.Headers = nil
	}
	return r.Payload, nil
}

// remoteError is the error the node named answered with, prefixed with
// "node NAME: " so that the caller knows where it arose. A text that
// already starts with "node " is kept as it is: it passed through more
// than one host (a chain A -> B -> C names C, where it arose, once) or is
// that node's own error about a node, which names one already.
func remoteError(name string, r *wire.Envelope) error {
	st := abi.Status(r.Status)
	text := r.Error
	if text == "" {
		text = st.String()
	}
	if !strings.HasPrefix(text, "node ") {
		text = "node " + name + ": " + text
	}
	return &message.Error{Status: st, Msg: text}
}

func (m *Mesh) sendNode(ctx context.Context, nd *node, msg *message.Message) error {
	l, nd, err := m.outLink(ctx, nd, msg.Deadline)
	if err != nil {
		return err
	}
	m.dialers.needDirect(nd)
	if err := l.checkSize(nd, msg); err != nil {
		return err
	}
	dl := msg.Deadline
	if dl.IsZero() {
		// A send does not wait for its handler, but it may wait a little for
		// room on a congested link before it is refused as busy.
		dl = time.Now().Add(time.Second)
	}
	var e wire.Envelope
	l.fill(&e, nd, wire.KindSend, msg)
	return l.send(&e, true, dl)
}

// farWait bounds how long a message for a node known only through
// membership waits for the link to it, when its own deadline is later or
// absent.
const farWait = handshakeTimeout

// outLink returns the link a message to nd leaves on. For a far node it
// first links to it, waiting until the link is up, ctx ends, deadline
// passes or farWait, whichever comes first, and returns the node as the
// new table has it.
func (m *Mesh) outLink(ctx context.Context, nd *node, deadline time.Time) (*link, *node, error) {
	if l := nd.out(); l != nil {
		return l, nd, nil
	}
	if c := candidateOf(nd); len(c.Addrs) == 0 || c.TCPPort == 0 && c.QUICPort == 0 {
		return nil, nil, message.Errorf(abi.StatusUnreachable, "node %s is a member of the mesh but no address to link to it is known (it announced %v)", nd.name, nd.listen)
	}
	m.dialers.needDirect(nd)
	limit := time.Now().Add(farWait)
	if !deadline.IsZero() && deadline.Before(limit) {
		limit = deadline
	}
	timer := time.NewTimer(time.Until(limit))
	defer timer.Stop()
	for {
		ch := m.routes.changed()
		n := m.routes.load().nodes[nd.id]
		if n == nil {
			return nil, nil, message.Errorf(abi.StatusUnreachable, "node %s is no longer in the mesh", nd.name)
		}
		if l := n.out(); l != nil {
			return l, n, nil
		}
		if err, failed := m.dialers.gaveUp(nd.id); failed {
			return nil, nil, message.Errorf(abi.StatusUnreachable, "node %s is a member of the mesh but this host cannot link to it: %v", nd.name, err)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, nil, message.Errorf(abi.StatusUnreachable, "node %s: no link to it yet: %v", nd.name, ctx.Err())
		case <-timer.C:
			if !deadline.IsZero() && !deadline.After(time.Now()) {
				return nil, nil, message.Errorf(abi.StatusTimeout, "node %s: the deadline passed while linking to it (it is more than two links away)", nd.name)
			}
			return nil, nil, message.Errorf(abi.StatusUnreachable, "node %s is a member of the mesh but no link to it came up within %v (dialled %v)", nd.name, farWait, nd.listen)
		}
	}
}

// checkSize refuses a payload the receiving side would refuse: a clear
// error now instead of a closed link later.
func (l *link) checkSize(nd *node, msg *message.Message) error {
	if len(msg.Payload) > l.maxOut {
		return message.Errorf(abi.StatusTooLarge, "payload of %d bytes for %q exceeds limits.max_frame: node %s accepts at most %d bytes",
			len(msg.Payload), msg.Subject, nd.name, l.maxOut)
	}
	return nil
}

// fill makes e the wire form of msg for nd, leaving on l. The callers keep
// e on their stack (the link encodes it and keeps nothing): one
// allocation less per message.
func (l *link) fill(e *wire.Envelope, nd *node, kind wire.MsgKind, msg *message.Message) {
	*e = wire.Envelope{Version: l.version, Kind: kind, Subject: msg.Subject,
		Headers: msg.Headers, Payload: msg.Payload, Hops: uint32(msg.Hops)}
	if nd.direct == nil {
		// Through a relay: the far host learns the origin from from. An
		// envelope sent directly leaves it out (the origin is the peer),
		// 55 bytes less to write, read and check on every message.
		e.To, e.From = string(nd.id), string(l.m.id)
	}
	if !msg.Deadline.IsZero() {
		e.Deadline = budget(msg.Deadline)
	}
}

// budget converts a deadline to the remaining microseconds (at least 1,
// since 0 means none).
func budget(d time.Time) uint64 {
	left := time.Until(d).Microseconds()
	if left < 1 {
		return 1
	}
	return uint64(left)
}
