package plugin

import (
	"sync"

	"github.com/pycomms/pycomms-host/host/message"
)

// postQueue holds the sends and events posted to a version until a
// delivering goroutine takes them. It is a ring under a mutex rather than
// a channel so that a deliverer takes everything queued, up to a batch,
// with one lock: with a channel the link reader that posts and the
// deliverers that receive fought over the channel's lock once per message,
// a fifth of the reader's time in an unpaced pub/sub run.
type postQueue struct {
	mu      sync.Mutex
	ready   sync.Cond // signalled when a message arrives or the queue closes
	ring    []*message.Message
	head, n int
	waiters int // deliverers waiting in take
	closed  bool
}

func newPostQueue(capacity int) *postQueue {
	q := &postQueue{ring: make([]*message.Message, max(capacity, 1))}
	q.ready.L = &q.mu
	return q
}

// put queues m; false when the queue is full (or closed).
func (q *postQueue) put(m *message.Message) bool {
	q.mu.Lock()
	if q.n == len(q.ring) || q.closed {
		q.mu.Unlock()
		return false
	}
	q.ring[(q.head+q.n)%len(q.ring)] = m
	q.n++
	wake := q.waiters > 0
	q.mu.Unlock()
	if wake {
		q.ready.Signal()
	}
	return true
}

// take waits for at least one message and appends up to limit of them to
// dst in the order they were put; ok is false once the queue is closed and
// empty.
func (q *postQueue) take(dst []*message.Message, limit int) (_ []*message.Message, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n == 0 {
		if q.closed {
			return dst, false
		}
		q.waiters++
		q.ready.Wait()
		q.waiters--
	}
	for range min(q.n, limit) {
		dst = append(dst, q.ring[q.head])
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
		q.n--
	}
	return dst, true
}

// close wakes every deliverer: they take what is left, then stop.
func (q *postQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.ready.Broadcast()
}
