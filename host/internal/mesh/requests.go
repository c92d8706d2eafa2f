package mesh

import (
	"context"
	"sync"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
)

// requests is the table of a link's requests waiting for their replies,
// by id. Whoever removes a request from it (its reply, its deadline, its
// caller giving up, the link closing) is the one that sends on its
// channel, so each channel gets exactly one value.
type requests struct {
	mu      sync.Mutex
	pending map[uint64]pending
	nextID  uint64
	downErr error // set when the link closed; fails new requests
	// earliest is at or before the earliest deadline in pending (unix ns;
	// 0: none): expireDue looks no further while it is in the future.
	earliest int64
}

// pending is one request waiting for its reply.
type pending struct {
	ch chan *wire.Envelope
	dl int64 // deadline, unix ns; 0: none
}

// add registers ch under a new id, with its deadline (unix ns, 0: none);
// it fails once the link has closed.
func (r *requests) add(ch chan *wire.Envelope, dl int64) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.downErr != nil {
		return 0, r.downErr
	}
	r.nextID++
	r.pending[r.nextID] = pending{ch, dl}
	if dl != 0 && (r.earliest == 0 || dl < r.earliest) {
		r.earliest = dl
	}
	return r.nextID, nil
}

// expireDue takes out the requests whose deadline is at or before now and
// returns their channels, and the earliest deadline left (0: none).
func (r *requests) expireDue(now int64) (due []chan *wire.Envelope, next int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.earliest == 0 || r.earliest > now {
		return nil, r.earliest
	}
	for id, p := range r.pending {
		switch {
		case p.dl == 0:
		case p.dl <= now:
			due = append(due, p.ch)
			delete(r.pending, id)
		case next == 0 || p.dl < next:
			next = p.dl
		}
	}
	r.earliest = next
	return due, next
}

// take removes request id if ch still waits for it under that id, and
// reports whether it did.
// remove takes request id out, returning its channel (nil: nobody waits).
func (r *requests) remove(id uint64) chan *wire.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending[id]
	delete(r.pending, id)
	return p.ch
}

// fail records why the link closed and takes out every waiting request.
func (r *requests) fail(cause error) map[uint64]pending {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.downErr = cause
	p := r.pending
	r.pending = map[uint64]pending{}
	r.earliest = 0
	return p
}

// err is why the link closed (nil while it is up).
func (r *requests) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.downErr
}

// waiting is how many requests wait for a reply.
func (r *requests) waiting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// envelopes recycles the envelopes decoded from the links. Only replies
// come back (done, once the requester has read one): a request, send or
// event goes on to code that may keep parts of it, such as its headers.
// DecodeEnvelope gives every payload a slice of its own, so a payload read
// from a reply stays the caller's after the envelope is reused.
var envelopes = sync.Pool{New: func() any { return new(wire.Envelope) }}

// done gives back a reply envelope the requester has finished reading.
func done(r *wire.Envelope) {
	if r != expired {
		envelopes.Put(r)
	}
}

// replyChans recycles the one-slot channels requests wait on.
var replyChans = sync.Pool{New: func() any { return make(chan *wire.Envelope, 1) }}

// expired is what a request's channel receives when its deadline passes.
var expired = &wire.Envelope{}

// request sends a request envelope and waits for its reply, the deadline,
// ctx, or the link's end, whichever comes first. Request/reply is
// at-most-once: a request whose link dies is failed, never resent.
func (l *link) request(ctx context.Context, e *wire.Envelope, deadline time.Time) (*wire.Envelope, error) {
	ch := replyChans.Get().(chan *wire.Envelope)
	var dl int64
	if !deadline.IsZero() {
		dl = deadline.UnixNano()
	}
	id, err := l.reqs.add(ch, dl)
	if err != nil {
		replyChans.Put(ch)
		return nil, l.downError()
	}
	if dl != 0 {
		if !l.timed.Load() && !l.timed.Swap(true) {
			l.m.deadlines.track(l)
		}
		l.m.deadlines.due(dl)
	}
	if !l.probe.watched.Load() {
		l.probe.watch()
	}
	e.ID = id
	if err := l.send(e, true, deadline); err != nil {
		l.forget(id, ch)
		return nil, err
	}
	// The deadline is answered by the mesh's one deadline timer
	// (deadlines.go), which sends expired on ch: the wait stays a plain
	// channel receive, and no request pays for a timer of its own.
	var r *wire.Envelope
	if done := ctx.Done(); done == nil {
		r = <-ch
	} else {
		select {
		case r = <-ch:
		case <-done:
			l.forget(id, ch)
			l.cancelRemote(id)
			return nil, message.Errorf(abi.StatusTimeout, "request %q to node %s: %v", e.Subject, l.name, ctx.Err())
		}
	}
	replyChans.Put(ch)
	if r == expired {
		l.cancelRemote(id)
		return nil, message.Errorf(abi.StatusTimeout, "node %s did not reply to %q within its deadline", l.name, e.Subject)
	}
	return r, nil
}

// cancelRemote tells the peer that nobody waits for request id any more,
// so it can stop working on it.
func (l *link) cancelRemote(id uint64) {
	l.out.enqueue(&wire.Envelope{Version: l.version, Kind: wire.KindCancel, ReplyTo: id}, false, time.Time{})
}

// forget removes a pending request nobody waits for any more. If the reply
// is being delivered concurrently, it is drained so the channel can be
// reused.
func (l *link) forget(id uint64, ch chan *wire.Envelope) {
	if l.reqs.remove(id) == nil {
		<-ch
	}
	replyChans.Put(ch)
}

// deliverReply hands a reply to the request waiting for it; a reply nobody
// waits for (the requester gave up) is dropped.
func (l *link) deliverReply(e *wire.Envelope) {
	if ch := l.reqs.remove(e.ReplyTo); ch != nil {
		ch <- e
		return
	}
	done(e)
}
