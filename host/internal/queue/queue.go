package queue

import (
	"container/heap"
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
)

// Consumer takes queued messages: a handler plugin. Deliver returns nil
// when the consumer acknowledged the message (its handler returned ok).
type Consumer interface {
	Deliver(ctx context.Context, m *message.Message) error
}

// Queue is one named queue: the messages waiting for its consumer, in
// enqueue order, those waiting out a back-off, and those being delivered.
type Queue struct {
	s    *Store
	name string
	subj string // abi.QueueSubjectPrefix + name

	mu       sync.Mutex
	next     uint64            // the last sequence number given out
	ready    fifo              // due now, in enqueue order
	delayed  delays            // waiting out a back-off
	attempts map[uint64]uint32 // failed deliveries, for those with any
	pending  int               // enqueues written but not yet committed
	depth    int               // ready + delayed + being delivered
	dead     int
	consumer Consumer
	limit    int // deliveries at once
	inflight int
	// pausedUntil holds deliveries back after the consumer did not run
	// one (busy, being replaced, failed to load): trying every waiting
	// message against a consumer that is down would only burn CPU.
	pausedUntil time.Time
	wake        chan struct{}
	quit        chan struct{} // closed by shut
	running     bool

	enqueued, delivered, acked, retried, deadLettered atomic.Uint64
}

func newQueue(s *Store, name string) *Queue {
	return &Queue{s: s, name: name, subj: abi.QueueSubjectPrefix + name, attempts: map[uint64]uint32{},
		wake: make(chan struct{}, 1), quit: make(chan struct{})}
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// Enqueue stores m (its subject, payload and headers) as a new message
// of q. With
// wait it returns once the message is on disk, with its id; without, once
// the write is queued (a send: nobody is told whether the commit
// succeeded, though a failure is logged). It fails with busy when the
// queue holds Options.MaxDepth messages or the writer is that far behind.
func (q *Queue) Enqueue(m *message.Message, wait bool) (uint64, error) {
	rec, err := cbor.Marshal(record{Enqueued: time.Now().UnixNano(), Subject: m.Subject, Headers: m.Headers, Payload: m.Payload})
	if err != nil {
		return 0, message.Errorf(abi.StatusInternal, "queue %q: encode message: %v", q.name, err)
	}
	max := q.s.opts.Load().MaxDepth
	q.mu.Lock()
	if q.depth+q.pending >= max {
		q.mu.Unlock()
		return 0, message.Errorf(abi.StatusBusy, "queue %q is full: %d messages (queue.max_depth)", q.name, max)
	}
	q.next++
	seq := q.next
	q.pending++
	q.mu.Unlock()
	o := &op{q: q, kind: opPut, seq: seq, rec: rec}
	if wait {
		o.done = make(chan error, 1)
	}
	if err := q.s.write(o); err != nil {
		q.mu.Lock()
		q.pending--
		q.mu.Unlock()
		return 0, err
	}
	if !wait {
		return seq, nil
	}
	if err := <-o.done; err != nil {
		return 0, message.Errorf(abi.StatusInternal, "queue %q: store message: %v", q.name, err)
	}
	return seq, nil
}

// committed is the writer's word on an enqueue: on disk (err nil), the
// message may be delivered.
func (q *Queue) committed(seq uint64, err error) {
	q.mu.Lock()
	q.pending--
	if err == nil {
		q.enqueued.Add(1)
		q.depth++
		q.ready.push(seq)
	}
	q.mu.Unlock()
	if err == nil {
		q.poke()
	}
}

func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// SetConsumer makes c the queue's consumer, delivering at most limit
// messages at once; nil stops deliveries (those under way finish). The
// first consumer starts the queue's dispatcher.
func (q *Queue) SetConsumer(c Consumer, limit int) {
	q.s.mu.Lock()
	closed := q.s.closed
	q.s.mu.Unlock()
	q.mu.Lock()
	q.consumer, q.limit = c, max(limit, 1)
	start := c != nil && !q.running && !closed
	if start {
		q.running = true
		q.s.wg.Add(1)
	}
	q.mu.Unlock()
	if start {
		go q.dispatch()
	}
	q.poke()
}

// shut stops the dispatcher (Store.Close, with s.mu held).
func (q *Queue) shut() {
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-q.quit:
	default:
		close(q.quit)
	}
}

// dispatch hands due messages to the consumer, up to its limit at once.
func (q *Queue) dispatch() {
	defer q.s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		q.mu.Lock()
		now := time.Now()
		for q.delayed.Len() > 0 && !q.delayed[0].at.After(now) {
			q.ready.push(heap.Pop(&q.delayed).(delay).seq)
		}
		paused := now.Before(q.pausedUntil)
		for !paused && q.consumer != nil && q.inflight < q.limit && q.ready.len() > 0 {
			seq := q.ready.pop()
			q.inflight++
			q.s.wg.Add(1)
			go q.deliver(q.consumer, seq, q.attempts[seq]+1)
		}
		wait := time.Hour
		if q.delayed.Len() > 0 {
			wait = time.Until(q.delayed[0].at)
		}
		if paused {
			wait = min(wait, q.pausedUntil.Sub(now))
		}
		q.mu.Unlock()
		timer.Reset(max(wait, time.Millisecond))
		select {
		case <-q.wake:
		case <-timer.C:
		case <-q.quit:
			return
		}
	}
}

// deliver hands message seq to c and settles it: acknowledged, retried
// after a back-off, or dead-lettered.
func (q *Queue) deliver(c Consumer, seq uint64, attempt uint32) {
	defer q.s.wg.Done()
	r, err := q.s.read(q.name, seq)
	if err != nil {
		// The file lost it or it does not decode: nothing to deliver, and
		// retrying will not help.
		q.s.log.Error("queue: a message cannot be read back; it is skipped", "queue", q.name, "id", seq, "err", err)
		q.mu.Lock()
		q.inflight--
		q.depth--
		delete(q.attempts, seq)
		q.mu.Unlock()
		q.poke()
		return
	}
	h := make(abi.Headers, len(r.Headers)+2)
	for k, v := range r.Headers {
		h[k] = v
	}
	h[abi.HeaderQueueID] = strconv.FormatUint(seq, 10)
	h[abi.HeaderAttempt] = strconv.FormatUint(uint64(attempt), 10)
	subject := r.Subject
	if subject == "" {
		subject = q.subj
	}
	m := &message.Message{Kind: abi.KindSend, Subject: subject, Payload: r.Payload, Headers: h, From: "queue:" + q.name}
	q.delivered.Add(1)
	err = c.Deliver(context.Background(), m)
	opts := q.s.opts.Load()

	q.mu.Lock()
	q.inflight--
	switch {
	case err == nil:
		q.depth--
		delete(q.attempts, seq)
		q.mu.Unlock()
		q.acked.Add(1)
		q.s.writeWait(&op{q: q, kind: opAck, seq: seq})
	case notAnAttempt(err):
		// The consumer did not run it (being replaced, failed, or every
		// instance busy): not the message's fault, so no attempt is
		// counted, and the queue pauses rather than try the next one.
		pause := min(opts.Backoff, notRunPause)
		q.pausedUntil = time.Now().Add(pause)
		heap.Push(&q.delayed, delay{at: q.pausedUntil, seq: seq})
		q.mu.Unlock()
	case attempt >= uint32(opts.MaxAttempts):
		q.depth--
		delete(q.attempts, seq)
		q.mu.Unlock()
		q.deadLettered.Add(1)
		r.Attempts, r.LastError, r.DeadAt = attempt, err.Error(), time.Now().UnixNano()
		rec, _ := cbor.Marshal(r)
		q.s.log.Warn("queue: message dead-lettered", "queue", q.name, "id", seq, "attempts", attempt, "err", err)
		q.s.writeWait(&op{q: q, kind: opDead, seq: seq, rec: rec})
	default:
		q.attempts[seq] = attempt
		heap.Push(&q.delayed, delay{at: time.Now().Add(opts.backoff(attempt)), seq: seq})
		q.mu.Unlock()
		q.retried.Add(1)
		r.Attempts = attempt
		rec, _ := cbor.Marshal(r)
		q.s.writeWait(&op{q: q, kind: opUpdate, seq: seq, rec: rec})
	}
	q.poke()
}

// notRunPause is the longest pause after a delivery the consumer did not
// run: short, since the cause (a busy pool, a swap) usually passes fast.
const notRunPause = 100 * time.Millisecond

// notAnAttempt says err means the consumer never ran the message.
func notAnAttempt(err error) bool {
	if errors.Is(err, router.ErrGone) {
		return true
	}
	var me *message.Error
	return errors.As(err, &me) && me.Status == abi.StatusBusy
}

// Stats is a snapshot of one queue.
type Stats struct {
	Name string
	// Depth is every message held: Ready + Delayed + InFlight.
	Depth, Ready, Delayed, InFlight int
	Dead                            int
	Consumer                        bool
	// Since the store opened:
	Enqueued, Delivered, Acked, Retried, DeadLettered uint64
}

// Stats reads q's figures.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	st := Stats{Name: q.name, Depth: q.depth, Ready: q.ready.len(), Delayed: q.delayed.Len(), InFlight: q.inflight,
		Dead: q.dead, Consumer: q.consumer != nil}
	q.mu.Unlock()
	st.Enqueued, st.Delivered, st.Acked = q.enqueued.Load(), q.delivered.Load(), q.acked.Load()
	st.Retried, st.DeadLettered = q.retried.Load(), q.deadLettered.Load()
	return st
}

// fifo is a queue of sequence numbers.
type fifo struct {
	buf  []uint64
	head int
}

func (f *fifo) len() int { return len(f.buf) - f.head }

func (f *fifo) push(s uint64) {
	if f.head > 0 && f.head == len(f.buf) {
		f.buf, f.head = f.buf[:0], 0
	}
	f.buf = append(f.buf, s)
}

func (f *fifo) pop() uint64 {
	s := f.buf[f.head]
	f.head++
	if f.head >= 1024 && f.head*2 >= len(f.buf) {
		f.buf = append(f.buf[:0], f.buf[f.head:]...)
		f.head = 0
	}
	return s
}

// delays is a min-heap of messages by when they are due.
type delay struct {
	at  time.Time
	seq uint64
}

type delays []delay

func (d delays) Len() int           { return len(d) }
func (d delays) Less(i, j int) bool { return d[i].at.Before(d[j].at) }
func (d delays) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *delays) Push(x any)        { *d = append(*d, x.(delay)) }
func (d *delays) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}
