package transport

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
)

// Routed messages: the transport as a router.Endpoint.

var headerEnc, _ = cbor.EncOptions{Sort: cbor.SortCoreDeterministic}.EncMode()

func (t *Transport) messageEvent(m *message.Message, corr uint32) plugin.Event {
	ev := plugin.Event{Type: abi.EventMessage, ID: corr, Arg: int32(m.Kind), A: []byte(m.Subject), B: m.Payload}
	h := m.Headers
	if _, ok := h[abi.HeaderOrigin]; !ok && t.cfg.Origin != "" {
		// m is shared and read-only: the origin goes into a copy.
		h = make(abi.Headers, len(m.Headers)+2)
		for k, v := range m.Headers {
			h[k] = v
		}
		h[abi.HeaderOrigin] = t.cfg.Origin
		if m.Kind == abi.KindEvent {
			// An event keeps its identity: the host it originated on
			// (a mesh peer's event may go out here, for the apps of a
			// gateway) and its number there. The origin drops it when
			// it comes back, and a host that has it from the mesh too
			// drops the second copy.
			if m.FromNode != "" {
				h[abi.HeaderOrigin] = m.FromNode
			}
			if m.Seq != 0 {
				h[abi.HeaderSeq] = strconv.FormatUint(m.Seq, 10)
			}
		}
	}
	if len(h) > 0 {
		ev.C, _ = headerEnc.Marshal(h) // map[string]string always encodes
	}
	return ev
}

// fromMedium reports whether m came in through a transport that carried
// its origin: such a message is not sent out through a transport again.
func fromMedium(m *message.Message) bool {
	_, ok := m.Headers[abi.HeaderOrigin]
	return ok
}

// Request hands a request to one instance that owns a connection and waits
// for its respond, until m's deadline or the plugin's timeout.
func (t *Transport) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	if t.ctx.Err() != nil {
		return nil, router.ErrGone
	}
	if fromMedium(m) {
		t.stats.dropped.Add(1)
		return nil, message.Errorf(abi.StatusUnreachable, "transport %q: %s: the request came in through a transport (header %s %q); it is not sent out through one again",
			t.name, m.Subject, abi.HeaderOrigin, m.Headers[abi.HeaderOrigin])
	}
	s := t.pick(true)
	if s == nil {
		t.stats.dropped.Add(1)
		return nil, message.Errorf(abi.StatusUnreachable, "transport %q: %s: no connection is open", t.name, m.Subject)
	}
	corr := t.corrs.Add(1)
	if corr == 0 {
		corr = t.corrs.Add(1)
	}
	w := &waiting{slot: s, ch: make(chan result, 1)}
	t.mu.Lock()
	t.pending[corr] = w
	t.mu.Unlock()
	j := &job{ev: t.messageEvent(m, corr), done: func(res int32, err error) {
		if err == nil && res >= 0 {
			return
		}
		if err == nil {
			err = message.Errorf(abi.Status(-res), "transport %q: %s: the plugin refused the message (%s)", t.name, m.Subject, abi.Status(-res))
		} else if !errors.Is(err, errClosed) && !errors.Is(err, errLost) {
			err = message.Errorf(message.StatusOf(err), "transport %q: %s: %v", t.name, m.Subject, err)
		}
		t.settle(corr, result{err: err})
	}}
	select {
	case s.jobs <- j:
		t.stats.messagesOut.Add(1)
	default:
		t.unpend(corr)
		return nil, message.Errorf(abi.StatusBusy, "transport %q is busy: %d events queued for instance %d", t.name, slotQueue, s.i)
	}
	dl := m.Deadline
	if dl.IsZero() {
		dl = time.Now().Add(t.v.Spec().Timeout)
	}
	timer := time.NewTimer(time.Until(dl))
	defer timer.Stop()
	select {
	case r := <-w.ch:
		if errors.Is(r.err, errClosed) || errors.Is(r.err, errLost) {
			return nil, message.Errorf(abi.StatusUnreachable, "transport %q: %s: %v", t.name, m.Subject, r.err)
		}
		if r.err == nil && len(r.headers) > 0 && m.ReplyHeaders != nil {
			// Here, on the caller's goroutine: never after it stopped
			// waiting (message.Message.ReplyHeaders).
			*m.ReplyHeaders = r.headers
		}
		return r.reply, r.err
	case <-timer.C:
		t.unpend(corr)
		return nil, message.Errorf(abi.StatusTimeout, "transport %q: %s: no response within the deadline", t.name, m.Subject)
	case <-ctx.Done():
		t.unpend(corr)
		return nil, message.Errorf(abi.StatusTimeout, "transport %q: %s: %v", t.name, m.Subject, ctx.Err())
	}
}

func (t *Transport) unpend(corr uint32) {
	t.mu.Lock()
	delete(t.pending, corr)
	t.mu.Unlock()
}

// settle completes a waiting request once.
func (t *Transport) settle(corr uint32, r result) bool {
	t.mu.Lock()
	w, ok := t.pending[corr]
	delete(t.pending, corr)
	t.mu.Unlock()
	if ok {
		w.ch <- r
	}
	return ok
}

// enqueue puts j on s's queue. When the queue is full, a message whose
// sender on this host gave it a deadline waits for room until then, as
// on a congested mesh link (flow control: the publisher slows down
// instead of losing it); with a zero deadline it is refused at once. Post
// passes zero for a message that came over the mesh: its link's reader
// must not stall behind this queue.
func (t *Transport) enqueue(s *slot, j *job, deadline time.Time) bool {
	select {
	case s.jobs <- j:
		return true
	default:
	}
	if deadline.IsZero() {
		return false
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case s.jobs <- j:
		return true
	case <-timer.C:
		return false
	case <-t.ctx.Done():
		return false
	}
}

// Post hands a send to one instance that owns a connection and an event
// to every such instance; with none, the message is dropped and counted.
func (t *Transport) Post(m *message.Message) error {
	if t.ctx.Err() != nil {
		return router.ErrGone
	}
	if fromMedium(m) {
		// Its medium has it: sending it out again would publish it twice
		// there, and back and forth between two hosts on one broker.
		return nil
	}
	var targets []*slot
	if m.Kind == abi.KindEvent {
		for _, s := range t.slots {
			s.mu.Lock()
			if s.conns > 0 {
				targets = append(targets, s)
			}
			s.mu.Unlock()
		}
	} else if s := t.pick(true); s != nil {
		targets = []*slot{s}
	}
	// An event that reaches no instance is an error too, so that the
	// router counts it dropped rather than delivered.
	if len(targets) == 0 {
		t.stats.dropped.Add(1)
		return message.Errorf(abi.StatusUnreachable, "transport %q: %s: no connection is open", t.name, m.Subject)
	}
	ev := t.messageEvent(m, 0)
	wait := m.Deadline
	if m.FromNode != "" {
		wait = time.Time{}
	}
	queued := 0
	for _, s := range targets {
		if t.enqueue(s, &job{ev: ev}, wait) {
			t.stats.messagesOut.Add(1)
			queued++
		} else {
			t.stats.dropped.Add(1)
		}
	}
	if queued == 0 || (queued < len(targets) && m.Kind == abi.KindSend) {
		waited := ""
		if !wait.IsZero() {
			waited = " until the sender's deadline"
		}
		return message.Errorf(abi.StatusBusy, "transport %q is busy: %d messages queued for an instance%s", t.name, slotQueue, waited)
	}
	return nil
}
