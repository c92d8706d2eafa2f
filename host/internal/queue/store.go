// Package queue keeps durable work queues (ARCHITECTURE: "queue
// consumer"). A message enqueued for a named queue is written to an
// embedded bbolt file before the enqueue is acknowledged, and delivered to
// the queue's consumer at least once: it leaves the file when the consumer
// answers ok, is delivered again with exponential back-off when it fails,
// and is moved to the queue's dead letters after Options.MaxAttempts
// failed deliveries.
//
// Why bbolt: a queue's durability is the product's promise, so the format
// on disk is a well-kept embedded store (etcd's, one file, ACID
// transactions with fsync on commit, pure Go) and never a home-made log.
// Its one cost is an fsync per write transaction; the Store pays it once
// per group of writes (a single writer goroutine takes every write queued
// while the previous commit ran), so concurrent enqueues share commits
// instead of queueing behind each other's fsync.
//
// Layout of the file: a root bucket "queues" holding one bucket per queue
// name, which holds "m" (messages waiting or being delivered, keyed by
// their big-endian sequence number, so a cursor walks them in enqueue
// order) and "d" (dead letters, keyed the same way).
package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// Defaults of Options.
const (
	DefaultMaxAttempts = 5
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = time.Minute
	DefaultMaxDepth    = 100_000
)

// Options tune delivery; the zero value of a field means its default.
type Options struct {
	// MaxAttempts is how many failed deliveries move a message to the
	// dead letters.
	MaxAttempts int
	// Backoff is the wait before the first redelivery; it doubles with
	// each failed attempt up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxDepth bounds the messages one queue holds (dead letters aside):
	// an enqueue beyond it fails with busy.
	MaxDepth int
}

func (o Options) withDefaults() Options {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.Backoff {
		o.MaxBackoff = o.Backoff
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	return o
}

// backoff is the wait after the given number of failed attempts (1 or more).
func (o Options) backoff(attempts uint32) time.Duration {
	d := o.Backoff
	for i := uint32(1); i < attempts && d < o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, o.MaxBackoff)
}

var (
	rootBucket = []byte("queues")
	msgBucket  = []byte("m")
	deadBucket = []byte("d")
)

// record is a stored message. Field numbers, not names, are the format.
type record struct {
	Enqueued  int64       `cbor:"1,keyasint,omitempty"` // unix nanoseconds
	Attempts  uint32      `cbor:"2,keyasint,omitempty"` // failed deliveries so far
	Headers   abi.Headers `cbor:"3,keyasint,omitempty"`
	Payload   []byte      `cbor:"4,keyasint,omitempty"`
	LastError string      `cbor:"5,keyasint,omitempty"` // set on a dead letter
	DeadAt    int64       `cbor:"6,keyasint,omitempty"`
	Subject   string      `cbor:"7,keyasint,omitempty"` // as enqueued: $queue.NAME.METHOD
}

// Store is one queue file and the queues in it. Its methods are safe for
// concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	log  *slog.Logger
	opts atomic.Pointer[Options]

	ops     chan *op // to the writer; bounded: a full channel is busy
	stop    chan struct{}
	stopped chan struct{}
	// gate orders enqueues before the writer's stop: an enqueue holds it
	// shared while it queues its write, Close exclusively to stop.
	gate     sync.RWMutex
	stopping bool

	mu     sync.Mutex
	queues map[string]*Queue
	closed bool
	wg     sync.WaitGroup // dispatchers and deliveries
}

// op is one write for the writer goroutine.
type op struct {
	q    *Queue
	kind opKind
	seq  uint64
	rec  []byte     // the encoded record (put, update, dead)
	done chan error // nil: nobody waits
}

type opKind uint8

const (
	opPut    opKind = iota // a new message
	opUpdate               // a message's attempts changed
	opAck                  // delivered: delete it
	opDead                 // move it to the dead letters
)

// opQueue bounds the writes waiting for a commit.
const opQueue = 4096

// Open opens (creating it if needed) the queue file at path.
func Open(path string, opts Options, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open queue file %s: it is locked by another process (is another host using the same data_dir?)", path)
		}
		return nil, fmt.Errorf("open queue file %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(rootBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue file %s: %w", path, err)
	}
	s := &Store{db: db, path: path, log: log, ops: make(chan *op, opQueue),
		stop: make(chan struct{}), stopped: make(chan struct{}), queues: map[string]*Queue{}}
	o := opts.withDefaults()
	s.opts.Store(&o)
	go s.writer()
	return s, nil
}

// SetOptions applies new options; deliveries already waiting keep the
// back-off they were given.
func (s *Store) SetOptions(opts Options) {
	o := opts.withDefaults()
	s.opts.Store(&o)
}

// Path is the file the store keeps.
func (s *Store) Path() string { return s.path }

// Close stops every dispatcher, waits for the deliveries under way and
// the writes queued, and closes the file. Messages not yet acknowledged
// stay in it and are delivered again after the next Open.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, q := range s.queues {
		q.shut()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.gate.Lock()
	s.stopping = true
	s.gate.Unlock()
	close(s.stop)
	<-s.stopped
	return s.db.Close()
}

// Queue returns the queue called name, loading what the file holds for it
// the first time.
func (s *Store) Queue(name string) (*Queue, error) {
	if err := abi.ValidateSubject(name); err != nil {
		return nil, fmt.Errorf("queue name: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("queue store is closed")
	}
	if q := s.queues[name]; q != nil {
		return q, nil
	}
	q, err := s.load(name)
	if err != nil {
		return nil, fmt.Errorf("load queue %q from %s: %w", name, s.path, err)
	}
	s.queues[name] = q
	return q, nil
}

// Names lists every queue the file holds messages or dead letters for,
// loaded or not, sorted.
func (s *Store) Names() []string {
	var names []string
	s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(rootBucket).ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	s.mu.Lock()
	for n := range s.queues {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	s.mu.Unlock()
	slices.Sort(names)
	return names
}

// load reads a queue's index: which messages wait, with their attempts,
// and how many dead letters it has.
func (s *Store) load(name string) (*Queue, error) {
	q := newQueue(s, name)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(rootBucket).CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		m, err := b.CreateBucketIfNotExists(msgBucket)
		if err != nil {
			return err
		}
		d, err := b.CreateBucketIfNotExists(deadBucket)
		if err != nil {
			return err
		}
		q.dead = d.Stats().KeyN
		if k, _ := d.Cursor().Last(); k != nil {
			q.next = max(q.next, binary.BigEndian.Uint64(k))
		}
		return m.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("message key %x is not 8 bytes", k)
			}
			seq := binary.BigEndian.Uint64(k)
			var r record
			if err := cbor.Unmarshal(v, &r); err != nil {
				// Kept, not dropped: it stays in the file for an operator.
				s.log.Error("queue: a stored message does not decode; it is left in the file and not delivered", "queue", name, "seq", seq, "err", err)
				return nil
			}
			q.next = max(q.next, seq)
			q.ready.push(seq)
			if r.Attempts > 0 {
				q.attempts[seq] = r.Attempts
			}
			q.depth++
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

// writer commits queued writes in groups, one transaction (one fsync) per
// group, and tells the waiting enqueues.
func (s *Store) writer() {
	defer close(s.stopped)
	batch := make([]*op, 0, 256)
	for {
		batch = batch[:0]
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		case <-s.stop:
			// Close waited for every dispatcher: what is queued now is
			// all there will be.
			for {
				select {
				case o := <-s.ops:
					batch = append(batch, o)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				s.commit(batch)
			}
			return
		}
	more:
		for len(batch) < cap(batch) {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break more
			}
		}
		s.commit(batch)
	}
}

// commit writes batch in one transaction and reports the outcome.
func (s *Store) commit(batch []*op) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(rootBucket)
		var key [8]byte
		for _, o := range batch {
			b := root.Bucket([]byte(o.q.name))
			if b == nil {
				return fmt.Errorf("queue %q has no bucket", o.q.name)
			}
			m := b.Bucket(msgBucket)
			binary.BigEndian.PutUint64(key[:], o.seq)
			var err error
			switch o.kind {
			case opPut, opUpdate:
				err = m.Put(key[:], o.rec)
			case opAck:
				err = m.Delete(key[:])
			case opDead:
				if err = m.Delete(key[:]); err == nil {
					err = b.Bucket(deadBucket).Put(key[:], o.rec)
				}
			}
			if err != nil {
				return fmt.Errorf("queue %q message %d: %w", o.q.name, o.seq, err)
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("queue: writing to the queue file failed", "file", s.path, "writes", len(batch), "err", err)
	}
	for _, o := range batch {
		switch o.kind {
		case opPut:
			o.q.committed(o.seq, err)
		case opDead:
			if err == nil {
				// Counted once listed: Stats never shows a dead letter
				// that DeadLetters cannot yet read.
				o.q.mu.Lock()
				o.q.dead++
				o.q.mu.Unlock()
			}
		}
		if o.done != nil {
			o.done <- err
		}
	}
}

// errClosed is what an enqueue meets once the store is closing.
var errClosed = message.Errorf(abi.StatusUnreachable, "the queue store is closing")

// write queues an enqueue's o for the writer: errClosed once the store is
// closing, busy when the writer is that far behind.
func (s *Store) write(o *op) error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.stopping {
		return errClosed
	}
	select {
	case s.ops <- o:
		return nil
	default:
		return message.Errorf(abi.StatusBusy, "queue %q: %d writes wait for the disk", o.q.name, opQueue)
	}
}

// writeWait queues o even when the writer is behind: for acks and
// retries, which must not be lost to a full queue (their number is
// bounded by the deliveries under way).
func (s *Store) writeWait(o *op) {
	s.ops <- o
}

// read returns the stored record of seq in queue name.
func (s *Store) read(name string, seq uint64) (record, error) {
	var r record
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], seq)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(rootBucket).Bucket([]byte(name))
		if b == nil {
			return fmt.Errorf("queue %q has no bucket", name)
		}
		v := b.Bucket(msgBucket).Get(key[:])
		if v == nil {
			return fmt.Errorf("message %d is not in the file", seq)
		}
		return cbor.Unmarshal(v, &r)
	})
	return r, err
}

// DeadLetter is a message that failed Options.MaxAttempts deliveries.
type DeadLetter struct {
	ID        uint64
	Subject   string
	Enqueued  time.Time
	Died      time.Time
	Attempts  uint32
	LastError string
	Headers   abi.Headers
	Payload   []byte
}

// DeadLetters returns up to limit dead letters of queue name, oldest
// first.
func (s *Store) DeadLetters(name string, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(rootBucket).Bucket([]byte(name))
		if b == nil {
			return message.Errorf(abi.StatusNoHandler, "no queue %q on this host", name)
		}
		c := b.Bucket(deadBucket).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			var r record
			if err := cbor.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("dead letter %x: %w", k, err)
			}
			out = append(out, DeadLetter{ID: binary.BigEndian.Uint64(k), Subject: r.Subject, Enqueued: time.Unix(0, r.Enqueued),
				Died: time.Unix(0, r.DeadAt), Attempts: r.Attempts, LastError: r.LastError, Headers: r.Headers,
				Payload: slices.Clone(r.Payload)})
		}
		return nil
	})
	return out, err
}
