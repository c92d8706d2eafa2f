package queue

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// Owner is the router owner name the queues of a host are routed under.
// A plugin name cannot start with '$', so it never collides.
const Owner = "$queues"

// Endpoint takes enqueues routed to this host (router.Endpoint): a request
// to "$queue.NAME.METHOD" (METHOD: one or more tokens the producer
// chooses, kept as the subject the consumer is handed, as a call names a
// method of a service) stores its subject, payload and headers in queue
// NAME and is
// answered, once the message is on disk, with the message's id in decimal;
// a one-way send to it is stored without an answer. Only the queues set
// with SetServed are taken: those this host has a consumer for, which are
// also the routes it advertises.
type Endpoint struct {
	s      *Store
	served atomic.Pointer[servedQueues]
}

// servedQueues maps "$queue.NAME" to its queue; depth is the most tokens
// of a key (abi.LongestService).
type servedQueues struct {
	m     map[string]*Queue
	depth int
}

// NewEndpoint returns the Endpoint for the queues of s.
func NewEndpoint(s *Store) *Endpoint {
	e := &Endpoint{s: s}
	e.served.Store(&servedQueues{m: map[string]*Queue{}})
	return e
}

// SetServed sets which queues this host takes enqueues for.
func (e *Endpoint) SetServed(qs []*Queue) {
	sq := &servedQueues{m: make(map[string]*Queue, len(qs))}
	for _, q := range qs {
		sq.m[q.subj] = q
		sq.depth = max(sq.depth, strings.Count(q.subj, ".")+1)
	}
	e.served.Store(sq)
}

// Subjects are the services ("$queue.NAME") of the served queues, for
// the router.
func (e *Endpoint) Subjects() []string {
	var out []string
	for s := range e.served.Load().m {
		out = append(out, s)
	}
	return out
}

func (e *Endpoint) queue(m *message.Message) (*Queue, error) {
	sq := e.served.Load()
	if q, ok := abi.LongestService(sq.m, sq.depth, m.Subject); ok {
		return q, nil
	}
	return nil, message.Errorf(abi.StatusNoHandler, "no queue on this host takes %q (a queue is kept where a plugin lists it under queues, and enqueued to as $queue.NAME.METHOD)", m.Subject)
}

// Request stores m and answers with its id once it is on disk.
func (e *Endpoint) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	q, err := e.queue(m)
	if err != nil {
		return nil, err
	}
	id, err := q.Enqueue(m, true)
	if err != nil {
		return nil, err
	}
	return strconv.AppendUint(nil, id, 10), nil
}

// Post stores a one-way send without waiting for the disk.
func (e *Endpoint) Post(m *message.Message) error {
	if m.Kind == abi.KindEvent {
		return nil // a queue is not a topic; the router never routes one here
	}
	q, err := e.queue(m)
	if err != nil {
		return err
	}
	_, err = q.Enqueue(m, false)
	return err
}
