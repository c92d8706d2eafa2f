package transport

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
)

// Actions (plugin.Actions), called on the acting slot's goroutine.

// owned returns the open connection id if slot owns it.
func (t *Transport) owned(slotIdx int, id uint32, what string) *conn {
	t.mu.Lock()
	c := t.conns[id]
	t.mu.Unlock()
	if c == nil || c.slot.i != slotIdx || c.closed.Load() {
		t.stats.errors.Add(1)
		t.log.Warn("transport plugin acted on a connection it does not own", "action", what, "instance", slotIdx, "conn", id)
		return nil
	}
	return c
}

// Write implements plugin.Actions.
func (t *Transport) Write(slotIdx int, id uint32, b []byte) abi.Status {
	c := t.owned(slotIdx, id, abi.ImportConnWrite)
	if c == nil {
		return abi.StatusNotFound
	}
	if !c.queue(b, t.cfg.WriteBuffer) {
		t.log.Warn("transport connection closed: write buffer full", "conn", id, "limit", t.cfg.WriteBuffer)
		t.closeConn(c, "write buffer full", abi.StatusTooLarge, true, false)
		return abi.StatusTooLarge
	}
	return abi.StatusOK
}

// Open implements plugin.Actions.
func (t *Transport) Open(slotIdx int, index int32) (uint32, abi.Status) {
	if index < 0 || int(index) >= len(t.cfg.Dial) {
		t.stats.errors.Add(1)
		t.log.Warn("transport plugin asked to dial outside its dial list", "instance", slotIdx, "index", index, "entries", len(t.cfg.Dial))
		return 0, abi.StatusInvalid
	}
	t.mu.Lock()
	full := len(t.conns) >= t.cfg.MaxConns
	t.mu.Unlock()
	if full {
		return 0, abi.StatusBusy
	}
	id := t.ids.Add(1)
	s := t.slots[slotIdx]
	gen := s.gen.Load()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		c, err := t.dial(int(index), id, s)
		if err != nil {
			t.post(s, &job{ev: plugin.Event{Type: abi.EventClosed, ID: id, Arg: int32(abi.StatusUnreachable)}, gen: gen})
			return
		}
		<-c.done
	}()
	return id, abi.StatusOK
}

// CloseConn implements plugin.Actions.
func (t *Transport) CloseConn(slotIdx int, id uint32) abi.Status {
	c := t.owned(slotIdx, id, abi.ImportConnClose)
	if c == nil {
		return abi.StatusNotFound
	}
	t.closeConn(c, "closed by plugin", abi.StatusOK, false, true)
	return abi.StatusOK
}

// SetTimer implements plugin.Actions.
func (t *Transport) SetTimer(slotIdx int, id uint32, ms int32) abi.Status {
	s := t.slots[slotIdx]
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.timers[id]; ok {
		old.Stop()
		delete(s.timers, id)
	}
	if ms <= 0 {
		return abi.StatusOK
	}
	if len(s.timers) >= abi.MaxTimers {
		return abi.StatusBusy
	}
	gen := s.gen.Load()
	var tm *time.Timer
	tm = time.AfterFunc(time.Duration(ms)*time.Millisecond, func() {
		s.mu.Lock()
		current := s.timers[id] == tm
		if current {
			delete(s.timers, id)
		}
		s.mu.Unlock()
		if current {
			t.postAsync(s, &job{ev: plugin.Event{Type: abi.EventTimer, ID: id}, gen: gen})
		}
	})
	s.timers[id] = tm
	return abi.StatusOK
}

// Deliver implements plugin.Actions.
func (t *Transport) Deliver(slotIdx int, corr uint32, m *message.Message) abi.Status {
	if t.cfg.Origin != "" && m.Headers[abi.HeaderOrigin] == t.cfg.Origin {
		// This host's own message, back through the medium: it has been
		// delivered here already.
		t.stats.ownDropped.Add(1)
		return abi.StatusOK
	}
	switch m.Kind {
	case abi.KindSend:
		t.stats.messagesIn.Add(1)
		return message.StatusOf(t.host.Send(t.ctx, m))
	case abi.KindEvent:
		if origin := m.Headers[abi.HeaderOrigin]; origin != "" {
			// Another host's event: it has its identity, by which the
			// router drops a copy that came by the mesh too, and it
			// stays on this host (the origin reaches its mesh peers
			// itself; the mesh would not carry its identity on).
			m.FromNode = origin
			m.Seq, _ = strconv.ParseUint(m.Headers[abi.HeaderSeq], 10, 64) // none or not a number: no identity
		}
		_, err := t.host.Publish(t.ctx, m)
		if errors.Is(err, router.ErrDuplicate) {
			t.stats.duplicates.Add(1)
			return abi.StatusOK
		}
		t.stats.messagesIn.Add(1)
		return message.StatusOf(err)
	}
	t.stats.messagesIn.Add(1)
	s := t.slots[slotIdx]
	s.mu.Lock()
	if s.calls >= abi.MaxPendingCalls {
		s.mu.Unlock()
		return abi.StatusBusy
	}
	s.calls++
	s.mu.Unlock()
	gen := s.gen.Load()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		ctx, cancel := context.WithDeadline(t.ctx, m.Deadline)
		reply, err := t.host.Call(ctx, m)
		cancel()
		s.mu.Lock()
		s.calls--
		s.mu.Unlock()
		ev := plugin.Event{Type: abi.EventReply, ID: corr, Arg: int32(abi.StatusOK), A: reply}
		switch {
		case err != nil:
			// An error reply has no headers (SPEC.md section 10).
			ev.Arg, ev.A = int32(message.StatusOf(err)), []byte(err.Error())
		case m.ReplyHeaders != nil && len(*m.ReplyHeaders) > 0:
			// Call has returned: whoever answered has written them
			// (message.Message.ReplyHeaders), on this goroutine's behalf.
			ev.B, _ = headerEnc.Marshal(*m.ReplyHeaders) // map[string]string always encodes
		}
		t.post(s, &job{ev: ev, gen: gen})
	}()
	return abi.StatusOK
}

// Respond implements plugin.Actions.
func (t *Transport) Respond(slotIdx int, corr uint32, st abi.Status, b []byte, h abi.Headers) abi.Status {
	t.mu.Lock()
	w, ok := t.pending[corr]
	if ok && w.slot.i != slotIdx {
		ok = false
	}
	if ok {
		delete(t.pending, corr)
	}
	t.mu.Unlock()
	if !ok {
		return abi.StatusNotFound
	}
	if st == abi.StatusOK {
		w.ch <- result{reply: append([]byte{}, b...), headers: h}
	} else {
		w.ch <- result{err: message.Errorf(st, "transport %q: %s", t.name, b)}
	}
	return abi.StatusOK
}
