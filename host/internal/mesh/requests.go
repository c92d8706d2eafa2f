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
	pending map[uint64]chan *wire.Envelope
	nextID  uint64
	downErr error // set when the link closed; fails new requests
}

// add registers ch under a new id; it fails once the link has closed.
func (r *requests) add(ch chan *wire.Envelope) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.downErr != nil {
		return 0, r.downErr
	}
	r.nextID++
	r.pending[r.nextID] = ch
	return r.nextID, nil
}

// take removes request id if ch still waits for it under that id, and
// reports whether it did.
func (r *requests) take(id uint64, ch chan *wire.Envelope) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending[id] != ch {
		return false
	}
	delete(r.pending, id)
	return true
}

// remove takes request id out, returning its channel (nil: nobody waits).
func (r *requests) remove(id uint64) chan *wire.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := r.pending[id]
	delete(r.pending, id)
	return ch
}

// fail records why the link closed and takes out every waiting request.
func (r *requests) fail(cause error) map[uint64]chan *wire.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.downErr = cause
	p := r.pending
	r.pending = map[uint64]chan *wire.Envelope{}
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

// replyChans recycles the one-slot channels requests wait on.
var replyChans = sync.Pool{New: func() any { return make(chan *wire.Envelope, 1) }}

// expired is what a request's channel receives when its deadline passes.
var expired = &wire.Envelope{}

// request sends a request envelope and waits for its reply, the deadline,
// ctx, or the link's end, whichever comes first. Request/reply is
// at-most-once: a request whose link dies is failed, never resent.
func (l *link) request(ctx context.Context, e *wire.Envelope, deadline time.Time) (*wire.Envelope, error) {
	ch := replyChans.Get().(chan *wire.Envelope)
	id, err := l.reqs.add(ch)
	if err != nil {
		replyChans.Put(ch)
		return nil, l.downError()
	}
	if !l.probe.watched.Load() {
		l.probe.watch()
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

// expire answers request id with expired if it is still waiting.
func (l *link) expire(id uint64, ch chan *wire.Envelope) {
	if l.reqs.take(id, ch) {
		ch <- expired
	}
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
	}
}
